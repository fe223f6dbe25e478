"""Reading user JSONL files line by line: a bad line is a one-line reason, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from edge_et.core.paths import path_problem, shown
from edge_et.errors import InputError

Item = TypeVar("Item")


def json_object(line: str) -> dict:
    """The line as a JSON object; ValueError with a short reason otherwise."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    return raw


def local_path(value: str, folder: Path) -> Path:
    """A path from a data line: absolute as given, else relative to the data file's folder.

    ValueError with a short reason when the system cannot look it up at all (see `path_problem`).
    """
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # `~name` for a user this system does not know
        raise ValueError(
            f"path '{shown(value)}': no home folder for "
            f"'{shown(value.split('/')[0])}' on this system"
        ) from None
    path = path if path.is_absolute() else folder / path
    problem = path_problem(path)
    if problem:
        raise ValueError(f"path '{shown(value)}': {problem}")
    return path


def read_lines(path: Path, what: str) -> list[str]:
    """The lines of the user's UTF-8 text file at `path`; InputError naming `what` (e.g. "data
    file") in one line when it cannot be read."""
    problem = path_problem(path)
    if problem:
        raise InputError(f"cannot read {what} '{shown(path)}': {problem}")
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} '{shown(path)}': {exc}") from None


def parse_lines(
    path: Path, parse: Callable[[int, dict, Path], Item], *, what: str, limit: int | None = None
) -> tuple[list[Item], list[str]]:
    """`parse(line_number, object, folder)` over every non-blank line of the file at `path`.

    Returns the parsed items (the first `limit` of them) and `line N: reason` for each line
    that was not JSON or that `parse` refused with ValueError. Raises InputError when the
    file cannot be read or no line is usable (`what` names the kind of line wanted).
    """
    path = Path(path)
    lines = read_lines(path, "data file")
    items: list[Item] = []
    errors: list[str] = []
    for number, line in enumerate(lines, start=1):
        if limit is not None and len(items) >= limit:
            break
        if not line.strip():
            continue
        try:
            items.append(parse(number, json_object(line), path.parent))
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    if not items:
        detail = f" ({errors[0]})" if errors else ""
        raise InputError(f"data file '{shown(path)}' has no usable {what}{detail}")
    return items, errors
