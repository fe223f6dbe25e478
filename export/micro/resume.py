"""Mid-run checkpoints of `export train`, so a run stopped on a shared machine continues.

Every `every` steps the weights, the optimizer state, the step and the log so far go to
OUT/resume/ (written to a temporary folder, then renamed: a stop while writing keeps the
previous checkpoint). A run started again with the same OUT finds it and continues at that
step with the same data order and learning-rate schedule; the finished run removes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edge_et.errors import InputError

FOLDER = "resume"
STATE = "state.pt"


class Paused(Exception):
    """A run stopped at its time limit (`train(stop_at=...)`) after saving its checkpoint: the
    same command started again continues at `step`."""

    def __init__(self, out: Path, step: int, steps: int):
        super().__init__(
            f"{out}: paused at step {step} of {steps}; run the same command again to continue"
        )
        self.out, self.step, self.steps = Path(out), step, steps


def saved(out: Path) -> Path | None:
    folder = Path(out) / FOLDER
    return folder if (folder / STATE).is_file() and (folder / "hf").is_dir() else None


def save(out: Path, model, optimizer, step: int, history: list[dict], settings: dict) -> None:
    import torch

    out = Path(out)
    partial = out / (FOLDER + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial / "hf", safe_serialization=True)
    torch.save({"optimizer": optimizer.state_dict(), "step": step}, partial / STATE)
    (partial / "history.json").write_text(json.dumps({"history": history, "settings": settings}))
    shutil.rmtree(out / FOLDER, ignore_errors=True)
    partial.rename(out / FOLDER)


def load(folder: Path, model, optimizer, settings: dict) -> tuple[int, list[dict]]:
    """Weights and optimizer state into `model`/`optimizer`; returns (next step, history)."""
    import torch
    from safetensors.torch import load_file

    recorded = json.loads((folder / "history.json").read_text())
    if recorded["settings"] != settings:
        raise InputError(
            f"{folder} was saved by a run with other settings "
            f"({recorded['settings']}); remove it or use the same options"
        )
    model.load_state_dict(load_file(str(folder / "hf" / "model.safetensors")), strict=False)
    state = torch.load(folder / STATE, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    return state["step"], recorded["history"]


def clear(out: Path) -> None:
    shutil.rmtree(Path(out) / FOLDER, ignore_errors=True)
