"""Paths that users wrote: a bundle.json entry, `--image`, `--bundle`, a line of a data file.

The system refuses some paths before looking for the file: one with a NUL character (Python
raises ValueError) or one whose name is too long (OSError ENAMETOOLONG). Neither is a missing
file, and neither should reach the user as a traceback; `path_problem` names them so callers
can say so in one line, and `shown` keeps a long path short enough to read in that line.
"""

from __future__ import annotations

import errno
import os

SHOWN_HEAD = 60
SHOWN_TAIL = 30


def path_problem(path: str | os.PathLike) -> str | None:
    """Why the system cannot even look `path` up, or None when it can.

    A missing or unreadable file is not such a problem: callers report those in their own words.
    """
    try:
        os.stat(path)
    except UnicodeEncodeError:  # a ValueError too: a lone surrogate (\ud800) from a JSON escape
        return "the path is not valid text for this system (an unpaired surrogate)"
    except ValueError:  # what os.stat raises for a NUL character in the path
        return "the path contains a NUL character"
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return "the path is too long for this system"
    return None


def shown(path: str | os.PathLike) -> str:
    """`path` for a one-line message: as given (a NUL as `\\0`), or its start and end when long."""
    text = os.fsdecode(path).replace("\0", "\\0")
    # Control characters (a newline would split the one-line message), undecodable bytes and
    # lone surrogates (a strict UTF-8 stream refuses them) print as escapes.
    text = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )
    if len(text) <= SHOWN_HEAD + SHOWN_TAIL + 20:
        return text
    return f"{text[:SHOWN_HEAD]}...{text[-SHOWN_TAIL:]} ({len(text):,} characters)"
