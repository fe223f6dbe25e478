"""JSON constraints as llama.cpp grammars (GBNF), compiled once per schema.

llama-cpp-python ships llama.cpp's JSON-schema-to-GBNF converter and its JSON grammar; the
grammar sampler (`llama_sampler_init_grammar`) then masks every token that would break it, so
a constrained reply is valid by construction (until a token limit cuts it: finish "length").
"""

from __future__ import annotations

import json
from functools import lru_cache

from edge_et.core.decoding import JsonConstraint
from edge_et.errors import InputError


@lru_cache(maxsize=64)
def gbnf(constraint: JsonConstraint) -> str:
    """The GBNF grammar (root rule `root`) of `constraint`; InputError (one line) for a schema
    the converter cannot take."""
    from llama_cpp import llama_grammar

    if constraint.schema is None:
        return llama_grammar.JSON_GBNF
    try:
        return llama_grammar.json_schema_to_gbnf(constraint.schema)
    except (
        ValueError,
        KeyError,
        TypeError,
        RecursionError,
        json.JSONDecodeError,
        AssertionError,
        NotImplementedError,
    ) as error:
        raise InputError(
            f"the JSON schema cannot be used to constrain the reply: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from None
