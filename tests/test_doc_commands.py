"""Every `edge-et` command shown in README.md and docs/ is one the CLI accepts, and the cheap
ones run as written (on the tiny bundle), so a doc example cannot rot.

Each shown command is checked against the CLI itself (click's view of the typer app): the
subcommands exist, every option it uses exists, and a command that shows options names every
required one (fragments such as `edge-et run ... --json` and synopses with [optional] parts
excepted). The cheap commands (CHEAP: reading headers, tables and help, nothing loaded) then
run as written, with the bundle and picture paths of the docs pointing at the tiny bundle and
the sample picture.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Commands that read headers, tables or help only: seconds, no model loaded.
CHEAP = {("info",), ("plan",), ("profiles",), ("export", "list")}
BUNDLES = {"models/bundles/default", "models/bundles/my-onnx", "DIR", "BUNDLE", "B"}
PICTURES = {"models/samples/sample.png", "picture.png", "pic.png", "photo.jpg"}
FRAGMENT = ("...", "…")
INLINE = re.compile(r"`(edge-et [^`]+)`")


@dataclass(frozen=True)
class Shown:
    source: str
    line: int
    text: str
    fenced: bool = True  # in a code block (an example), else an inline `span` of prose

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}"


def shown_commands() -> list[Shown]:
    """`edge-et ...` lines of fenced blocks (continuations joined) and inline code spans."""
    found = []
    for doc in DOCS:
        lines, fenced, pending = doc.read_text().splitlines(), False, None
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                text = line.strip()
                if pending is not None:
                    start, joined = pending
                    text, pending = joined + " " + text, None
                    number = start
                if text.startswith("edge-et "):
                    if text.endswith("\\"):
                        pending = (number, text[:-1].rstrip())
                        continue
                    found.append(Shown(doc.name, number, text))
            else:
                found += [
                    Shown(doc.name, number, m.group(1), fenced=False) for m in INLINE.finditer(line)
                ]
    return found


def tokens(text: str) -> list[str]:
    try:
        words = shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in prose
        words = text.split()
    return [word.strip("[]") for word in words if word.strip("[]") and word not in ("|", *FRAGMENT)]


def root_command():
    """The CLI as click sees it (typer's own click: groups have `commands`)."""
    from edge_et.cli.main import app

    return typer.main.get_command(app)


def is_group(command) -> bool:
    return hasattr(command, "commands")


def option_params(command) -> list:
    return [param for param in command.params if param.param_type_name == "option"]


def resolve(words: list[str]) -> tuple[tuple[str, ...], object, list[str]]:
    """(subcommand path, the command, the words after it)."""
    command, path, at = root_command(), (), 1
    while is_group(command) and at < len(words) and words[at] in command.commands:
        command, path, at = command.commands[words[at]], path + (words[at],), at + 1
    return path, command, words[at:]


def problems(shown: Shown) -> list[str]:
    path, command, rest = resolve(tokens(shown.text))
    if rest and rest[0].isupper():  # `edge-et COMMAND --help`: a placeholder
        return []
    if is_group(command) and not option_params(command):
        unknown = [w for w in rest if not w.startswith("-")][:1]
        return [f"no command {' '.join(path + tuple(unknown))!r}"] if unknown else []
    options = {
        name: param
        for param in option_params(command)
        for name in (*param.opts, *param.secondary_opts)
    }
    out, given, valued, at = [], set(), False, 0
    while at < len(rest):
        word = rest[at]
        at += 1
        if not word.startswith("-") or word in ("-", "--"):
            continue
        for name in word.split("=")[0].split("|"):
            param = options.get(name) or (options.get("--help") if name == "--help" else None)
            if name == "--help":
                continue
            if param is None:
                out.append(f"{' '.join(path)} has no option {name}")
                continue
            given.add(param.name)
            takes_value = not param.is_flag and not param.count and "=" not in word
            if takes_value and at < len(rest) and not rest[at].startswith("-"):
                at, valued = at + 1, True
    fragment = any(mark in shown.text for mark in FRAGMENT) or "[" in shown.text
    # An example names every required option; prose may name one option (`run --batch`), but
    # a span that gives an option its value is an example too.
    example = shown.fenced or valued
    if given and example and not fragment and "--help" not in shown.text:
        out += [
            f"{' '.join(path)} needs {param.opts[0]}"
            for param in option_params(command)
            if param.required and param.name not in given
        ]
    return out


SHOWN = shown_commands()


def test_the_docs_show_commands():
    assert len(SHOWN) > 100 and any(s.source == "README.md" for s in SHOWN)


@pytest.mark.parametrize("shown", SHOWN, ids=[s.id for s in SHOWN])
def test_every_shown_command_is_one_the_cli_accepts(shown):
    assert not problems(shown), f"{shown.id}: {shown.text}"


def runnable(shown: Shown, bundle: Path, picture: Path) -> list[str] | None:
    """The command as written, paths pointed at the test files; None unless it is cheap and
    complete (no fragment, no synopsis, no placeholder left)."""
    if not shown.fenced or any(mark in shown.text for mark in (*FRAGMENT, "[", "|")):
        return None
    words = tokens(shown.text)
    path, _, _ = resolve(words)
    if path not in CHEAP and "--help" not in words:
        return None
    words = [str(bundle) if w in BUNDLES else str(picture) if w in PICTURES else w for w in words]
    if any(w.isupper() and len(w) > 1 for w in words):  # NAME, FILE.jsonl: a placeholder
        return None
    return [sys.executable, "-m", "edge_et.cli.main", *words[1:]]


CHEAP_SHOWN = [s for s in SHOWN if runnable(s, Path("b"), Path("p.png"))]


def test_some_shown_commands_are_cheap():
    assert len(CHEAP_SHOWN) >= 5, [s.id for s in CHEAP_SHOWN]


@pytest.mark.parametrize("shown", CHEAP_SHOWN, ids=[s.id for s in CHEAP_SHOWN])
def test_cheap_shown_commands_run_as_written(shown, tiny_bundle, sample_image):
    command = runnable(shown, tiny_bundle, sample_image)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{shown.id}: {shown.text}\n{done.stderr}"
    assert done.stdout.strip()


@pytest.mark.parametrize(
    "text, problem",
    [
        ("edge-et export train --scenes mix", "export train needs --form"),
        ("edge-et export micro-eval --stream shifted", "export micro-eval needs --bundle"),
        ("edge-et run --bundle DIR --embeding int8", "run has no option --embeding"),
        ("edge-et exprot gguf", "no command 'exprot'"),
    ],
)
def test_a_broken_example_is_caught(text, problem):
    assert problem in problems(Shown("x.md", 1, text))
