"""The committed micro perception model's float checkpoint, rebuilt from its GGUFs
(export.micro.from_gguf): converted again it gives the committed GGUFs back bit for bit, and
the proof would see a wrong rebuild (Q/K rows left in the converter's RoPE order)."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from export.micro.from_gguf import MMPROJ, ROUNDTRIP, TEXT, compare_tensors, micro_checkpoint  # noqa: E402

MICRO_DIR = Path(__file__).resolve().parents[2] / "models" / "micro" / "extract"


@pytest.fixture(scope="module")
def rebuilt() -> Path:
    # Rebuilt and proven once per GGUFs and rebuilding code (about a minute), then cached.
    return micro_checkpoint(MICRO_DIR)


@pytest.mark.slow
def test_the_rebuilt_checkpoint_exports_to_the_committed_ggufs_bit_for_bit(rebuilt):
    proof = json.loads((rebuilt.parent / ROUNDTRIP).read_text())
    assert proof["identical"] and proof["parity_validated"] and proof["differences"] == []
    assert proof["files"] == {
        TEXT: {"identical_tensors": 30, "differing_tensors": 0},
        MMPROJ: {"identical_tensors": 70, "differing_tensors": 0},
    }
    from export.onnx.idefics3 import default_layout

    assert default_layout(rebuilt) == "mtmd"  # trained in libmtmd's image layout: exported in it
    config = json.loads((rebuilt / "config.json").read_text())
    assert config["architectures"] == ["Idefics3ForConditionalGeneration"]
    assert (
        config["text_config"]["num_hidden_layers"] == 3
        and config["vision_config"]["hidden_size"] == 128
    )


@pytest.mark.slow
def test_the_proof_sees_qk_rows_left_in_the_converters_rope_order(rebuilt, tmp_path):
    """A rebuild that copied attn_q/attn_k as the GGUF stores them (the converter's RoPE
    permutation not undone) converts to other attn_q/attn_k bytes, and only those."""
    from safetensors.numpy import load_file, save_file

    from export.archs import idefics3
    from export.gguf.files import convert

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for item in rebuilt.iterdir():
        if item.name != "model.safetensors":
            (wrong / item.name).symlink_to(item)
    from export.onnx.idefics3 import default_layout

    assert default_layout(rebuilt) == "mtmd"  # trained in libmtmd's image layout: exported in it
    config = json.loads((rebuilt / "config.json").read_text())["text_config"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    weights = load_file(rebuilt / "model.safetensors")
    for name in weights:
        if name.endswith("q_proj.weight") and "text_model" in name:
            weights[name] = _rope_order(weights[name], heads)
        elif name.endswith("k_proj.weight") and "text_model" in name:
            weights[name] = _rope_order(weights[name], kv_heads)
    save_file(weights, wrong / "model.safetensors", metadata={"format": "pt"})
    prepared = idefics3.prepare(wrong, tmp_path / "prepared")
    text = convert(
        prepared, tmp_path / "text.gguf", outtype="f16", pre_tokenizer=idefics3.SPEC.pre_tokenizer
    )
    same, differ = compare_tensors(text, MICRO_DIR / TEXT)
    assert same == 24 and sorted(differ) == [
        f"blk.{i}.attn_{qk}.weight: other bytes" for i in range(3) for qk in "kq"
    ]


def _rope_order(weight: np.ndarray, heads: int) -> np.ndarray:
    """What convert_hf_to_gguf's LlamaModel.permute does to Q/K rows (llama.cpp's RoPE layout)."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )
