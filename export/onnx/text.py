"""Text decoders to ONNX: optimum-onnx for the graph, onnx for the surgery, ORT for precision.

- `export_decoder`: optimum-onnx's `text-generation-with-past` export of a causal LM folder
  (one graph: ids, attention mask, positions and the KV cache in; logits and the new cache out).
- `language_model_checkpoint`: a VLM's language model as a stand-alone causal LM folder, so the
  same exporter handles it (optimum-onnx has no VLM export).
- `graft_inputs_embeds`: the VLM decoder takes `inputs_embeds` instead of ids (the image's
  embeddings go in where its placeholder tokens were); the token-embedding lookup becomes its
  own small graph, `embed.onnx`.
- `set_precision`: fp32 as exported, fp16 weights (inputs and outputs stay float32, so the
  runtime's feeds do not change), or int8 weights by MatMulNBits (`quantize_int8`).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

QUANTS = ("fp32", "fp16", "int8")
# Above this, weights go to an external data file (protobuf's 2 GiB message limit).
EXTERNAL_DATA_BYTES = 1_800_000_000
# Where each VLM (as transformers 4.57 loads it) keeps its language model's decoder stack.
LANGUAGE_MODELS = {
    "llava_onevision": lambda vlm: vlm.model.language_model,
    "idefics3": lambda vlm: vlm.model.text_model,
    "smolvlm": lambda vlm: vlm.model.text_model,
}
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
)


def export_decoder(hf_dir: Path, out_dir: Path) -> Path:
    """optimum-onnx's with-past export of the causal LM in `hf_dir`; returns the .onnx path.

    optimum-onnx 0.1.0's post-processing (storing tied embedding/output weights once, with
    accelerate installed) serializes the whole graph, which fails past protobuf's 2 GiB: larger
    models skip it and keep both copies.
    """
    from optimum.exporters.onnx import main_export

    large = float32_bytes(Path(hf_dir)) > EXTERNAL_DATA_BYTES
    main_export(
        str(hf_dir),
        output=str(out_dir),
        task="text-generation-with-past",
        device="cpu",
        do_validation=False,  # our own parity check validates
        no_post_process=large,
    )
    return Path(out_dir) / "model.onnx"


def float32_bytes(hf_dir: Path) -> int:
    """Bytes of the checkpoint's weights at float32, from the safetensors headers alone."""
    from safetensors import safe_open

    total = 0
    for shard in Path(hf_dir).glob("*.safetensors"):
        with safe_open(str(shard), framework="np") as handle:
            for name in handle.keys():
                shape = handle.get_slice(name).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += 4 * count
    return total


def language_model_checkpoint(vlm_dir: Path, out_dir: Path) -> Path:
    """Write the VLM's language model (with its output head) as a causal LM checkpoint.

    The VLM is loaded through transformers, which knows every layout its checkpoints were
    saved in (`language_model.model.*` of older conversions, `model.language_model.*` now).
    """
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
    )

    config = json.loads((Path(vlm_dir) / "config.json").read_text())
    if config.get("model_type") not in LANGUAGE_MODELS:
        raise ValueError(f"no language-model mapping for model_type {config.get('model_type')!r}")
    vlm = AutoModelForImageTextToText.from_pretrained(vlm_dir, dtype=torch.float32)
    text_config = AutoConfig.for_model(**config["text_config"])
    text_config.tie_word_embeddings = vlm.config.tie_word_embeddings
    model = AutoModelForCausalLM.from_config(text_config, dtype=torch.float32)
    body = LANGUAGE_MODELS[config["model_type"]](vlm)
    state = {f"model.{k}": v for k, v in body.state_dict().items()}
    state["lm_head.weight"] = vlm.lm_head.weight
    model.load_state_dict(state, strict=True)
    model.tie_weights()
    model.save_pretrained(out_dir, safe_serialization=True)
    copy_tokenizer_files(Path(vlm_dir), Path(out_dir))
    return Path(out_dir)


def copy_tokenizer_files(src: Path, dst: Path) -> None:
    for name in _TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)


def _embedding_gather(graph):
    """The Gather that looks up `input_ids` in an embedding initializer."""
    weights = {init.name for init in graph.initializer}
    for node in graph.node:
        if (
            node.op_type == "Gather"
            and list(node.input)[1:] == ["input_ids"]
            and node.input[0] in weights
        ):
            return node
    raise ValueError("the decoder graph has no embedding Gather on input_ids")


