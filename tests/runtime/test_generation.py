"""Budget forcing and generation limits, on a scripted model (exact, no weights needed)."""

from edge_et.core.decoding import Sampling
from edge_et.runtime.generation import BOOST_FROM, generate, think_then_answer
from tests.helpers.fakes import ANSWER_B, CLOSE, EOS, NL, OPEN, SPACE, ScriptedModel

GREEDY = Sampling()


def endless_thinker(step, context):
    return OPEN if step == 1 else SPACE


def test_think_budget_forces_newline_then_close_and_caps_total():
    model = ScriptedModel(endless_thinker)
    model.start(prompt="x")
    out = think_then_answer(model, sampling=GREEDY, think_budget=40, answer_budget=7)
    generated = model.context[3:]
    assert out.stats.think_forced is True
    assert out.stats.think_tokens == 40
    assert generated[38] == NL and generated[39] == CLOSE  # tokens t = B-1 and t = B
    assert out.stats.forced_tokens == 2
    assert len(generated) == 40 + 7  # never more than budget + answer budget
    assert out.stop_reason == "max_tokens"
    assert "</think>" in out.text


def test_boost_applies_only_after_95_percent_of_the_budget():
    model = ScriptedModel(endless_thinker)
    model.start(prompt="x")
    budget = 100
    think_then_answer(model, sampling=GREEDY, think_budget=budget, answer_budget=1)
    boosted_steps = [t for t in range(1, budget - 1) if t / budget > BOOST_FROM]
    assert len(model.edited_logits) == len(boosted_steps)  # t = 96, 97, 98
    for t, logits in zip(boosted_steps, model.edited_logits):
        factor = 1 + t / budget
        assert logits[CLOSE] == logits[NL] == 1.0 * factor


def test_natural_close_is_not_forced_and_answer_follows():
    def script(step, context):
        return {1: OPEN, 2: SPACE, 3: CLOSE, 4: NL, 5: ANSWER_B}.get(step, EOS)

    model = ScriptedModel(script)
    model.start(prompt="x")
    out = think_then_answer(model, sampling=GREEDY, think_budget=50, answer_budget=10)
    assert out.stats.think_forced is False and out.stats.forced_tokens == 0
    assert out.stats.think_tokens == 3
    assert out.text.endswith("</think>\nAnswer: B")
    assert out.stop_reason == "eos"


def test_eos_during_thinking_ends_without_answer():
    model = ScriptedModel(lambda step, ctx: OPEN if step == 1 else EOS)
    model.start(prompt="x")
    out = think_then_answer(model, sampling=GREEDY, think_budget=50, answer_budget=10)
    assert out.stop_reason == "eos" and out.stats.generated_tokens == 1


def test_plain_generation_respects_max_tokens_and_context():
    model = ScriptedModel(lambda step, ctx: SPACE)
    model.start(prompt="x")
    assert generate(model, sampling=GREEDY, max_tokens=12).stats.generated_tokens == 12
    small = ScriptedModel(lambda step, ctx: SPACE, n_ctx=8)
    small.start(prompt="x")
    out = generate(small, sampling=GREEDY, max_tokens=100)
    assert out.stop_reason == "context_full" and out.stats.generated_tokens == 5


def test_streaming_sink_receives_every_piece_in_order():
    model = ScriptedModel(lambda step, ctx: {1: OPEN, 2: CLOSE, 3: ANSWER_B}.get(step, EOS))
    model.start(prompt="x")
    pieces = []
    out = think_then_answer(
        model, sampling=GREEDY, think_budget=10, answer_budget=5, on_text=pieces.append
    )
    assert "".join(pieces) == out.text == "<think></think>Answer: B"


def test_ignore_eos_runs_to_the_exact_length():
    model = ScriptedModel(lambda step, ctx: EOS if step % 3 == 0 else SPACE)
    model.start(prompt="x")
    out = generate(model, sampling=GREEDY, max_tokens=20, ignore_eos=True)
    assert out.stats.generated_tokens == 20 and out.stop_reason == "max_tokens"
    assert EOS not in model.context


def test_ignore_eos_thinks_exactly_the_budget_then_answers_exactly():
    def script(step, ctx):
        return {1: OPEN, 2: CLOSE}.get(step, EOS)  # would close at once and stop

    model = ScriptedModel(script)
    model.start(prompt="x")
    out = think_then_answer(
        model, sampling=GREEDY, think_budget=12, answer_budget=5, ignore_eos=True
    )
    generated = model.context[3:]
    assert out.stats.think_tokens == 12 and out.stats.think_forced is True
    assert generated[11] == CLOSE and generated.count(CLOSE) == 1
    assert len(generated) == 12 + 5
