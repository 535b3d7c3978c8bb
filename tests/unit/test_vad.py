"""Voice activity segmentation: the real Silero model on real (piper) speech with silence
around it, plus exact state-machine checks with a plain energy VAD on synthetic levels."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.providers.base import VAD
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.providers.stt.silero import SileroVad
from bridge.speech.vad import (
    PushToTalkBuffer,
    SpeechStarted,
    SpeechStopped,
    UtteranceTooLong,
    VoiceActivitySegmenter,
)
from tests.speech_samples import speech_sample

pytestmark = pytest.mark.embedded

RATE = 16000
BOUNDARY_TOLERANCE_MS = 100

SENTENCES = [
    "Halt, who goes there at this hour of the night?",
    "Yes.",
    "I need three healing potions and a map of the northern caves.",
    "Quick, light the torches and close the doors!",
]


@pytest.fixture(scope="module")
def silero() -> SileroVad:
    return create_provider(ModuleSpec("vad", "vad", "silero"))


def run(segmenter: VoiceActivitySegmenter, samples: np.ndarray, chunk: int | None = None) -> list:
    if chunk is None:
        return segmenter.feed(samples) + segmenter.finish()
    events = []
    for start in range(0, samples.size, chunk):
        events += segmenter.feed(samples[start : start + chunk])
    return events + segmenter.finish()


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def test_silero_is_a_vad_with_the_models_frame(silero: SileroVad) -> None:
    assert isinstance(silero, VAD)
    assert (silero.sample_rate, silero.frame_samples) == (16000, 512)
    with pytest.raises(ValueError, match="exactly 512 samples"):
        silero.probability(np.zeros(480, np.int16))
    # int16 and float input mean the same thing.
    speech = speech_sample(SENTENCES[0], lead_s=0.0, tail_s=0.0).at_rate(RATE)[4000:4512]
    silero.reset()
    p_int = silero.probability(speech)
    silero.reset()
    p_float = silero.probability(speech.astype(np.float32) / 32768)
    assert p_int == pytest.approx(p_float, abs=1e-4)


@pytest.mark.parametrize("text", SENTENCES)
@pytest.mark.parametrize(
    ("lead_s", "tail_s", "noise_dbfs"),
    [(1.0, 1.0, None), (0.77, 1.3, -55.0), (1.31, 0.9, -45.0)],
    ids=["clean", "quiet-room", "noisy-room"],
)
def test_speech_boundaries_are_found_within_100_ms(
    silero: SileroVad, text: str, lead_s: float, tail_s: float, noise_dbfs: float | None
) -> None:
    sample = speech_sample(text, lead_s=lead_s, tail_s=tail_s, noise_dbfs=noise_dbfs)
    audio = sample.at_rate(RATE)
    events = run(VoiceActivitySegmenter(silero), audio)
    assert kinds(events) == ["SpeechStarted", "SpeechStopped"], events
    started, stopped = events
    assert abs(started.t_ms - sample.speech_start_ms) <= BOUNDARY_TOLERANCE_MS, (started.t_ms, sample.speech_start_ms)
    assert abs(stopped.t_ms - sample.speech_end_ms) <= BOUNDARY_TOLERANCE_MS, (stopped.t_ms, sample.speech_end_ms)
    # The utterance holds all of the speech, plus padding, and not much else.
    assert stopped.audio.dtype == np.int16
    begin_ms = started.t_ms - 200
    end_ms = begin_ms + stopped.audio.size * 1000 / RATE
    assert begin_ms <= sample.speech_start_ms and end_ms >= sample.speech_end_ms
    speech_ms = sample.speech_end_ms - sample.speech_start_ms
    audio_ms = stopped.audio.size * 1000 / RATE
    assert speech_ms + 200 <= audio_ms <= speech_ms + 2 * 200 + 250, (speech_ms, audio_ms)


def test_utterance_audio_is_the_stream_itself(silero: SileroVad) -> None:
    audio = speech_sample(SENTENCES[2], lead_s=1.0, tail_s=1.0).at_rate(RATE)
    started, stopped = run(VoiceActivitySegmenter(silero, pad_ms=200), audio)
    begin = round((started.t_ms - 200) * RATE / 1000)
    assert np.array_equal(stopped.audio, audio[begin : begin + stopped.audio.size])


def test_odd_chunking_gives_the_same_events_as_one_feed(silero: SileroVad) -> None:
    first = speech_sample(SENTENCES[0], lead_s=0.5, tail_s=1.2).at_rate(RATE)
    second = speech_sample(SENTENCES[2], lead_s=0.3, tail_s=1.0).at_rate(RATE)
    stream = np.concatenate([first, second])
    whole = run(VoiceActivitySegmenter(silero), stream)
    assert kinds(whole) == ["SpeechStarted", "SpeechStopped"] * 2
    for chunk in (1, 333, 511, 513, 1023, 4801):
        assert run(VoiceActivitySegmenter(silero), stream, chunk) == whole, chunk
    rng = np.random.default_rng(7)
    segmenter = VoiceActivitySegmenter(silero)
    events, pos = [], 0
    while pos < stream.size:
        size = int(rng.integers(1, 3000))
        events += segmenter.feed(stream[pos : pos + size])
        pos += size
    assert events + segmenter.finish() == whole


def test_a_100_ms_click_of_speech_is_not_an_utterance(silero: SileroVad) -> None:
    speech = speech_sample(SENTENCES[2], lead_s=0.0, tail_s=0.0).at_rate(RATE)
    # The loudest 100 ms of real speech: the model surely calls it speech, but it is short.
    energy = np.convolve(speech.astype(np.float64) ** 2, np.ones(1600), mode="valid")
    start = int(np.argmax(energy))
    click = speech[start : start + 1600]
    silence = np.zeros(RATE, np.int16)
    stream = np.concatenate([silence, click, silence])
    silero.reset()
    probabilities = [silero.probability(stream[i : i + 512]) for i in range(0, stream.size - 511, 512)]
    assert max(probabilities) >= 0.5, "the click must trigger the model, or this test proves nothing"
    assert run(VoiceActivitySegmenter(silero, min_speech_ms=250), stream) == []
    # The same click is an utterance when min_speech allows it: min_speech is what filtered it.
    assert kinds(run(VoiceActivitySegmenter(silero, min_speech_ms=32), stream)) == ["SpeechStarted", "SpeechStopped"]


def test_a_short_pause_keeps_one_utterance_a_long_one_splits(silero: SileroVad) -> None:
    a = speech_sample(SENTENCES[0], lead_s=0.0, tail_s=0.0).at_rate(RATE)
    b = speech_sample(SENTENCES[3], lead_s=0.0, tail_s=0.0).at_rate(RATE)
    gap = lambda s: np.zeros(round(s * RATE), np.int16)  # noqa: E731
    one = run(VoiceActivitySegmenter(silero), np.concatenate([gap(0.5), a, gap(0.25), b, gap(1.0)]))
    assert kinds(one) == ["SpeechStarted", "SpeechStopped"]
    two = run(VoiceActivitySegmenter(silero), np.concatenate([gap(0.5), a, gap(1.2), b, gap(1.0)]))
    assert kinds(two) == ["SpeechStarted", "SpeechStopped", "SpeechStarted", "SpeechStopped"]
    assert two[2].t_ms > two[1].t_ms + 900


def test_max_utterance_bound_fires_and_speech_resumes_after_it(silero: SileroVad) -> None:
    sample = speech_sample(SENTENCES[2], lead_s=0.5, tail_s=1.0)
    audio = sample.at_rate(RATE)
    events = run(VoiceActivitySegmenter(silero, max_utterance_s=2.0), audio)
    assert kinds(events)[:2] == ["SpeechStarted", "UtteranceTooLong"], events
    too_long = events[1]
    # Bounded: 2 s of audio, at most one 32 ms frame over.
    assert 2 * RATE <= too_long.audio.size < 2 * RATE + 512
    assert too_long.t_ms == pytest.approx(events[0].t_ms - 200 + 2000, abs=40)
    # The speaker went on: a new utterance picks up right where the bounded one stopped.
    assert kinds(events)[2:] == ["SpeechStarted", "SpeechStopped"]
    assert events[2].t_ms >= too_long.t_ms
    assert abs(events[3].t_ms - sample.speech_end_ms) <= BOUNDARY_TOLERANCE_MS


def test_finish_closes_speech_in_progress(silero: SileroVad) -> None:
    audio = speech_sample(SENTENCES[2], lead_s=0.5, tail_s=0.0).at_rate(RATE)
    segmenter = VoiceActivitySegmenter(silero)
    events = segmenter.feed(audio[: audio.size // 2])
    assert kinds(events) == ["SpeechStarted"] and segmenter.speaking
    closing = segmenter.finish()
    assert kinds(closing) == ["SpeechStopped"]
    assert closing[0].audio.size > RATE  # the half-sentence heard so far
    assert segmenter.finish() == []
    segmenter.reset()
    assert segmenter.position_ms == 0


# ------------------------------------------------------------------ exact state machine


class EnergyVAD:
    """The simplest real VAD: probability = frame RMS / 10000 (capped at 1).

    Lets the state machine be checked frame by frame with synthetic levels.
    """

    sample_rate = 16000
    frame_samples = 512

    def probability(self, frame: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        return min(1.0, rms / 10000)


def levels(*spans: tuple[float, int]) -> np.ndarray:
    """Frames of constant level: (probability the EnergyVAD will see, frame count)."""
    return np.concatenate([np.full(n * 512, round(p * 10000), np.int16) for p, n in spans])


def test_hysteresis_a_dip_between_thresholds_never_ends_speech() -> None:
    segmenter = VoiceActivitySegmenter(EnergyVAD(), threshold=0.5, min_silence_ms=100, pad_ms=0)
    # Speech, then 40 frames (1.3 s) at 0.4: under the start threshold but above the stop
    # threshold (0.35), then speech again. Without hysteresis that is two utterances.
    events = segmenter.feed(levels((0.0, 5), (0.9, 10), (0.4, 40), (0.9, 10), (0.0, 10)))
    assert kinds(events) == ["SpeechStarted", "SpeechStopped"]
    assert events[0].t_ms == 5 * 32
    # Dated by the last frame above `threshold`, less one frame of model lag.
    assert events[1].t_ms == (65 - 1) * 32
    assert events[1].audio.size == (65 - 5) * 512  # onset .. end of the last voiced frame, no padding


def test_hysteresis_a_level_between_thresholds_never_starts_speech() -> None:
    segmenter = VoiceActivitySegmenter(EnergyVAD(), threshold=0.5, min_silence_ms=100)
    assert segmenter.feed(levels((0.0, 5), (0.45, 60), (0.0, 10))) == []


def test_pauses_shorter_than_min_silence_do_not_split() -> None:
    segmenter = VoiceActivitySegmenter(EnergyVAD(), min_speech_ms=96, min_silence_ms=320, pad_ms=64)
    stream = levels((0.0, 5), (0.9, 5), (0.0, 9), (0.9, 5), (0.0, 10), (0.9, 5), (0.0, 12))
    events = segmenter.feed(stream)
    # Pause of 9 frames (288 ms) < 320 ms joins; 10 frames (320 ms) splits.
    assert kinds(events) == ["SpeechStarted", "SpeechStopped", "SpeechStarted", "SpeechStopped"]
    assert [e.t_ms for e in events] == [5 * 32, 23 * 32, 34 * 32, 38 * 32]
    first = events[1].audio
    assert first.size == (24 - 5) * 512 + 2 * 1024  # onset-pad .. last voiced frame + pad


def test_a_short_burst_is_dropped_and_its_audio_not_kept() -> None:
    segmenter = VoiceActivitySegmenter(EnergyVAD(), min_speech_ms=250, min_silence_ms=200)
    assert segmenter.feed(levels((0.0, 3), (0.9, 3), (0.0, 30))) == []
    assert not segmenter.speaking
    # Pre-roll only: memory does not grow during silence.
    assert len(segmenter._frames) <= segmenter._preroll_frames + 1
    events = segmenter.feed(levels((0.9, 10), (0.0, 10)))
    assert kinds(events) == ["SpeechStarted", "SpeechStopped"]
    assert events[0].t_ms == 36 * 32


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        VoiceActivitySegmenter(EnergyVAD(), threshold=1.5)
    with pytest.raises(ValueError, match="max_utterance_s"):
        VoiceActivitySegmenter(EnergyVAD(), max_utterance_s=0.1)


# ------------------------------------------------------------------ push to talk


def test_push_to_talk_collects_until_stop() -> None:
    buffer = PushToTalkBuffer(max_utterance_s=2)
    chunks = [np.full(n, i, np.int16) for i, n in enumerate([1, 799, 1600, 3], start=1)]
    for chunk in chunks:
        assert buffer.feed(chunk) == []
    stopped = buffer.stop()
    assert isinstance(stopped, SpeechStopped)
    assert np.array_equal(stopped.audio, np.concatenate(chunks))
    assert stopped.t_ms == round(2403 / 16)
    assert buffer.stop() is None  # nothing since


def test_push_to_talk_bound_fires_once_and_drops_the_rest() -> None:
    buffer = PushToTalkBuffer(max_utterance_s=1)
    assert buffer.feed(np.ones(10000, np.int16)) == []
    events = buffer.feed(np.full(10000, 2, np.int16))
    assert len(events) == 1 and isinstance(events[0], UtteranceTooLong)
    assert events[0].audio.size == RATE and events[0].t_ms == 1000
    assert events[0].audio[-1] == 2 and events[0].audio[0] == 1
    assert buffer.feed(np.ones(50000, np.int16)) == []
    assert buffer.stop() is None
    # Usable again after stop.
    buffer.feed(np.ones(160, np.int16))
    assert buffer.stop() == SpeechStopped(10, np.ones(160, np.int16))


def test_events_compare_by_value() -> None:
    assert SpeechStarted(5) == SpeechStarted(5)
    assert SpeechStopped(1, np.arange(3, dtype=np.int16)) == SpeechStopped(1, np.arange(3, dtype=np.int16))
    assert SpeechStopped(1, np.arange(3, dtype=np.int16)) != SpeechStopped(1, np.arange(4, dtype=np.int16))
    assert UtteranceTooLong(1, np.zeros(2, np.int16)) != SpeechStopped(1, np.zeros(2, np.int16))


def test_hold_end_shortens_or_lengthens_the_silence_window_until_more_voice_comes() -> None:
    """The end-of-turn decision (issue 15): a hold made on what was heard up to a sample
    changes the window for that utterance, but not once the voice goes on after it."""

    def stop_frame(hold_ms: float | None, more_voice: bool = False) -> int:
        segmenter = VoiceActivitySegmenter(EnergyVAD(), min_speech_ms=64, min_silence_ms=320, pad_ms=64)
        segmenter.feed(levels((0.0, 5), (0.9, 10), (0.0, 2)))
        assert segmenter.speaking and segmenter.voiced_end == 15 * 512
        heard = segmenter.utterance_so_far()
        assert heard is not None and heard.size == 17 * 512 - (5 * 512 - 1024)  # from pad before the onset
        segmenter.hold_end(segmenter.position, hold_ms)
        if more_voice:
            assert segmenter.feed(levels((0.9, 3))) == []
        for frame in range(60):
            events = segmenter.feed(levels((0.0, 1)))
            if events:
                assert kinds(events) == ["SpeechStopped"]
                return (0 if more_voice else 2) + frame + 1
        raise AssertionError("no stop")

    # Frames of silence after the last voiced frame when the utterance ended.
    assert stop_frame(None) == 10  # 320 ms
    assert stop_frame(128) == 4  # 128 ms
    assert stop_frame(32) == 3  # 64 ms (pad_ms) had passed at the hold: ends at the next frame
    assert stop_frame(640) == 20
    assert stop_frame(128, more_voice=True) == 10  # the voice went on: back to 320 ms
