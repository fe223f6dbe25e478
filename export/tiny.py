"""Tiny random checkpoints of real architectures, built offline and deterministically.

The build machines reach no model hub, so tests and demos use checkpoints built here from a
config: seeded random weights plus a byte-level BPE tokenizer trained on a fixed in-code corpus.
They exercise the real conversion and inference paths (the architecture is real; only the
weights are noise). Each architecture is one small spec function, chosen by name.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Qwen2's pre-tokenizer regex, which llama.cpp implements as pre-tokenizer "qwen2". Our
# tokenizers use it so that HF and llama.cpp split text identically.
QWEN2_PRE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The llama.cpp pre-tokenizer name that matches QWEN2_PRE_REGEX (converter fallback).
PRE_TOKENIZER = "qwen2"

# Qwen3's chat template, reduced to what the runtime uses: ChatML turns, earlier assistant
# turns lose their reasoning, and `enable_thinking=false` pre-fills an empty think block.
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set content = message['content'] -%}"
    "{%- if message['role'] == 'assistant' and '</think>' in content -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)

# ChatML for the VLM. Content may be a string or a list of parts: llama-cpp-python's
# MTMDChatHandler passes parts (images already replaced by its media marker as text).
QWEN2VL_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- else -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_THINK_TOKENS = ["<think>", "</think>"]  # not "special" in Qwen3: they survive decoding
_VISION_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def _corpus() -> list[str]:
    """A fixed corpus: templated scene descriptions, reasoning phrases and plain prose."""
    colors = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
    shapes = ["circle", "square", "triangle", "star", "rectangle", "hexagon"]
    places = ["top left", "top right", "center", "bottom left", "bottom right", "middle"]
    lines = [f"There is a {c} {s} in the {p} of the image."
             for c, s, p in itertools.product(colors, shapes, places)]
    lines += [f"Question: how many {s}s are there? Answer: {n}."
              for s, n in itertools.product(shapes, range(12))]
    lines += [f"Let me think. {a} plus {b} is {a + b}, so the answer is {a + b}."
              for a, b in itertools.product(range(0, 40, 3), range(0, 30, 4))]
    words = _COMMON_WORDS.split()
    lines += [" ".join(words[i:i + 9]).capitalize() + "." for i in range(0, len(words), 5)]
    lines += [
        "The picture shows a street with cars, people walking, trees and a tall building.",
        "A chart plots sales per month; the highest value is in July and the lowest in March.",
        "Wait, I should check the details again before I give the final answer.",
        "The text in the sign reads OPEN. The clock shows half past three in the afternoon.",
        "Describe the image in detail, including objects, colors, positions, text and counts.",
        "First, extract the relevant visual details. Then reason step by step about them.",
    ]
    # Headings and line breaks give "\n" and "\n\n" their own tokens, as in real Qwen vocabularies
    # (after punctuation the Qwen regex glues newlines to the punctuation instead).
    return [f"Part {i}\n\n" + "\n".join(lines[i:i + 3]) + "\n" for i in range(0, len(lines), 3)]


_COMMON_WORDS = """
    about above across after again against all almost along already also although always among
    animal another answer any appear area around ask away back ball bank base because become bed
    before begin behind below best better between big bird black blue board boat body book both
    bottom box boy bring brother brown build busy call camera can capital car card care carry case
    cat cause cell center chair change check child choose circle city class clear close cloud
    coast cold color come common complete compute consider contain continue corner count country
    course cover cross cup cut dark day decide deep describe detail develop diagram different
    direction distance divide doctor dog door double down draw dress drink drive during each early
    earth east easy eat edge eight either element else end enough equal even evening every example
    explain eye face fact fall family far farm fast father field figure final find fine fire first
    fish five floor flower fly follow food foot force forest form four free friend front fruit
    full game garden general girl give glass good graph great green ground group grow half hand
    happy hard head hear heart heavy height help here high hill history hold home horse hot hour
    house however hundred idea important inch include increase inside island just keep kind king
    know label lake land language large last late laugh lead learn leave left length less letter
    level light line list listen little live long look machine main make many map mark market
    matter maybe measure middle might mile minute mirror money month moon more morning most mother
    mountain mouth move much music name narrow nation near need never new next night nine noise
    north note nothing notice number object ocean office often old once only open order other
    outside over page paint paper part pass pattern people perhaps person picture piece place
    plain plan plant play point position possible pound power present pretty problem produce
    product pull purple push question quick quiet rain reach read ready real reason record region
    remember repeat report rest result right river road rock room round rule run same sand school
    science score sea season second section see seem sentence serve seven shape share sharp ship
    short should show side sign silver simple since sing single sister six size sky sleep slow
    small smile snow soft soil some song soon sound south space speak special speed spell spring
    stand start state station stay step still stone stop store story straight street strong study
    subject such summer sun surface swim system table tail take talk tall teacher team tell ten
    than thing think third though thousand three through tiny today together tool total touch
    toward town track train travel tree true try turn twenty under unit until upon usual valley
    value very visual voice wait walk wall warm watch water wave weather week weight west wheel
    where which while white whole why wide wild wind window winter wish with without wood word
    work world write wrong yard year yellow young zero
