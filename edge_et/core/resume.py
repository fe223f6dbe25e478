"""Resuming a long run where it stopped: `run --batch ... --resume`, `eval ... --resume`.

A resumable run writes beside its output OUT:

- `OUT.resume.json`: the input file's sha256 and the settings that shape the answers, so a
  resume against a changed input, or with other settings, is refused in one line instead of
  mixing answers to two different runs;
- `OUT.extractions.jsonl` (staged runs): each extraction as it finishes, so a crash in the
  reasoning pass keeps them and a resume runs only the missing stages. Deleted once every
  line is answered.

OUT and the side file are journals (edge_et.core.journal): whole lines only, so what a crash
costs is at most the line in flight.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from edge_et.core.atomic import write_text
from edge_et.core.journal import read_journal
from edge_et.core.paths import shown
from edge_et.errors import InputError

STATE_FORMAT = "edge-et.resume/1"


def state_path(output: Path) -> Path:
    return Path(output).with_name(Path(output).name + ".resume.json")


def side_path(output: Path, kind: str = "extractions") -> Path:
    return Path(output).with_name(Path(output).name + f".{kind}.jsonl")


@dataclass
class ResumePoint:
    """What an earlier run of the same input left: its result lines and its side-file lines."""

    output: Path
    records: list[dict] = field(default_factory=list)
    extractions: list[dict] = field(default_factory=list)
    resumed: bool = False


def input_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise InputError(f"cannot read '{shown(path)}': {exc.strerror or exc}") from None
    return digest.hexdigest()


def prepare(output: Path, source: Path, settings: dict, *, resume: bool) -> ResumePoint:
    """Check an earlier run's files against `source` and `settings` (resume), or start afresh.

    Starting afresh deletes an old OUT and side file. Resuming when OUT does not exist yet is
    a fresh start too, so the same command works for the first run and every rerun.
    """
    output = Path(output)
    state = {
        "format": STATE_FORMAT,
        "input": str(source),
        "input_sha256": input_sha256(source),
        "settings": _plain(settings),
    }
    if resume and output.exists():
        _check_state(output, source, state)
        return ResumePoint(
            output,
            read_journal(output, repair=True),
            read_journal(side_path(output), repair=True),
            resumed=True,
        )
    for path in (output, side_path(output)):
        path.unlink(missing_ok=True)
    write_text(state_path(output), json.dumps(state, indent=2, ensure_ascii=False) + "\n")
    return ResumePoint(output)


def finished(output: Path) -> None:
    """Every line is answered: the side file has served its purpose."""
    side_path(output).unlink(missing_ok=True)


def _plain(settings: dict) -> dict:
    """Settings as JSON gives them back (tuples become lists), so a saved copy compares equal."""
    return json.loads(json.dumps(settings, default=str))


def _check_state(output: Path, source: Path, state: dict) -> None:
    try:
        saved = json.loads(state_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        raise InputError(
            f"'{shown(output)}' has no readable {state_path(output).name} beside it, so "
            f"it cannot be checked against the input; move it away or drop --resume"
        )
    if saved.get("input_sha256") != state["input_sha256"]:
        raise InputError(
            f"the input '{shown(source)}' changed since '{shown(output)}' was started "
            f"(its sha256 differs); resuming would mix two inputs: restore it or "
            f"drop --resume to start afresh"
        )
    old = saved.get("settings") or {}
    changed = sorted(
        key
        for key in set(old) | set(state["settings"])
        if old.get(key) != state["settings"].get(key)
    )
    if changed:
        shown_changes = ", ".join(
            f"{key} {old.get(key)!r} -> {state['settings'].get(key)!r}" for key in changed
        )
        raise InputError(
            f"'{shown(output)}' was started with other settings ({shown_changes}); "
            f"resume with the same ones or drop --resume to start afresh"
        )
