"""What the planner weighs: a stage's estimated footprint and the image bounds of its vision side.

Each backend estimates these from its own files (edge_et/backends/*/footprint.py) without
loading a model; the planner (scheduler.py) only compares the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class VisionShape:
    """What sizes a vision encoder's memory: patch grid, widths, token limits.

    dynamic: the encoder takes any image size between limits (Qwen2-VL-style), so the plan
    fixes the largest image it allows; otherwise an image is always `max_tokens` at most.
    """

    projector: str
    image_size: int
    patch_size: int
    n_embd: int
    n_ff: int
    merge: int
    max_tokens: int
    warmup_tokens: int
    dynamic: bool = False

    @property
    def pixels_per_token(self) -> int:
        return (self.patch_size * self.merge) ** 2


@dataclass
class StageFootprint:
    """Estimated resident bytes of one stage at one setting (each backend documents its terms)."""

    role: str
    n_ctx: int
    kv_type: str = "f16"
    flash_attn: bool = False
    weights_bytes: int = 0  # tensor bytes of the language model (the GGUF's tensor data)
    repack_bytes: int = 0  # repacked copies of CPU weights (the mapped file stays resident)
    kv_bytes: int = 0
    compute_bytes: int = 0
    overhead_bytes: int = 0  # header/vocabulary pages, context and tokenizer tables
    mmproj_bytes: int = 0  # perception: projector weights + image encode (see vision_bytes)
    image_tokens: int = 0  # perception: the largest image the estimate allows, in tokens
    n_params: int = 0  # weights of the language model (to scale by bits per weight)
    gpu_layers: int = 0  # llama.cpp n_gpu_layers (n_layer + 1 puts the output layer there too)
    vram_bytes: int = 0  # what those layers need on the GPU
    layer_weights: tuple[int, ...] = field(default=(), repr=False)
    output_weights: int = field(default=0, repr=False)
    reserved_compute_bytes: int = field(default=0, repr=False)

    @property
    def total_bytes(self) -> int:
        """Resident host memory of the stage (layers offloaded to a GPU are not counted)."""
        return (
            self.weights_bytes
            + self.repack_bytes
            + self.kv_bytes
            + self.compute_bytes
            + self.overhead_bytes
            + self.mmproj_bytes
        )

    def to_dict(self) -> dict:
        data = {
            k: getattr(self, k)
            for k in (
                "weights_bytes",
                "repack_bytes",
                "kv_bytes",
                "compute_bytes",
                "overhead_bytes",
                "mmproj_bytes",
                "total_bytes",
                "n_ctx",
                "kv_type",
                "flash_attn",
                "gpu_layers",
            )
        }
        if self.image_tokens:
            data["image_tokens"] = self.image_tokens
        if self.gpu_layers:
            data["vram_bytes"] = self.vram_bytes
        return data
