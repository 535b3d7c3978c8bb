"""Speech out for one turn: text segments in, `ai.speech.*` events out, in order.

Two tasks cooperate. The synthesizer takes segments as the LLM produces them and runs the
TTS for each one, as far ahead as the bounded hand-over allows, so segment n+1 is being
synthesized while segment n streams; each segment's TTS stream is read only as far ahead
of playback as `bridge.speech.readahead` allows. The streamer turns each segment's audio into chunks of
the client's rate and size, attaches the visemes and the volume of each chunk's time window,
and hands the chunks to the turn's paced stream a little ahead of time (`QUEUE_AHEAD_S`),
each with its release time, `lead_ms` before it will be heard; the connection's writer
releases them at that time (`bridge.server.turn_stream`), so an interrupt, which withdraws
what was not released, stops the audio at once instead of after a buffer the client
already holds.

Timing for visemes comes from the backend when it has it (phonemes: piper, espeak;
characters: ElevenLabs); otherwise (OpenAI, Harmony Speech) the segment streams as its audio
arrives with visemes from a provisional timeline that is refined as audio arrives and made
precise once the segment is complete (`bridge.speech.lips`, `bridge.speech.provisional`);
a segment synthesized ahead of its playback waits up to `ALIGN_WAIT_S` for the precise one.
Those alignments share a limiter sized to the cores, so a crowd backlogs nobody's audio.

A TTS that takes text while it speaks (`TextStreamTTS`: ElevenLabs' stream-input socket) gets
one text stream per segment instead of one request: the first is opened when the turn
starts, each later one when the previous one gets its first word, and the words go in as the LLM writes them
(`wrote()`, routed by `bridge.speech.text_feed`); the segment's end closes its input.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import trio

from bridge.providers.base import TTS, TextStreamTTS, TimedUnit, TTSRequest
from bridge.speech.audio import Chunker, StreamResampler, volume_envelopes
from bridge.speech.lips import UntimedLips
from bridge.speech.meter import chunk_released
from bridge.speech.provisional import RATES
from bridge.speech.readahead import ReadAhead
from bridge.speech.text_feed import Route, TextRouter
from bridge.speech.visemes import (
    Viseme,
    visemes_between,
    visemes_from_characters,
    visemes_from_phonemes,
)

#: A chunk is handed to the connection's writer up to this long before its release time...
QUEUE_AHEAD_S = 0.5
#: ...and the speaker sleeps until the next chunk's release is this close. The writer then
#: still holds this much audio of the turn, so a speaker woken one long scheduler pass late
#: (~140 ms of CPU with 200 characters speaking) never leaves the writer without a due chunk.
REFILL_AT_S = 0.25

#: Speech rate assumed for a segment cut before its whole audio was known, until one of the
#: turn's segments has been read to its end (~14 characters a second, English TTS voices).
DEFAULT_MS_PER_CHAR = 70.0

#: Segments synthesized ahead of the one streaming.
SYNTH_AHEAD = 2
#: TTS requests one speaker holds open at once (see `Speaker._synthesize_all`).
OPEN_REQUESTS = 2

#: The face reads at least this many words around a segment (`mood_context`): a clause
#: such as "A dragon?" alone says too little about the line it belongs to.
MOOD_MIN_WORDS = 8
#: ...and takes in following sentences already known while it stays within this many: a
#: line's feeling often comes in its second sentence ("He sold his mother's ring for wine.
#: Vile man."), and a short line is judged whole, as a person hearing it would.
MOOD_MAX_WORDS = 24
_SENTENCE_END = re.compile(r"[.!?…][\"')\]}»”’]*$")


def mood_context(texts: list[str], index: int, min_words: int = MOOD_MIN_WORDS, max_words: int = MOOD_MAX_WORDS) -> str:
    """The text a segment's countenance is decided on: its whole sentence as far as it is
    known (the segments said so far: a `tts.say` knows them all, an LLM reply the ones
    written yet), widened by whole sentences, the following known ones first, then the
    preceding ones, until it has `min_words` words; then any further following sentences
    that keep it within `max_words`. `index` is the segment's 0-based position in `texts`.
    """
    if not 0 <= index < len(texts):
        return ""
    start = index
    while start > 0 and not _SENTENCE_END.search(texts[start - 1]):
        start -= 1  # earlier clauses of the same sentence
    end = index
    while end < len(texts) - 1 and not _SENTENCE_END.search(texts[end]):
        end += 1  # later clauses of the same sentence, already written
    words = lambda: sum(len(t.split()) for t in texts[start : end + 1])  # noqa: E731
    while words() < min_words and end < len(texts) - 1:
        end += 1  # the next sentence, whole as far as it is known
        while end < len(texts) - 1 and not _SENTENCE_END.search(texts[end]):
            end += 1
    while words() < min_words and start > 0:
        start -= 1  # the sentence before, whole
        while start > 0 and not _SENTENCE_END.search(texts[start - 1]):
            start -= 1
    while end < len(texts) - 1:
        after = end + 1  # one more whole following sentence, if it fits
        while after < len(texts) - 1 and not _SENTENCE_END.search(texts[after]):
            after += 1
        if words() + sum(len(t.split()) for t in texts[end + 1 : after + 1]) > max_words:
            break
        end = after
    return " ".join(texts[start : end + 1])

# ----------------------------------------------------------------- aligning untimed audio

#: How long a segment's audio may wait for its espeak alignment (queue + work) before it
#: goes out with the quick estimate instead. A crowd starting to speak at once queues
#: hundreds of alignments; past this wait the rough visemes are better than late audio.
ALIGN_WAIT_S = 0.1


def _aligner_slots() -> int:
    """Alignments running at once: one core is left to the event loop that paces audio.

    The alignment is numpy work in small pieces that hold the GIL most of the time; more
    threads than cores only make them (and the event loop) wait for each other.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


