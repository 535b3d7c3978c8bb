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
- ``[[name]]`` or ``[[name {"arg": "value"}]]`` is an inline action call (for LLM modules
  without tool calls): the registered action's name, then optionally one JSON object of
  arguments. It becomes ``ActionCall`` (the world stage checks it against the registered
  actions) and is never spoken. ``]]`` inside a JSON string or inside brackets of the
  arguments does not end it. A call still open after ``MAX_CALL_CHARS`` characters, or
  still open at the end of the reply, becomes an ``ActionCall`` with an ``error``.
- At ``finish()``, an unterminated action (the reply was cut off mid-action, e.g. by a
  token limit) is still emitted as an ``Action``: its text was clearly not meant to be
  spoken. An unterminated tag is dropped. A lone ``*`` therefore hides the rest of the
  reply from speech; LLMs told to use asterisks for actions rarely write one otherwise.
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True, slots=True)
class ActionCall:
    """An inline ``[[name {json}]]`` call. ``error`` says why it cannot be used, if it cannot."""

    name: str
    args: dict[str, object]
    raw: str
    error: str | None = None


Piece = SpeechText | Action | EmotionTag | ActionCall

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
#: An inline action call longer than this is given up (and dropped, never spoken).
MAX_CALL_CHARS: Final = 2000
_CALL_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(.*)\Z", re.DOTALL)


def parse_call(raw: str) -> ActionCall:
    """The inside of ``[[...]]`` -> an ``ActionCall`` (with ``error`` when malformed)."""
    match = _CALL_NAME.match(raw)
    if match is None:
        return ActionCall("", {}, raw, "an inline action must start with the action's name")
    name, rest = match.group(1), match.group(2).strip()
    if not rest:
        return ActionCall(name, {}, raw)
    try:
        args = json.loads(rest)
    except ValueError as exc:
        return ActionCall(name, {}, raw, f"the arguments are not valid JSON ({exc})")
    if not isinstance(args, dict):
        return ActionCall(name, {}, raw, "the arguments must be one JSON object")
    return ActionCall(name, args, raw)


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
    _CALL: Final = 3

    def __init__(self) -> None:
        self._state = self._TEXT
        self._span: list[str] = []  # the action, tag or call being read
        self._call_depth = 0  # brackets/braces open inside a call's arguments
        self._call_string = False  # inside a JSON string of a call
        self._call_escape = False
        self._call_closing = False  # one `]` seen at depth 0: a second ends the call
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
        elif self._state == self._CALL:
            raw = "".join(self._span)
            self._span.clear()
            self._state = self._TEXT
            call = parse_call(raw)
            self._emit(ActionCall(call.name, {}, raw, "the reply ended inside an inline action (no closing ]])"))
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
        elif self._state == self._CALL:
            self._call_char(char)
        else:
            self._tag_char(char)

    def _call_char(self, char: str) -> None:
        if self._call_string:
            self._span.append(char)
            if self._call_escape:
                self._call_escape = False
            elif char == "\\":
                self._call_escape = True
            elif char == '"':
                self._call_string = False
        elif char == "]" and self._call_depth == 0:
            if self._call_closing:
                self._end_call()
                return
            self._call_closing = True
        else:
            if self._call_closing:  # a lone `]`: part of the text after all
                self._span.append("]")
                self._call_closing = False
            self._span.append(char)
            if char == '"':
                self._call_string = True
            elif char in "[{":
                self._call_depth += 1
            elif char in "]}" and self._call_depth > 0:
                self._call_depth -= 1
        if len(self._span) > MAX_CALL_CHARS:
            raw = "".join(self._span)
            self._reset_call()
            self._emit(ActionCall(parse_call(raw).name, {}, raw[:80], f"an inline action longer than {MAX_CALL_CHARS} characters"))

    def _reset_call(self) -> None:
        self._span.clear()
        self._state = self._TEXT
        self._call_depth = 0
        self._call_string = self._call_escape = self._call_closing = False

    def _end_call(self) -> None:
        raw = "".join(self._span)
        self._reset_call()
        self._emit(parse_call(raw))

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
        if char == "[" and not self._span:
            self._state = self._CALL  # `[[`: an inline action call
            return
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
