"""Nothing silently ignored: a request field this server does not honour is a 400 naming it.

An app that asks for tools, log probabilities or a penalty and gets an answer without them
cannot tell; an error it can. OpenAI fields at their no-op value (`top_p: 1`,
`frequency_penalty: 0`, `tools: []`, `logprobs: false` ...), which many clients send on every
request, are accepted; `user` and `metadata` are accepted as what they are, labels that change
nothing. The model name is checked against what this server serves (404 `model_not_found`).
"""

from __future__ import annotations

from typing import Any

from edge_et.serve.failures import ApiError
from edge_et.serve.schema import ChatRequest

# field -> the values that ask for nothing (the field is then accepted)
NO_OP: dict[str, tuple[Any, ...]] = {
    "top_p": (1, 1.0, None),
    "frequency_penalty": (0, 0.0, None),
    "presence_penalty": (0, 0.0, None),
    "logit_bias": ({}, None),
    "logprobs": (False, None),
    "top_logprobs": (0, None),
    "tools": ([], None),
    "tool_choice": ("none", "auto", None),
    "functions": ([], None),
    "function_call": ("none", "auto", None),
    "parallel_tool_calls": (None, True, False),
    "modalities": (["text"], None),
    "audio": (None,),
    "prediction": (None,),
    "store": (False, None),
    "service_tier": ("auto", "default", None),
    "reasoning_effort": (None,),
    "web_search_options": (None,),
    "verbosity": (None,),
}
LABELS = ("user", "metadata", "safety_identifier", "prompt_cache_key")  # change nothing
WHY = {
    "logprobs": "log probabilities are not returned",
    "top_logprobs": "log probabilities are not returned",
    "tools": "tool calls are not supported",
    "tool_choice": "tool calls are not supported",
    "functions": "function calls are not supported",
    "function_call": "function calls are not supported",
    "top_p": "the reasoning stage samples with the bundle's top_p",
    "frequency_penalty": "penalties are not supported",
    "presence_penalty": "penalties are not supported",
    "logit_bias": "logit_bias is not supported",
    "modalities": "only text replies",
    "audio": "only text replies",
    "reasoning_effort": "use edge_et.think_budget",
}
# fields of an echoed assistant reply that are accepted and not used
ECHOED = (
    "reasoning_content",
    "reasoning",
    "refusal",
    "annotations",
    "audio",
    "function_call",
    "tool_calls",
    "name",
)


def refuse_unhonoured(body: ChatRequest) -> None:
    """A 400 (`unsupported_parameter`, `param` the field) for the first field of `body` or of
    one of its messages that asks for something this server does not do."""
    for name, value in (body.model_extra or {}).items():
        if name in LABELS or (name in NO_OP and value in NO_OP[name]):
            continue
        reason = WHY.get(name, "this server does not support it")
        raise ApiError(
            400,
            f"{name} is not supported ({reason}); remove it from the request",
            param=name,
            code="unsupported_parameter",
        )
    for index, message in enumerate(body.messages):
        if message.role == "tool":
            raise ApiError(
                400,
                f"messages[{index}]: tool messages are not supported (no tool calls)",
                param="messages",
                code="unsupported_parameter",
            )
        for name, value in (message.model_extra or {}).items():
            if name not in ECHOED or (name in ("tool_calls", "function_call") and value):
                raise ApiError(
                    400,
                    f"messages[{index}].{name} is not supported; remove it",
                    param="messages",
                    code="unsupported_parameter",
                )
