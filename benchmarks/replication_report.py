"""replication.md from replication.json (benchmarks/replication.py writes both)."""

from __future__ import annotations

import json
from pathlib import Path

DATASETS = ("scenes", "shifted", "easy-vqa")
TITLES = {
    "scenes": "held-out generated scenes (in domain)",
    "shifted": "style-shifted scenes (drawn by matplotlib; never trained on)",
    "easy-vqa": "easy-VQA test (out of domain)",
}

MD_HEAD = (
    "| system | reasoner | accuracy [95% CI] | n | parse failures | chance | "
    "s / question | perception s | reasoning s |"
)


def write_markdown(results: dict, path: Path) -> Path:
    """replication.md: one accuracy table and one per-category table per dataset."""
    cells = list(results["cells"].values())
    lines = [
        "# Replication: end-to-end vs Caption+Think vs Extract+Think, at laptop scale",
        "",
        "Produced by `python -m benchmarks.replication` (its docstring says how). Three micro "
        "perception models, one architecture and one training budget, taught three forms "
        "(answer / caption / question-conditioned extraction); reasoners are real pretrained "
        "LLMs from PyPI. Accuracy with its 95% Wilson interval; parse failures count as wrong; "
        "chance is uniform guessing among each question's options; seconds are medians per "
        "question without model loads.",
        "",
    ]
    if results.get("machine"):
        m = results["machine"]
        lines += [
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, Python {m['python']}, "
            f"llama-cpp-python {m['llama_cpp_python']}. Decoding: `{json.dumps(results['decoding'])}`, "
            f"seed {results.get('seed', 0)}.",
            "",
        ]
    trained = {c["system"]: c["training"] for c in cells if c.get("training")}
    if trained:
        from export.micro.release import describe_training

        lines += [
            "Training (export.micro.train, one seed): "
            + "; ".join(
                f"{system}: {describe_training(t)}" for system, t in sorted(trained.items())
            )
            + ".",
            "",
        ]
    if any(c["system"] == "oracle+think" for c in cells):
        lines += [
            "`oracle+think`: the reasoner answers from each scene's true extraction (the extract "
            "model's training target): the most Extract+Think can reach with that reasoner.",
            "",
        ]
    for dataset in DATASETS:
        rows = sorted((c for c in cells if c["dataset"] == dataset), key=_order)
        if not rows:
            continue
        title = TITLES[dataset]
        lines += [f"## {title}", "", MD_HEAD, "|---|---|---|---|---|---|---|---|---|"]
        lines += [_md_row(c) for c in rows] + [""]
        lines += _category_table(rows) + ["Reproduce a row:", ""]
        lines += [f"- {c['system']} / {c['reasoner'] or '-'}: `{c['command']}`" for c in rows] + [
            ""
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


SYSTEM_ORDER = ("end-to-end", "caption+think", "extract+think", "oracle+think")
REASONER_ORDER = (None, "smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")


def _order(c: dict) -> tuple:
    """Rows by system, then by reasoner size."""
    known = c["reasoner"] in REASONER_ORDER
    return (
        SYSTEM_ORDER.index(c["system"]) if c["system"] in SYSTEM_ORDER else 99,
        REASONER_ORDER.index(c["reasoner"]) if known else 99,
    )


def _md_row(c: dict) -> str:
    stages = c.get("median_s", {})
    perception = next((stages[s] for s in ("direct", "caption", "extract") if s in stages), None)
    low, high = c["ci95"]
    accuracy = (
        "-"
        if c["accuracy"] is None
        else f"{100 * c['accuracy']:.1f}% [{100 * low:.1f}-{100 * high:.1f}]"
    )
    return (
        f"| {c['system']} | {c['reasoner'] or '-'} | {accuracy} | {c['scored']} | {c['parse_failures']} | "
        f"{_pct(c['chance'])} | {_s(stages.get('question'))} | {_s(perception)} | {_s(stages.get('think'))} |"
    )


def _category_table(rows: list[dict]) -> list[str]:
    names = sorted({name for c in rows for name in c["categories"]})
    lines = ["| system | reasoner | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for c in rows:
        cats = c["categories"]
        lines.append(
            f"| {c['system']} | {c['reasoner'] or '-'} | "
            + " | ".join(
                f"{_pct(cats[n]['accuracy'])} (n={cats[n]['scored']})" if n in cats else "-"
                for n in names
            )
            + " |"
        )
    return lines + [""]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