_ALIGNER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("viseme_aligner")
_RENDERER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("viseme_renderer")


def _run_limiter(var: trio.lowlevel.RunVar[trio.CapacityLimiter], slots: Callable[[], int]) -> trio.CapacityLimiter:
    """The limiter kept in `var` for this trio run, made with `slots()` on first use."""
    try:
        return var.get()
    except LookupError:
        limiter = trio.CapacityLimiter(slots())
        var.set(limiter)
        return limiter


def aligner_limiter() -> trio.CapacityLimiter:
    """The limiter all untimed-viseme alignments of this trio run share."""
    return _run_limiter(_ALIGNER, _aligner_slots)


def renderer_limiter() -> trio.CapacityLimiter:
    """espeak renderings of untimed segments' texts: their own limiter, so they are never
    queued behind the alignments (a segment's provisional timeline needs its rendering)."""
    return _run_limiter(_RENDERER, _aligner_slots)


@dataclass
class SpokenSegment:
    """What became of one segment: used for heard text and memory after an interrupt."""

    speech: str
    text: str
    sample_rate: int
    index: int = 0  # 0-based position among the turn's segments
    samples_sent: int = 0  # released to the client (queued ones that were withdrawn never count)
    samples_queued: int = 0  # handed to the paced stream, released or not
    duration_ms: float | None = None  # set when the whole segment was queued
    expected_ms: float = 0.0  # its length estimated from its text, while `duration_ms` is unknown
    started_at: float | None = None  # trio clock when its first chunk was released
    offset_ms: float = 0.0  # where this segment starts in the turn's continuous audio
    characters: list[TimedUnit] = field(default_factory=list)
    played_ms: float | None = None  # reported by the client (playback.progress)
    done: bool = False  # the client said playback.done
    lips: UntimedLips | None = field(default=None, repr=False)  # visemes of an untimed voice

    @property
    def sent_ms(self) -> float:
        return self.samples_sent * 1000 / self.sample_rate

    @property
    def queued_ms(self) -> float:
        return self.samples_queued * 1000 / self.sample_rate


@dataclass
class AudioOut:
    sample_rate: int = 24000
    chunk_ms: int = 40
    lead_ms: int = 200
    visemes: bool = True

    @classmethod
    def from_hello(cls, hello: dict[str, Any]) -> "AudioOut":
        out = hello.get("audio_out") or {}
        return cls(
            sample_rate=int(out.get("sample_rate", 24000)),
            chunk_ms=int(out.get("chunk_ms", 40)),
            lead_ms=int(out.get("lead_ms", 200)),
            visemes=hello.get("visemes", "ovr15") != "none",
        )


