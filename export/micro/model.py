"""The micro perception model: an Idefics3/SmolVLM-shaped VLM small enough to train on a CPU,
and the pieces that make training see exactly what llama.cpp will show it at inference.

Shape (MICRO): a 4-layer 128-wide SigLIP-style tower on 128-pixel images of 16-pixel patches
(64 patches), pixel shuffle 2 (16 image tokens per view), a 3-layer 256-wide Llama, and a
byte-level BPE of about 1k tokens trained on the project's generic tokenizer corpus plus the
scene texts and the runtime's prompts (`micro_tokenizer`). Against SmolLM2's 49k vocabulary
the embedding and output rows shrink from 25M parameters to 0.5M; against the generic 2k BPE
(export/tokenizer.py) a training sequence shrinks by a fifth (measured on 200 examples: extract
prompt + target 219 -> 173 tokens, caption 145 -> 121), and on a CPU a step costs its tokens.

Layout: the runtime renders the model's chat template around libmtmd's media marker
(edge_et.runtime.pipeline) and libmtmd expands the marker, for an image of one tile, into the tile
and an overview of the same pixels (docs/pitfalls.md, 3):

    <|im_start|>User: | <fake><row_1_col_1> 16 x img \\n\\n <fake><global-img> 16 x img <fake> |
    \\n{request}<end_of_utterance>\\nAssistant:

Text on each side of the image is tokenized separately, as libmtmd does. Patches are numbered
0..N-1 as llama.cpp does (pitfall 5).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from edge_et.core.chat import render_user_turn
from export.archs import idefics3
from export.archs.base import random_model, save_checkpoint
from export.archs.idefics3 import CHAT_TEMPLATE, IMAGE_SPECIALS
from export.archs.llama import SMOLLM2_SPECIALS
from export.tokenizer import generic_corpus, padded_vocab, train_bpe

MICRO = dict(
    hidden=256,
    layers=3,
    heads=4,
    kv_heads=2,
    intermediate=512,
    vision_dim=128,
    vision_layers=4,
    vision_heads=4,
    vision_intermediate=512,
    image_size=128,
    patch_size=16,
    scale_factor=2,
    max_tiles_side=1,
)
# The capacity sweep's larger shapes, same layout: about 13 M and 30 M parameters. The 40 MB a
# committed model may take holds SMALL in F16 and BASE with its text model in Q8_0.
SMALL = dict(
    MICRO,
    hidden=384,
    layers=6,
    heads=6,
    kv_heads=2,
    intermediate=1024,
    vision_dim=192,
    vision_layers=6,
    vision_heads=4,
    vision_intermediate=768,
)
BASE = dict(
    MICRO,
    hidden=512,
    layers=7,
    heads=8,
    kv_heads=4,
    intermediate=1536,
    vision_dim=256,
    vision_layers=8,
    vision_heads=4,
    vision_intermediate=1024,
)
# A config for tests: the same layout at a fraction of the cost.
TEST_MICRO = dict(
    MICRO,
    hidden=64,
    layers=1,
    intermediate=128,
    vision_dim=32,
    vision_layers=1,
    vision_heads=2,
    vision_intermediate=64,
)
MEDIA_MARKER = "<__media__>"  # libmtmd's default marker (mtmd_default_marker)
EOS = "<end_of_utterance>"


SCENE_CORPUS_EXAMPLES = 1500  # examples per training form in the tokenizer corpus
MICRO_VOCAB = 1024


def _scene_corpus() -> list[str]:
    from edge_et.core import prompts
    from edge_et.core.hints import TOPICS
    from export.scenes import FORMS, example, training_pair
    from export.scenes.forms import TRAIN_SEED

    texts = [prompts.CAPTION_PROMPT, prompts.EXTRACTION_PREFIX, prompts.DIRECT_POST_PROMPT]
    texts += [phrase for phrase, _ in TOPICS]
    for index in range(SCENE_CORPUS_EXAMPLES):
        ex = example(TRAIN_SEED + 1000, index)  # a stream of its own: no train or held-out scene
        texts.append(ex.question.prompt_text())
        texts += [part for form in FORMS for part in training_pair(ex, form)]
    return texts


@lru_cache(maxsize=1)
def _trained_micro_bpe() -> str:
    return train_bpe(generic_corpus() + _scene_corpus(), MICRO_VOCAB)


def micro_tokenizer():
    """The micro model's tokenizer: the scene-aware BPE in SmolVLM's special-token layout
    (the same specials, chat template and eos as export.archs.idefics3). Deterministic."""
    from tokenizers import Tokenizer
    from transformers import GPT2TokenizerFast

    tok = Tokenizer.from_str(_trained_micro_bpe())
    special = SMOLLM2_SPECIALS + IMAGE_SPECIALS
    tok.add_special_tokens(special)
    fast = GPT2TokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token="<|im_end|>",
        bos_token="<|im_start|>",
        unk_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
    )
    named = {EOS, "<|im_end|>", "<|im_start|>", "<|endoftext|>"}
    fast.add_special_tokens({"additional_special_tokens": [t for t in special if t not in named]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


def micro_blueprint(tokenizer_dir=None, **overrides):
    """export.archs.idefics3's blueprint with the micro tokenizer in place of the generic one
    (or the tokenizer saved in `tokenizer_dir`, to rebuild a published model exactly)."""
    from transformers import AutoTokenizer

    bp = idefics3.blueprint(**overrides)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir) if tokenizer_dir else micro_tokenizer()
    config = bp.config
    text = config.text_config
    text.vocab_size = padded_vocab(tok)
    text.bos_token_id, text.eos_token_id = tok.bos_token_id, tok.eos_token_id
    text.pad_token_id = config.pad_token_id = tok.pad_token_id
    config.image_token_id = tok.convert_tokens_to_ids("<image>")
    return replace(bp, tokenizer=tok, config=config)


def build_micro(out, *, seed: int, tokenizer_dir=None, **overrides):
    """Write the seeded random micro checkpoint (weights, tokenizer, processor) into `out`."""
    bp = micro_blueprint(tokenizer_dir, **overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # The tiny builders' own init and save, so the checkpoint looks like every other one here.
    save_checkpoint(random_model(bp, seed), bp, out)
    return out


def image_tokens_per_view(config: dict) -> int:
    """Image tokens one view becomes after pixel shuffle."""
    side = config["image_size"] // config["patch_size"] // config["scale_factor"]
    return side * side


class Layout:
    """Token ids of training sequences in libmtmd's layout, for one tokenizer and shape."""

    def __init__(self, tokenizer, config: dict):
        self.tok = tokenizer
        ids = tokenizer.convert_tokens_to_ids
        self.image_id = ids("<image>")
        self.eos_id = ids(EOS)
        n = image_tokens_per_view(config)
        blank = tokenizer.encode("\n\n", add_special_tokens=False)
        if len(blank) != 1:
            raise RuntimeError("the tokenizer lacks a single '\\n\\n' token")
        self.image_span = (
            [ids("<fake_token_around_image>"), ids("<row_1_col_1>")]
            + [self.image_id] * n
            + blank
            + [ids("<fake_token_around_image>"), ids("<global-img>")]
            + [self.image_id] * n
            + [ids("<fake_token_around_image>")]
        )

    @lru_cache(maxsize=4096)  # noqa: B019 - one Layout per training run; the cache dies with it
    def prompt(self, request: str) -> tuple[int, ...]:
        """The prompt for `request`, exactly as the runtime builds it around the image."""
        text = render_user_turn(CHAT_TEMPLATE, MEDIA_MARKER + "\n" + request)
        before, after = text.split(MEDIA_MARKER)
        encode = lambda s: self.tok.encode(s, add_special_tokens=False)  # noqa: E731
        return tuple(encode(before) + self.image_span + encode(after))

    def sequence(self, request: str, target: str) -> tuple[list[int], int]:
        """(prompt + target + eos ids, prompt length). The model answers after "Assistant:"
        with a leading space, as SmolVLM does."""
        prompt = list(self.prompt(request))
        answer = self.tok.encode(" " + target, add_special_tokens=False) + [self.eos_id]
        return prompt + answer, len(prompt)


