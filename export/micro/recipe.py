"""The committed micro models' whole recipe as one command: a caption base, then three tuning
rounds of one form, each continuing the scene stream of the round before.

    edge-et export train --form extract --recipe --out models/store/micro/extract-run

models/micro/{direct,caption,extract} were trained this way (README, "The micro perception
model"): the rounds grew one at a time while the extract model's loss kept falling, and every
form got the same ones. Each round is its own run folder under OUT/rounds/; a stopped recipe
resumes at the first round without a summary, from that round's last checkpoint (export.micro.resume). OUT/hf is the final checkpoint (what
`edge-et export release --run OUT` exports) and OUT/train_summary.json the last round's summary,
whose `init` chain records every round.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from edge_et.errors import InputError
from export.micro import resume
from export.micro.train import FORMS, SUMMARY_FILE, train

# (form of the round: "base" is the caption base, "tune" the recipe's form; steps of 16 scenes,
# peak learning rate, warm-up steps)
ROUNDS = (
    ("base", 1200, 1e-3, 100),
    ("tune", 200, 5e-4, 20),
    ("tune", 400, 3e-4, 10),
    ("tune", 1200, 3e-4, 10),
)
Progress = Callable[[int, int, dict], None]  # (steps done, steps in all, the last log entry)


def recipe_steps(scale: float = 1.0) -> list[int]:
    """Steps of each round, `scale` times the recipe's (at least 1; tests run it small)."""
    return [max(1, round(steps * scale)) for _, steps, _, _ in ROUNDS]


def train_recipe(
    *,
    form: str,
    out: Path,
    seed: int = 0,
    threads: int | None = None,
    tokenizer: Path | None = None,
    config: str = "micro",
    scale: float = 1.0,
    batch: int = 16,
    progress: Progress | None = None,
    scenes: str = "classic",
    stop_at: float | None = None,
    pixel_cache: bool | Path = False,
) -> dict:
    """Run (or resume) every round into OUT/rounds/, then put the final checkpoint at OUT/hf.

    stop_at: a time.monotonic() value; past it the round in progress saves its checkpoint and
    resume.Paused is raised (export.micro.train), and the same call later continues.
    pixel_cache: read pictures from pre-rendered shards (export.micro.shards; same pixels)."""
    if form not in FORMS:
        raise InputError(f"unknown --form {form!r}; choose one of: {', '.join(FORMS)}")
    out = Path(out)
    if (out / "hf").exists() and any((out / "hf").iterdir()):
        raise InputError(f"{out / 'hf'} is not empty; choose another --out")
    steps = recipe_steps(scale)
    total, done, init, summary = sum(steps), 0, None, {}
    for index, ((kind, _, lr, warmup), n) in enumerate(zip(ROUNDS, steps)):
        run_form = "caption" if kind == "base" else form
        run = out / "rounds" / f"{index}-{run_form}-{n}"
        if (run / SUMMARY_FILE).is_file():  # finished before a stop: resume after it
            summary = json.loads((run / SUMMARY_FILE).read_text())
        else:
            if (
                resume.saved(run) is None
            ):  # a round stopped before its first checkpoint starts again
                shutil.rmtree(run, ignore_errors=True)

            def log(line: str, offset=done) -> None:
                if progress is not None:
                    entry = json.loads(line)
                    progress(offset + entry["step"], total, entry)

            summary = train(
                form=run_form,
                seed=seed,
                out=run,
                steps=n,
                batch=batch,
                lr=lr,
                warmup=min(warmup, max(0, n - 1)),
                config=config,
                threads=threads,
                init=init,
                tokenizer=tokenizer if init is None else None,
                log=log,
                scenes=scenes,
                stop_at=stop_at,
                pixel_cache=pixel_cache,
            )
        done += n
        init = run / "hf"
    shutil.copytree(init, out / "hf", dirs_exist_ok=True)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
