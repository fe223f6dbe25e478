"""GGUF -> Hugging Face weights: the llama.cpp converter run backwards, learnt from the converter.

No hand-written name table and no re-implemented transforms. A *probe* checkpoint, the HF
skeleton of the model with every weight element set to its own global index (0, 1, 2, ...
across all tensors, exact in float32 below 2**24), goes through the converter at f32. Each
element of each probe GGUF tensor then names the HF element it came from, whatever the
converter did on the way: its tensor name map, Llama's Q/K RoPE permutation, the mmproj's
renames, reshapes, transposes. Reading the real GGUF's tensors at those indices fills the HF
tensors. A converter step that computes values (rather than moving them) shows up as probe
values that are not indices, and is refused.

Exact for F32/F16/BF16 files (the values widen to float32); quantized tensors are dequantized
with gguf-py's own routines, which is as close as the file allows and no closer.

`probe_checkpoint` runs here (torch-free: safetensors' numpy API); `fill` runs the reading in a
subprocess with the converter's own gguf-py (export.gguf.converter.run_with_gguf_py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edge_et.errors import ExportError

WEIGHTS = "model.safetensors"
LAYOUT = "probe_layout.json"
EXACT_LIMIT = 2**24  # float32 holds every integer up to here
EXACT_TYPES = ("F32", "F16", "BF16")


def probe_checkpoint(skeleton: Path, out: Path) -> Path:
    """Write `skeleton` with every weight element replaced by its global index into `out`;
    the layout (name, shape, dtype, first index per tensor) goes to `out/probe_layout.json`."""
    from safetensors.numpy import load_file, save_file

    skeleton, out = Path(skeleton), Path(out)
    if not (skeleton / WEIGHTS).is_file():
        raise ExportError(
            f"{skeleton} holds no single {WEIGHTS} (sharded checkpoints are not probed)"
        )
    _copy_besides_weights(skeleton, out)
    tensors = load_file(skeleton / WEIGHTS)
    layout, probe, start = [], {}, 0
    for name in sorted(tensors):
        array = tensors[name]
        layout.append(
            {"name": name, "shape": list(array.shape), "dtype": str(array.dtype), "start": start}
        )
        probe[name] = np.arange(start, start + array.size, dtype=np.float32).reshape(array.shape)
        start += array.size
    if start > EXACT_LIMIT:
        raise ExportError(
            f"{skeleton} has {start} weights; a float32 probe names at most {EXACT_LIMIT}"
        )
    save_file(probe, out / WEIGHTS, metadata={"format": "pt"})
    (out / LAYOUT).write_text(json.dumps({"total": start, "tensors": layout}, indent=1) + "\n")
    return out


def fill(probe: Path, pairs: list[tuple[Path, Path]], out: Path) -> dict:
    """Write the HF checkpoint whose conversion gives the real GGUFs into `out`: the probe's
    files, weights read from each (probe GGUF, real GGUF) pair. Returns the subprocess's report:
    {"exact": bool, "tensors": {gguf file: {gguf tensor: ggml type}}, "unfilled": [hf names]}."""
    from export.gguf.converter import run_with_gguf_py

    probe, out = Path(probe), Path(out)
    _copy_besides_weights(probe, out, skip=(LAYOUT,))
    command = ["unconvert", str(probe / LAYOUT), str(out / WEIGHTS)]
    for probe_gguf, real_gguf in pairs:
        command += ["--pair", str(Path(probe_gguf).resolve()), str(Path(real_gguf).resolve())]
    proc = run_with_gguf_py(command)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise ExportError(f"reading the GGUF weights back failed:\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _copy_besides_weights(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file() and item.name != WEIGHTS and item.name not in skip:
            shutil.copyfile(item, dst / item.name)


def fill_in_subprocess(layout_file: Path, out_file: Path, pairs: list[tuple[Path, Path]]) -> dict:
    """In the gguf-py subprocess: gather each HF element from the real GGUF tensor element the
    probe put it at; write `out_file` (safetensors); return the report `fill` describes."""
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import save_file

    layout = json.loads(Path(layout_file).read_text())
    total = layout["total"]
    flat = np.zeros(total, dtype=np.float32)
    filled = np.zeros(total, dtype=bool)
    report: dict = {"exact": True, "tensors": {}, "unfilled": []}
    for probe_file, real_file in pairs:
        real = {t.name: t for t in GGUFReader(real_file).tensors}
        types = report["tensors"].setdefault(Path(real_file).name, {})
        for tensor in GGUFReader(probe_file).tensors:
            index = _indices(tensor, total, probe_file)
            source = real.pop(tensor.name, None)
            if source is None:
                raise ExportError(
                    f"{real_file} lacks {tensor.name}, which the converter writes for this model"
                )
            kind = GGMLQuantizationType(source.tensor_type).name
            values = np.asarray(
                dequantize(source.data, source.tensor_type), dtype=np.float32
            ).reshape(-1)
            if values.size != index.size:
                raise ExportError(
                    f"{Path(real_file).name}: {tensor.name} holds {values.size} values, "
                    f"the model's skeleton {index.size}: another shape"
                )
            again = filled[index]
            if again.any() and not np.array_equal(flat[index][again], values[again]):
                raise ExportError(
                    f"{Path(real_file).name}: {tensor.name} disagrees with another "
                    "tensor made from the same weights"
                )
            flat[index], filled[index] = values, True
            types[tensor.name] = kind
            report["exact"] &= kind in EXACT_TYPES
        if real:
            raise ExportError(
                f"{Path(real_file).name} has tensors the model's skeleton does not make: "
                f"{', '.join(sorted(real)[:5])}"
            )
    weights = {}
    for row in layout["tensors"]:
        start, size = row["start"], int(np.prod(row["shape"], dtype=np.int64))
        if not filled[start : start + size].all():
            report["unfilled"].append(row["name"])
        weights[row["name"]] = flat[start : start + size].reshape(row["shape"])
    save_file(weights, str(out_file), metadata={"format": "pt"})
    return report


def _indices(tensor, total: int, probe_file) -> np.ndarray:
    """The probe tensor's values as HF element indices; refused unless each is one."""
    probe = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
    index = probe.astype(np.int64)
    if not (
        np.array_equal(index, probe) and index.min(initial=0) >= 0 and index.max(initial=0) < total
    ):
        raise ExportError(
            f"{Path(probe_file).name}: the converter computes {tensor.name} rather than "
            "moving weights into it; it cannot be read back"
        )
    return index
