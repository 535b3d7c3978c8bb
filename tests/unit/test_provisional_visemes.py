"""The provisional viseme timeline of an untimed segment while its audio arrives (issue 15
item 3): which alignment is due when, how each one does against known truth, and what the
voice's learned rate becomes. Real libespeak-ng; the "voice" is another espeak voice at
another rate after 300 ms of silence, so its exact phoneme times are known."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.media import phonemize
from bridge.providers.base import TimedUnit as U
from bridge.speech import visemes as V
from bridge.speech.provisional import (
    DEFAULT_RATE,
    PARTIAL_FIRST_MS,
    PARTIAL_GROWTH,
    StreamingAlignment,
    VoiceRate,
    VoiceRates,
    loudness_visemes,
)
from tests.unit.test_visemes import check_shape, frame_agreement

TEXT = "I never expected to see you here again, old friend. Shall we walk to the harbour?"
PIECE_MS = 100


@pytest.fixture(scope="module")
def voice() -> phonemize.EspeakSynthesis:
    result = phonemize.synthesize(TEXT, "en-us+m3", rate=140, pitch=35)
    pad = int(0.3 * result.sample_rate)
    result.samples = np.concatenate([np.zeros(pad, dtype=np.int16), result.samples])
    result.phonemes = [U("", 0.0, 300.0)] + [U(u.text, u.start_ms + 300, u.end_ms + 300) for u in result.phonemes]
    return result


def pieces(voice: phonemize.EspeakSynthesis) -> list[np.ndarray]:
    step = voice.sample_rate * PIECE_MS // 1000
    return [voice.samples[i : i + step] for i in range(0, voice.samples.size, step)]


def agreement_up_to(truth: list[V.Viseme], estimate: list[V.Viseme], end_ms: float) -> float:
    return frame_agreement(truth, estimate, end_ms)


def test_open_end_dtw_stops_where_the_partial_recording_does() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(120, 4))
    prefix = reference[:50] + rng.normal(scale=0.05, size=(50, 4))
    cost = np.sqrt(((reference[:, None, :] - prefix[None, :, :]) ** 2).sum(-1))
    path = V._dtw_path(cost, open_end=True)
    assert path[-1, 1] == 49 and abs(int(path[-1, 0]) - 49) <= 2
    assert V._dtw_path(cost)[-1].tolist() == [119, 49]  # closed end: the last cell, as before


def test_jobs_fall_due_as_audio_arrives_and_the_whole_one_teaches_the_rate(voice: phonemize.EspeakSynthesis) -> None:
    rate = VoiceRate()
    state = StreamingAlignment(TEXT, rate)
    assert state.current() is None and state.next_job() is None  # nothing before espeak's rendering
    state.set_reference(V.espeak_reference(TEXT))
    state.add(voice.samples[: voice.sample_rate], voice.sample_rate)
    assert state.next_job() is None  # read ahead of its turn: no partial alignment
    state = StreamingAlignment(TEXT, rate, playing=True)
    state.set_reference(V.espeak_reference(TEXT))
    jobs: list[tuple[str, float]] = []
    for piece in pieces(voice):
        state.add(piece, voice.sample_rate)
        job = state.next_job()
        if job is not None:
            audio = state.audio()
            seen = 1000.0 * audio.size / voice.sample_rate
            jobs.append((job, seen))
            state.apply(job, state.run_job(job, audio), seen)
    # (The first may find too little speech after the silence; later ones align.)
    assert state.kind == "partial"
    assert [j for j, _ in jobs] == ["partial"] * len(jobs) and len(jobs) >= 3
    # Each partial alignment comes once the audio has grown enough since the last one.
    assert jobs[0][1] >= PARTIAL_FIRST_MS
    assert all(b >= a * PARTIAL_GROWTH for (_, a), (_, b) in zip(jobs, jobs[1:]))
    assert rate.learned == 0
    state.finish()
    assert state.next_job() == "whole"
    state.apply("whole", state.run_job("whole", state.audio()), state.received_ms)
    assert state.kind == "whole" and state.next_job() is None
    assert state.visemes == V.visemes_from_audio(voice.samples, voice.sample_rate, TEXT)
    # espeak at 140 words a minute against the reference's 175: about 1.25 times as long,
    # and the 300 ms of silence in front is where this voice starts.
    assert rate.learned == 1 and 1.1 < rate.rate < 1.4 and 250 < rate.onset_ms < 350


def test_each_timeline_is_better_than_the_one_before(voice: phonemize.EspeakSynthesis) -> None:
    truth = V.visemes_from_phonemes(voice.phonemes)
    duration = voice.duration_ms
    state = StreamingAlignment(TEXT, VoiceRate())
    state.set_reference(V.espeak_reference(TEXT))
    first = pieces(voice)
    half = len(first) // 2
    for piece in first[:half]:
        state.add(piece, voice.sample_rate)
    provisional = state.current()
    assert provisional is not None and state.kind == "provisional"
    check_shape(provisional)
    # The onset came from the audio received: the mouth opens where speech starts (300 ms).
    assert provisional[0].name == "sil" and 250 < provisional[1].t_ms < 350
    seen = state.received_ms
    state.apply("partial", state.run_job("partial", state.audio()), seen)
    partial = state.current()
    assert partial is not None and state.kind == "partial"
    check_shape(partial)
    for piece in first[half:]:
        state.add(piece, voice.sample_rate)
    state.finish()
    state.apply("whole", state.run_job("whole", state.audio()), state.received_ms)
    whole = state.current()
    # On the half already received, the partial alignment beats the provisional timeline.
    assert agreement_up_to(truth, partial, seen) > agreement_up_to(truth, provisional, seen) + 0.05
    assert frame_agreement(truth, whole, duration) >= frame_agreement(truth, partial, duration)


def test_learned_rate_makes_the_provisional_timeline_closer(voice: phonemize.EspeakSynthesis) -> None:
    truth = V.visemes_from_phonemes(voice.phonemes)
    estimates = []
    for rate in (VoiceRate(), VoiceRate(1.25, 300.0, 1)):
        state = StreamingAlignment(TEXT, rate)
        state.set_reference(V.espeak_reference(TEXT))
        state.add(voice.samples[: voice.sample_rate // 10], voice.sample_rate)  # 100 ms: silence only
        estimate = state.current()
        assert estimate is not None
        estimates.append(frame_agreement(truth, estimate, voice.duration_ms))
    assert estimates[1] > estimates[0] + 0.05


def test_voice_rates_learn_per_module_and_voice_and_clamp() -> None:
    rates = VoiceRates()

    class Module:
        pass

    a, b = Module(), Module()
    assert not rates.known(a)
    rates.of(a, "x").learn(V.Alignment([], 100.0, 2100.0, 50.0, 1050.0))  # twice espeak's length
    assert rates.known(a) and not rates.known(b)
    assert rates.of(a, "x").rate == pytest.approx(2.0) and rates.of(a, "x").onset_ms == pytest.approx(100.0)
    assert rates.of(a, "y").rate == DEFAULT_RATE and rates.of(b, "x").rate == DEFAULT_RATE
    wild = VoiceRate()
    wild.learn(V.Alignment([], 0.0, 10_000.0, 0.0, 100.0))  # an alignment gone wrong
    assert wild.rate == 2.5


def test_loudness_fallback_and_a_text_espeak_does_not_speak() -> None:
    assert loudness_visemes(np.zeros(960, np.int16), 24000, 40.0) == [V.Viseme(40.0, "sil")]
    loud = loudness_visemes((np.sin(np.arange(960) / 3) * 12000).astype(np.int16), 24000, 80.0)
    assert loud[0].t_ms == 80.0 and loud[0].name == "aa" and 0.3 <= loud[0].weight <= 1
    state = StreamingAlignment("...", VoiceRate())
    state.set_reference(None)
    assert state.current() == [V.Viseme(0.0, "sil")] and state.next_job() is None
