"""The answer cue of instruct reasoners (runtime/answer_cue.py) on a scripted model."""

from edge_et.backends.base import Sampling
from edge_et.core.prompts import parse_answer
from edge_et.runtime.answer_cue import cue_text, reason_with_answer_cue
from tests.helpers.fakes import ANSWER_B, CUE, EOS, NL, SPACE_B, A, B, ScriptedModel

GREEDY = Sampling()


def run(script, max_tokens=10, answer_budget=4, n_ctx=10_000):
    model = ScriptedModel(script, n_ctx=n_ctx)
    model.start(prompt="reason")
    return model, reason_with_answer_cue(model, sampling=GREEDY, max_tokens=max_tokens,
                                         answer_budget=answer_budget)


def after_cue(answer_tokens, reasoning=(A, B)):
    """Write `reasoning`, stop, and once the cue is in the context write `answer_tokens`."""
    def script(step, context):
        if CUE not in context:
            return reasoning[step - 1] if step <= len(reasoning) else EOS
        written = len(context) - context.index(CUE) - 1
        return answer_tokens[written] if written < len(answer_tokens) else EOS
    return script


def test_a_parsable_answer_is_left_untouched():
    model, out = run(lambda step, _: [A, NL, ANSWER_B, EOS][step - 1])
    assert out.text == "a\nAnswer: B"
    assert out.stats.answer_cued is False and out.stats.forced_tokens == 0
    assert CUE not in model.context


def test_reasoning_that_ends_without_an_answer_gets_the_cue_and_its_answer_line():
    model, out = run(after_cue([SPACE_B, NL, A, A]))
    assert out.text == "ab\nAnswer: B\n"  # stops at the end of the answer line
    assert parse_answer(out.text) == ("B", True)
    assert out.stats.answer_cued is True and out.stats.forced_tokens == 2
    assert out.stop_reason == "answer_line"
    assert model.context[-4:] == [NL, CUE, SPACE_B, NL]


def test_reasoning_cut_at_max_tokens_is_cued_and_the_total_stays_bounded():
    _, out = run(after_cue([SPACE_B], reasoning=[A] * 50), max_tokens=6, answer_budget=3)
    assert out.text == "aaaaaa\nAnswer: B"
    assert out.stats.generated_tokens == 7 and out.stats.forced_tokens == 2
    assert parse_answer(out.text) == ("B", True)


def test_the_answer_budget_caps_a_rambling_answer():
    _, out = run(after_cue([A] * 20), answer_budget=4)
    assert out.text.endswith("Answer:aaaa")
    assert out.stop_reason == "max_tokens" and out.stats.generated_tokens == 2 + 4


def test_a_newline_right_after_the_cue_does_not_end_the_answer_line():
    _, out = run(after_cue([NL, B, NL]))
    assert out.text.endswith("Answer:\nb\n") and out.stop_reason == "answer_line"


def test_a_full_context_is_not_cued():
    _, out = run(lambda step, _: A, n_ctx=6)
    assert out.stop_reason == "context_full" and out.stats.forced_tokens == 0


def test_an_answer_line_earlier_in_the_text_does_not_count_when_it_is_not_the_last():
    # The paper's parser reads the last line only; an explanation after the answer hides it.
    _, out = run(after_cue([SPACE_B], reasoning=[ANSWER_B, NL, A]))
    assert out.stats.answer_cued is True and parse_answer(out.text) == ("B", True)


def test_the_cue_starts_a_line_of_its_own():
    assert cue_text("") == "Answer:" and cue_text("so\n") == "Answer:"
    assert cue_text("\\boxed{A}") == "\nAnswer:"


def test_an_end_token_right_after_the_cue_is_passed_over():
    calls = []

    def script(step, context):
        if CUE not in context:
            return [A, EOS][min(step, 2) - 1]
        calls.append(step)
        return EOS if len(calls) == 1 else [SPACE_B, EOS][len(context) - context.index(CUE) - 1]
    _, out = run(script)
    assert out.text == "a\nAnswer: B" and out.stop_reason == "eos"