def pixels(image) -> np.ndarray:
    """A Pillow RGB image as the processor normalizes it (mean 0.5, std 0.5): 3 x H x W f32."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return ((array - 0.5) / 0.5).transpose(2, 0, 1)


def image_features(model, pixel_values):
    """Connector outputs for a batch of single-tile images: B x tokens x text hidden."""
    import torch

    vision = model.model.vision_model
    batch, _, height, width = pixel_values.shape
    patch = vision.config.patch_size
    mask = torch.ones(batch, height // patch, width // patch, dtype=torch.bool)
    hidden = vision(pixel_values=pixel_values, patch_attention_mask=mask).last_hidden_state
    return model.model.connector(hidden)


def _hidden(model, pixel_values, input_ids, attention_mask, image_id: int):
    """Last hidden states of a batch: the image features fill both image spans (one tile and
    the overview are the same pixels for a one-tile image, so the tower runs once)."""
    import torch

    features = image_features(model, pixel_values)
    embeds = model.model.text_model.get_input_embeddings()(input_ids)
    is_image = input_ids == image_id
    both_views = torch.cat([features, features], dim=1).to(embeds.dtype)
    embeds = embeds.masked_scatter(is_image[..., None], both_views)
    return model.model.text_model(
        inputs_embeds=embeds, attention_mask=attention_mask
    ).last_hidden_state


def sequence_loss(model, pixel_values, input_ids, attention_mask, loss_mask, image_id: int):
    """Mean cross-entropy over the target tokens (loss_mask marks tokens to predict).

    Logits are computed only where a loss is taken: most positions are prompt.
    """
    import torch

    hidden = _hidden(model, pixel_values, input_ids, attention_mask, image_id)
    take = loss_mask[:, 1:]
    logits = model.lm_head(hidden[:, :-1][take])
    return torch.nn.functional.cross_entropy(logits.float(), input_ids[:, 1:][take])


def letter_accuracy(
    model, pixel_values, input_ids, attention_mask, loss_mask, image_id: int, letter_ids: list[int]
) -> float:
    """Answer accuracy of a direct form under teacher forcing: at the letter that ends the
    target (the token before eos), is the gold letter the likeliest of `letter_ids`?

    The mean loss hides this: "Answer: B" is 4 target tokens, so a model sure of the format
    and guessing among 4 letters sits at ln(4) / 4 = 0.347 however long it trains."""
    import torch

    hidden = _hidden(model, pixel_values, input_ids, attention_mask, image_id)
    ends = loss_mask.long().cumsum(dim=1).argmax(dim=1)  # each row's eos: its last target token
    rows = torch.arange(len(ends))
    logits = model.lm_head(hidden[rows, ends - 2])[:, letter_ids]
    gold = input_ids[rows, ends - 1]
    if not torch.isin(gold, torch.tensor(letter_ids)).all():
        raise ValueError("a target does not end with an option letter before eos")
    chosen = torch.tensor(letter_ids)[logits.argmax(dim=1)]
    return (chosen == gold).float().mean().item()
