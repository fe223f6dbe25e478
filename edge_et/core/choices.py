"""Multiple choice: a question's option letters, and the option letter an answer names.

Questions carry their options as MMStar poses them: the stem, then one line per option
(`A. circle`, also `(A) circle`, `A) circle`, `A: circle`), or one `Options: A: x, B: y` line.

Reading an answer (`answer_letter`). The answer is the paper's parse of the last line
(`Answer: X`, else the line itself; core/prompts.py). The authors then score it with
lmms-eval's MMStar `exact_match`, which compares the gold letter with the answer's first
character (or the one after "(", "option ", "the answer is "). That reads a sentence as a
letter: "Apple" as A, and an end-to-end model's "A white star in the bottom right" as A.
edge-et counts option letter L only when L stands alone as a letter: L, then the end, or a
character that is not a letter, digit or space ("B", "b", "(B)", "B.", "B) circle",
"B: circle", "**B**"), or a space and that option's own text ("B circle" for "B. circle");
after the same optional "option" / "the answer is" as lmms-eval ("Option C",
"The answer is: D."). Anything else names no option.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_LETTER = re.compile(
    r"^[\s*_`'\"]*(?:the answer is\s*:?\s*|option\s+)?\(?([A-Za-z])(?![A-Za-z0-9])(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])\s*[.):]\s*(\S.*?)\s*$")
_INLINE = re.compile(r"([A-Z])\s*[.):]\s*(.*?)\s*(?=,\s*[A-Z]\s*[.):]|$)")
_OPTIONS_LABEL = re.compile(r"^\s*options?\s*:\s*", re.IGNORECASE)
# How `question_options` finds options, for apps that apply the same rule (mobile.json).
OPTION_RULES = {"option_line": _OPTION_LINE, "inline": _INLINE, "options_label": _OPTIONS_LABEL}


def question_options(question: str) -> dict[str, str]:
    """Letter -> option text of the options `question` lists; {} when it lists none.

    Only a run of options lettered A, B, C, ... in order counts (two at least), so that a
    stem line such as "A. Lincoln's portrait..." alone is not taken for options.
    """
    found: dict[str, str] = {}
    for line in question.splitlines():
        label = _OPTIONS_LABEL.match(line)
        pairs = _INLINE.findall(line[label.end() :]) if label else []
        match = _OPTION_LINE.match(line)
        for letter, text in pairs or ([match.groups()] if match else []):
            if letter == chr(ord("A") + len(found)):
                found[letter] = text
            elif letter == "A":  # a new run of options: the last run is the one asked about
                found = {letter: text}
    return found if len(found) >= 2 else {}


def answer_letter(answer: str, letters: str, texts: Mapping[str, str] | None = None) -> str | None:
    """The option letter that `answer` names (rule in the module doc), None if none of `letters`.

    texts: each letter's option text, so that "B circle" reads as B; without it a letter
    followed by a space and a word is never read as a letter.
    """
    match = _LETTER.match(answer or "")
    if not match:
        return None
    letter, rest = match.group(1).upper(), match.group(2)
    if letter not in letters.upper():
        return None
    if rest[:1].isspace() and rest.strip():
        # "A white star": a sentence that begins with the article, not the letter A.
        text = (texts or {}).get(letter, "")
        return letter if text and _plain(rest) == _plain(text) else None
    return letter


def _plain(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation: how an option text is compared."""
    return " ".join(text.lower().split()).strip(" .,;:!?*_`'\"")
