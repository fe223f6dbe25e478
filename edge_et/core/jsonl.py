"""Reading user JSONL files line by line: a bad line is a one-line reason, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, TypeVar

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
    """A path from a data line: absolute as given, else relative to the data file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else folder / path


def parse_lines(path: Path, parse: Callable[[int, dict, Path], Item], *, what: str,
                limit: int | None = None) -> tuple[list[Item], list[str]]:
    """`parse(line_number, object, folder)` over every non-blank line of the file at `path`.

    Returns the parsed items (the first `limit` of them) and `line N: reason` for each line
    that was not JSON or that `parse` refused with ValueError. Raises InputError when the
    file cannot be read or no line is usable (`what` names the kind of line wanted).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read data file '{path}': {exc}") from None
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
        raise InputError(f"data file '{path}' has no usable {what}{detail}")
    return items, errors