"""


def build_tokenizer(extra_special: list[str], *, vocab_size: int = 2048, chat_template: str):
    """Train a Qwen2-style byte-level BPE on the fixed corpus and wrap it for transformers.

    `extra_special` are added (after the ChatML specials) as single tokens. The result is
    deterministic: the BPE trainer breaks ties by pair order, not hash order.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus() * 4, trainer=trainer)
    fast = Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                              pad_token="<|endoftext|>", unk_token=None, bos_token=None,
                              clean_up_tokenization_spaces=False)
    fast.add_special_tokens({"additional_special_tokens": _QWEN_SPECIALS + [
        t for t in extra_special if t not in _THINK_TOKENS]})
    fast.add_tokens([t for t in extra_special if t in _THINK_TOKENS], special_tokens=False)
    fast.chat_template = chat_template
    return fast


def _padded_vocab(tokenizer) -> int:
    # Rows past the tokenizer are padding, as in real checkpoints; 64 keeps matmuls aligned.
    return -(-len(tokenizer) // 64) * 64


def _save(model, tokenizer, out: Path, seed: int) -> None:
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "generation_config.json").unlink(missing_ok=True)  # random weights: no sampling advice
    (out / "tiny_recipe.json").write_text(json.dumps({"seed": seed, "random_weights": True}) + "\n")


def qwen3(out: Path, *, seed: int = 0, hidden: int = 256, layers: int = 2, heads: int = 4,
          kv_heads: int = 2, intermediate: int = 512) -> Path:
    """Write a tiny random Qwen3ForCausalLM with a thinking chat template to `out`."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tokenizer(_THINK_TOKENS, chat_template=QWEN3_CHAT_TEMPLATE)
    # As in real Qwen checkpoints: bos is <|endoftext|> but never prepended (no add_bos).
    config = Qwen3Config(
        vocab_size=_padded_vocab(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        head_dim=hidden // heads, max_position_embeddings=8192, tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, torch_dtype="float32")
    torch.manual_seed(seed)
    _save(Qwen3ForCausalLM(config).eval(), tokenizer, out, seed)
    return out


def qwen2vl(out: Path, *, seed: int = 0, hidden: int = 128, layers: int = 2, heads: int = 4,
            kv_heads: int = 2, intermediate: int = 256, vision_dim: int = 64,
            vision_depth: int = 3, vision_heads: int = 4) -> Path:
    """Write a tiny random Qwen2VLForConditionalGeneration (text + vision tower) to `out`."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    tokenizer = build_tokenizer(_VISION_SPECIALS, chat_template=QWEN2VL_CHAT_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    rope_half = hidden // heads // 2  # M-RoPE splits the rotary half-dim into t/h/w sections
    section = [rope_half - 2 * (rope_half * 3 // 8), rope_half * 3 // 8, rope_half * 3 // 8]
    text = dict(
        vocab_size=_padded_vocab(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=4096, tie_word_embeddings=True,
        rope_scaling={"type": "mrope", "mrope_section": section},
        bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    vision = dict(depth=vision_depth, embed_dim=vision_dim, hidden_size=hidden,
                  num_heads=vision_heads, mlp_ratio=2, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2, in_channels=3)
    config = Qwen2VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"), tie_word_embeddings=True,
        torch_dtype="float32")
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    _save(model, tokenizer, out, seed)
    Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=448 * 448).save_pretrained(out)
    _add_top_level_architectures(out)
    return out


def _add_top_level_architectures(out: Path) -> None:
    # transformers 4.57 writes `architectures` only into text_config for Qwen2-VL, but the
    # converter picks the mmproj class from the top-level key.
    path = out / "config.json"
    config = json.loads(path.read_text())
    config["architectures"] = ["Qwen2VLForConditionalGeneration"]
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class TinyArch:
    """A buildable architecture: its builder, its GGUF `general.architecture`, and whether
    it has a vision tower (then it also converts to an mmproj)."""

    build: Callable[..., Path]
    gguf_arch: str
    vision: bool


ARCHITECTURES: dict[str, TinyArch] = {
    "qwen3": TinyArch(qwen3, "qwen3", vision=False),
    "qwen2vl": TinyArch(qwen2vl, "qwen2vl", vision=True),
}


def build(arch: str, out: Path, **overrides: Any) -> Path:
    """Build the tiny checkpoint `arch` into the (new or empty) directory `out`."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown tiny architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    out.mkdir(parents=True, exist_ok=True)
    return ARCHITECTURES[arch].build(out, **overrides)


# The export modules whose code shapes a tiny build; editing any of them rebuilds it.
_SHAPING_MODULES = ("tiny.py", "converter.py", "gguf.py", "bundle.py", "tiny_bundle.py")


def recipe_hash(recipe: dict[str, Any]) -> str:
    """A stable 16-hex-digit key for `recipe` plus everything that shapes the built files.

    Covers the recipe itself, the source text of the export modules that build it (a code
    change rebuilds) and the versions of the libraries that shape weights and conversion.
    """
    from importlib.metadata import version  # not `import transformers`: that takes seconds

    h = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    for name in _SHAPING_MODULES:
        h.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes())
    for dist in ("transformers", "tokenizers", "torch", "llama_cpp_python"):
        h.update(f";{dist}={version(dist)}".encode())
    return h.hexdigest()[:16]
