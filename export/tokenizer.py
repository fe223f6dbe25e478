"""Offline tokenizers for random checkpoints: a byte-level BPE trained on a fixed in-code corpus.

No model hub is reachable, so every tiny or full-size random checkpoint carries a tokenizer
built here. All of them split text with Qwen2's pre-tokenizer regex, which llama.cpp knows as
pre-tokenizer "qwen2": the converter cannot recognise a locally trained tokenizer's hash, so
it is told to fall back to that name (`ArchSpec.pre_tokenizer`). The architecture modules add
their own special tokens, tokenizer class and chat template.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

# Qwen2's pre-tokenizer regex, which llama.cpp implements as pre-tokenizer "qwen2". Our
# tokenizers use it so that HF and llama.cpp split text identically.
QWEN2_PRE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The llama.cpp pre-tokenizer name that matches QWEN2_PRE_REGEX (converter fallback).
PRE_TOKENIZER = "qwen2"

# Trained BPE vocabulary size of tiny models: big enough for whole words of the corpus.
TINY_VOCAB = 2048


def generic_corpus() -> list[str]:
    """A fixed corpus: templated scene descriptions, reasoning phrases and plain prose."""
    colors = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
    shapes = ["circle", "square", "triangle", "star", "rectangle", "hexagon"]
    places = ["top left", "top right", "center", "bottom left", "bottom right", "middle"]
    lines = [
        f"There is a {c} {s} in the {p} of the image."
        for c, s, p in itertools.product(colors, shapes, places)
    ]
    lines += [
        f"Question: how many {s}s are there? Answer: {n}."
        for s, n in itertools.product(shapes, range(12))
    ]
    lines += [
        f"Let me think. {a} plus {b} is {a + b}, so the answer is {a + b}."
        for a, b in itertools.product(range(0, 40, 3), range(0, 30, 4))
    ]
    words = _COMMON_WORDS.split()
    lines += [" ".join(words[i : i + 9]).capitalize() + "." for i in range(0, len(words), 5)]
    lines += [
        "The picture shows a street with cars, people walking, trees and a tall building.",
        "A chart plots sales per month; the highest value is in July and the lowest in March.",
        "Wait, I should check the details again before I give the final answer.",
        "The text in the sign reads OPEN. The clock shows half past three in the afternoon.",
        "Describe the image in detail, including objects, colors, positions, text and counts.",
        "First, extract the relevant visual details. Then reason step by step about them.",
    ]
    # Headings and line breaks give "\n" and "\n\n" their own tokens, as in real Qwen and
    # SmolLM2 vocabularies (after punctuation the regex glues newlines to the punctuation).
    return [f"Part {i}\n\n" + "\n".join(lines[i : i + 3]) + "\n" for i in range(0, len(lines), 3)]


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


def _train(vocab_size: int):
    """A Qwen2-regex byte-level BPE trained on the corpus; deterministic (ties break by pair
    order). Trained once per process; each call returns a fresh copy."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_trained(vocab_size))


@lru_cache(maxsize=4)
def _trained(vocab_size: int) -> str:
    return train_bpe(generic_corpus() * 4, vocab_size)


def train_bpe(texts: Sequence[str], vocab_size: int) -> str:
    """A Qwen2-regex byte-level BPE of `vocab_size` trained on `texts`, as tokenizer JSON.
    Deterministic: the same texts give the same tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok.to_str()


def _pad_vocab(tok, size: int):
    """Extend the BPE vocabulary with filler entries up to `size` entries.

    No merge produces a filler, so text never tokenizes into one: they only give a
    full-size model its real vocabulary width (embedding, output layer, sampling cost).
    Real entries are needed, not just a larger config `vocab_size`: the converter trims
    Gemma's embedding to the tokenizer's length.
    """
    from tokenizers import Tokenizer

    data: dict[str, Any] = json.loads(tok.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    vocab.update({f"<|filler_{i}|>": i for i in range(len(vocab), size)})
    return Tokenizer.from_str(json.dumps(data))


def build_tokenizer(
    tokenizer_class,
    *,
    special: Sequence[str],
    chat_template: str,
    eos: str,
    pad: str,
    bos: str | None = None,
    unk: str | None = None,
    plain: Sequence[str] = (),
    size: int | None = None,
    **class_kwargs,
):
    """Train the corpus BPE and wrap it in the transformers `tokenizer_class`.

    `special` tokens, then `plain` ones (added but not special, like Qwen3's `<think>`,
    which must survive decoding), get the ids after the trained vocabulary, in that order.
    `eos`/`pad`/`bos`/`unk` name tokens of `special`. The trained vocabulary has at most
    TINY_VOCAB entries; `size` pads the tokenizer to exactly `size` tokens (full-size
    shapes). `class_kwargs` go to the class (Gemma's `add_bos_token`). Deterministic.
    """
    added = len(special) + len(plain)
    tok = _train(TINY_VOCAB)
    if size is not None:
        if size < TINY_VOCAB + added:
            raise ValueError(f"a tokenizer needs at least {TINY_VOCAB + added} tokens, got {size}")
        tok = _pad_vocab(tok, size - added)
    # Added on the backend first, so that their ids follow `special` and `plain` in order
    # (the transformers constructor would add its named tokens first).
    tok.add_special_tokens(list(special))
    tok.add_tokens(list(plain))
    fast = tokenizer_class(
        tokenizer_object=tok,
        eos_token=eos,
        pad_token=pad,
        bos_token=bos,
        unk_token=unk,
        clean_up_tokenization_spaces=False,
        **class_kwargs,
    )
    named = {eos, pad, bos, unk}
    fast.add_special_tokens({"additional_special_tokens": [t for t in special if t not in named]})
    fast.chat_template = chat_template
    return fast


def padded_vocab(tokenizer, multiple: int = 64) -> int:
    """A model vocabulary for `tokenizer`: its length rounded up, as real checkpoints pad rows."""
    return -(-len(tokenizer) // multiple) * multiple


def chat_parts(image: str) -> str:
    """Jinja that writes `message['content']`: a string as is, or a list of parts.

    llama-cpp-python's MTMDChatHandler and transformers' processors pass parts; an image
    part becomes `image` (the placeholder transformers expects). The runtime passes a
    string that already holds libmtmd's media marker.
    """
    return (
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
        "{%- else -%}{{- '" + image + "' -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
    )


def chatml_template(*, image: str = "", default_system: str | None = None) -> str:
    """A ChatML chat template (`<|im_start|>role\\n...<|im_end|>`), list content accepted.

    `default_system` is inserted when the conversation has no system turn (Qwen2.5 and
    SmolLM2 do this); `image` is the placeholder an image part renders to.
    """
    system = ""
    if default_system is not None:
        system = (
            "{%- if messages[0]['role'] != 'system' -%}"
            "{{- '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' -}}"
            "{%- endif -%}"
        )
    return (
        system + "{%- for message in messages -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        + chat_parts(image)
        + "{{- '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )
