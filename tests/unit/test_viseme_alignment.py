"""Visemes for untimed voices: the fast DTW, the espeak reference cache, abandoning an
alignment, and the quick estimate (real libespeak-ng). How the speaker runs the alignments
under load (limiters, skipping, shedding) is tests/unit/test_lips.py."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.media import phonemize
from bridge.providers.base import TimedUnit as U
from bridge.speech import visemes as V
from tests.unit.test_visemes import check_shape, frame_agreement

TEXT = "I never expected to see you here again, old friend. Shall we walk to the harbour?"


@pytest.fixture(scope="module")
def other_speaker() -> phonemize.EspeakSynthesis:
    """Known truth from a different 'speaker': another espeak voice, rate and pitch, after
    300 ms of silence (as in test_visemes)."""
    result = phonemize.synthesize(TEXT, "en-us+m3", rate=140, pitch=35)
    pad = int(0.3 * result.sample_rate)
    result.samples = np.concatenate([np.zeros(pad, dtype=np.int16), result.samples])
    result.phonemes = [U("", 0.0, 300.0)] + [U(u.text, u.start_ms + 300, u.end_ms + 300) for u in result.phonemes]
    return result


def _reference_dtw(cost: np.ndarray) -> list[tuple[int, int]]:
    """Textbook O(n*m) DTW in plain Python, ties broken diagonal, up, left."""
    n, m = cost.shape
    acc = [[0.0] * m for _ in range(n)]
    for i in range(n):
        for j in range(m):
            c = float(cost[i, j])
            if i == 0 and j == 0:
                acc[i][j] = c
            elif i == 0:
                acc[i][j] = c + acc[i][j - 1]
            elif j == 0:
                acc[i][j] = c + acc[i - 1][j]
            else:
                acc[i][j] = c + min(acc[i - 1][j - 1], acc[i - 1][j], acc[i][j - 1])
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i or j:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            d, u, left = acc[i - 1][j - 1], acc[i - 1][j], acc[i][j - 1]
            if d <= u and d <= left:
                i, j = i - 1, j - 1
            elif u <= left:
                i -= 1
            else:
                j -= 1
        path.append((i, j))
    return path[::-1]


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (7, 1), (9, 13), (70, 40), (130, 150)])
def test_fast_dtw_matches_textbook_dtw(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for cost in (rng.random(shape), np.round(rng.random(shape) * 3)):  # the second has ties
        assert [tuple(p) for p in V._dtw_path(cost).tolist()] == _reference_dtw(cost)


def test_warp_times_averages_held_frames() -> None:
    # Source frame 1 is held over target frames 1..3: its time maps to their middle (2).
    path = np.array([[0, 0], [1, 1], [1, 2], [1, 3], [2, 4]])
    mapped = V._warp_times(np.array([0.0, 10.0, 15.0, 20.0]), path, 0, 0, 10.0)
    assert mapped.tolist() == pytest.approx([0.0, 20.0, 30.0, 40.0])


def test_reference_is_cached_and_reused(other_speaker: phonemize.EspeakSynthesis) -> None:
    V.clear_reference_cache()
    assert V._cached_reference(TEXT, "en-us") == (False, None)
    first = V.visemes_from_audio(other_speaker.samples, other_speaker.sample_rate, TEXT)
    found, ref = V._cached_reference(TEXT, "en-us")
    assert found and ref is not None and ref.r1 > ref.r0
    # A repeat gives the same answer from the cache, and is cheaper than the first call.
    assert V.visemes_from_audio(other_speaker.samples, other_speaker.sample_rate, TEXT) == first
    assert V._cached_reference(TEXT, "en-gb")[0] is False  # keyed by voice too


def test_reference_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    V.clear_reference_cache()
    monkeypatch.setattr(V, "REFERENCE_CACHE_SIZE", 2)
    tone = (np.sin(np.arange(8000) * 0.1) * 8000).astype(np.int16)
    for word in ("one", "two", "three"):
        V.visemes_from_audio(tone, 16000, word)
    assert [V._cached_reference(w, "en-us")[0] for w in ("one", "two", "three")] == [False, True, True]


def test_should_stop_abandons_alignment(other_speaker: phonemize.EspeakSynthesis) -> None:
    V.clear_reference_cache()
    with pytest.raises(V.AlignmentAbandoned):
        V.visemes_from_audio(other_speaker.samples, other_speaker.sample_rate, TEXT, should_stop=lambda: True)
    assert V._cached_reference(TEXT, "en-us")[0] is False  # an aborted synthesis is not cached
    # Stopping inside the warping (reference already cached) also ends it.
    V.visemes_from_audio(other_speaker.samples, other_speaker.sample_rate, TEXT)
    calls = 0

    def stop_later() -> bool:
        nonlocal calls
        calls += 1
        return calls > 1

    with pytest.raises(V.AlignmentAbandoned):
        V.visemes_from_audio(other_speaker.samples, other_speaker.sample_rate, TEXT, should_stop=stop_later)


def test_quick_estimate_beats_even_spread_without_any_rendering(other_speaker: phonemize.EspeakSynthesis) -> None:
    V.clear_reference_cache()
    truth = V.visemes_from_phonemes(other_speaker.phonemes)
    quick = V.visemes_quick(other_speaker.samples, other_speaker.sample_rate, TEXT)
    check_shape(quick)
    assert V._cached_reference(TEXT, "en-us")[0] is False  # nothing was synthesized
    duration = other_speaker.duration_ms
    spoken = [u.text for u in phonemize.phonemize(TEXT).phonemes if u.text]
    step = duration / len(spoken)
    naive = V.visemes_from_phonemes([U(p, i * step, (i + 1) * step) for i, p in enumerate(spoken)])
    aligned = V.visemes_from_audio(other_speaker.samples, other_speaker.sample_rate, TEXT)
    quick_score = frame_agreement(truth, quick, duration)
    assert quick_score > frame_agreement(truth, naive, duration) + 0.1
    assert frame_agreement(truth, aligned, duration) > quick_score  # DTW stays the better one
    # The 300 ms of leading silence is found by loudness.
    assert quick[0].name == "sil" and 250 < quick[1].t_ms < 350
    # With the reference cached, the quick path stretches espeak's own timeline instead.
    cached = V.visemes_quick(other_speaker.samples, other_speaker.sample_rate, TEXT)
    assert cached != quick and frame_agreement(truth, cached, duration) > 0.3


def test_quick_estimate_edge_cases() -> None:
    assert V.visemes_quick(np.zeros(0, dtype=np.int16), 16000, "Hello") == []
    assert V.visemes_quick(np.zeros(16000, dtype=np.int16), 16000, "Hello") == [V.Viseme(0.0, "sil")]
    noise = np.random.default_rng(0).normal(0, 3000, 8000).astype(np.int16)
    assert V.visemes_quick(noise, 16000, "  ") == [V.Viseme(0.0, "sil")]


def test_speech_islands_split_at_the_longest_silences() -> None:
    speech = np.array([1] * 30 + [0] * 20 + [1] * 30 + [0] * 40 + [1] * 30 + [0] * 5 + [1] * 10, dtype=bool)
    assert V._speech_islands(speech, 0, speech.size, 2) == [(0, 80), (120, speech.size)]
    assert V._speech_islands(speech, 0, speech.size, 3) == [(0, 30), (50, 80), (120, speech.size)]
    assert V._speech_islands(speech, 0, speech.size, 4) == [(0, speech.size)]  # not enough pauses
