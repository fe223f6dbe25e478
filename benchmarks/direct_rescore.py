"""The end-to-end (direct) baseline's answers, scored by three rules: the paper's, edge-et's
before issue 30, and edge-et's now (edge_et.eval.metrics.answer_letter).

The recorded runs kept only counts (replication.json, perception_sweep.json), not the answers,
so they cannot be scored again as they are. This runs the committed direct model
(models/micro/direct, greedy, its own bundle's 16 answer tokens: what the replication's
end-to-end rows ran) once over the same questions, keeps every answer in
benchmarks/results/direct_predictions.jsonl, and scores that file; `--summary` scores it again
without a model run.

- replication sets: the replication's 50 held-out scenes and 50 easy-VQA questions
  (benchmarks.replication's data files, same seeds);
- sweep sets: 60 held-out scenes of each stream (classic, varied, shifted) as
  benchmarks.perception_sweep scores them (export.micro.eval).

Rules, each over the paper's parse of the last line (`Answer: X`, else the line):
- paper: lmms-eval's MMStar `exact_match`, which the authors' stage-2 scorer calls: the gold
  letter against the answer's first character (or the one after "(", "option ",
  "the answer is ");
- before: edge-et's rule until issue 30: a letter followed by anything but a letter;
- now: a letter that stands alone (eval.md#scoring).
The sweep scored direct answers by string equality with the gold letter until issue 30: that
is shown too.

    python -m benchmarks.direct_rescore            # run the model where answers are missing, score
    python -m benchmarks.direct_rescore --summary  # only score the recorded answers
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from benchmarks.replication import RESULTS, ROOT, dataset_file, say

BUNDLE = ROOT / "models" / "micro" / "direct"
PREDICTIONS = RESULTS / "direct_predictions.jsonl"
REPLICATION_SETS = {"scenes": 50, "easy-vqa": 50}  # what replication.md's end-to-end rows ran
SWEEP_SETS = {"classic": 60, "varied": 60, "shifted": 60}  # what perception_sweep.md ran
# edge-et's rule until issue 30 (metrics.py then), kept here only to show the before.
_BEFORE = re.compile(
    r"^[\s*_`'\"]*(?:the answer is\s*:?\s*|option\s+)?\(?([A-Za-z])(?![A-Za-z])", re.IGNORECASE
)


def paper_correct(answer: str, gold: str) -> bool:
    """lmms-eval's MMStar exact_match (lmms_eval/tasks/mmstar/utils.py), as the authors score."""
    predict, gold = answer.lower().strip().replace("\n", " "), gold.lower().strip()
    return any(
        predict[len(prefix) : len(prefix) + 1] == gold
        for prefix in ("", "(", "option ", "the answer is ")
        if predict.startswith(prefix) and len(predict) > len(prefix)
    )


def before_letter(answer: str, letters: str) -> str | None:
    match = _BEFORE.match(answer or "")
    letter = match.group(1).upper() if match else None
    return letter if letter and letter in letters else None


