"""Image-path settings of a llama.cpp model, kept apart from loading so that reading them
(the pipeline does, from the speed profile) does not import llama.cpp.

`PrefillSettings` are the knobs of a vision-language model's image path that llama.cpp leaves
at defaults: the language model's batch sizes and flash attention for the image-token
prefill, and the vision encoder's flash attention and threads. `edge_et.runtime.image_tuning`
chooses them by measurement per device and keeps them in the speed profile; absent that,
`PrefillSettings()` is llama-cpp-python's defaults, what edge-et always ran with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from edge_et.core.host import usable_cores

# KV cache element types by name; None keeps llama.cpp's default (f16).
KV_TYPES = {None: None, "f16": None, "q8_0": 8}  # 8 = GGML_TYPE_Q8_0
VISION_FLASH = {"auto": -1, "off": 0, "on": 1}  # mtmd_context_params.flash_attn_type


@dataclass(frozen=True)
class PrefillSettings:
    """Image-path settings of one model. Defaults: llama-cpp-python's, as edge-et ran before."""

    n_batch: int = 512  # tokens per llama_decode call (image embeddings included)
    n_ubatch: int = 512  # tokens per compute graph inside one call
    flash_attn: bool = False  # the language model's attention
    vision_flash: str = "auto"  # the vision encoder's attention: auto | off | on
    vision_threads: int | None = None  # None: the language model's threads

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PrefillSettings:
        """From a speed profile; unknown keys (a newer edge-et's) are ignored."""
        if not isinstance(data, dict):
            raise ValueError(f"invalid prefill settings {data!r}")
        known = {f.name for f in fields(cls)}
        settings = cls(**{k: v for k, v in data.items() if k in known})
        if settings.vision_flash not in VISION_FLASH or settings.n_ubatch > settings.n_batch:
            raise ValueError(f"invalid prefill settings {data}")
        return settings

    def label(self) -> str:
        threads = self.vision_threads or "all"
        return (
            f"batch {self.n_batch}/{self.n_ubatch}, fa {'on' if self.flash_attn else 'off'}, "
            f"vision fa {self.vision_flash}, vision threads {threads}"
        )


def default_threads() -> int:
    """All cores this process may use: decode on small devices is bandwidth-bound anyway."""
    return usable_cores()
