"""Speculative decoding in the llama.cpp backend, on the tiny bundle's reasoner (random Qwen3,
1600-token vocabulary) and the real SmolLM2-135M: the target's output must not change.

- greedy: token for token the same with any drafter, including one that is always wrong
  (every draft rolled back) and one that is always right. Seeded sampling is not compared
  token for token: a verify batch computes logits through ggml's batched kernels, which
  differ from one-token evaluation by ~1e-4 (measured on this model), enough to move a
  sampled token when the random draw falls on a boundary; its distribution is tested instead;
- budget forcing: the thought is still exactly the budget, `\\n</think>` at B-1 and B;
- sampling keeps the target's distribution: a chi-square test of the first token after a
  verify batch against the softmax of the target's own logits, with a control that must fail
  (a rule that keeps the draft whenever it is allowed);
- the draft model is refused with the reason when the vocabularies differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_et.backends.drafting import PromptLookup
from edge_et.core.decoding import Sampling
from edge_et.errors import InputError
from edge_et.runtime.generation import generate, think_then_answer
from edge_et.runtime.speculation import choose_drafter

llama = pytest.importorskip("edge_et.backends.llama_cpp.model")

PROMPT = (
    "<|im_start|>user\nThe red square is left of the blue circle. The red square is left "
    "of the blue circle. Which shape is left?<|im_end|>\n<|im_start|>assistant\n"
)


class Fixed:
    """A drafter that proposes `make(history)`: always wrong, always right, or anything."""

    name = "fixed"

    def __init__(self, make):
        self.make = make

    def propose(self, history, limit):
        return self.make(list(history))[:limit]


@pytest.fixture(scope="module")
def reasoner(tiny_bundle):
    model = llama.LlamaCppModel(
        model_path=str(tiny_bundle / "reasoning.f16.gguf"), n_ctx=1024, n_threads=1
    )  # one thread: no spin-waits on a busy machine
    yield model
    model.close()


def _run(model, drafter, sampling, *, think=None, tokens=48):
    model.set_drafter(drafter)
    model.start(prompt=PROMPT)
    if think:
        out = think_then_answer(
            model, sampling=sampling, think_budget=think, answer_budget=8, ignore_eos=True
        )
    else:
        out = generate(model, sampling=sampling, max_tokens=tokens, ignore_eos=True)
    counts = model.speculation_counts
    model.set_drafter(None)
    return out, counts


def _oracle(model, sampling, tokens):
    """The target's own continuation, to build an always-right drafter."""
    out, _ = _run(model, None, sampling, tokens=tokens)
    return model.tokenize(text=out.text)


def test_greedy_output_is_token_for_token_the_same_with_any_drafter(reasoner):
    sampling = Sampling(temperature=0.0, seed=7)
    plain, _ = _run(reasoner, None, sampling)
    wrong = Fixed(lambda history: [(history[-1] + 1) % 1500] * 6)
    lookup, counts = _run(reasoner, PromptLookup(ngram_min=1), sampling)
    rejected, wrong_counts = _run(reasoner, wrong, sampling)
    assert lookup.text == plain.text and rejected.text == plain.text
    assert counts.rounds > 0 and wrong_counts.drafted > 0
    assert lookup.stats.generated_tokens == plain.stats.generated_tokens == 48


def test_an_always_right_drafter_is_fully_accepted_and_changes_nothing(reasoner):
    sampling = Sampling(seed=1)
    plain, _ = _run(reasoner, None, sampling)
    prompt_len = len(reasoner.tokenize(text=PROMPT))
    generated = [int(t) for t in reasoner.llama.input_ids[prompt_len : prompt_len + 47]]
    right = Fixed(lambda history: generated[len(history) - prompt_len :][:5])
    spec, counts = _run(reasoner, right, sampling)
    assert spec.text == plain.text
    assert counts.drafted > 20 and counts.accepted == counts.drafted


