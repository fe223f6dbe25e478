"""Render a model's own chat template (Jinja, from its metadata) for one user turn or a
conversation."""

from __future__ import annotations

import datetime
from functools import lru_cache

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from edge_et.errors import BundleError

# Used only when a model carries no template at all.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _raise(message: str):
    raise jinja2.TemplateError(message)


@lru_cache(maxsize=8)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals.update(
        raise_exception=_raise, strftime_now=lambda fmt: datetime.datetime.now().strftime(fmt)
    )
    return env.from_string(template)


def render_user_turn(
    template: str | None,
    content: str,
    *,
    enable_thinking: bool | None = None,
    bos_text: str = "",
    eos_text: str = "",
) -> str:
    """The prompt text for one user message followed by the assistant's generation prompt.

    `enable_thinking` is passed to templates that know it (Qwen3); others ignore it.
    """
    return render_chat(
        template,
        [{"role": "user", "content": content}],
        enable_thinking=enable_thinking,
        bos_text=bos_text,
        eos_text=eos_text,
    )


def render_chat(
    template: str | None,
    messages: list[dict],
    *,
    enable_thinking: bool | None = None,
    bos_text: str = "",
    eos_text: str = "",
) -> str:
    """The prompt text for `messages` ({"role", "content"} dicts: system, user, assistant)
    followed by the assistant's generation prompt. BundleError when the template fails."""
    extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    try:
        return _compile(template or CHATML).render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=bos_text,
            eos_token=eos_text,
            **extra,
        )
    except jinja2.TemplateError as exc:
        raise BundleError(f"the model's chat template failed to render: {exc}") from None