class PacedOutput(Protocol):
    """A turn's frames held by the connection's writer until their release time
    (`bridge.server.turn_stream.TurnStream`, behind `bridge.character.entity.TurnSpeech`)."""

    def put(self, type_: str, payload: dict[str, Any], release: float | None = None, tag: Any = None) -> None:
        """Hold an output until `release` (trio time; None: right behind the one before);
        an audio chunk's `tag` goes to the stream's `on_release` when the writer takes it
        into a write."""
        ...

    async def room(self) -> None:
        """Wait while the connection holds all the frames it may (a client not reading)."""
        ...

    def withdraw(self) -> int:
        """Drop what was not released yet; nothing more is put."""
        ...

    def close(self) -> None: ...

    async def drained(self) -> None:
        """Wait until everything put was released (after `close`)."""
        ...


class TurnOutput(Protocol):
    """The turn a speaker speaks for, as speech sees it (`bridge.character.entity.Turn` is one).

    Speech comes after the character stage and must not import it, so it states the things
    it uses: the turn's id, a way to send an output of the turn, and a paced stream.
    """

    @property
    def id(self) -> str: ...

    async def emit(self, type_: str, payload: dict[str, Any]) -> None: ...

    def open_speech(self, batch_s: float, on_release: Callable[[Any], None]) -> PacedOutput: ...


MoodFor = Callable[[str], Awaitable[dict[str, Any] | None]]


