"""Request bodies of `edge-et serve`: every JSON body is a request or a client error, never a 500.

The path a body takes before it reaches a slot is fuzzed without a server: the pydantic schema
(FastAPI answers its ValidationError with a 400), then `parse_request` (strict fields, the conversation, its pictures),
which answer with an ApiError. Anything else escaping, or a status of 500 and up, is a bug.
The whole server is fuzzed through its OpenAPI schema by tests/serve/test_schema_fuzz.py.
"""

from __future__ import annotations

import base64
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from pydantic import ValidationError  # noqa: E402

from edge_et.serve.chat import parse_request  # noqa: E402
from edge_et.serve.failures import ApiError  # noqa: E402
from edge_et.serve.schema import ChatRequest  # noqa: E402
from tests.fuzz.test_fuzz_manifests import VALUES  # noqa: E402

_png = io.BytesIO()
Image.new("RGB", (8, 8), (200, 30, 30)).save(_png, format="PNG")
PNG_URI = "data:image/png;base64," + base64.b64encode(_png.getvalue()).decode()
URLS = st.one_of(
    st.sampled_from(
        [
            PNG_URI,
            PNG_URI[:40],
            "data:image/png,xx",
            "aGVsbG8=",
            "http://127.0.0.1/x.png",
            "file:///etc/passwd",
            "ftp://x",
            "",
            "data:;base64,",
            "\udcff",
        ]
    ),
    st.text(max_size=30),
)
PART = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": st.one_of(st.text(max_size=20), VALUES)}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.one_of(st.fixed_dictionaries({"url": URLS}), VALUES),
        }
    ),
    VALUES,
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "x"]),
        "content": st.one_of(st.text(max_size=20), st.lists(PART, max_size=3), VALUES),
    }
)
BODY = st.fixed_dictionaries(
    {"model": st.just("edge-et"), "messages": st.lists(MESSAGE, max_size=3)},
    optional={
        "stream": VALUES,
        "max_tokens": st.one_of(st.integers(-5, 10**12), VALUES),
        "temperature": st.one_of(st.floats(), VALUES),
        "seed": VALUES,
        "edge_et": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "mode": st.one_of(st.sampled_from(["extract-think", "direct", "x"]), VALUES),
                    "hint": VALUES,
                    "think_budget": VALUES,
                    "answer_budget": VALUES,
                },
            ),
            VALUES,
        ),
    },
)


@given(st.one_of(BODY, VALUES))
def test_request_bodies_parse_or_fail_as_client_errors(body):
    try:
        request = ChatRequest.model_validate(body)
        parse_request(request, thinking=True, media_dir=None, max_pixels=1 << 20)
    except ValidationError:
        return  # FastAPI's handler answers it as a 400 (tests/serve checks the JSON shape)
    except ApiError as error:
        assert error.status < 500, error.message
        assert "\n" not in error.message
