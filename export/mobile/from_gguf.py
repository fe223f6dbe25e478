"""A GGUF (llama.cpp) bundle's stages as float transformers checkpoints, for `export mobile`.

A mobile package is built from float ONNX graphs, and those from float checkpoints. A GGUF
bundle's stages are read back into one each:
- perception: edge-et's own micro model (models/micro/<form>/, found by the GGUF's sha256 or
  because the stage's folder is the published one), rebuilt bit-exactly (export.micro.from_gguf);
- reasoning: a text GGUF transformers can read (llama, qwen2, qwen3, ...), dequantized to
  float32 (export.gguf.to_transformers): a Q4_K_M file comes back as its Q4_K_M weights.
Anything else is one line saying what is unsupported.
"""

from __future__ import annotations

from pathlib import Path

from edge_et.bundle.manifest import Bundle, StageSpec, sha256_file
from edge_et.errors import InputError
from export.micro.from_gguf import MMPROJ, TEXT, is_micro_folder, micro_checkpoint

LLAMA_CPP = "llama.cpp"
# Where `edge-et export release --publish` puts the micro models (the demo's is extract/).
MICRO_MODELS = Path(__file__).resolve().parents[2] / "models" / "micro"
SUPPORTED = (
    "a GGUF bundle whose perception is edge-et's micro model (models/micro/*) and whose "
    "reasoner is a text GGUF transformers reads (llama, qwen2, qwen3, ...)"
)


def is_gguf_bundle(source: Bundle) -> bool:
    """Does any stage of `source` run on llama.cpp?"""
    return any(stage.backend == LLAMA_CPP for stage in source.stages())


def float_checkpoints(source: Bundle, *, step=lambda label: None) -> dict[str, Path]:
    """{role: float checkpoint folder} for every stage of the GGUF bundle `source`."""
    found = {}
    for stage in source.stages():
        if stage.backend != LLAMA_CPP:
            raise InputError(
                f"the {stage.role} stage of '{source.name}' runs on {stage.backend}, "
                f"the other on llama.cpp; export mobile takes {SUPPORTED}, or an ONNX bundle"
            )
        if stage.role == "perception":
            found["perception"] = micro_checkpoint(_micro_folder(source, stage), step=step)
        else:
            from export.gguf.to_transformers import float_checkpoint

            found["reasoning"] = float_checkpoint(stage.model_path, say=step)
    return found


def _micro_folder(source: Bundle, stage: StageSpec) -> Path:
    """The published micro model folder (tokenizer, training summary) the stage's GGUF is from."""
    files = (stage.model_path, stage.mmproj_path)
    if stage.mmproj_path is not None:
        here = stage.model_path.parent
        if is_micro_folder(here) and files == (here / TEXT, here / MMPROJ):
            return here
        wanted = [sha256_file(path) for path in files]
        for folder in sorted(MICRO_MODELS.iterdir()) if MICRO_MODELS.is_dir() else []:
            if is_micro_folder(folder) and wanted == [
                sha256_file(folder / n) for n in (TEXT, MMPROJ)
            ]:
                return folder
    raise InputError(
        f"the perception stage of '{source.name}' ({stage.model_path.name}) is not one of "
        f"edge-et's micro models in {MICRO_MODELS}; export mobile takes {SUPPORTED} "
        "(or give --perception HF_DIR)"
    )