class Speaker:
    def __init__(
        self,
        turn: TurnOutput,
        tts: TTS,
        audio: AudioOut,
        *,
        voice: str | None = None,
        mood_for: MoodFor | None = None,
        on_mood: Callable[[], dict[str, Any] | None] | None = None,
        max_chars: int = 300,
    ) -> None:
        self.turn = turn
        self.on_mood = on_mood  # after each countenance: the character's ai.status for a new mood, if any
        self.tts = tts
        self.audio = audio
        self.voice = voice
        self.mood_for = mood_for
        self.segments: list[SpokenSegment] = []
        self.texts: list[str] = []  # every segment said so far, in order (the face reads around one)
        self._text_send, self._text_receive = trio.open_memory_channel[str](math.inf)
        self._clock_start: float | None = None  # real time of audio time 0 of this turn
        self._audio_ms_total = 0.0  # audio queued so far, across segments
        self._out: PacedOutput | None = None  # the turn's paced stream, while `run` runs
        # Streamed text input: words routed to per-segment TTS text streams as they come.
        self._router: TextRouter | None = None
        self.first_words: int | None = None  # cut the first segment after this many words
        if isinstance(tts, TextStreamTTS) and tts.stream_text:
            self._router = TextRouter(max_chars=max_chars)
            self.first_words = tts.first_words
        self._route_send, self._route_receive = trio.open_memory_channel[Route](math.inf)

    # ----------------------------------------------------------------- input

    def say(self, text: str) -> None:
        """Queue one segment of speech text (never blocks)."""
        if text.strip():
            self.texts.append(text.strip())
            self._text_send.send_nowait(text.strip())
            if self._router is not None:
                self._routes(self._router.said(text.strip()))

    def wrote(self, text: str) -> None:
        """The reply's speech text as the LLM wrote it, after the segmenter read it (and its
        segments were `say`-ed): fed word by word to a TTS that takes text while it speaks."""
        if self._router is not None:
            self._routes(self._router.wrote(text))

    def text_done(self) -> None:
        """The reply's text is complete (its segmenter flushed): its last word is whole."""
        if self._router is not None:
            self._routes(self._router.end_text())

    def finish(self) -> None:
        """No more segments will come."""
        if self._router is not None:
            self._routes(self._router.finish())
        self._route_send.close()
        self._text_send.close()

    def _routes(self, routes: list[Route]) -> None:
        try:
            for route in routes:
                self._route_send.send_nowait(route)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the speaker stopped (interrupted): its streams are gone, nothing to feed

    # ----------------------------------------------------------------- running

    async def run(self) -> None:
        """Speak every queued segment until `finish()`; returns when the last one has
        played out and all of it was released (so the turn's final reply comes with the
        end of the sound, behind its audio). Leaving otherwise (an interrupt, a failure)
        withdraws what was not released: none of it goes out after the turn's reply."""
        hand_send, hand_receive = trio.open_memory_channel[tuple[SpokenSegment, ReadAhead]](SYNTH_AHEAD)
        batch_s = 2 * self.audio.chunk_ms / 1000  # released with a due chunk (see `_queue_ahead`)
        self._out = out = self.turn.open_speech(batch_s, self._released)
        try:
            async with trio.open_nursery() as nursery:
                if self._router is not None:
                    nursery.start_soon(self._synthesize_streamed, hand_send, nursery)
                else:
                    nursery.start_soon(self._synthesize_all, hand_send, nursery)
                async with hand_receive:
                    async for segment, pieces in hand_receive:
                        await self._stream_segment(segment, pieces)
                await self._wait_until(self._audio_ms_total)
                out.close()
                await out.drained()
        finally:
            out.withdraw()  # (nothing left after a drain)

    async def _synthesize_all(self, hand_send: trio.MemorySendChannel[Any], nursery: trio.Nursery) -> None:
        """Hand the segments to the streamer in order, each with its own reader task.

        A segment's request is sent once its text is known, the previous segment's request
        has been answered (its response opened: requests reach the TTS in order, and the
        first segment's never waits behind the second's), and fewer than `OPEN_REQUESTS` of
        this speaker's TTS requests are open (a reader holds its request until its segment
        is read to the end, which the bounded read-ahead keeps within ~`READ_AHEAD_MS` of
        playback); at most `SYNTH_AHEAD` segments wait behind the one streaming.

        Why not later: a TTS round trip under load is long (0.2-3.7 s from request to
        response head with 200 characters starting at once, measured), and before, a
        segment's request waited until the previous segment began to stream, so it had only
        that segment's duration (a short first clause: ~1.7 s) to bring its first audio,
        and the line fell silent between them. Now the second segment's request follows
        the first's answer, and each later one starts once the segment two before it has
        been read, while the previous one still plays.
        """
        open_requests = trio.Semaphore(OPEN_REQUESTS)
        async with self._text_receive, trio.open_nursery() as readers:
            async with hand_send:
                n = 0
                previous: trio.Event | None = None  # set when the previous request was answered
                async for text in self._text_receive:
                    n += 1
                    segment = SpokenSegment(f"{self.turn.id}.{n}", text, self.audio.sample_rate, index=n - 1)
                    if self.audio.visemes and (getattr(self.tts, "timing", None) == "none" or RATES.known(self.tts)):
                        self._start_lips(segment, nursery)  # espeak renders the text while the TTS starts
                    if previous is not None:
                        await previous.wait()
                    await open_requests.acquire()
                    ahead = ReadAhead()  # read only as far ahead as playback needs
                    try:
                        await hand_send.send((segment, ahead))
                    except BaseException:
                        open_requests.release()
                        raise
                    previous = trio.Event()
                    readers.start_soon(self._read_segment, segment, ahead, nursery, open_requests, previous)

    async def _read_segment(
        self,
        segment: SpokenSegment,
        ahead: ReadAhead,
        nursery: trio.Nursery,
        open_requests: trio.Semaphore,
        answered: trio.Event,
    ) -> None:
        try:
            await self._read_segment_audio(segment, ahead, nursery, answered)
        finally:
            answered.set()  # (also when the request failed: the turn ends anyway)
            open_requests.release()  # its request is closed: a later segment's may start

    async def _read_segment_audio(
        self, segment: SpokenSegment, ahead: ReadAhead, nursery: trio.Nursery, answered: trio.Event
    ) -> None:
        with ahead.writing():
            timed = False
            async with self.tts.synthesize(TTSRequest(text=segment.text, voice=self.voice)) as pieces:
                answered.set()  # the next segment's request may go now
                async for piece in pieces:
                    timed = timed or bool(piece.phonemes or piece.characters)
                    if self.audio.visemes and not timed and segment.lips is None:
                        self._start_lips(segment, nursery)
                    if segment.lips is not None and not timed:
                        segment.lips.add(piece.samples, piece.sample_rate)
                    await ahead.put(piece)
            if segment.lips is not None:
                if timed:
                    segment.lips.close()  # it brought timing after all
                    segment.lips = None
                else:
                    segment.lips.finish()

    async def _synthesize_streamed(self, hand_send: trio.MemorySendChannel[Any], nursery: trio.Nursery) -> None:
        """One TTS text stream per segment, fed the words routed to it; each segment is
        handed to the streamer when the segmenter has released it (its text is known)."""
        words: dict[int, trio.MemorySendChannel[str]] = {}
        audio: dict[int, ReadAhead] = {}
        scopes: dict[int, trio.CancelScope] = {}

        def open_stream(k: int) -> None:
            if k in scopes:
                return
            word_send, word_receive = trio.open_memory_channel[str](math.inf)
            words[k], audio[k], scopes[k] = word_send, ReadAhead(), trio.CancelScope()
            nursery.start_soon(self._text_stream, word_receive, audio[k], scopes[k])

        async def route_words() -> None:
            async with self._route_receive:
                async for k, text in self._route_receive:
                    open_stream(k)
                    if text is None:
                        words[k].close()  # the segment's last word: its stream ends
                    else:
                        words[k].send_nowait(text)
                        # The next segment's socket opens now, not at the boundary, where
                        # its handshake would hold up this segment's end.
                        open_stream(k + 1)

        open_stream(0)  # the socket is up before the LLM's first word
        nursery.start_soon(route_words)
        n = 0
        async with hand_send, self._text_receive:
            async for text in self._text_receive:
                segment = SpokenSegment(f"{self.turn.id}.{n + 1}", text, self.audio.sample_rate, index=n)
                open_stream(n)
                await hand_send.send((segment, audio.pop(n)))
                n += 1
        for k, scope in scopes.items():
            if k >= n:
                scope.cancel()  # opened for a segment that never came

    async def _text_stream(
        self, words: trio.MemoryReceiveChannel[str], ahead: ReadAhead, scope: trio.CancelScope
    ) -> None:
        assert isinstance(self.tts, TextStreamTTS)
        with scope, ahead.writing():
            async with words, self.tts.open_text_stream(TTSRequest(text="", voice=self.voice)) as stream:

                async def feed() -> None:
                    async for text in words:
                        await stream.send_text(text)
                    await stream.end()

                async with trio.open_nursery() as inner:
                    inner.start_soon(feed)
                    async for piece in stream:
                        await ahead.put(piece)  # read only as far ahead as playback needs

    def _start_lips(self, segment: SpokenSegment, nursery: trio.Nursery) -> None:
        segment.lips = UntimedLips(
            segment.text, RATES.of(self.tts, self.voice), aligner=aligner_limiter(), renderer=renderer_limiter()
        )
        nursery.start_soon(segment.lips.run)

    async def _stream_segment(self, segment: SpokenSegment, pieces: ReadAhead) -> None:
        self.segments.append(segment)
        segment.expected_ms = len(segment.text) * self._ms_per_char()
        out = self.audio
        paced = self._paced()
        # The segment's events go in the paced stream too, behind the audio queued before
        # them (the previous segment's tail), as they came before that audio was held back.
        paced.put(
            "ai.speech.start",
            {"speech": segment.speech, "text": segment.text, "sample_rate": out.sample_rate, "encoding": "pcm_s16le"},
        )
        if self.mood_for is not None:
            mood = await self.mood_for(mood_context(self.texts, segment.index))
            if mood:
                paced.put("ai.countenance", {**mood, "speech": segment.speech, "t": 0})
                status = self.on_mood() if self.on_mood is not None else None
                if status:
                    paced.put("ai.status", status)
        chunker = Chunker(out.sample_rate, out.chunk_ms)
        resampler: StreamResampler | None = None
        phonemes: list[TimedUnit] = []
        visemes: list[Viseme] = []
        seq = 0
        lips: UntimedLips | None = None  # an untimed voice's visemes, refined while it streams

        async def send_chunks(chunks: np.ndarray) -> None:
            """Send the rows of `chunks` (2-D int16), whose bytes and volume envelopes are
            made in one pass (per chunk, numpy's call overheads cost more than the work)."""
            nonlocal seq, visemes
            if not len(chunks):
                return
            volumes = volume_envelopes(chunks, out.sample_rate, 10)
            data = chunks.astype("<i2", copy=False).tobytes()
            step = chunks.shape[1] * 2
            for row, chunk in enumerate(chunks):
                if lips is not None:
                    visemes = lips.current(chunk, out.sample_rate, segment.queued_ms)
                await self._send_chunk(segment, chunk, seq, visemes, data[row * step : (row + 1) * step], volumes[row])
                seq += 1

        try:
            async with pieces:
                async for piece in pieces:
                    if resampler is None:
                        resampler = StreamResampler(piece.sample_rate, out.sample_rate)
                        lips = segment.lips
                        if lips is not None and lips.complete:
                            await lips.wait_whole(ALIGN_WAIT_S)  # synthesized ahead: align it precisely first
                        if lips is not None:
                            lips.playing()
                    phonemes.extend(piece.phonemes)
                    segment.characters.extend(piece.characters)
                    resampled = resampler.process(piece.samples)
                    if out.visemes and (phonemes or segment.characters):
                        lips = None
                        visemes = (
                            visemes_from_phonemes(phonemes) if phonemes else visemes_from_characters(segment.text, segment.characters)
                        )
                    # Untimed audio streams as it comes too: its lips never hold it back.
                    await send_chunks(chunker.push_block(resampled))
                tail = resampler.flush() if resampler is not None else np.zeros(0, np.int16)
                await send_chunks(chunker.push_block(tail))
                last = chunker.flush()
                if last is not None and last.size:
                    await send_chunks(last.reshape(1, -1))
        finally:
            if segment.lips is not None:
                segment.lips.close()
        segment.duration_ms = segment.queued_ms
        # All its audio is queued: the end is released when the next segment's first chunk
        # is due (`lead_ms` before this one has played out), so that segment's audio keeps
        # the lead. Waiting for this one to play out first left the client's buffer empty
        # at every boundary, and the hops after that wake-up were silence under load.
        paced.put(
            "ai.speech.end",
            {"speech": segment.speech, "duration_ms": int(round(segment.queued_ms))},
            release=self._due(self._audio_ms_total - out.lead_ms),
        )

    async def _send_chunk(
        self, segment: SpokenSegment, chunk: np.ndarray, seq: int, visemes: list[Viseme], audio: bytes, volume: list[float]
    ) -> None:
        """Queue one chunk to be released `lead_ms` before it will be heard; `audio` and
        `volume` are its wire bytes (s16le) and envelope, made with those of its neighbours
        (`send_chunks`). What was heard and the late-chunk metric count it when the writer
        releases it, not here."""
        out = self.audio
        start_ms = segment.queued_ms
        end_ms = start_ms + chunk.size * 1000 / out.sample_rate
        release = self._due(self._audio_ms_total - out.lead_ms)
        await self._queue_ahead(release)
        if segment.samples_queued == 0:
            segment.offset_ms = self._audio_ms_total
        t0 = int(round(start_ms))
        last_ms = max(t0, int(round(end_ms)) - 1)
        keyframes = []
        if out.visemes:
            for v in visemes_between(visemes, start_ms, end_ms):
                t, name, weight = v.as_wire()
                # Whole ms on the wire: keep each keyframe inside its chunk after rounding.
                keyframes.append([min(max(int(t), t0), last_ms), name, weight])  # type: ignore[call-overload]
        payload: dict[str, Any] = {
            "speech": segment.speech,
            "seq": seq,
            "t": t0,
            "audio": audio,
            "visemes": keyframes,
            "volume": volume,
        }
        # What `_released` needs, as numbers only (see bridge.server.turn_stream on why).
        tag = (len(self.segments) - 1, chunk.size, self._due(self._audio_ms_total), self._audio_ms_total == 0)
        self._paced().put("ai.speech.audio", payload, release=release, tag=tag)
        segment.samples_queued += chunk.size
        self._audio_ms_total += end_ms - start_ms

    def _released(self, tag: tuple[int, int, float | None, bool]) -> None:
        """The writer released a chunk (`tag` from `_send_chunk`): now it counts as sent."""
        index, samples, due, starts_clock = tag
        segment = self.segments[index]
        if segment.started_at is None:
            segment.started_at = trio.current_time()
        segment.samples_sent += samples
        chunk_released(due, starts_clock=starts_clock)  # /metrics late chunks

    async def _queue_ahead(self, release: float | None) -> None:
        """Wait until a chunk released at `release` may be queued: within `QUEUE_AHEAD_S`
        of its release time (sleeping until `REFILL_AT_S` before it, so one wake-up queues
        a quarter second of audio), and while the connection has room for it.

        The writer releases each chunk, and those due within the next two chunk lengths
        with it (one write instead of several; the client holds between `lead_ms` and
        `lead_ms + 2 x chunk_ms` of audio, never less than it asked for). Before, the
        speaker slept until each chunk's time and queued it then, so a chunk waited for
        the speaker's wake-up and then the writer's: two scheduler passes, which under a
        crowd were longer than the lead."""
        if release is not None and release - trio.current_time() > QUEUE_AHEAD_S:
            await trio.sleep_until(release - REFILL_AT_S)
        await self._paced().room()

    def _ms_per_char(self) -> float:
        """The voice's time per character in this turn's segments read to their end."""
        done = [s for s in self.segments if s.duration_ms and s.text]
        chars = sum(len(s.text) for s in done)
        return sum(s.duration_ms or 0.0 for s in done) / chars if chars else DEFAULT_MS_PER_CHAR

    def _paced(self) -> PacedOutput:
        assert self._out is not None, "a speaker streams inside run()"
        return self._out

    async def _wait_until(self, audio_ms: float) -> None:
        """Sleep until `audio_ms` of this turn's audio has played in real time (0 lead: never)."""
        due = self._due(audio_ms)
        if due is not None and due > trio.current_time():
            await trio.sleep_until(due)

    def _due(self, audio_ms: float) -> float | None:
        """The trio time at which `audio_ms` of this turn's audio has played; None unpaced.

        The turn's clock starts at the first call, i.e. when its first chunk is released."""
        if self.audio.lead_ms <= 0:
            return None
        if self._clock_start is None:
            self._clock_start = trio.current_time()
        return self._clock_start + audio_ms / 1000

    # ----------------------------------------------------------------- after an interrupt

    def heard(self, played_ms: float | None = None) -> tuple[SpokenSegment | None, float, str]:
        """(segment being played, ms of it played, all text heard) at this moment.

        The segment being played is the first one the client has not reported done and
        that has not fully played. How much of it was heard comes, in order of trust, from
        the interrupt's `played_ms`, the client's last `playback.progress` for it, or the
        playback clock (real time since this turn's audio began, minus where the segment
        starts in it); never more than was sent. With no pacing (`lead_ms` 0) the bridge
        cannot know, and counts what it sent as heard.
        """
        parts: list[str] = []
        elapsed = (trio.current_time() - self._clock_start) * 1000 if self._clock_start is not None else 0.0
        for segment in self.segments:
            if segment.started_at is None:
                break
            if segment.done:
                parts.append(segment.text)
                continue
            reported = played_ms if played_ms is not None else segment.played_ms
            if reported is not None:
                played = client_ms(reported)
            elif self.audio.lead_ms <= 0:
                played = segment.sent_ms
            else:
                played = elapsed - segment.offset_ms
            played = max(0.0, min(played, segment.sent_ms))
            if reported is None and segment.duration_ms is not None and played >= segment.duration_ms:
                parts.append(segment.text)  # the clock says it played to the end
                continue
            parts.append(heard_prefix(segment, played))
            return segment, played, " ".join(p for p in parts if p)
        last = self.segments[-1] if self.segments else None
        return last, (last.sent_ms if last else 0.0), " ".join(p for p in parts if p)


