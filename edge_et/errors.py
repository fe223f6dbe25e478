"""The one exception type that means "the user gave us something we cannot use".

The CLI prints it as a single line and exits with code 2; anything else is a bug
and keeps its traceback.
"""

import sys
from contextlib import contextmanager


class UserError(Exception):
    """A mistake in the input (files, flags, bundle); the message is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


@contextmanager
def exit_on_user_error():
    """For `python -m` entry points: a UserError inside becomes one `error:` line on stderr and
    its exit code, as the CLI does."""
    try:
        yield
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
