"""The reasoner's token embedding at 8 or 4 bits (graphs.EMBEDDINGS), by ONNX Runtime's quantizer.

What the installed onnxruntime (1.32) offers, and why it is used this way:

- `MatMulNBitsQuantizer` with `op_types_to_quantize=("Gather",)` writes `GatherBlockQuantized`
  over an INT4 tensor, at 4 bits only; the ORT format cannot hold INT4 tensors (the `.ort` file
  is written, then fails to load: "Unsupported tensor data type '<unknown>'"). Not usable here.
- `GatherBlockQuantized`'s CPU kernel also takes uint8 data packed as MatMulNBits packs it
  (2, 4 or 8 bits, the default zero point 2^(bits-1), which is MatMulNBits' symmetric one). So the
  table is quantized by the quantizer's MatMul routine (`DefaultWeightOnlyQuantizer
  .qbits_block_quant` on the transposed table: the same numbers MatMulNBits would hold for it),
  [vocab, hidden/32, 32*bits/8] bytes with one scale per 32 weights of a token's row, and a
  Reshape gives the Gather's [..., hidden] back.
- A tied output matrix reaches the float export as `Transpose(table) -> MatMul`: not a constant
  MatMul weight, so the quantizer would leave the table float for it. The Transpose is folded
  into a constant, the MatMul pass quantizes it, and the Gather reads that MatMulNBits weight:
  one quantized copy of the table. Only the scales are stored twice (MatMulNBits wants them
  [vocab, blocks], GatherBlockQuantized with the data's rank: [vocab, blocks, 1]), 4 bytes per
  32 weights.
"""

from __future__ import annotations

BLOCK = (
    32  # the MatMul pass's block (export/onnx/text.py INT8_BLOCK): a shared weight has one layout
)


def find_table(model) -> str | None:
    """The token embedding: the largest rank-2 float initializer read as a Gather's data."""
    from onnx import TensorProto

    floats = (TensorProto.FLOAT, TensorProto.FLOAT16)
    tables = {
        t.name: t for t in model.graph.initializer if len(t.dims) == 2 and t.data_type in floats
    }
    gathered = [
        tables[n.input[0]]
        for n in model.graph.node
        if n.op_type == "Gather" and n.input[0] in tables
    ]
    if not gathered:
        return None
    return max(gathered, key=lambda t: t.dims[0] * t.dims[1]).name


def why_not(model, table: str | None) -> str | None:
    """Why the table cannot be quantized here, or None."""
    if table is None:
        return "no Gather of a constant table in the graph"
    gather = _gather(model, table)
    if gather is None or any(a.name == "axis" and a.i != 0 for a in gather.attribute):
        return "the table is not gathered by rows"
    if _indices_rank(model, gather) is None:
        return "its indices are not a graph input of known rank (the Reshape after the Gather needs it)"
    hidden = _initializer(model, table).dims[1]
    if hidden % BLOCK:
        return f"its rows ({hidden}) are not whole blocks of {BLOCK}"
    readers = [
        f"{n.op_type} {n.name}"
        for n in model.graph.node
        if table in n.input and n is not gather and n.op_type != "Transpose"
    ]
    if readers:
        return (
            f"the table is also read by {', '.join(readers)}: a quantized Gather would add a copy"
        )
    return None


def untie_output(model, table: str) -> list[str]:
    """Each Transpose of `table` (a tied output matrix) folded into a float constant of its own,
    so the MatMul pass quantizes it; the folded tensors' names."""
    import numpy as np
    from onnx import numpy_helper

    weights = numpy_helper.to_array(_initializer(model, table))
    folded, kept = [], []
    for node in model.graph.node:
        if node.op_type == "Transpose" and node.input[0] == table:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            array = np.ascontiguousarray(np.transpose(weights, perm))
            model.graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
            folded.append(node.output[0])
        else:
            kept.append(node)
    if folded:
        del model.graph.node[:]
        model.graph.node.extend(kept)
    return folded


