"""The graphs of a mobile package: the reasoner quantized blockwise (its token embedding too:
embedding.py), the vision encoder with fixed input shapes, everything else copied at its own
precision."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from edge_et.errors import ExportError
from export.mobile import embedding
from export.onnx import text as onnx_text

QUANT_BITS = {"int4": 4, "int8": 8}
# The token embedding (GatherBlockQuantized, embedding.py) and a tied output matrix sharing its
# weight: 8 bits by default whatever --quant is. At 4 bits the tiny Qwen3's int4 package fell
# under its argmax bound (73.3% < 75%; 83% with a float embedding); at 8 bits its logits move
# as little as with int8 MatMuls (rms ratio 0.019 → 0.022). llama.cpp's Q4_K_M likewise keeps
# these two tensors at more bits than the rest. int4 is the smaller choice, float the old one.
EMBEDDINGS = {"int8": 8, "int4": 4, "float": None}
DEFAULT_EMBEDDING = "int8"
# Vision graphs that take a batch of equally sized views: their batch can be fixed, and the
# runtime then feeds that many views per call. Qwen2-VL's patch count follows the picture.
FIXED_BATCH_KINDS = ("llava_onevision", "idefics3")
VIEWS_PER_CALL = 1  # the smallest fixed batch: a phone's encoder memory is one view's


def quantized_bits(path: Path) -> int | None:
    """The bits of the MatMulNBits nodes of a graph, or None when it has none (a float graph)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            return next((a.i for a in node.attribute if a.name == "bits"), None)
    return None


def quantize_reasoner(
    src: Path,
    dst: Path,
    quant: str,
    embedding_quant: str = DEFAULT_EMBEDDING,
    accuracy_level: int | None = None,
) -> dict:
    """`src` (the reasoning decoder) at `quant`, its token embedding at `embedding_quant` (a key of
    EMBEDDINGS), written to `dst`; what was done to the decoder (in words) and to the embedding
    (export/mobile/embedding.py). `accuracy_level`: MatMulNBits' compute type for every node
    (default: int8 compute, onnx_text.INT8_ACCURACY_LEVEL; a web package asks for 0, fp32).

    A float graph is quantized; a graph already at these bits keeps its MatMulNBits (only what
    is still float is quantized: a tied output matrix, the embedding); one at other bits cannot
    be re-quantized without the float weights, so that is one line."""
    import onnx

    bits = QUANT_BITS[quant]
    already = quantized_bits(src)
    if already is not None and already != bits:
        raise ExportError(
            f"the reasoning decoder is already {already}-bit; a {quant} package needs "
            "the float weights: export the ONNX bundle with --quant fp32 (or fp16)"
        )
    model = onnx.load(str(src))
    table = embedding.find_table(model)
    dims = _dims(model, table)
    table_bits = EMBEDDINGS[embedding_quant]
    why = "--embedding float" if table_bits is None else embedding.why_not(model, table)
    # Untied only for a quantized embedding: beside a float table, a quantized output matrix adds bytes.
    folded = embedding.untie_output(model, table) if why is None else []
    if (
        folded and table_bits != bits
    ):  # the tied output matrix at the embedding's bits: one weight for both
        model = _quantize_matmuls(model, table_bits, only=folded)
    model = _quantize_matmuls(model, bits)
    done = (
        embedding.kept_float(dims, why)
        if why
        else embedding.quantize_gather(model, table, table_bits, folded)
    )
    level = onnx_text.INT8_ACCURACY_LEVEL if accuracy_level is None else accuracy_level
    if accuracy_level is not None:
        set_accuracy_level(model, accuracy_level)
    onnx_text.save(model, dst)
    how = (
        f"already {quant} (MatMulNBits {bits}-bit): kept, accuracy level {level}"
        if already
        else f"MatMulNBits {bits}-bit, blocks of {onnx_text.INT8_BLOCK}, symmetric, "
        f"accuracy level {level}"
    )
    words = (
        "token embedding kept float"
        if why
        else f"token embedding GatherBlockQuantized {table_bits}-bit"
    )
    return {"decoder": f"{how}; {words}", "embedding": done}


def set_accuracy_level(model, level: int) -> int:
    """Every MatMulNBits node of `model` set to compute at `level` (0: fp32, 4: int8); how many."""
    from onnx import helper

    nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    for node in nodes:
        kept = [a for a in node.attribute if a.name != "accuracy_level"]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute("accuracy_level", level)])
    return len(nodes)


def _dims(model, name: str | None) -> list[int] | None:
    found = next((t for t in model.graph.initializer if t.name == name), None)
    return list(found.dims) if found is not None else None


def _quantize_matmuls(model, bits: int, only: list[str] | None = None):
    """Every float constant MatMul weight of `model` (or `only` those named) as MatMulNBits at
    `bits`: the settings of export/onnx/text.py's quantize_blockwise, on a model in memory (the
    graph is loaded once)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(
        block_size=onnx_text.INT8_BLOCK,
        is_symmetric=True,
        bits=bits,
        accuracy_level=onnx_text.INT8_ACCURACY_LEVEL,
        op_types_to_quantize=("MatMul",),
    )
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    others = []
    if only is not None:  # the quantizer excludes by node name: an unnamed MatMul gets one
        for index, node in enumerate(model.graph.node):
            if node.op_type == "MatMul" and node.input[1] not in only:
                node.name = node.name or f"MatMul_unnamed_{index}"
                others.append(node.name)
    quantizer = MatMulNBitsQuantizer(model, nodes_to_exclude=others, algo_config=config)
    quantizer.process()
    return quantizer.model.model


def copy_graph(src: Path, dst: Path) -> None:
    """A graph and its external data file, if it has one."""
    shutil.copyfile(src, dst)
    for suffix in ("_data", ".data"):
        data = src.with_name(src.name + suffix)
        if data.is_file():
            shutil.copyfile(data, dst.with_name(dst.name + suffix))


def fix_vision_shapes(src: Path, dst: Path, kind: str) -> dict:
    """The vision graph with its batch of views fixed (ORT's make_dim_param_fixed), or copied
    as it is where the input size follows the picture; says which, and the input shapes."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import (
        fix_output_shapes,
        make_dim_param_fixed,
    )

    model = onnx.load(str(src))
    if kind not in FIXED_BATCH_KINDS:
        copy_graph(src, dst)
        return {
            "fixed": False,
            "inputs": _shapes(model),
            "why": f"{kind}: the number of patches follows the picture, so the input stays "
            "dynamic (NNAPI and CoreML then leave it to the CPU)",
        }
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch.dim_param:
        make_dim_param_fixed(model.graph, batch.dim_param, VIEWS_PER_CALL)
        fix_output_shapes(model)
    onnx.save(model, str(dst))
    return {"fixed": True, "inputs": _shapes(model), "views_per_call": VIEWS_PER_CALL}


def _shapes(model) -> dict:
    return {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in model.graph.input
    }
