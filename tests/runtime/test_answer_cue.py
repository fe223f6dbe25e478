"""The answer cue of instruct reasoners (runtime/answer_cue.py) on a scripted model."""

import numpy as np

from edge_et.backends.base import Sampling
from edge_et.core.prompts import parse_answer
from edge_et.runtime.answer_cue import cue_text, force_letter, reason_with_answer_cue
from tests.helpers.fakes import (
    ANSWER_B,
    CUE,
    EOS,
    NL,
    ONE,
    SPACE_A,
    SPACE_B,
    A,
    B,
    ScriptedModel,
)

GREEDY = Sampling()


def run(script, max_tokens=10, answer_budget=4, n_ctx=10_000):
    model = ScriptedModel(script, n_ctx=n_ctx)
    model.start(prompt="reason")
    return model, reason_with_answer_cue(
        model, sampling=GREEDY, max_tokens=max_tokens, answer_budget=answer_budget
    )


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


# -- the question's option letters (issue 30) ---------------------------------------------------


def run_with_letters(script, letters, max_tokens=10, answer_budget=4):
    model = ScriptedModel(script)
    model.start(prompt="reason")
    return model, reason_with_answer_cue(
        model, sampling=GREEDY, max_tokens=max_tokens, answer_budget=answer_budget, letters=letters
    )


def test_the_cued_answer_is_one_of_the_option_letters():
    # Cut short, the model would write "Answer: 1" (option "A. 1"): a wrong answer before.
    model, out = run_with_letters(after_cue([ONE, NL]), "AB")
    assert out.text == "ab\nAnswer: B" and parse_answer(out.text) == ("B", True)
    assert out.stats.answer_cued is True and out.stats.answer_constrained is True
    assert out.stop_reason == "answer_line" and out.stats.generated_tokens == 3
    finite = {int(i) for i in np.flatnonzero(np.isfinite(model.edited_logits[-1]))}
    assert finite == {SPACE_A, SPACE_B}  # only the letters' tokens were left to sample


def test_without_options_the_cue_writes_free_text_as_before():
    _, out = run_with_letters(after_cue([ONE, NL]), "")
    assert out.text == "ab\nAnswer: 1\n" and out.stats.answer_constrained is None


def test_letters_the_vocabulary_cannot_write_fall_back_to_free_text_visibly():
    _, out = run_with_letters(after_cue([ONE, NL]), "XY")
    assert out.text == "ab\nAnswer: 1\n" and out.stats.answer_constrained is False


def forced(reply, then):
    """Write `reply`, stop; after that, write `then` whatever is asked."""

    def script(step, context):
        return reply[step - 1] if step <= len(reply) else then

    model = ScriptedModel(script)
    model.start(prompt="reason")
    out = reason_with_answer_cue(
        model, sampling=GREEDY, max_tokens=20, answer_budget=4, letters="AB"
    )
    return model, out


def test_force_letter_adds_a_letter_line_after_an_answer_that_names_no_option():
    model, out = forced([A, NL, CUE, ONE, EOS], SPACE_A)  # "a\nAnswer: 1": parsed, names no option
    assert out.stats.answer_cued is False  # the paper's parse matched: no cue
    added = force_letter(
        model, out.text, options={"A": "one", "B": "two"}, sampling=GREEDY, stats=out.stats
    )
    assert added == "\nAnswer: A" and parse_answer(out.text + added) == ("A", True)
    assert out.stats.letter_forced is True and out.stats.answer_constrained is True


def test_force_letter_leaves_an_answer_that_names_an_option_alone():
    model, out = forced([A, NL, ANSWER_B, EOS], SPACE_A)
    assert (
        force_letter(
            model, out.text, options={"A": "one", "B": "two"}, sampling=GREEDY, stats=out.stats
        )
        == ""
    )
    assert out.stats.letter_forced is None
    assert force_letter(model, "a\nAnswer: 1", options={}, sampling=GREEDY, stats=out.stats) == ""
