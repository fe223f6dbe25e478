"""Where a training step of the micro recipe spends its time, on N threads: a profile, not a run.

One step of export.micro.train is: draw 16 scenes and their questions (scene), render each
picture and turn it into the 128-pixel tensor the model sees (render), build the token ids
of prompt + target (tokenise), pad and stack them (collate), then the forward pass under
bf16 autocast, the backward pass, and gradient clipping + fused AdamW (optimiser). This
times each part separately over `--steps` steps of the train stream (after `--warmup`
untimed ones), on a freshly built model of `--config`, exactly as train() does them, and
records the shares, steps/s and the load average to
benchmarks/results/train_step_profile.{json,md}.

    python -m benchmarks.train_step_profile --config micro --scenes mix --threads 2 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.replication import RESULTS, ROOT, say

TOKENIZER = (
    ROOT / "models" / "micro" / "extract"
)  # the committed models' scene BPE, as the sweep uses
PARTS = ("scene", "render", "tokenise", "collate", "forward", "backward", "optimiser")


def profile(
    *,
    config: str,
    scenes: str,
    form: str,
    threads: int,
    steps: int,
    warmup: int,
    batch: int = 16,
    cached: Path | None = None,
) -> dict:
    """Seconds per part, summed over `steps` timed steps; with `cached`, pictures come from the
    pre-rendered shards in that folder (export.micro.shards) instead of being rendered."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer, Idefics3ForConditionalGeneration

    from export.archs.idefics3 import sequential_positions
    from export.micro.model import Layout, build_micro, pixels, sequence_loss
    from export.micro.train import CONFIGS
    from export.scenes import example, training_pair
    from export.scenes.forms import TRAIN_SEED
    from export.scenes.varied import model_view

    torch.set_num_threads(threads)
    shards = None
    if cached is not None:
        from export.micro.shards import PixelShards

        shards = PixelShards(cached, TRAIN_SEED, scenes)
        for index in range(0, (warmup + steps) * batch, 64):  # rendered once, before timing
            shards.view(index)
    with tempfile.TemporaryDirectory() as tmp:
        hf = Path(tmp) / "hf"
        build_micro(hf, seed=0, tokenizer_dir=TOKENIZER, **CONFIGS[config])
        tokenizer = AutoTokenizer.from_pretrained(hf)
        model = Idefics3ForConditionalGeneration.from_pretrained(hf, dtype=torch.float32)
    sequential_positions(model)
    model.train()
    layout = Layout(tokenizer, CONFIGS[config])
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, weight_decay=0.01, betas=(0.9, 0.98), fused=True
    )
    totals = dict.fromkeys(PARTS, 0.0)
    clock = time.perf_counter
    started = None
    for step in range(warmup + steps):
        if step == warmup:
            totals, started = dict.fromkeys(PARTS, 0.0), clock()
        images, rows, starts = [], [], []
        for index in range(step * batch, (step + 1) * batch):
            t0 = clock()
            ex = example(TRAIN_SEED, index, scenes)
            t1 = clock()
            images.append(
                shards.pixels(index) if shards is not None else pixels(model_view(ex.image()))
            )
            t2 = clock()
            ids, start = layout.sequence(*training_pair(ex, form))
            t3 = clock()
            rows.append(ids)
            starts.append(start)
            totals["scene"] += t1 - t0
            totals["render"] += t2 - t1
            totals["tokenise"] += t3 - t2
        t0 = clock()
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), layout.eos_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        loss_mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, (row, start) in enumerate(zip(rows, starts)):
            ids[i, : len(row)] = torch.tensor(row)
            attention[i, : len(row)] = 1
            loss_mask[i, start : len(row)] = True
        data = (torch.from_numpy(np.stack(images)), ids, attention, loss_mask)
        t1 = clock()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = sequence_loss(model, *data, image_id=layout.image_id)
        t2 = clock()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = clock()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()
        t4 = clock()
        totals["collate"] += t1 - t0
        totals["forward"] += t2 - t1
        totals["backward"] += t3 - t2
        totals["optimiser"] += t4 - t3
    wall = clock() - started
    return {
        "config": config,
        "scenes": scenes,
        "form": form,
        "threads": threads,
        "batch": batch,
        "steps": steps,
        "warmup": warmup,
        "cached_pixels": cached is not None,
        "wall_s": round(wall, 2),
        "steps_per_s": round(steps / wall, 4),
        "s_per_step": round(wall / steps, 4),
        "parts_s_per_step": {k: round(v / steps, 4) for k, v in totals.items()},
        "shares": {k: round(v / wall, 3) for k, v in totals.items()},
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def write_markdown(runs: list[dict]) -> Path:
    lines = [
        "# Where a micro training step's time goes",
        "",
        (
            "Produced by `python -m benchmarks.train_step_profile` (its docstring says how): each part "
            "of export.micro.train's step timed separately on a fresh model, batch 16, the train "
            "stream; `load` is the 1-minute load average before / after the run (2 cores)."
        ),
        "",
        "| when | config | scenes | threads | pixels | steps | s / step | steps / s | "
        + " | ".join(PARTS)
        + " | load |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(PARTS) + "---|",
    ]
    for run in runs:
        shares = " | ".join(
            f"{run['parts_s_per_step'][p]:.3f} s ({run['shares'][p]:.0%})" for p in PARTS
        )
        lines.append(
            f"| {run['when']} | {run['config']} | {run['scenes']} | {run['threads']} | "
            f"{'cached shards' if run['cached_pixels'] else 'rendered'} | {run['steps']} | "
            f"{run['s_per_step']:.3f} | {run['steps_per_s']:.3f} | {shares} | "
            f"{run['load_before'][0]:.2f} / {run['load_after'][0]:.2f} |"
        )
    path = RESULTS / "train_step_profile.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="micro", choices=("micro", "small", "base"))
    parser.add_argument("--scenes", default="mix", choices=("classic", "varied", "mix"))
    parser.add_argument("--form", default="extract")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--cached",
        type=Path,
        default=None,
        help="read pictures from pre-rendered shards in this folder (export.micro.shards)",
    )
    parser.add_argument("--summary", action="store_true", help="only rewrite the markdown")
    args = parser.parse_args(argv)
    path = RESULTS / "train_step_profile.json"
    runs = json.loads(path.read_text()) if path.is_file() else []
    if not args.summary:
        before = os.getloadavg()
        say(
            f"profiling {args.config} on {args.scenes} scenes, {args.threads} threads, {args.steps} steps"
        )
        run = profile(
            config=args.config,
            scenes=args.scenes,
            form=args.form,
            threads=args.threads,
            steps=args.steps,
            warmup=args.warmup,
            cached=args.cached,
        )
        run.update(
            when=time.strftime("%Y-%m-%d %H:%M"),
            load_before=[round(x, 2) for x in before],
            load_after=[round(x, 2) for x in os.getloadavg()],
        )
        runs.append(run)
        path.write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(run))
    print(write_markdown(runs))


if __name__ == "__main__":
    main()
