"""Head reuse: keep the KV state of a prompt's shared heads, without changing any answer.

llama.cpp's batched kernels round differently for different batch splits: the KV state of a
token, and the logits the first sample reads, depend on which batch evaluated it. Reusing
"the longest common prefix with the previous prompt" therefore made the split move with the
previous request, and the same request answered differently after different neighbours.

Here the splits are a function of the prompt alone. The caller names the prompt's heads: texts
it starts with that other prompts share, each a prefix of the next (the fixed instruction
before the description; that with the description, which every question about one picture's
caption shares). A prompt is evaluated as one run of batches per segment: from 0 to the first
head's end, from there to the next, then the rest. Kept state is reused segment by segment, only
where a kept segment has the same bounds and tokens as this prompt's, so a hit skips runs that
a miss computes in exactly the same way: both give byte-identical results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp


def common_prefix(known: Sequence[int], tokens: Sequence[int]) -> int:
    """How many leading tokens `known` and `tokens` share."""
    count = 0
    for a, b in zip(known, tokens):
        if a != b:
            break
        count += 1
    return count


def segment_ends(heads: Sequence[Sequence[int]], tokens: Sequence[int]) -> list[int]:
    """Where each head ends in `tokens` (increasing; the last token is always left out, so it is
    evaluated for fresh logits). A head ends where its tokens, tokenized alone, stop agreeing
    with the prompt's: where the tokenizer merges a head's last piece with the text after it,
    the segment ends one token earlier, for every prompt alike."""
    ends: list[int] = []
    for head in heads:
        end = min(common_prefix(head, tokens), len(tokens) - 1)
        if end > (ends[-1] if ends else 0):
            ends.append(end)
    return ends


@dataclass
class KeptSegments:
    """The segments whose KV state starts the context: their ends, and the tokens up to the last."""

    ends: tuple[int, ...] = ()
    tokens: tuple[int, ...] = ()

    def reusable(self, ends: Sequence[int], tokens: Sequence[int]) -> int:
        """How many leading tokens of a prompt with these segment `ends` may be kept."""
        kept = 0
        for mine, theirs in zip(self.ends, ends):
            if mine != theirs or self.tokens[kept:mine] != tuple(tokens[kept:mine]):
                break
            kept = mine
        return kept


def evaluate_in_segments(
    llm: llama_cpp.Llama, kept: KeptSegments, tokens: Sequence[int], ends: Sequence[int]
) -> int:
    """Evaluate `tokens` one run of batches per segment, reusing what `kept` holds of them.

    The context must start with `kept`'s state (anything after it is dropped). Returns the
    number of tokens reused; `kept` then describes this prompt's segments.
    """
    reused = kept.reusable(ends, tokens)
    if reused:
        llm.n_tokens = reused
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx), 0, reused, -1)
    else:
        reset(llm)
    start = reused
    for end in [e for e in ends if e > reused] + [len(tokens)]:
        llm.eval(list(tokens[start:end]))
        start = end
    kept.ends, kept.tokens = tuple(ends), tuple(tokens[: ends[-1]] if ends else ())
    return reused


def reset(llm: llama_cpp.Llama) -> None:
    """An empty context (no token, no KV cell)."""
    llm.reset()
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
