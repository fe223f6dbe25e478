"""Train the micro perception model from scratch on generated scenes, on a CPU.

    edge-et export train --form extract --seed 0 --out models/store/micro/extract-run

One command and a seed reproduce a model: the initial weights come from `--seed`, the data
are the train split's scene stream (export.scenes, seed 0) read in order, and the schedule
is fixed by --steps/--batch/--lr. The three forms (direct, caption, extract) share the shape
and the budget, so their models differ only in what they were taught to write.

Writes OUT/hf (a Hugging Face Idefics3 checkpoint that `edge-et export gguf` converts),
OUT/train_log.jsonl (loss every --log-every steps, held-out loss every --eval-every) and
OUT/train_summary.json. bf16 autocast and fused AdamW: about 1.5x faster on this kind of CPU.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np

from edge_et.errors import InputError
from export.archs.idefics3 import sequential_positions
from export.micro import resume
from export.micro.model import (
    BASE,
    MICRO,
    SMALL,
    TEST_MICRO,
    Layout,
    build_micro,
    letter_accuracy,
    pixels,
    sequence_loss,
)
from export.micro.shards import PixelShards
from export.scenes import FORMS, example, training_pair
from export.scenes.forms import HELDOUT_SEED, STREAMS, TRAIN_SEED
from export.scenes.varied import model_view

CONFIGS = {"micro": MICRO, "small": SMALL, "base": BASE, "test": TEST_MICRO}
RECIPE_FILE = "tiny_recipe.json"  # the name export.tiny.checkpoints gives a checkpoint's recipe
SUMMARY_FILE = "train_summary.json"
# What the training summary adds to the recipe: measurements of the run, not how it was trained.
SUMMARY_ONLY = (
    "train_s",
    "s_per_step",
    "final_loss",
    "heldout_loss",
    "heldout_letter_acc",
    "parameters",
    "torch_threads",
)
DIRECT_FORMS = ("direct", "direct-text")  # forms whose target ends with the answer letter


def batch_tensors(
    layout: Layout,
    form: str,
    seed: int,
    indices: range,
    scenes: str = "classic",
    shards: PixelShards | None = None,
):
    """Pixels, ids, attention and loss masks for examples `indices` of scene stream `seed`.

    Pictures of any size become the 128 pixels libmtmd would give the model (model_view);
    with `shards` they are read from the pre-rendered cache (export.micro.shards), the same
    bytes."""
    import torch

    images, rows, starts = [], [], []
    for index in indices:
        ex = example(seed, index, scenes)
        ids, start = layout.sequence(*training_pair(ex, form))
        images.append(
            shards.pixels(index) if shards is not None else pixels(model_view(ex.image()))
        )
        rows.append(ids)
        starts.append(start)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), layout.eos_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    loss_mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (row, start) in enumerate(zip(rows, starts)):
        ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        loss_mask[i, start : len(row)] = True  # every answer token and the closing eos
    return torch.from_numpy(np.stack(images)), ids, attention, loss_mask


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    *,
    form: str,
    seed: int,
    out: Path,
    steps: int = 1200,
    batch: int = 16,
    lr: float = 1e-3,
    warmup: int = 100,
    config: str = "micro",
    threads: int | None = None,
    init: Path | None = None,
    tokenizer: Path | None = None,
    log_every: int = 25,
    eval_every: int = 200,
    eval_size: int = 64,
    log=print,
    scenes: str = "classic",
    checkpoint_every: int = 100,
    stop_at: float | None = None,
    pixel_cache: bool | Path = False,
) -> dict:
    """Build the seeded random model (or start from the checkpoint `init`), train it on
    `form`, save it; return the summary.

    From `init` the scene stream continues where that checkpoint's training stopped, so a
    fine-tuned model never sees a scene twice; `seed` then only names the run. `tokenizer`
    reuses a saved tokenizer (a published model's) instead of training the scene BPE, whose
    corpus follows the scene texts of the current code. `scenes` picks the renderer
    (export.scenes.forms.STREAMS). Every `checkpoint_every` steps the run saves OUT/resume/,
    and the same command started again continues from there (export.micro.resume). With
    `stop_at` (a time.monotonic() value), the first log step past it saves that checkpoint and
    raises resume.Paused: a run in chunks of bounded time, continued exactly (the checkpoint
    falls on a log step, so the logged loss averages are those of an uninterrupted run).
    `pixel_cache` (True: the edge-et cache, or a folder) reads the train stream's pictures from
    pre-rendered shards (export.micro.shards): the same pixels, rendered once for every run."""
    import torch

    if form not in FORMS:
        raise InputError(f"unknown --form {form!r}; choose one of: {', '.join(FORMS)}")
    if config not in CONFIGS:
        raise InputError(f"unknown --config {config!r}; choose one of: {', '.join(CONFIGS)}")
    if steps < 1 or batch < 1:
        raise InputError("--steps and --batch must be at least 1")
    if scenes not in STREAMS:
        raise InputError(f"unknown --scenes {scenes!r}; choose one of: {', '.join(STREAMS)}")
    out = Path(out)
    hf_dir = out / "hf"
    resumed = resume.saved(out)
    if hf_dir.exists() and any(hf_dir.iterdir()) and resumed is None:
        raise InputError(f"{hf_dir} is not empty; choose another --out")
    if threads:
        torch.set_num_threads(threads)
    offset, base = 0, None
    if init is not None:
        base = _read_recipe(Path(init))
        config, offset = base["config"], base["examples_end"]
        shutil.copytree(init, hf_dir, dirs_exist_ok=True)
    else:
        build_micro(hf_dir, seed=seed, tokenizer_dir=tokenizer, **CONFIGS[config])
    from transformers import AutoTokenizer, Idefics3ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = Idefics3ForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32)
    sequential_positions(model)
    model.train()
    layout = Layout(tokenizer, CONFIGS[config])
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98), fused=True
    )
    heldout = batch_tensors(layout, form, HELDOUT_SEED, range(eval_size), scenes)
    shards = (
        None
        if not pixel_cache
        else PixelShards(None if pixel_cache is True else Path(pixel_cache), TRAIN_SEED, scenes)
    )
    log_path = out / "train_log.jsonl"
    settings = {
        "form": form,
        "seed": seed,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "warmup": warmup,
        "config": config,
        "offset": offset,
        "scenes": scenes,
    }
    first_step, history = resume.load(resumed, model, optimizer, settings) if resumed else (0, [])
    started, window = time.perf_counter(), []
    with log_path.open("w", encoding="utf-8") as log_file:
        for entry in history:  # the log of a resumed run starts with what it had logged
            log_file.write(json.dumps(entry) + "\n")
        for step in range(first_step, steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, lr, warmup)
            first = offset + step * batch
            data = batch_tensors(
                layout, form, TRAIN_SEED, range(first, first + batch), scenes, shards
            )
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = sequence_loss(model, *data, image_id=layout.image_id)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            window.append(loss.item())
            entry = None
            if (step + 1) % log_every == 0 or step + 1 == steps:
                entry = {
                    "step": step + 1,
                    "loss": round(sum(window) / len(window), 4),
                    "lr": round(optimizer.param_groups[0]["lr"], 6),
                    "elapsed_s": round(time.perf_counter() - started, 1),
                }
                window = []
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                entry = entry or {"step": step + 1}
                entry["heldout_loss"] = round(_eval_loss(model, heldout, layout.image_id), 4)
                if form in DIRECT_FORMS:  # the letter's own accuracy: the loss hides it
                    entry["heldout_letter_acc"] = round(_eval_letters(model, heldout, layout), 4)
            if entry:
                history.append(entry)
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
                log(json.dumps(entry))
            if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
                resume.save(out, model, optimizer, step + 1, history, settings)
            if (
                stop_at is not None
                and (step + 1) % log_every == 0
                and step + 1 < steps
                and time.monotonic() >= stop_at
            ):
                resume.save(out, model, optimizer, step + 1, history, settings)
                raise resume.Paused(out, step + 1, steps)
    elapsed = time.perf_counter() - started
    model.save_pretrained(hf_dir, safe_serialization=True)
    resume.clear(out)
    recipe = {
        "arch": "idefics3",
        "trained": True,
        "random_weights": False,
        "form": form,
        "seed": seed,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "warmup": warmup,
        "config": config,
        "overrides": CONFIGS[config],
        "data": "export.scenes train stream" + ("" if scenes == "classic" else f" ({scenes})"),
        "examples_start": offset,
        "examples_end": offset + steps * batch,
        "init": base,
    }
    (hf_dir / RECIPE_FILE).write_text(json.dumps(recipe, sort_keys=True) + "\n")
    summary = {
        **recipe,
        "train_s": round(elapsed, 1),
        "s_per_step": round(elapsed / max(1, steps - first_step), 3),
        "final_loss": history[-1].get("loss"),
        "heldout_loss": history[-1]["heldout_loss"],
        "heldout_letter_acc": history[-1].get("heldout_letter_acc"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch_threads": torch.get_num_threads(),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def trained_recipe(hf_dir: Path) -> dict | None:
    """The recipe of a checkpoint this module trained (libmtmd's image layout), else None."""
    path = Path(hf_dir) / RECIPE_FILE
    recipe = json.loads(path.read_text()) if path.is_file() else {}
    return recipe if recipe.get("trained") and recipe.get("arch") == "idefics3" else None


def _read_recipe(hf_dir: Path) -> dict:
    recipe = trained_recipe(hf_dir)
    if recipe is None:
        raise InputError(f"--init {hf_dir} is not a checkpoint trained by export.micro.train")
    return recipe


def _eval_letters(model, data, layout: Layout) -> float:
    import torch

    letters = [layout.tok.encode(" " + letter, add_special_tokens=False)[-1] for letter in "ABCD"]
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        accuracy = letter_accuracy(model, *data, image_id=layout.image_id, letter_ids=letters)
    model.train()
    return accuracy


def _eval_loss(model, data, image_id: int) -> float:
    import torch

    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sequence_loss(model, *data, image_id=image_id).item()
    model.train()
    return loss
