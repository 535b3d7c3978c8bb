"""Speech in for one entity: the microphone stream, voice activity, transcription, barge-in.

`stt.audio` chunks arrive in the hello's `audio_in` format and are resampled to 16 kHz as
they come. In `vad` mode the voice-activity segmenter decides where an utterance starts
and stops; in `push_to_talk` mode the utterance is what lies between `stt.listen.start` and
`stt.listen.stop`. Each finished utterance is transcribed in the entity's nursery (so
`entity.remove` or a disconnect cancels it), announced as `stt.transcript`, and, unless
the character turns it off, answered as a verbal `user.utterance` whose outputs carry the
transcript's id as `ref`.

Bounds (issue 11): an entity has at most `MAX_PENDING_TRANSCRIPTIONS` transcriptions
running or queued, one-shot and microphone together; more are refused with `busy` (an
utterance from the microphone is then dropped, and said so). Microphone audio may run at
most `MIC_MAX_AHEAD_S` ahead of real time (counted from the first chunk of a listen
session); chunks beyond that are refused with `rate_limited`: a stream pushed far faster
than it can be recorded is a recording, and belongs in `stt.transcribe`.

Partial transcripts (issue 15): in `vad` mode the growing utterance is decoded while the
player speaks (bridge/character/partials.py says when, and bounds it to one decode at a
time per entity), each result sent as `stt.transcript` with `final: false`; the last one
that heard the whole speech becomes the final transcript without another decode. Each
partial also tells the VAD how long a silence ends this turn (bridge/speech/turn_end.py:
sooner after a finished sentence, later after a trailing "and"). Options:
`partial_interval_ms` (600 for an STT that decodes locally, else 0 = off),
`end_of_turn` ("adaptive" or "fixed"), `end_of_turn_complete_ms`, `end_of_turn_trailing_ms`.

Barge-in: speech that starts while the character is talking interrupts it (policy
`barge_in = "interrupt"`, the default) once it has lasted `barge_in_min_ms`, so a cough
does not cut the character off; `barge_in = "ignore"` lets the character finish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from bridge.character.partials import PartialJob, PartialSchedule
from bridge.character.ports import ClientGone
from bridge.character.turns import handler_for
from bridge.media.pcm import MicResampler, decode_wav, pcm_to_int16, resample
from bridge.protocol.envelope import Event
from bridge.protocol.errors import ErrorCode, ProtocolError
from bridge.providers.base import ConfigError, ProviderError
from bridge.providers.redact import clip
from bridge.speech.turn_end import TurnEndPolicy
from bridge.speech.vad import PushToTalkBuffer, SpeechStarted, SpeechStopped, UtteranceTooLong, VoiceActivitySegmenter

if TYPE_CHECKING:
    from bridge.character.entity import Entity

STT_RATE = 16000
MAX_PENDING_TRANSCRIPTIONS = 2
MIC_MAX_AHEAD_S = 5.0
VAD_OPTION_KEYS = ("threshold", "min_speech_ms", "min_silence_ms", "pad_ms")
#: `partial_interval_ms` when the character sets none and its STT decodes locally (costs no
#: money per call); a remote STT gets no partials unless asked for.
DEFAULT_PARTIAL_INTERVAL_MS = 600


class Listener:
    def __init__(self, entity: "Entity", audio_in_rate: int, max_audio_s: int) -> None:
        self.entity = entity
        self.runtime = entity.runtime
        self.audio_in_rate = audio_in_rate
        self.max_audio_s = max_audio_s
        self.mode: str | None = None
        self.expected_seq: int | None = None
        self._resampler: MicResampler | None = None
        self._vad: VoiceActivitySegmenter | None = None
        self._ptt: PushToTalkBuffer | None = None
        self._speech_started_at: int | None = None
        self._barged = False
        self.pending = 0  # transcriptions running or waiting for the inference limiter
        self._mic_started_at: float | None = None  # trio time of the session's first chunk
        self._mic_samples = 0  # input-rate samples received since then
        options = self.runtime.config.options
        self.barge_in = str(options.get("barge_in", "interrupt"))
        self.barge_in_min_ms = int(options.get("barge_in_min_ms", 300))
        self.respond = bool(options.get("stt_responds", True))
        self.vad_options = {k: options[k] for k in VAD_OPTION_KEYS if k in options}
        self._partial_interval = options.get("partial_interval_ms")
        self.turn_end = TurnEndPolicy(
            enabled=str(options.get("end_of_turn", "adaptive")) == "adaptive",
            complete_ms=float(options.get("end_of_turn_complete_ms", TurnEndPolicy.complete_ms)),
            trailing_ms=float(options.get("end_of_turn_trailing_ms", TurnEndPolicy.trailing_ms)),
        )
        self._partials: PartialSchedule | None = None

    # ----------------------------------------------------------------- requests

    async def start(self, event: Event) -> Event:
        mode = str((event.payload or {}).get("mode") or "vad")
        stt = await self._stt(event)  # fail now, not at the first utterance, if there is no STT
        if self._partials is not None:
            self._partials.cancel()
        self.mode = mode
        self.expected_seq = None
        self._resampler = MicResampler(self.audio_in_rate)
        self._speech_started_at = None
        self._mic_started_at = None
        self._mic_samples = 0
        if mode == "vad":
            vad_module = self.runtime.config.modules.get("vad")
            if not vad_module:
                raise self._error(event, ErrorCode.BACKEND_UNAVAILABLE, f"character {self.runtime.name!r} has no vad module; use push_to_talk")
            vad = await self.runtime.app.provider(vad_module)
            fork = getattr(vad, "fork", None)  # VAD models are stateful: one per stream
            self._vad = VoiceActivitySegmenter(fork() if fork else vad, max_utterance_s=self.max_audio_s, **self.vad_options)
            self._ptt = None
            interval = self._partial_interval
            if interval is None:
                interval = DEFAULT_PARTIAL_INTERVAL_MS if getattr(stt, "incremental", False) else 0
            self._partials = PartialSchedule(float(interval), STT_RATE) if interval else None
        else:
            self._ptt = PushToTalkBuffer(self.max_audio_s, STT_RATE)
            self._vad = None
            self._partials = None
        return event.reply("success", {"mode": mode})

    async def stop(self, event: Event) -> Event:
        if self.mode is None:
            raise self._error(event, ErrorCode.BAD_EVENT, "not listening: send stt.listen.start first")
        tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, np.int16)
        if self._ptt is not None:
            self._ptt.feed(tail)
            stopped = self._ptt.stop()
            if stopped is not None:
                await self._emit("stt.speech.stopped", {"t": stopped.t_ms})
                self._transcribe_soon(stopped.audio)
        elif self._vad is not None:
            await self._handle(self._vad.feed(tail) + self._vad.finish())
        if self._partials is not None:
            self._partials.cancel()
        self.mode = None
        self._vad = self._ptt = self._resampler = None
        self._partials = None
        return event.reply("success", {})

    async def audio(self, event: Event) -> None:
        """One microphone chunk; raises ProtocolError (answered) for a bad one."""
        payload = event.payload or {}
        if self.mode is None or self._resampler is None:
            raise self._error(event, ErrorCode.BAD_EVENT, "stt.audio without stt.listen.start: start listening first")
        data = payload.get("audio") or b""
        seq = payload.get("seq")
        if len(data) % 2:
            raise self._error(event, ErrorCode.BAD_EVENT, f"stt.audio has {len(data)} bytes: pcm_s16le needs an even count (whole samples)")
        if self.expected_seq is not None and seq is not None and seq != self.expected_seq:
            expected = self.expected_seq
            if seq < expected:
                raise self._error(event, ErrorCode.BAD_EVENT, f"stt.audio seq {seq} arrived out of order (expected {expected}); chunk dropped")
            self.expected_seq = seq + 1
            self._feed(data)
            raise self._error(event, ErrorCode.BAD_EVENT, f"stt.audio chunks {expected}..{seq - 1} are missing; carrying on from {seq}")
        if seq is not None:
            self.expected_seq = seq + 1
        self._check_real_time(event, len(data) // 2)
        await self._handle(self._feed(data))

    def _check_real_time(self, event: Event, samples: int) -> None:
        """Refuse a chunk that would put the stream over MIC_MAX_AHEAD_S ahead of real time."""
        now = trio.current_time()
        if self._mic_started_at is None:
            self._mic_started_at = now
        ahead = (self._mic_samples + samples) / self.audio_in_rate - (now - self._mic_started_at)
        if ahead > MIC_MAX_AHEAD_S:
            raise self._error(
                event, ErrorCode.RATE_LIMITED,
                f"microphone audio is arriving {ahead:.1f} s ahead of real time (at most {MIC_MAX_AHEAD_S:g}); "
                "chunk dropped. Send it as it is recorded, or send a recording with stt.transcribe",
            )
        self._mic_samples += samples

    def _feed(self, data: bytes) -> list[Any]:
        assert self._resampler is not None
        samples = self._resampler.feed(data)
        if self._vad is not None:
            return self._vad.feed(samples)
        assert self._ptt is not None
        return self._ptt.feed(samples)

    async def transcribe(self, event: Event) -> Event:
        """`stt.transcribe`: one-shot, like Harmony Link's STT_INPUT_AUDIO."""
        payload = event.payload or {}
        data = payload.get("audio") or b""
        fmt = payload.get("format", "wav")
        try:
            if fmt == "wav":
                samples, rate = decode_wav(data)
            else:
                if len(data) % 2:
                    raise ValueError("pcm_s16le needs an even number of bytes")
                samples, rate = pcm_to_int16(data), int(payload.get("sample_rate") or self.audio_in_rate)
        except (ValueError, EOFError) as exc:
            raise self._error(event, ErrorCode.BAD_EVENT, f"cannot read the audio: {exc}") from None
        if samples.size > self.max_audio_s * rate:
            raise self._error(event, ErrorCode.TOO_LARGE, f"audio is longer than {self.max_audio_s} s")
        stt = await self._stt(event)
        if self._running_jobs() >= MAX_PENDING_TRANSCRIPTIONS:
            raise self._error(event, ErrorCode.BUSY, self._busy_message())
        self.pending += 1
        try:
            audio16 = resample(samples, rate, STT_RATE) if rate != STT_RATE else samples
            transcript = await stt.transcribe(audio16, STT_RATE)
        except ProviderError as exc:
            return event.error_reply(exc.code, clip(exc.message))
        finally:
            self.pending -= 1
        result: dict[str, Any] = {"text": transcript.text}
        if transcript.words:
            result["words"] = [{"word": w.text, "start_ms": int(w.start_ms), "end_ms": int(w.end_ms)} for w in transcript.words]
        if transcript.language:
            result["language"] = transcript.language
        return event.reply("success", result)

    # ----------------------------------------------------------------- internals

    async def _stt(self, event: Event) -> Any:
        module = self.runtime.config.modules.get("stt")
        if not module:
            raise self._error(event, ErrorCode.BACKEND_UNAVAILABLE, f"character {self.runtime.name!r} has no stt module")
        try:
            return await self.runtime.app.provider(module)
        except ConfigError as exc:  # a module that refuses its config answers, never kills the connection
            raise self._error(event, ErrorCode.BACKEND_UNAVAILABLE, f"stt module {module!r} is not usable: {exc}") from None

    def _error(self, event: Event, code: ErrorCode, message: str) -> ProtocolError:
        return ProtocolError(code, message, event_type=event.type, event_id=event.id, entity=event.entity)

    async def _emit(self, type_: str, payload: dict[str, Any]) -> Event:
        event = Event(type_, self.entity.outbox.next_id(), payload, entity=self.entity.name)
        await self.entity.outbox.put(event)
        return event

    async def _handle(self, events: list[Any]) -> None:
        for vad_event in events:
            if isinstance(vad_event, SpeechStarted):
                self._speech_started_at = vad_event.t_ms
                self._barged = False
                if self._partials is not None and self._vad is not None:
                    self._partials.start_utterance(self._vad.position)
                await self._emit("stt.speech.started", {"t": vad_event.t_ms})
            elif isinstance(vad_event, (SpeechStopped, UtteranceTooLong)):
                reuse = None
                if self._partials is not None:
                    if isinstance(vad_event, SpeechStopped):
                        reuse = self._partials.end_utterance(vad_event.voiced_end)
                    else:
                        self._partials.cancel()
                await self._emit("stt.speech.stopped", {"t": vad_event.t_ms})
                if isinstance(vad_event, UtteranceTooLong):
                    await self._emit(
                        "error",
                        {"code": str(ErrorCode.TOO_LARGE), "message": f"an utterance reached the {self.max_audio_s} s buffer bound; transcribing what was kept"},
                    )
                self._speech_started_at = None
                self._transcribe_soon(vad_event.audio, reuse)
        self._maybe_barge_in()
        self._maybe_partial()

    def _running_jobs(self) -> int:
        """Transcriptions of this entity counted against the bound: finals, one-shots, a partial."""
        running = self._partials.running if self._partials is not None else None
        return self.pending + (running is not None)

    def _maybe_partial(self) -> None:
        """Start a partial decode of the utterance so far if one is due (see partials.py)."""
        partials, vad, nursery = self._partials, self._vad, self.entity.nursery
        if partials is None or vad is None or nursery is None or not vad.speaking:
            return
        if self._running_jobs() >= MAX_PENDING_TRANSCRIPTIONS or not partials.due(vad.position, vad.voiced_end):
            return
        audio = vad.utterance_so_far()
        if audio is None:
            return
        job = partials.begin(vad.position, trio.current_time())
        nursery.start_soon(self._run_partial, partials, job, audio, name=f"stt.partial:{self.entity.name}")

    async def _run_partial(self, partials: PartialSchedule, job: PartialJob, audio: np.ndarray) -> None:
        """Decode the utterance so far; send it as a partial transcript and judge the turn's end.

        Nothing is sent once the utterance is over: then this text goes out as the final
        transcript (if it heard everything) or not at all.
        """
        try:
            with job.scope:
                module = self.runtime.config.modules.get("stt")
                stt = await self.runtime.app.provider(module) if module else None
                if stt is None:
                    return
                try:
                    transcript = await stt.transcribe(audio, STT_RATE)
                except ProviderError:
                    return  # a partial is a preview: the final decode reports failures
                job.text = transcript.text.strip()
                partials.finished(job, trio.current_time())
                if partials is not self._partials or job.utterance != partials.utterance or partials.latest is not job:
                    return
                vad = self._vad
                if vad is not None and vad.speaking:
                    vad.hold_end(job.end, self.turn_end.silence_ms(job.text))
                if job.text:
                    t_ms = round(job.end * 1000 / STT_RATE)
                    await self._emit("stt.transcript", {"text": job.text, "final": False, "t": t_ms})
        except ClientGone:
            pass
        finally:
            partials.finished(job)
            job.done.set()

    def _maybe_barge_in(self) -> None:
        """Interrupt a talking character once the player's speech has lasted barge_in_min_ms.

        The segmenter already reports speech only after its `min_speech_ms`; the extra
        minimum here keeps a short "mm-hm" from cutting a character off mid-sentence.
        """
        if self.barge_in != "interrupt" or self._barged or self._vad is None or self._speech_started_at is None:
            return
        if self._vad.position_ms - self._speech_started_at < self.barge_in_min_ms:
            return
        speaker = getattr(self.runtime.current_handler, "speaker", None)
        if self.entity.current is None or speaker is None or not speaker.segments:
            return
        self._barged = True
        self.entity.interrupt()

    def _busy_message(self) -> str:
        return (
            f"{self._running_jobs()} transcriptions of entity {self.entity.name!r} are still running "
            f"(at most {MAX_PENDING_TRANSCRIPTIONS}); wait for one to finish"
        )

    def _transcribe_soon(self, audio: np.ndarray, reuse: PartialJob | None = None) -> None:
        """Transcribe a finished utterance; `reuse` is a partial decode that heard all of it.

        A running partial decode does not count here: it was either cancelled for this
        final decode or is the one being reused, so the final takes its place in the bound.
        """
        nursery = self.entity.nursery
        if nursery is None:
            return
        if self.pending >= MAX_PENDING_TRANSCRIPTIONS:
            nursery.start_soon(self._refuse_utterance, name=f"stt:{self.entity.name}")
            return
        self.pending += 1
        nursery.start_soon(self._transcribe_and_answer, audio, reuse, name=f"stt:{self.entity.name}")

    async def _refuse_utterance(self) -> None:
        try:
            await self._emit("error", {"code": str(ErrorCode.BUSY), "message": "utterance dropped: " + self._busy_message()})
        except ClientGone:
            pass

    async def _transcribe_and_answer(self, audio: np.ndarray, reuse: PartialJob | None = None) -> None:
        try:
            await self._transcribe_and_answer_inner(audio, reuse)
        except ClientGone:
            pass  # the client left while we listened: nothing to tell anyone
        finally:
            self.pending -= 1

    async def _transcribe_and_answer_inner(self, audio: np.ndarray, reuse: PartialJob | None) -> None:
        module = self.runtime.config.modules.get("stt")
        if not module:
            return
        text: str | None = None
        if reuse is not None:
            await reuse.done.wait()
            text = reuse.text  # None if that decode failed: decode the utterance after all
        if text is None:
            try:
                stt = await self.runtime.app.provider(module)
                transcript = await stt.transcribe(audio, STT_RATE)
            except ProviderError as exc:
                await self._emit("error", {"code": exc.code, "message": clip(f"transcription failed: {exc.message}")})
                return
            text = transcript.text.strip()
        if not text:
            return
        announced = await self._emit("stt.transcript", {"text": text, "final": True})
        if self.respond:
            request = Event("user.utterance", announced.id, {"kind": "verbal", "text": text}, entity=self.entity.name)
            try:
                self.entity.submit(request, handler_for(self.runtime, request), announce=False)
            except ProtocolError as exc:
                await self._emit("error", {"code": str(exc.code), "message": exc.message, "ref": announced.id})
