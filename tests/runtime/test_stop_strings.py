"""Stop strings (OpenAI's `stop`): the reply ends before the first one, the thought is never
cut, and a stream never shows a stop string or a part of one."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_et.core.decoding import Sampling
from edge_et.errors import InputError
from edge_et.runtime.answer_cue import reason_with_answer_cue
from edge_et.runtime.generation import generate, think_then_answer
from edge_et.runtime.stop_strings import MAX_STOPS, StopWatch, check_stops, cut_at_stop
from tests.helpers.fakes import ANSWER_B, CLOSE, EOS, NL, OPEN, SPACE, A, B, ScriptedModel

GREEDY = Sampling()


def scripted(*tokens: int) -> ScriptedModel:
    model = ScriptedModel(lambda step, ctx: tokens[step - 1] if step <= len(tokens) else EOS)
    model.start(prompt="x")
    return model


def test_plain_generation_ends_before_the_stop_string_and_says_why():
    model = scripted(A, B, NL, A, A, B)
    pieces = []
    out = generate(model, sampling=GREEDY, max_tokens=50, stops=["\na"], on_text=pieces.append)
    assert out.text == "ab" and out.stop_reason == "stop_string" == out.stats.stop_reason
    assert "".join(pieces) == "ab"  # the held-back "\n" was part of the stop string: never shown
    assert model.steps == 4  # generation stopped at the token that completed it


def test_a_held_back_start_that_does_not_complete_a_stop_string_is_passed_on():
    model = scripted(A, NL, B, NL)
    pieces = []
    out = generate(model, sampling=GREEDY, max_tokens=50, stops=["\na"], on_text=pieces.append)
    assert out.text == "a\nb\n" == "".join(pieces) and out.stop_reason == "eos"
    assert pieces[-1] == "\n"  # held until the end told it was no stop string


def test_a_thinking_model_s_thought_is_never_cut_only_its_answer():
    model = scripted(OPEN, A, B, CLOSE, NL, A, B, ANSWER_B)
    out = think_then_answer(model, sampling=GREEDY, think_budget=50, answer_budget=20, stops=["ab"])
    assert out.text == "<think>ab</think>\n" and out.stop_reason == "stop_string"
    assert out.stats.think_tokens == 4


def test_without_stop_strings_the_text_is_unchanged():
    tokens = (OPEN, A, CLOSE, NL, ANSWER_B)
    plain = think_then_answer(scripted(*tokens), sampling=GREEDY, think_budget=50, answer_budget=9)
    stopped = think_then_answer(
        scripted(*tokens), sampling=GREEDY, think_budget=50, answer_budget=9, stops=["zzz"]
    )
    assert plain.text == stopped.text == "<think>a</think>\nAnswer: B"
    assert plain.stop_reason == stopped.stop_reason == "eos"


def test_an_instruct_reasoner_stopped_by_the_caller_gets_no_answer_cue():
    model = scripted(A, SPACE, B, SPACE, A)
    out = reason_with_answer_cue(
        model, sampling=GREEDY, max_tokens=50, answer_budget=5, stops=["b"]
    )
    assert out.text == "a " and out.stop_reason == "stop_string" and out.stats.answer_cued is False


@pytest.mark.parametrize(
    "stops, message",
    [(["a"] * (MAX_STOPS + 1), "at most"), ([""], "non-empty"), (["x" * 600], "characters long")],
)
def test_bad_stop_strings_are_refused_in_one_line(stops, message):
    with pytest.raises(InputError, match=message):
        check_stops(stops)


def test_one_string_is_one_stop_string_as_in_openai():
    assert check_stops("\n\n") == ("\n\n",) and check_stops(None) == ()
    assert check_stops(["x", "y", "x"]) == ("x", "y")


@given(
    st.lists(st.text("ab\n", min_size=1, max_size=4), min_size=1, max_size=3),
    st.lists(st.text("ab\n", max_size=5), max_size=12),
)
def test_the_stream_cuts_where_a_whole_text_search_after_each_piece_would(stops, pieces):
    """However the text is split into pieces, what is passed on is what searching the whole
    text after each piece gives (the earliest stop string once one has appeared), and no
    part of a stop string is passed on while it may still complete."""
    shown: list[str] = []
    watch = StopWatch(stops, shown.append)
    for count, piece in enumerate(pieces, 1):
        if watch.feed(piece):
            break
        so_far = "".join(pieces[:count])
        assert so_far.startswith("".join(shown)) and not cut_at_stop("".join(shown), stops)[1]
    else:
        watch.release()
    expected, found = "".join(pieces), False
    for count in range(1, len(pieces) + 1):
        expected, found = cut_at_stop("".join(pieces[:count]), stops)
        if found:
            break
    assert "".join(shown) == expected and watch.reached == found
