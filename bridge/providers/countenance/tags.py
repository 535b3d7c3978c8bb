"""`tags`: mood from the LLM's own emotion tag, with a cheap lexical fallback.

The reply parser already pulls tags like `[happy]` out of the LLM's text and passes the
emotion as `hint`. The model that wrote the line knows its intent, so the hint wins outright;
the text only sets how strongly it shows (exclamation marks, shouting, intensifiers).

With no hint we read the line itself with a small table, documented below, because a
character whose LLM forgets the tags should still not wear a blank face through an outburst.
It costs microseconds and needs no model, which is why it is the default countenance module.

Lexical table (each hit is one vote for its emotion; the most votes win, ties go to the
earlier emotion in `EMOTIONS` order; no votes means neutral):
- keywords and short phrases per emotion (`LEXICON`), matched as whole words, case-blind;
  a keyword right after a negation ("not", "never", "no", "n't", within two words) is ignored,
  so "I'm not afraid" does not vote afraid;
- emoji and ASCII emoticons per emotion (`EMOJI`);
- "?!" or "!?" votes surprised.
Intensity (`cue_intensity`), clamped to 0..1: a base (0.6 for a tag, 0.4 + 0.1 per extra vote
for the lexical path), +0.15 per "!" (up to two), +0.1 for a shouted word (3+ capitals),
+0.1 for an intensifier ("so", "very", "really", ...), -0.1 for a trailing "..." (the voice
trails off). Neutral always has intensity 0: there is nothing to show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from bridge.providers.base import EMOTIONS, Mood
from bridge.providers.registry import ModuleSpec

LEXICON: Mapping[str, Sequence[str]] = {
    "happy": (
        "happy", "glad", "delighted", "joy", "joyful", "wonderful", "lovely", "great", "love",
        "thank you", "thanks", "haha", "hooray", "yay", "celebrate", "smile", "welcome",
        "pleasure", "proud", "excellent", "fantastic", "splendid",
    ),
    "sad": (
        "sad", "sorry", "miss", "lost", "alas", "tears", "cry", "crying", "grief", "grieve",
        "mourn", "lonely", "alone", "gone", "died", "passed away", "dead", "heartbroken",
        "hopeless",
    ),
    "angry": (
        "angry", "furious", "rage", "how dare", "enough", "fool", "idiot", "damn", "curse",
        "get out", "liar", "betrayed", "shut up", "traitor",
    ),
    "surprised": (
        "wow", "whoa", "really?", "what?", "no way", "can't believe", "cannot believe",
        "unbelievable", "incredible", "surprise", "surprised", "unexpected", "astonishing",
    ),
    "afraid": (
        "afraid", "scared", "fear", "frightened", "terrified", "help", "run", "hide", "danger",
        "dangerous", "please don't", "don't hurt", "trembling", "monster",
    ),
    "disgusted": (
        "disgusting", "disgusted", "gross", "vile", "filth", "filthy", "stench", "stink",
        "rotten", "rotting", "ugh", "eww", "ew", "yuck", "revolting", "repulsive", "nauseating",
        "foul",
    ),
}

EMOJI: Mapping[str, Sequence[str]] = {
    "happy": ("😀", "😃", "😄", "😁", "😊", "🙂", "😍", "🥰", "❤", "♥", ":)", ":-)", ":D", "^^"),
    "sad": ("😢", "😭", "☹", "🙁", "😞", "😔", "💔", ":(", ":-(", ":'("),
    "angry": ("😠", "😡", "🤬", "💢", ">:("),
    "surprised": ("😮", "😲", "😯", "😳", "🤯", ":o", ":O", "o_o"),
    "afraid": ("😨", "😰", "😱", "😧", "D:"),
    "disgusted": ("🤢", "🤮", "😖", "🤧"),
}

INTENSIFIERS = ("so", "very", "really", "truly", "utterly", "absolutely", "extremely", "such")
NEGATIONS = ("not", "never", "no", "nor", "hardly")

TAG_BASE = 0.6
LEXICAL_BASE = 0.4

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SHOUT = re.compile(r"\b[A-Z]{3,}\b")


def _pattern(phrase: str) -> re.Pattern[str]:
    # Whole-word match; a phrase may end in punctuation ("really?"), which \b cannot follow.
    tail = r"\b" if phrase[-1].isalnum() else ""
    return re.compile(r"\b" + re.escape(phrase) + tail)


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (emotion, _pattern(phrase)) for emotion, phrases in LEXICON.items() for phrase in phrases
]


def _negated(lowered: str, start: int) -> bool:
    before = _WORD.findall(lowered[:start])[-2:]
    return any(w in NEGATIONS or w.endswith("n't") for w in before)


def lexical_votes(text: str) -> dict[str, int]:
    """Votes per emotion from the documented table (emotions with no vote are absent)."""
    lowered = text.lower()
    votes: dict[str, int] = {}
    for emotion, pattern in _PATTERNS:
        for match in pattern.finditer(lowered):
            if not _negated(lowered, match.start()):
                votes[emotion] = votes.get(emotion, 0) + 1
    for emotion, marks in EMOJI.items():
        for mark in marks:
            # ASCII emoticons are case-sensitive (":D" vs ":d"); emoji have no case.
            count = text.count(mark)
            if count:
                votes[emotion] = votes.get(emotion, 0) + count
    if "?!" in text or "!?" in text:
        votes["surprised"] = votes.get("surprised", 0) + 1
    return votes


def cue_intensity(text: str, base: float) -> float:
    """How strongly a line shows its emotion, from punctuation and wording (see module doc)."""
    level = base + 0.15 * min(text.count("!"), 2)
    if _SHOUT.search(text):
        level += 0.1
    if any(w in INTENSIFIERS for w in _WORD.findall(text.lower())):
        level += 0.1
    if text.rstrip().endswith(("...", "…")):
        level -= 0.1
    return round(min(1.0, max(0.0, level)), 3)


def mood_from_hint(hint: str, text: str) -> Mood:
    """The LLM's tag, with the text's cues setting the intensity."""
    if hint == "neutral":
        return Mood("neutral", 0.0)
    return Mood(hint, cue_intensity(text, TAG_BASE))


def lexical_mood(text: str) -> Mood:
    """Mood from the lexical table alone; neutral when nothing in the line votes."""
    votes = lexical_votes(text)
    if not votes:
        return Mood("neutral", 0.0)
    best = max(votes.values())
    emotion = next(e for e in EMOTIONS if votes.get(e) == best)
    return Mood(emotion, cue_intensity(text, LEXICAL_BASE + 0.1 * (best - 1)))


class TagsCountenance:
    """The `Countenance` provider: the hint when there is one, else the lexical fallback."""

    def __init__(self, *, fallback: bool = True) -> None:
        self.name = "tags"
        self.fallback = fallback

    async def assess(self, text: str, hint: str | None = None) -> Mood:
        if hint in EMOTIONS:
            return mood_from_hint(hint, text)
        if self.fallback:
            return lexical_mood(text)
        return Mood("neutral", 0.0)

    async def aclose(self) -> None:
        return None


def create(spec: ModuleSpec) -> TagsCountenance:
    return TagsCountenance(fallback=bool(spec.option("fallback", True)))
