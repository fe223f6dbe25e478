"""Stop strings: the reply ends before the first of the caller's strings (OpenAI's `stop`).

They cut the reply only: a thinking model's answer after `</think>`, an instruct reasoner's
whole output, the perception text in the modes where it is the reply (`direct`, `extract`).
The thought is the method's own working; a stop string inside it ends nothing.

A streamed piece that could be the start of a stop string is held back until the next piece
settles it, so a stream never shows a stop string or a part of one: the text streamed is the
text returned, as in llama-server and the OpenAI API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge_et.errors import InputError

MAX_STOPS, MAX_STOP_CHARS = 16, 512


class StopStringReached(Exception):
    """Raised by a generation step whose text completed a stop string; the loops that
    generate catch it and end with the stop reason `stop_string`."""


def check_stops(stops: Sequence[str] | str | None) -> tuple[str, ...]:
    """The stop strings as a tuple (one string alone is one stop string, as in OpenAI's API);
    an InputError in one line for an empty one, too many or too long ones."""
    if stops is None:
        return ()
    if isinstance(stops, str):
        stops = (stops,)
    stops = tuple(stops)
    if len(stops) > MAX_STOPS:
        raise InputError(f"{len(stops)} stop strings given; at most {MAX_STOPS}")
    for stop in stops:
        if not isinstance(stop, str) or not stop:
            raise InputError(f"a stop string must be non-empty text, got {stop!r}")
        if len(stop) > MAX_STOP_CHARS:
            raise InputError(
                f"a stop string is {len(stop)} characters long; at most {MAX_STOP_CHARS}"
            )
    return tuple(dict.fromkeys(stops))


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """(`text` before the first stop string, whether one was found): the same cut a
    generation would have made, for text that was generated without the stops."""
    hits = [at for at in (text.find(stop) for stop in stops) if at >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


class StopWatch:
    """Passes generated text on to `sink`, cutting it at the first stop string once `armed`
    (the reply has begun) and holding back a tail that may be the start of one."""

    def __init__(self, stops: Sequence[str], sink: Callable[[str], None], armed: bool = True):
        self.stops, self._sink, self.armed = tuple(stops), sink, armed
        self._held = ""
        self.reached = False

    def feed(self, text: str) -> bool:
        """Pass `text` on; True when it completed a stop string (the text before it is passed
        on, the stop string and anything after it are dropped)."""
        if not (self.armed and self.stops):
            self._pass(text)
            return False
        window = self._held + text
        before, found = cut_at_stop(window, self.stops)
        if found:
            self._held, self.reached = "", True
            self._pass(before)
            return True
        keep = partial_stop_length(window, self.stops)
        self._held = window[len(window) - keep :] if keep else ""
        self._pass(window[: len(window) - keep])
        return False

    def release(self) -> None:
        """Generation ended without a stop string: the held-back tail is reply text after all."""
        held, self._held = self._held, ""
        self._pass(held)

    def _pass(self, text: str) -> None:
        if text:
            self._sink(text)


def partial_stop_length(text: str, stops: Sequence[str]) -> int:
    """The length of the longest end of `text` that begins one of `stops` (what a stream must
    hold back until the next piece says whether it completes it)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[len(text) - size :]):
                longest = size
                break
    return longest
