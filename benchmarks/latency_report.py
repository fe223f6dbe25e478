"""benchmarks/results/latency.md from latency.json (see benchmarks/latency.py)."""

from __future__ import annotations

from pathlib import Path

ROWS = (("e2e_s", "end to end s", "{:.1f}"), ("image_encode_s", "image encode s", "{:.2f}"),
        ("extract_s", "extract s", "{:.1f}"), ("think_s", "think s", "{:.1f}"),
        ("think_decode_tok_s", "think decode tok/s", "{:.1f}"))


def _fmt(spec: str, value) -> str:
    return "–" if value is None else spec.format(value)


def bundle_table(part: dict) -> list[str]:
    s = part["summary"]
    lines = [f"### {part['name']}", "",
             f"Bundle `{Path(part['bundle']).name}`, think budget {part['think_budget'] or 'the bundle’s'}, "
             f"greedy, {len(part['trials'])} interleaved trial pairs, warm process (loads excluded, "
             "the picture encoded every trial).", "",
             "| metric | off (median) | lookup (median) | lookup / off (median of per-trial ratios) |",
             "|---|---|---|---|"]
    for key, label, spec in ROWS:
        row = s[key]
        lines.append(f"| {label} | {_fmt(spec, row['off'])} | {_fmt(spec, row['lookup'])} | "
                     f"{_fmt('{:.2f}', row['ratio'])} |")
    lines += ["", f"Drafted {s['drafted']}, accepted {s['accepted']} "
              f"(acceptance {_fmt('{:.0%}', s['acceptance'])}); greedy reasoning identical off vs "
              f"lookup in every trial: {s['identical_reasoning']}.", ""]
    return lines


def pretrained_table(part: dict) -> list[str]:
    s = part["summary"]
    lines = ["### Acceptance on pretrained weights", "",
             f"Target `{part['target']}`, draft model `{part['draft']}` (vocabulary check: "
             f"{part['vocab_mismatch'] or 'same tokenizer type, BOS/EOS and token list'}); "
             f"{part['tokens']} greedy tokens over the default bundle's real extraction "
             f"({len(part['trials'])} interleaved trials).", "",
             "| drafter | decode tok/s (median) | / off (median ratio) | acceptance | drafted | "
             "accepted | identical to off |", "|---|---|---|---|---|---|---|"]
    for name, row in s.items():
        lines.append(f"| {name} | {_fmt('{:.1f}', row['decode_tok_s'])} | "
                     f"{_fmt('{:.2f}', row.get('decode_ratio'))} | {_fmt('{:.0%}', row.get('acceptance'))} | "
                     f"{row.get('drafted', '–')} | {row.get('accepted', '–')} | {row['identical_to_off']} |")
    return lines + [""]


def write_markdown(report: dict, path: Path) -> Path:
    m = report.get("machine", {})
    lines = ["# Latency: speculative thinking off vs on", "",
             "Recorded with `nice -n 5 python -m benchmarks.latency` (parts: `--only default|"
             "pretrained|paper`). Machine: " + f"{m.get('cpu')}, {m.get('usable_cores')} usable cores, "
             f"{m.get('threads')} threads, load average at start {m.get('load_average_at_start')}. "
             "The machine was shared by 5 engineers running tests and benchmarks at the same time: "
             "every number is noisy, which is why off and on alternate within each trial pair and "
             "ratios are medians of per-trial ratios.", ""]
    if "default" in report:
        lines += ["Default bundle: pretrained reasoner (Qwen2.5-Coder-1.5B-Instruct Q4_K_M), trained micro "
                  "perception.", ""] + bundle_table(report["default"])
    if "pretrained" in report:
        lines += pretrained_table(report["pretrained"])
    if "paper" in report:
        lines += ["Paper pair: RANDOM weights (speed is the architecture's; acceptance is not a "
                  "forecast: random greedy text repeats itself, which lookup predicts).", ""]
        lines += bundle_table(report["paper"])
    path.write_text("\n".join(lines) + "\n")
    return path