def client_ms(value: float | int) -> float:
    """A time the client reported, as a float that cannot break arithmetic: an integer too
    big for a float saturates to infinity (it still means "all of it"), NaN counts as 0."""
    try:
        ms = float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    return 0.0 if math.isnan(ms) else ms


def heard_prefix(segment: SpokenSegment, played_ms: float) -> str:
    """The words of a segment heard in its first `played_ms`.

    With character timing, whole words whose start was played; otherwise words in
    proportion to the time played (speech rate is close to even within a sentence) of the
    segment's length: known once its audio was read to the end, else estimated from its
    text (`expected_ms`), never less than the audio queued of it. (The audio sent so far
    was taken for its length before, so a segment cut in its first second, with ~0.5 s
    sent ahead, counted most of its words as heard.)
    """
    text = segment.text
    total = segment.duration_ms or max(segment.queued_ms, segment.expected_ms) or segment.sent_ms
    if played_ms <= 0 or not text:
        return ""
    if total and played_ms >= total:
        return text
    if segment.characters:
        count = sum(1 for c in segment.characters if c.start_ms < played_ms)
        cut = text[:count]
        if count >= len(text) or not text[count : count + 1].strip():
            return cut  # the cut falls on a word boundary
        return cut.rsplit(" ", 1)[0] if " " in cut else ""  # drop the half-heard word
    words = text.split()
    keep = int(len(words) * played_ms / total) if total else 0
    return " ".join(words[:keep])
