"""When is the player done talking? A sans-I/O judgement on the words heard so far.

A fixed silence window (the VAD's `min_silence_ms`, 500 ms by default) is a compromise: long
enough that a pause between clauses does not cut the player off, so every complete
question waits for it too. With partial transcripts (bridge/character/partials.py) the
listener knows what was said before the silence, and can wait less after a finished
sentence ("Do you have a room?") and longer after words that promise more ("I'd like a
room and", "so, um", a trailing comma).

`classify` is deliberately a small heuristic, not a model: Whisper punctuates what it
hears, so terminal punctuation on the latest partial is a good sign of a finished
sentence, unless the last word is one that cannot end one (a conjunction, an article, a
filler). Anything else is "unknown" and keeps the VAD's own window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["complete", "trailing", "unknown"]

#: Words after which an English sentence is not over: conjunctions, articles, fillers and
#: possessives left hanging. Kept short on purpose: "Thank you.", "I think so.", "I want
#: to." and "Where are you from?" are finished sentences, so pronouns, "so", "to" and
#: prepositions are not here.
TRAILING_WORDS = frozenset(
    "and or but because nor if than whether the a an um uh uhm er erm hmm mm my your our their of with".split()
)
_TRAILING_MARKS = (",", ";", ":", "-", "\u2013", "\u2014", "...", "\u2026")
_CLOSERS = "\"')]\u201d\u2019"
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def classify(text: str) -> Verdict:
    """`complete`, `trailing` or `unknown` for the words heard so far."""
    stripped = text.strip().rstrip(_CLOSERS).rstrip()
    if not stripped:
        return "unknown"
    if stripped.endswith(_TRAILING_MARKS):
        return "trailing"
    words = _WORD.findall(stripped)
    if words and words[-1].lower() in TRAILING_WORDS:
        return "trailing"
    if stripped[-1] in ".?!":
        return "complete"
    return "unknown"


@dataclass(frozen=True)
class TurnEndPolicy:
    """How long a silence ends the player's turn, by what the words so far look like.

    `enabled = False` (character option `end_of_turn = "fixed"`) keeps the VAD's fixed
    `min_silence_ms` whatever was said.
    """

    enabled: bool = True
    complete_ms: float = 250
    trailing_ms: float = 1000

    def silence_ms(self, text: str) -> float | None:
        """The silence that ends the turn after `text`; None: the VAD's own window."""
        if not self.enabled:
            return None
        verdict = classify(text)
        if verdict == "complete":
            return self.complete_ms
        if verdict == "trailing":
            return self.trailing_ms
        return None
