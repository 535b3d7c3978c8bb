"""Incremental parsing of an LLM reply into speech, actions and emotion tags.

The LLM is told (by the harmonizer) to write actions between asterisks (``*smiles*``) and
to mark its mood with a bracketed tag (``[happy]``). Those must never reach the TTS, and
they must be recognised while the reply is still streaming, so the first sentence can be
spoken before the last token arrives. Deltas can be split anywhere, even inside ``*``,
``[`` or a tag, so the parser is a character-level state machine: the pieces it returns
depend only on the text seen so far, never on where the deltas were cut (adjacent
``SpeechText`` pieces may be cut differently; ``coalesce`` joins them).

Rules, chosen so the spoken text reads naturally:

- ``*...*`` is an action: emitted as ``Action`` (whitespace collapsed), never spoken. An
  empty span (``**``) is dropped, so Markdown bold ``**word**`` is spoken as ``word``.
- ``[...]`` is a tag: an emotion (``[happy]``, ``[emotion: sad]``, synonyms such as
  ``[joy]`` or ``[mad]``) becomes ``EmotionTag`` with one of ``EMOTIONS``; any other tag
  (``[pause]``, ``[looks around]``) is removed and ignored.
- Whitespace runs (newlines included) become one space; spaces at the start and end of
  the reply are dropped; the gap left by a removed action or tag before punctuation is
  closed ("Hi *waves*." is spoken "Hi.").
- At ``finish()``, an unterminated action (the reply was cut off mid-action, e.g. by a
  token limit) is still emitted as an ``Action``: its text was clearly not meant to be
  spoken. An unterminated tag is dropped. A lone ``*`` therefore hides the rest of the
  reply from speech; LLMs told to use asterisks for actions rarely write one otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from bridge.providers.base import EMOTIONS


@dataclass(frozen=True, slots=True)
class SpeechText:
    """Text to be spoken, already normalized; consecutive pieces concatenate directly."""

    text: str


@dataclass(frozen=True, slots=True)
class Action:
    """A nonverbal action from a ``*...*`` span, e.g. ``smiles warmly``."""

    text: str


@dataclass(frozen=True, slots=True)
class EmotionTag:
    """An emotion the LLM declared; always one of ``EMOTIONS``."""

    emotion: str


Piece = SpeechText | Action | EmotionTag

#: Words (lower case) that name one of the seven emotions. Each emotion also maps to itself.
EMOTION_SYNONYMS: Final[dict[str, str]] = {
    **{name: name for name in EMOTIONS},
    # neutral
    "calm": "neutral", "normal": "neutral", "none": "neutral", "default": "neutral",
    "serious": "neutral", "thoughtful": "neutral", "indifferent": "neutral", "relaxed": "neutral",
    # happy
    "happiness": "happy", "joy": "happy", "joyful": "happy", "glad": "happy", "cheerful": "happy",
    "excited": "happy", "excitement": "happy", "amused": "happy", "delighted": "happy",
    "pleased": "happy", "content": "happy", "smiling": "happy", "laughing": "happy",
    "playful": "happy", "love": "happy", "loving": "happy", "grateful": "happy", "proud": "happy",
    # sad
    "sadness": "sad", "unhappy": "sad", "sorrow": "sad", "sorrowful": "sad", "melancholy": "sad",
    "grief": "sad", "crying": "sad", "disappointed": "sad", "lonely": "sad", "depressed": "sad",
    "hurt": "sad", "gloomy": "sad",
    # angry
    "anger": "angry", "mad": "angry", "furious": "angry", "annoyed": "angry", "irritated": "angry",
    "rage": "angry", "frustrated": "angry", "irate": "angry", "outraged": "angry", "hostile": "angry",
    # surprised
    "surprise": "surprised", "shocked": "surprised", "shock": "surprised", "astonished": "surprised",
    "amazed": "surprised", "startled": "surprised", "stunned": "surprised",
    # afraid
    "fear": "afraid", "fearful": "afraid", "scared": "afraid", "frightened": "afraid",
    "terrified": "afraid", "nervous": "afraid", "anxious": "afraid", "worried": "afraid",
    "panicked": "afraid",
    # disgusted
    "disgust": "disgusted", "revolted": "disgusted", "repulsed": "disgusted", "grossed": "disgusted",
    "gross": "disgusted", "sickened": "disgusted",
}

_TAG_WORD = re.compile(r"[a-z]+")
#: Punctuation that attaches to the word before it: no space is kept in front of it.
_CLOSING_PUNCTUATION: Final = frozenset(".,!?;:)]}…%'\"”’")
#: A bracket still open after this many characters is not a tag: its text is spoken after
#: all (without the ``[``), so a stray bracket cannot silence the rest of a reply. Long
#: enough for a short bracketed stage direction, which is removed like any unknown tag.
MAX_TAG_CHARS: Final = 100


def emotion_from_tag(tag: str) -> str | None:
    """The emotion a tag's text names, or None.

    Accepts ``happy``, ``Emotion: Sad``, ``mood=joy``, ``feeling angry``: the first word of
    the tag that names an emotion wins, so a ``key: value`` prefix needs no special case.
    """
    for word in _TAG_WORD.findall(tag.lower()):
        emotion = EMOTION_SYNONYMS.get(word)
        if emotion is not None:
            return emotion
    return None


def coalesce(pieces: Iterable[Piece]) -> list[Piece]:
    """Join adjacent ``SpeechText`` pieces: the canonical form of a parse.

    Two streams of the same reply, cut at different points, coalesce to equal lists.
    """
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, SpeechText) and out and isinstance(out[-1], SpeechText):
            out[-1] = SpeechText(out[-1].text + piece.text)
        else:
            out.append(piece)
    return out


class ReplyParser:
    """Feeds on LLM text deltas; returns the pieces each delta completes.

    One parser per reply. ``feed`` returns speech as soon as it is known (only a pending
    space is held back until the next visible character decides whether it is needed);
    ``finish`` returns whatever the end of the reply completes and resets nothing: make a
    new parser for the next reply.
    """

    _TEXT: Final = 0
    _ACTION: Final = 1
    _TAG: Final = 2

    def __init__(self) -> None:
        self._state = self._TEXT
        self._span: list[str] = []  # the action or tag being read
        self._spoken_any = False  # leading whitespace of the reply is dropped
        self._pending_space = False
        self._finished = False
        self._speech: list[str] = []  # speech of the current feed call, not yet emitted
        self._out: list[Piece] = []

    def feed(self, delta: str) -> list[Piece]:
        if self._finished:
            raise RuntimeError("ReplyParser.feed() after finish(); use a new parser per reply")
        for char in delta:
            self._char(char)
        return self._take()

    def finish(self) -> list[Piece]:
        """End of reply: flush an unterminated action as an ``Action``; drop a partial tag."""
        if self._finished:
            return []
        if self._state == self._ACTION:
            self._end_action()
        elif self._state == self._TAG:
            self._span.clear()
            self._state = self._TEXT
        self._finished = True
        return self._take()

    # ------------------------------------------------------------------ internals

    def _char(self, char: str) -> None:
        if self._state == self._TEXT:
            self._text_char(char)
        elif self._state == self._ACTION:
            if char == "*":
                self._end_action()
            else:
                self._span.append(char)
        else:
            self._tag_char(char)

    def _text_char(self, char: str) -> None:
        if char == "*":
            self._state = self._ACTION
        elif char == "[":
            self._state = self._TAG
        elif char.isspace():
            if self._spoken_any:
                self._pending_space = True
        else:
            if self._pending_space and char not in _CLOSING_PUNCTUATION:
                self._speech.append(" ")
            self._pending_space = False
            self._speech.append(char)
            self._spoken_any = True

    def _tag_char(self, char: str) -> None:
        if char == "]":
            emotion = emotion_from_tag("".join(self._span))
            self._span.clear()
            self._state = self._TEXT
            if emotion is not None:
                self._emit(EmotionTag(emotion))
            return
        self._span.append(char)
        if len(self._span) > MAX_TAG_CHARS:
            replay = "".join(self._span)
            self._span.clear()
            self._state = self._TEXT
            for replayed in replay:
                # Through the full state machine: the text may open an action or a tag.
                self._char(replayed)

    def _end_action(self) -> None:
        text = " ".join("".join(self._span).split())
        self._span.clear()
        self._state = self._TEXT
        if text:
            self._emit(Action(text))

    def _emit(self, piece: Piece) -> None:
        """Queue a non-speech piece after the speech that precedes it."""
        self._flush_speech()
        self._out.append(piece)

    def _flush_speech(self) -> None:
        if self._speech:
            self._out.append(SpeechText("".join(self._speech)))
            self._speech.clear()

    def _take(self) -> list[Piece]:
        self._flush_speech()
        out, self._out = self._out, []
        return out


def parse_reply(text: str) -> list[Piece]:
    """One-shot parse of a whole reply (coalesced)."""
    parser = ReplyParser()
    return coalesce([*parser.feed(text), *parser.finish()])