def test_budget_forcing_stays_exact_while_drafting(reasoner):
    sampling = Sampling(seed=3)
    plain, _ = _run(reasoner, None, sampling, think=30)
    spec, counts = _run(reasoner, PromptLookup(ngram_min=1), sampling, think=30)
    assert spec.text == plain.text and counts.drafted > 0
    assert spec.stats.think_tokens == 30 and spec.stats.think_forced is True
    assert spec.stats.forced_tokens == 2 and spec.text.count("</think>") == 1
    assert spec.stats.generated_tokens + spec.stats.forced_tokens == 30 + 8


def _first_token_counts(model, drafter, runs, sampling_of):
    seen = np.zeros(1600)
    for seed in range(runs):
        model.set_drafter(drafter)
        model.start(prompt=PROMPT)
        model.append(tokens=[model.tokenize(text="The")[0]])  # so the next sample evaluates
        seen[model.sample(sampling=sampling_of(seed))] += 1
    model.set_drafter(None)
    return seen


# Chi-square critical values at 5 degrees of freedom (6 allowed tokens): p = 1e-3 and 1e-6.
CHI2_5DF_P1E3, CHI2_5DF_P1E6 = 20.515, 35.888


def _chi_square(observed, probs):
    keep = probs > 0
    assert observed[~keep].sum() == 0  # nothing outside what the target allows
    expected = probs[keep] * observed.sum()
    return float(((observed[keep] - expected) ** 2 / expected).sum())


@pytest.mark.slow
def test_sampling_after_a_verify_batch_keeps_the_target_distribution(reasoner):
    # 400 draws: the least likely of the 6 allowed tokens is still expected ~20 times here.
    reasoner.set_drafter(None)
    reasoner.start(prompt=PROMPT)
    reasoner.append(tokens=[reasoner.tokenize(text="The")[0]])
    reasoner.sample(sampling=Sampling())
    logits = reasoner._last_logits().astype(np.float64)
    top = np.argsort(logits)[-6:]  # top-k 6 at temperature 1
    probs = np.zeros(1600)
    probs[top] = np.exp(logits[top] - logits[top].max())
    probs /= probs.sum()
    draft = int(top[0])  # the least likely kept token
    runs = 400
    sampled = lambda seed: Sampling(temperature=1.0, top_k=6, seed=seed)  # noqa: E731
    seen = _first_token_counts(reasoner, Fixed(lambda h: [draft, draft, draft]), runs, sampled)
    assert _chi_square(seen, probs) < CHI2_5DF_P1E3
    # The control: keeping the draft whenever the target allows it would pass as "accepted"
    # far too often; the same test rejects that distribution.
    biased = seen.copy()
    biased[draft] += runs // 4
    assert _chi_square(biased, probs) > CHI2_5DF_P1E6


def test_the_draft_model_needs_the_reasoners_vocabulary(reasoner, tiny_bundle):
    perception = llama.LlamaCppModel(
        model_path=str(tiny_bundle / "perception.f16.gguf"), n_ctx=512, n_threads=1
    )
    try:
        with pytest.raises(InputError, match="token list differs"):
            choose_drafter("draft", reasoner, perception)
        with pytest.raises(InputError, match="not loaded beside"):
            choose_drafter("draft", reasoner, None)
        with pytest.raises(InputError, match="unknown --speculative"):
            choose_drafter("fast", reasoner, None)
    finally:
        perception.close()
    assert choose_drafter("off", reasoner)[0] is None
    assert choose_drafter("auto", reasoner) == (None, "off")  # measured: opt-in
    assert choose_drafter("lookup", reasoner)[1] == "lookup"


def test_head_reuse_keeps_the_shared_prompt_and_changes_no_output(reasoner):
    other = PROMPT.replace("Which shape is left?", "Which shape is right?")
    head = PROMPT.split("Which")[0]
    outputs = {}
    for reuse in (False, True):
        texts = []
        for prompt in (PROMPT, other, PROMPT):
            begun = (
                reasoner.start_with_heads(prompt=prompt, heads=[head])
                if reuse
                else reasoner.start(prompt=prompt)
            )
            texts.append(
                generate(reasoner, sampling=Sampling(), max_tokens=24, ignore_eos=True).text
            )
            if reuse and prompt is other:
                shared = len(reasoner.tokenize(text=head))
                assert shared - 2 <= begun.reused_tokens < begun.prompt_tokens
        outputs[reuse] = texts
    assert outputs[True] == outputs[False]
