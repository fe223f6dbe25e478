"""Structured replies: which stage a JSON constraint applies to, and whether its backend can.

The constraint shapes the reply, never the method's working: a thinking reasoner thinks freely
and only its text after `</think>` is constrained (runtime/generation.py); an instruct reasoner's
whole reply is constrained and gets no answer cue (the reply is the JSON); in `extract` and
`direct` the perception text is the reply, so it is constrained (an app that wants fields from
a receipt). The answer an app reads is `content`; `Result.answer` (the paper's parse) is the
JSON text's last line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edge_et import backends
from edge_et.bundle.manifest import Bundle
from edge_et.core.decoding import JsonConstraint
from edge_et.errors import InputError

PERCEPTION_REPLIES = ("extract", "direct")  # modes whose reply is the perception text


def json_constraint(schema: dict | str | None) -> JsonConstraint:
    """The constraint for a JSON schema (a dict, or its JSON text), or any JSON when None;
    InputError for text that is not a JSON object."""
    if schema is None:
        return JsonConstraint()
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as error:
            raise InputError(f"the JSON schema is not JSON: {error}") from None
    if not isinstance(schema, dict):
        raise InputError("the JSON schema must be a JSON object")
    return JsonConstraint(schema=json.dumps(schema, sort_keys=True, separators=(",", ":")))


def schema_file_constraint(path: str | os.PathLike | None) -> JsonConstraint | None:
    """The constraint of a JSON-schema file (`--json-schema FILE`), None without one;
    InputError (one line) for a file that cannot be read or is not a JSON object."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InputError(f"cannot read the JSON schema {os.fsdecode(path)}: {reason}") from None
    return json_constraint(text)


def check_constraint(bundle: Bundle, mode: str, constraint: JsonConstraint | None) -> None:
    """InputError (one line) when the stage that writes `mode`'s reply runs on a backend that
    cannot constrain decoding, or the schema cannot be compiled; nothing is loaded."""
    if constraint is None:
        return
    role = "perception" if mode in PERCEPTION_REPLIES else "reasoning"
    spec = bundle.require(role)
    backend = backends.get(spec.backend)
    if backend.constrain is None:
        raise InputError(
            f"the {role} model runs on {backend.name}, which cannot constrain its "
            f"reply to JSON; use a llama.cpp bundle for response_format / --json-schema"
        )
    backend.constrain(constraint)