def collect(recorded: list[dict]) -> list[dict]:
    """Answers of the committed direct model for every set not recorded yet (one model run)."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.eval.run import evaluate, read_eval_file
    from edge_et.runtime.pipeline import Pipeline, RunOptions
    from export.micro.eval import evaluate as micro_evaluate
    from export.scenes import example
    from export.scenes.forms import HELDOUT_SEED, SHIFTED_SEED

    have = {row["set"] for row in recorded}
    rows = []
    with Pipeline(Bundle.load(BUNDLE)) as pipeline:
        for name, limit in REPLICATION_SETS.items():
            if f"replication/{name}" in have:
                continue
            data = read_eval_file(dataset_file(name, limit))
            say(f"replication/{name}: {len(data.items)} questions")

            def keep(mode, item, record, scored, name=name):
                rows.append(
                    {
                        "set": f"replication/{name}",
                        "id": item.id,
                        "gold": item.answer,
                        "options": item.options,
                        "answer": record.get("answer", ""),
                    }
                )

            evaluate(pipeline, data, ["direct"], RunOptions(), seed=0, on_record=keep)
    for stream, limit in SWEEP_SETS.items():
        if f"sweep/{stream}" in have:
            continue
        say(f"sweep/{stream}: {limit} scenes")
        report = micro_evaluate(BUNDLE, "direct", limit=limit, stream=stream)
        for index, row in enumerate(report["predictions"]):
            ex = example(SHIFTED_SEED if stream == "shifted" else HELDOUT_SEED, index, stream)
            rows.append(
                {
                    "set": f"sweep/{stream}",
                    "id": row["id"],
                    "gold": row["gold"],
                    "options": ex.question.options,
                    "answer": row["answer"],
                }
            )
    return rows


def table(rows: list[dict]) -> list[str]:
    from edge_et.eval.metrics import answer_letter, wilson_interval

    lines = [
        (
            "| set | n | paper (first character) | edge-et before | edge-et now [95% CI] | "
            "parse failures before / now | sweep's old rule (answer == letter) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(row["set"] for row in rows):
        group = [row for row in rows if row["set"] == name]
        letters = ["".join(row["options"]) for row in group]
        now = [answer_letter(r["answer"], ls, r["options"]) for r, ls in zip(group, letters)]
        before = [before_letter(r["answer"], ls) for r, ls in zip(group, letters)]
        n = len(group)
        hits_now = sum(letter == r["gold"] for letter, r in zip(now, group))
        low, high = wilson_interval(hits_now, n)
        lines.append(
            f"| {name} | {n} | {sum(paper_correct(r['answer'], r['gold']) for r in group)} | "
            f"{sum(letter == r['gold'] for letter, r in zip(before, group))} | "
            f"{hits_now} ({hits_now / n:.0%}) [{low:.0%}-{high:.0%}] | "
            f"{before.count(None)} / {now.count(None)} | "
            f"{sum(r['answer'] == r['gold'] for r in group)} |"
        )
    return lines


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--summary", action="store_true", help="only score the recorded answers")
    args = parser.parse_args(argv)
    rows = read(PREDICTIONS)
    if not args.summary:
        new = collect(rows)
        with PREDICTIONS.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in new)
        rows += new
    lines = table(rows)
    print("\n".join(lines))
    examples = [
        row
        for row in rows
        if before_letter(row["answer"], "".join(row["options"]))
        and before_letter(row["answer"], "".join(row["options"])) != _now(row)
    ]
    (RESULTS / "direct_rescore.md").write_text(
        "\n".join(
            [
                "# The direct baseline's answers under three scoring rules",
                "",
                (
                    "Produced by `python -m benchmarks.direct_rescore` (its docstring says how): the committed "
                    "direct model's answers (greedy, so the same as the recorded runs'), kept in "
                    "direct_predictions.jsonl. Counts of correct answers. Scored at load "
                    f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (scoring is arithmetic; the model run's "
                    "load is recorded in docs/replication.md)."
                ),
                "",
                *lines,
                "",
                "Answers the rule before issue 30 read as a letter and the rule now does not:",
                "",
                *(
                    [
                        f"- {row['set']} {row['id']}: {row['answer']!r} (gold {row['gold']})"
                        for row in examples[:20]
                    ]
                    or ["- none: every answer here is a bare letter"]
                ),
                "",
                "Answers that name no option:",
                "",
                *[
                    f"- {name}: "
                    + ", ".join(f"{answer!r} x{count}" for answer, count in _failures(rows, name))
                    for name in dict.fromkeys(row["set"] for row in rows)
                    if _failures(rows, name)
                ],
                "",
            ]
        ),
        encoding="utf-8",
    )


def _failures(rows: list[dict], name: str) -> list[tuple[str, int]]:
    from collections import Counter

    return Counter(
        row["answer"] for row in rows if row["set"] == name and _now(row) is None
    ).most_common()


def _now(row: dict) -> str | None:
    from edge_et.eval.metrics import answer_letter

    return answer_letter(row["answer"], "".join(row["options"]), row["options"])


if __name__ == "__main__":
    main()