def quantize_gather(model, table: str, bits: int, folded: list[str]) -> dict:
    """The Gather of `table` as GatherBlockQuantized at `bits` (after the MatMul pass); the float
    table removed; what was done, for mobile.json."""
    import numpy as np
    from onnx import helper, numpy_helper

    vocab, hidden = _initializer(model, table).dims
    shared = _matmul_weight(model, folded)
    if shared is not None:
        data, scales = shared.input[1], _initializer(model, shared.input[2])
        scale_array = numpy_helper.to_array(scales)
    else:
        data, scale_array = _quantize_rows(model, table, bits)
    scales_3d = numpy_helper.from_array(scale_array.reshape(vocab, -1, 1), f"{table}_gather_scales")
    gather = _gather(model, table)
    # [*indices, blocks, 32] → [*indices, hidden]; a 0 keeps the input's dim (input_ids' batch, sequence)
    shape = numpy_helper.from_array(
        np.array([0] * _indices_rank(model, gather) + [hidden], np.int64), f"{table}_gather_shape"
    )
    rows = f"{gather.output[0]}_blocks"
    nodes = [
        helper.make_node(
            "GatherBlockQuantized",
            [data, gather.input[1], scales_3d.name],
            [rows],
            name=f"{gather.name}_Q{bits}",
            domain="com.microsoft",
            gather_axis=0,
            quantize_axis=2,
            block_size=BLOCK,
            bits=bits,
        ),
        helper.make_node(
            "Reshape", [rows, shape.name], [gather.output[0]], name=f"{gather.name}_rows"
        ),
    ]
    _replace(model, gather, nodes)
    model.graph.initializer.extend([scales_3d, shape])
    _drop_initializer(model, table)
    done = {
        "op": "GatherBlockQuantized",
        "bits": bits,
        "block_size": BLOCK,
        "symmetric": True,
        "shape": [vocab, hidden],
        "data": f"uint8 {list(_initializer(model, data).dims)}, MatMulNBits' layout",
        "by": "onnxruntime.quantization.matmul_nbits_quantizer (DefaultWeightOnlyQuantizer)",
    }
    if shared is not None:
        done["tied_output"] = (
            f"one copy: the output matrix's MatMulNBits {bits}-bit weight is also the "
            "Gather's data (only the scales are stored twice)"
        )
    return done


def kept_float(dims: list[int] | None, why: str) -> dict:
    return {"op": "Gather", "bits": None, "shape": dims, "kept_float": why}


def _indices_rank(model, gather) -> int | None:
    """The rank of the Gather's indices when they are a graph input (input_ids), else None."""
    found = next((i for i in model.graph.input if i.name == gather.input[1]), None)
    if found is None or not found.type.tensor_type.HasField("shape"):
        return None
    return len(found.type.tensor_type.shape.dim)


def _quantize_rows(model, table: str, bits: int):
    """The table packed by ORT's MatMulNBits routine (its transpose is a [hidden, vocab] MatMul
    weight): adds the uint8 data and returns its name and the [vocab, blocks] scales."""
    import numpy as np
    from onnx import numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        DefaultWeightOnlyQuantizer,
    )

    weights = numpy_helper.to_array(_initializer(model, table))
    quantizer = DefaultWeightOnlyQuantizer(
        DefaultWeightOnlyQuantConfig(block_size=BLOCK, is_symmetric=True, bits=bits)
    )
    packed, scales, _ = quantizer.qbits_block_quant(np.ascontiguousarray(weights.T))
    model.graph.initializer.append(numpy_helper.from_array(packed, f"{table}_Q{bits}"))
    return f"{table}_Q{bits}", scales


def _matmul_weight(model, folded: list[str]):
    """The MatMulNBits node the MatMul pass made of a folded output matrix, or None."""
    for node in model.graph.node:
        if node.op_type == "MatMulNBits" and any(
            node.input[1].startswith(f"{name}_Q") for name in folded
        ):
            return node
    return None


def _gather(model, table: str):
    return next(
        (n for n in model.graph.node if n.op_type == "Gather" and n.input[0] == table), None
    )


def _initializer(model, name: str):
    return next(t for t in model.graph.initializer if t.name == name)


def _replace(model, old, new: list) -> None:
    nodes = list(model.graph.node)
    at = nodes.index(old)
    del model.graph.node[:]
    model.graph.node.extend(nodes[:at] + new + nodes[at + 1 :])


def _drop_initializer(model, name: str) -> None:
    if not any(name in n.input for n in model.graph.node):
        model.graph.initializer.remove(_initializer(model, name))
