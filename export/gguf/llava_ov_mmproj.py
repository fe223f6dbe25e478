"""Our own mmproj writer for LLaVA-OneVision (llama.cpp's converter has none).

libmtmd runs SigLIP + a 2-layer MLP as its "mlp" (llava) projector. We write exactly the keys
and tensor names it loads for that projector, plus edge-et keys that tell the runtime to do
LLaVA-OneVision's anyres packing itself (`edge_et/formats/llava_ov.py`): no
`clip.vision.image_grid_pinpoints`, so mtmd encodes every view as one fixed-size tile.

Faithfulness choices, against transformers' LlavaOnevisionModel:
- features are `hidden_states[vision_feature_layer]` of the SigLIP encoder: the raw output of
  that layer, so the post-layernorm is NOT written (mtmd would apply it) and
  `clip.vision.feature_layer` names the layer, which also makes mtmd run all layers up to it
  (without the key it stops one layer early, the LLaVA-1.5 convention);
- layers past the deepest feature layer are dropped (they never influence the output).

Runs in a subprocess with the converter's own gguf-py first on sys.path (PyPI's `gguf` is older
and may be installed too): `write_mmproj` starts `python -m export.gguf.runner mmproj ...`,
which calls `write_in_subprocess`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_et.errors import ExportError
from edge_et.formats.llava_ov import ASPECT_KEY, PACKING, PACKING_KEY, PINPOINTS_KEY
from export.gguf.converter import failure_line, run_with_gguf_py

OUTTYPES = ("f32", "f16", "q8_0")

# HF SigLIP/LLaVA-OV name pieces -> libmtmd names (clip-impl.h TN_*).
_LAYER_PARTS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.out_proj": "attn_out",
    "layer_norm1": "ln1",
    "layer_norm2": "ln2",
    "mlp.fc1": "ffn_up",
    "mlp.fc2": "ffn_down",
}
_FIXED = {
    "vision_tower.vision_model.embeddings.patch_embedding.weight": "v.patch_embd.weight",
    "vision_tower.vision_model.embeddings.patch_embedding.bias": "v.patch_embd.bias",
    "vision_tower.vision_model.embeddings.position_embedding.weight": "v.position_embd.weight",
    "multi_modal_projector.linear_1.weight": "mm.0.weight",
    "multi_modal_projector.linear_1.bias": "mm.0.bias",
    "multi_modal_projector.linear_2.weight": "mm.2.weight",
    "multi_modal_projector.linear_2.bias": "mm.2.bias",
    "image_newline": "v.image_newline",
}
_LAYER_PREFIX = "vision_tower.vision_model.encoder.layers."


def write_mmproj(hf_dir: Path, out_file: Path, outtype: str = "f16") -> Path:
    """Write the mmproj GGUF of the LLaVA-OneVision checkpoint `hf_dir` to `out_file`.

    outtype: "f32", "f16" (matrices f16, vectors f32) or "q8_0" (linear weights q8_0).
    """
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype {outtype!r} is not one of {', '.join(OUTTYPES)}")
    hf_dir, out_file = Path(hf_dir).resolve(), Path(out_file).resolve()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    proc = run_with_gguf_py(["mmproj", str(hf_dir), str(out_file), "--outtype", outtype])
    if proc.returncode != 0 or not out_file.is_file():
        raise ExportError(
            f"the LLaVA-OneVision mmproj writer could not convert {hf_dir.name}: "
            f"{failure_line(proc.stdout + proc.stderr)}"
        )
    return out_file


def gguf_name(hf_name: str, n_layers: int) -> str | None:
    """The mmproj tensor name for an HF tensor, or None for tensors the projector never uses
    (language model, post-layernorm, SigLIP head, layers past the feature layer)."""
    for prefix in ("model.", ""):  # transformers >= 4.52 saves "model.vision_tower...", older not
        name = hf_name.removeprefix(prefix)
        if name in _FIXED:
            return _FIXED[name]
        if name.startswith(_LAYER_PREFIX):
            index, _, rest = name[len(_LAYER_PREFIX) :].partition(".")
            part, _, kind = rest.rpartition(".")
            if int(index) < n_layers and part in _LAYER_PARTS:
                return f"v.blk.{index}.{_LAYER_PARTS[part]}.{kind}"
            return None
    return None


def feature_layers(config: dict) -> list[int]:
    """`vision_feature_layer` as non-negative hidden-state indices (0 = embeddings, i = output of
    layer i-1), the convention of both transformers' hidden_states and mtmd's feature layers."""
    n_layers = config["vision_config"]["num_hidden_layers"]
    wanted = config.get("vision_feature_layer", -1)
    layers = [wanted] if isinstance(wanted, int) else list(wanted)
    layers = [k if k >= 0 else n_layers + 1 + k for k in layers]
    # mtmd stacks feature layers in depth order; transformers in list order: they agree only sorted.
    if layers != sorted(layers) or not all(0 < k <= n_layers for k in layers):
        raise ValueError(
            f"vision_feature_layer {wanted!r} is not supported (need ascending layers)"
        )
    return layers


def check_supported(config: dict, processor: dict) -> None:
    """Refuse configurations the mtmd graph or our packing would not reproduce faithfully."""
    vision = config["vision_config"]
    problems = []
    if vision.get("model_type", "siglip_vision_model") != "siglip_vision_model":
        problems.append(f"vision tower {vision.get('model_type')!r} (only SigLIP)")
    if vision.get("hidden_act", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
        problems.append(f"vision activation {vision.get('hidden_act')!r}")
    if config.get("vision_feature_select_strategy", "full") != "full":
        problems.append("vision_feature_select_strategy other than 'full'")
    if not str(config.get("vision_aspect_ratio", "anyres_max_9")).startswith("anyres_max_"):
        problems.append(f"vision_aspect_ratio {config.get('vision_aspect_ratio')!r}")
    if not config.get("multimodal_projector_bias", True):
        problems.append("a projector without biases")
    if config.get("projector_hidden_act", "gelu") not in ("gelu", "gelu_pytorch_tanh"):
        problems.append(f"projector activation {config.get('projector_hidden_act')!r}")
    size = processor.get("size", {})
    if (size.get("height"), size.get("width")) != (vision["image_size"],) * 2:
        problems.append(f"processor size {size} differs from the tower's {vision['image_size']}")
    if processor.get("resample", 3) != 3:
        problems.append("a resampling filter other than bicubic")
    grid = config["image_grid_pinpoints"]
    if processor.get("image_grid_pinpoints", grid) != grid:
        problems.append("processor and model grid pinpoints differ")
    if problems:
        raise ValueError("unsupported LLaVA-OneVision checkpoint: " + "; ".join(problems))


def _load_tensors(hf_dir: Path, n_layers: int) -> dict[str, np.ndarray]:
    """Read only the tensors the projector uses, as float32 numpy (bf16 needs torch to read)."""
    from safetensors import safe_open

    tensors = {}
    for path in sorted(hf_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                name = gguf_name(key, n_layers)
                if name is not None:
                    tensors[name] = handle.get_tensor(key).float().numpy()
    return tensors


def _encode(gguf, name: str, data: np.ndarray, outtype: str):
    """(array, raw ggml type or None): vectors f32; convolution and position rows f16 unless f32;
    linear weights q8_0 when asked and their rows fit 32-wide blocks."""
    if outtype == "f32" or data.ndim == 1:
        return data.astype(np.float32), None
    is_linear = name.startswith(("v.blk.", "mm.")) and data.ndim == 2
    if outtype == "q8_0" and is_linear and data.shape[-1] % 32 == 0:
        kind = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(data.astype(np.float32), kind), kind
    return data.astype(np.float16), None


def _write_keys(writer, config: dict, processor: dict, layers: list[int], outtype: str) -> None:
    import gguf

    vision = config["vision_config"]
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_file_type({"f32": 0, "f16": 1, "q8_0": 7}[outtype])
    writer.add_name("LLaVA-OneVision vision tower")
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type("mlp")
    writer.add_vision_image_size(vision["image_size"])
    writer.add_vision_patch_size(vision["patch_size"])
    writer.add_vision_embedding_length(vision["hidden_size"])
    writer.add_vision_feed_forward_length(vision["intermediate_size"])
    writer.add_vision_block_count(max(layers))
    writer.add_vision_head_count(vision["num_attention_heads"])
    writer.add_vision_attention_layernorm_eps(vision.get("layer_norm_eps", 1e-6))
    writer.add_vision_projection_dim(config["text_config"]["hidden_size"])
    writer.add_vision_image_mean([float(x) for x in processor.get("image_mean", [0.5] * 3)])
    writer.add_vision_image_std([float(x) for x in processor.get("image_std", [0.5] * 3)])
    writer.add_vision_use_gelu(True)  # SigLIP's gelu_pytorch_tanh = ggml_gelu
    writer.add_vision_feature_layers(layers)
    writer.add_string(PACKING_KEY, PACKING)
    writer.add_string(PINPOINTS_KEY, json.dumps(config["image_grid_pinpoints"]))
    writer.add_string(ASPECT_KEY, str(config.get("vision_aspect_ratio", "anyres_max_9")))


def write_in_subprocess(hf_dir: Path, out_file: Path, outtype: str) -> None:
    """The mmproj writer itself; runs where the converter's gguf-py is on sys.path."""
    import gguf  # the sdist's gguf-py: importable only inside run_with_gguf_py's subprocess

    config = json.loads((hf_dir / "config.json").read_text())
    proc_file = hf_dir / "preprocessor_config.json"
    processor = json.loads(proc_file.read_text()) if proc_file.is_file() else {}
    check_supported(config, processor)
    layers = feature_layers(config)
    tensors = _load_tensors(hf_dir, max(layers))
    missing = [
        n
        for n in (
            "v.patch_embd.weight",
            "v.position_embd.weight",
            "mm.0.weight",
            "mm.2.weight",
            "v.image_newline",
        )
        if n not in tensors
    ]
    if missing:
        raise SystemExit(f"checkpoint lacks tensors for: {', '.join(missing)}")
    writer = gguf.GGUFWriter(str(out_file), "clip")
    _write_keys(writer, config, processor, layers, outtype)
    for name in sorted(tensors):
        data, raw = _encode(gguf, name, tensors[name], outtype)
        writer.add_tensor(name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
