"""The one exception type that means "the user gave us something we cannot use".

The CLI prints it as a single line and exits with code 2; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the input (files, flags, bundle); the message is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))
