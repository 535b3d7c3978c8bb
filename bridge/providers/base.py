"""The small interfaces every backend module implements.

A character's turn only ever talks to these Protocols, so a module is swappable by config
and testable against a fake server without the rest of the bridge. Streams are exposed as
async context managers that yield an async iterator: the module may open a nursery inside
(for a socket reader, say) and the caller's cancel scope still reaches everything, which a
bare async generator could not guarantee under trio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Role = Literal["system", "user", "assistant"]


class ProviderError(Exception):
    """A backend failed in a way the client should hear about.

    ``code`` is one of the protocol's error codes (``backend_error``, ``timeout``,
    ``backend_unavailable``); ``message`` is safe to show the player's developer: it carries
    the provider's own words and never a secret.
    """

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class ConfigError(Exception):
    """A module or character is configured wrongly; raised at start-up or ``entity.init``."""


# --------------------------------------------------------------------------- LLM


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """Everything a language model needs for one reply.

    ``messages`` is the full prompt built by the harmonizer (system prompt, history, the new
    user message last). Providers that keep the history on their side (Kindroid, Kajiwoto,
    Character AI) send only ``new_message``.
    """

    messages: Sequence[ChatMessage]
    new_message: str
    character: str
    scope: str = "default"
    options: Mapping[str, Any] = field(default_factory=dict)
    #: OpenAI-style function tools (the character's registered actions). Only modules with
    #: ``supports_tools = True`` send them; the others get the actions in the prompt instead.
    tools: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call from a streamed reply; ``arguments`` is the JSON text the model wrote."""

    name: str
    arguments: str
    id: str | None = None


@runtime_checkable
class LLM(Protocol):
    """Streams a reply as text deltas (and, from modules with ``supports_tools``, `ToolCall`s).

    A module that can take ``LLMRequest.tools`` sets the attribute ``supports_tools = True``
    and yields each tool call, once its streamed arguments are complete, between the text
    deltas. Other modules yield only text.
    """

    name: str

    def stream(self, request: LLMRequest) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        """Open a reply stream; iterate it for text deltas. Raises ProviderError."""
        ...

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- TTS


@dataclass(frozen=True, slots=True)
class TimedUnit:
    """A phoneme or a character with its time span, in ms from the start of the utterance."""

    text: str
    start_ms: float
    end_ms: float


@dataclass(slots=True)
class SpeechAudio:
    """One piece of synthesized audio, in order, with whatever timing the backend gave.

    ``samples`` is mono int16. ``phonemes`` (IPA, as espeak-ng writes them) and
    ``characters`` hold timings relative to the start of the whole utterance, not of this
    piece; either may be empty when the backend gives no timing.
    """

    samples: np.ndarray
    sample_rate: int
    phonemes: Sequence[TimedUnit] = ()
    characters: Sequence[TimedUnit] = ()


@dataclass(frozen=True, slots=True)
class TTSRequest:
    text: str
    voice: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class TTS(Protocol):
    """Turns text into a stream of audio pieces.

    A module whose audio never carries timing may say so with a class attribute
    ``timing = "none"`` (OpenAI, Harmony Speech): the speaker then starts its viseme work on
    a segment's text while the request is under way instead of at the first audio.
    """

    name: str

    def synthesize(
        self, request: TTSRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[SpeechAudio]]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TextStream(Protocol):
    """One utterance whose text arrives while it is spoken: `send_text` as often as needed,
    `end` once, and iterate for its audio (sending and iterating run in different tasks)."""

    async def send_text(self, text: str, *, flush: bool = False) -> None: ...

    async def end(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[SpeechAudio]: ...


@runtime_checkable
class TextStreamTTS(Protocol):
    """A TTS that takes text while it speaks (ElevenLabs' stream-input socket).

    ``stream_text`` says whether the speaker should use it (a module option); with it the
    speaker opens a stream per segment before the segment's first word is written and
    feeds words as the LLM writes them. ``first_words`` (or None) cuts a reply's first
    segment after that many words, so the first audio waits for those words only.
    """

    stream_text: bool
    first_words: int | None

    def open_text_stream(self, request: TTSRequest) -> AbstractAsyncContextManager[TextStream]: ...


# --------------------------------------------------------------------------- STT / VAD


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    words: Sequence[TimedUnit] = ()
    language: str | None = None


@runtime_checkable
class STT(Protocol):
    """Transcribes one utterance. ``samples`` is mono int16 at ``sample_rate``."""

    name: str

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> Transcript: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class VAD(Protocol):
    """Speech probability of one fixed-size frame. Cheap and synchronous by contract."""

    sample_rate: int
    frame_samples: int

    def probability(self, frame: np.ndarray) -> float: ...


# --------------------------------------------------------------------------- countenance

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "afraid", "disgusted")


@dataclass(frozen=True, slots=True)
class Mood:
    emotion: str
    intensity: float


@runtime_checkable
class Countenance(Protocol):
    """Reads the mood of a piece of the character's speech."""

    name: str

    async def assess(self, text: str, hint: str | None = None) -> Mood: ...