def graft_inputs_embeds(decoder: Path, out_decoder: Path, out_embed: Path) -> None:
    """Rewrite `decoder` to read `inputs_embeds` (batch, seq, hidden) and write the lookup it
    no longer does as `out_embed` (input_ids in, inputs_embeds out)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(decoder))
    graph = model.graph
    gather = _embedding_gather(graph)
    weight = next(i for i in graph.initializer if i.name == gather.input[0])
    hidden = weight.dims[1]
    embeds = helper.make_tensor_value_info(
        "inputs_embeds", TensorProto.FLOAT, ["batch_size", "sequence_length", hidden]
    )
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == gather.output[0]:
                node.input[i] = "inputs_embeds"
    graph.node.remove(gather)
    used = {name for node in graph.node for name in node.input}
    ids_input = next(i for i in graph.input if i.name == "input_ids")
    if "input_ids" not in used:
        graph.input.remove(ids_input)
    graph.input.insert(0, embeds)
    embed_model = embed_graph(weight, model.opset_import)
    if weight.name not in used:
        graph.initializer.remove(weight)
    save(model, out_decoder)
    save(embed_model, out_embed)


def embed_graph(weight, opsets):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Gather", [weight.name, "input_ids"], ["inputs_embeds"], axis=0)],
        "embed_tokens",
        [
            helper.make_tensor_value_info(
                "input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]
            )
        ],
        [
            helper.make_tensor_value_info(
                "inputs_embeds",
                TensorProto.FLOAT,
                ["batch_size", "sequence_length", weight.dims[1]],
            )
        ],
        initializer=[weight],
    )
    default = next(o.version for o in opsets if o.domain in ("", "ai.onnx"))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", default)])


def save(model, path: Path) -> Path:
    """Save a ModelProto, its weights in `<name>_data` beside it when the file would be large."""
    import onnx

    path = Path(path)
    large = sum(len(t.raw_data) for t in model.graph.initializer) > EXTERNAL_DATA_BYTES
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=f"{path.name}_data" if large else None,
    )
    return path


def set_precision(src: Path, dst: Path, quant: str) -> Path:
    """`src` at `quant` written to `dst` (fp32: re-saved as is)."""
    import onnx

    if quant not in QUANTS:
        raise ValueError(f"unknown ONNX precision {quant!r}; known: {', '.join(QUANTS)}")
    if quant == "int8":
        return quantize_int8(src, dst)
    model = onnx.load(str(src))
    if quant == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # float32 inputs and outputs (KV cache included): the runtime feeds the same arrays.
        model = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    return save(model, dst)


# int8: weight-only, blockwise, symmetric (llama.cpp's Q8_0 layout: 32 weights per scale),
# MatMulNBits with int8 compute (accuracy level 4: activations quantized per block, as Q8_0's
# dot products do). Measured on the real Qwen2.5-Coder-0.5B against transformers: relative RMS
# of the logits 2.9%, argmax 99.3%, 24 greedy tokens equal, prefill faster than fp32. The
# alternative, `quantize_dynamic` (MatMulInteger, per-tensor activations, 7-bit weights): 43%
# and 79% (13.8 max |logit diff|), which is unusable on a real checkpoint; level 0 (fp32
# compute) is 14x slower at prefill on this CPU. Gathers (token embeddings) stay float32:
# ONNX Runtime's block-quantized Gather takes 4 bits only.
INT8_BLOCK, INT8_ACCURACY_LEVEL = 32, 4


def quantize_int8(src: Path, dst: Path) -> Path:
    """`src` with every constant MatMul weight at 8 bits (MatMulNBits), written to `dst`."""
    return quantize_blockwise(src, dst, bits=8)


def quantize_blockwise(src: Path, dst: Path, *, bits: int) -> Path:
    """`src` with every constant MatMul weight at `bits` (4 or 8) in blocks of INT8_BLOCK, one
    scale each, symmetric, int8 compute (MatMulNBits), written to `dst`."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(
        block_size=INT8_BLOCK,
        is_symmetric=True,
        bits=bits,
        accuracy_level=INT8_ACCURACY_LEVEL,
        op_types_to_quantize=("MatMul",),
    )
    # It logs every node it skips at INFO: thousands of lines that say nothing to the user.
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(str(src), algo_config=config)
    quantizer.process()
    return save(quantizer.model.model, dst)


def data_files(path: Path) -> list[Path]:
    """`path` and the external data file written beside it, if any (ours end in `_data`,
    onnxruntime's quantizer's in `.data`)."""
    path = Path(path)
    extra = [path.with_name(path.name + s) for s in ("_data", ".data")]
    return [path] + [p for p in extra if p.is_file()]


def total_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in data_files(path))
