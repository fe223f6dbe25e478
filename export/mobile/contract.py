"""What mobile.json format 2 adds so that an app needs nothing but the package.

Format 1 listed the files, prompts and decoding, but an app still had to read edge-et's own
`onnx_config.json` and `bundle.json` and copy rules from edge-et's Python code: the chat template
and special tokens, which graph is which, the context, whether the reasoner thinks, the image
preprocessing (Pillow's filter by number, the views per call), where the picture goes in the
prompt, the hint rule, the sampler's repeat window, budget forcing's tokens and thresholds, the
answer cue and the answer pattern. The reference web app (web/) showed each of these gaps.

Every value here is taken from the constant the Python runtime itself uses (imported, not
copied), and `stages.<role>.settings` is the very dict the runtime reads for that stage
(edge_et/formats/mobile.py), so the manifest and the runtime cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_et.backends.onnx.footprint import PREFILL_CHUNK
from edge_et.backends.onnx.model import MEDIA_MARKER
from edge_et.backends.onnx.sampling import REPEAT_WINDOW
from edge_et.core import hints
from edge_et.core.choices import OPTION_RULES
from edge_et.core.prompts import ANSWER_PATTERN
from edge_et.formats.idefics3 import LANCZOS
from edge_et.formats.onnx_stage import STAGE_CONFIG
from edge_et.runtime.answer_cue import ANSWER_CUE
from edge_et.runtime.generation import BOOST_FROM, THINK_CLOSE, THINK_OPEN
from edge_et.runtime.options import SEED_OFFSETS

# Pillow's resampling constants by name (PIL.Image.Resampling), for the manifest's readers.
PILLOW_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
BICUBIC = 3  # LLaVA-OneVision's processor resizes with Pillow's bicubic (formats/llava_ov.py)
# Graph roles of an ONNX stage: the file of each, as the stage config names them.
SESSIONS = {"decoder": "decoder", "embed": "embed", "vision": "vision"}


def _pattern(regex) -> str:
    """A compiled Python regex as text; (?i) in front where it ignores case."""
    import re

    inline = regex.pattern.startswith("(?i)")
    return ("(?i)" if regex.flags & re.IGNORECASE and not inline else "") + regex.pattern


def pipeline_contract() -> dict:
    """The `pipeline` section: the method's rules that are code in the Python runtime."""
    return {
        "modes": ["extract-think", "extract"],
        "media_marker": MEDIA_MARKER,
        "image_prompt": "{media}\n{request}",
        "image_input": "RGB, 8 bits per channel, EXIF orientation applied, transparency composited "
        "over white (Pillow's alpha_composite)",
        "seed_offsets": dict(SEED_OFFSETS),
        "prefill_chunk": PREFILL_CHUNK,
        "hint_rule": {
            "option_line": _pattern(hints._OPTION_LINE),
            "label": _pattern(hints._LABEL),
            "topics": [[phrase, list(cues)] for phrase, cues in hints.TOPICS],
            "fallback": 'the details needed to answer "{stem}"',
            "empty": "the main objects in the image",
        },
        "answer_pattern": _pattern(ANSWER_PATTERN),
        "sampler": {
            "order": ["repeat_penalty", "greedy | temperature", "top_k", "top_p", "min_p"],
            "repeat_window": REPEAT_WINDOW,
            "greedy": "the first maximal logit",
        },
        "budget_forcing": {
            "open": THINK_OPEN,
            "close": THINK_CLOSE,
            "newline": "\n",
            "boost_from": BOOST_FROM,
        },
        "answer_cue": {
            "text": ANSWER_CUE,
            # With options in the question (found by these rules, a run lettered A, B, ... of
            # at least two), the cued answer is one token among the letters' single tokens
            # (" B" or "B"); free text where some letter has none.
            "letters": {name: _pattern(rule) for name, rule in OPTION_RULES.items()},
        },
    }


def stage_contract(folder: Path, role: str, entry: dict) -> dict:
    """`settings`, `sessions`, `n_ctx`, `thinking` and (perception) `preprocessing` of one stage
    of the package in `folder` (its onnx_config.json already pointed at the package's graphs)."""
    settings = json.loads((folder / role / STAGE_CONFIG).read_text(encoding="utf-8"))
    sessions = {"decoder": Path(entry["model"]).name}
    if settings.get("embed"):
        sessions["embed"] = settings["embed"]
    if entry.get("mmproj"):
        sessions["vision"] = Path(entry["mmproj"]).name
    found = {
        "settings": settings,
        "sessions": sessions,
        "n_ctx": min(
            int(entry.get("n_ctx") or settings["max_positions"]), int(settings["max_positions"])
        ),
    }
    if role == "reasoning":
        found["thinking"] = bool(entry.get("thinking"))
    if settings.get("vision"):
        found["preprocessing"] = preprocessing(
            settings["vision"], folder / role / sessions["vision"]
        )
    return found


def preprocessing(vision: dict, graph: Path) -> dict:
    """The vision section spelled out for an app: Pillow's filter by number and name, how many
    views one vision call takes (fixed by the package, or free), the texts around the span."""
    kind = vision["kind"]
    spelled = {k: v for k, v in vision.items() if not k.startswith("vision_") and k != "file"}
    if kind == "llava_onevision":
        spelled["resample"] = BICUBIC
    elif kind == "idefics3":
        spelled["resample"] = (
            LANCZOS if vision.get("layout") == "mtmd" else int(vision.get("resample", LANCZOS))
        )
    if "resample" in spelled:
        import PIL

        spelled["resample_name"] = PILLOW_FILTERS[spelled["resample"]]
        # The runtime resizes with this Pillow; its two passes' order changed in Pillow 13.
        spelled["pillow"] = PIL.__version__
    spelled["views_per_call"] = _fixed_views(graph)
    spelled["wrap"] = list(vision.get("wrap") or ("", ""))  # Qwen2-VL's vision start and end
    return spelled


def _fixed_views(graph: Path) -> int | None:
    """The vision graph's fixed batch of views (None: any number), read from the graph."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    views = session.get_inputs()[0].shape[0]
    return views if isinstance(views, int) and views > 0 else None
