"""bridge.speech.visemes and bridge.speech.phonemize (real libespeak-ng, no mocks)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from bridge.media import phonemize
from bridge.providers.base import TimedUnit as U
from bridge.speech.visemes import (
    SYMBOLS,
    VISEMES,
    Viseme,
    unmapped_symbols,
    visemes_between,
    visemes_from_audio,
    visemes_from_characters,
    visemes_from_phonemes,
)

# Every English vowel and consonant (Wells' lexical sets and more), names, loanwords,
# numbers and abbreviations: whatever espeak writes for them must be in the table.
ENGLISH = (
    "the cat sat on a mat with judge church ship measure thing this yes wet hat sing bottle "
    "button water better going pool put father bird nurse thought lot cloth palm bath trap kit "
    "fleece dress strut foot goose face price choice mouth goat near square start north force "
    "cure happy letter comma horses loch huge human few tune why which millennium rhythm vision "
    "azure genre beige garage onion canyon ukulele Zhivago Bach Xavier Kiev lieutenant tomato "
    "schedule aluminium fire hour our tour poor pure wire lawyer little castle listen often "
    "vehicle drawing idea Mr. Dr. 42 1990 3.5 $20 A.I. CEO okay e.g. naïve café résumé Dvořák "
    "Nguyen Tchaikovsky Llewellyn Sean Siobhan Gwyneth Reykjavik Müller Jalapeño Xochitl"
)
ENGLISH_VOICES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbcwmd", "en-gb-x-gbclan")


def check_shape(frames: Sequence[Viseme]) -> None:
    """Invariants every keyframe list must hold."""
    assert frames and frames[0].t_ms == 0.0
    assert all(b.t_ms > a.t_ms for a, b in zip(frames, frames[1:])), "times must increase"
    assert all(a.name != b.name for a, b in zip(frames, frames[1:])), "no repeated neighbours"
    assert all(f.name in VISEMES and 0 < f.weight <= 1 for f in frames)
    assert frames[-1].name == "sil"


def paired_errors(truth: Sequence[Viseme], estimate: Sequence[Viseme]) -> np.ndarray:
    """|dt| of keyframes, which must come in the same order with the same names."""
    assert [v.name for v in estimate] == [v.name for v in truth]
    return np.array([abs(a.t_ms - b.t_ms) for a, b in zip(truth, estimate)])


# ------------------------------------------------------------------------ the table


def test_table_uses_only_the_15_oculus_visemes() -> None:
    assert len(VISEMES) == 15
    assert set(SYMBOLS.values()) <= set(VISEMES)


@pytest.mark.parametrize("voice", ENGLISH_VOICES)
def test_every_symbol_english_voices_produce_is_mapped(voice: str) -> None:
    ipa = phonemize.phoneme_string(ENGLISH, voice)
    assert len(ipa) > 500
    assert unmapped_symbols(ipa) == []


def test_unmapped_symbols_does_report_unknown_sounds() -> None:
    assert unmapped_symbols("hˈɛloʊ ʘa ǃ") == ["ʘ", "ǃ"]


# ------------------------------------------------------------ visemes_from_phonemes


def test_espeak_style_units_with_stress_and_diphthong() -> None:
    frames = visemes_from_phonemes([U("", 0, 100), U("h", 100, 150), U("ə", 150, 200), U("l", 200, 260), U("ˈoʊ", 260, 400), U("", 400, 500)])
    check_shape(frames)
    wire = [f.as_wire() for f in frames]
    # h takes the following vowel's shape, weakly; the diphthong's glide gets less time.
    assert wire[:4] == [[0, "sil", 1.0], [100, "E", 0.5], [200, "nn", 1.0], [260, "O", 1.0]]
    assert wire[4][1:] == ["U", 0.7] and 330 < wire[4][0] < 360
    assert wire[5] == [400, "sil", 1.0]


def test_piper_style_codepoints_merge_marks_and_affricates() -> None:
    units = [
        U("", 0, 50), U("t", 50, 80), U("ʃ", 80, 120),  # one CH, not DD then CH
        U("ˈ", 120, 140), U("a", 140, 200), U("ʊ", 200, 240),  # stress time goes to the vowel
        U(" ", 240, 260),  # a short word gap keeps the shape
        U("ɑ", 260, 300), U("ː", 300, 340), U("ɹ", 340, 380),  # the length mark lengthens ɑ
        U(" ", 380, 600),  # a long gap is a pause
        U("m", 600, 650), U(".", 650, 700), U("", 700, 750),
    ]
    frames = visemes_from_phonemes(units)
    check_shape(frames)
    assert [(f.t_ms, f.name) for f in frames] == [
        (0, "sil"), (50, "CH"), (120, "aa"), (200, "U"), (260, "aa"), (340, "RR"), (380, "sil"), (600, "PP"), (650, "sil"),
    ]
    assert frames[2].weight == 1.0 and frames[3].weight < 1.0  # stressed nucleus, weaker glide


def test_espeak_and_piper_spellings_of_one_word_agree() -> None:
    espeak_units = [U("tʃ", 0, 100), U("ˈaʊ", 100, 300)]
    piper_units = [U("t", 0, 50), U("ʃ", 50, 100), U("ˈ", 100, 120), U("a", 120, 240), U("ʊ", 240, 300)]
    a, b = visemes_from_phonemes(espeak_units), visemes_from_phonemes(piper_units)
    assert [(f.name, f.weight) for f in a] == [(f.name, f.weight) for f in b] == [("CH", 1.0), ("aa", 1.0), ("U", 0.7), ("sil", 1.0)]


def test_holes_and_edges() -> None:
    frames = visemes_from_phonemes([U("p", 200, 250), U("ɪ", 250, 300), U("n", 500, 550)])
    check_shape(frames)
    assert [(f.t_ms, f.name) for f in frames] == [(0, "sil"), (200, "PP"), (250, "I"), (300, "sil"), (500, "nn"), (550, "sil")]
    assert visemes_from_phonemes([]) == []
    # Unknown symbols keep the current shape rather than inventing one.
    assert [f.name for f in visemes_from_phonemes([U("b", 0, 10), U("ʘ", 10, 20), U("ɪ", 20, 30)])] == ["PP", "I", "sil"]


def test_real_espeak_timeline_gives_well_formed_visemes() -> None:
    result = phonemize.phonemize("Hello there, traveller! Would you like some bread?")
    frames = visemes_from_phonemes(result.phonemes)
    check_shape(frames)
    names = [f.name for f in frames]
    assert names[:6] == ["sil", "E", "nn", "O", "U", "TH"]  # h-ə-l-oʊ ð
    assert names.count("sil") >= 3  # start, the comma/exclamation pauses, the end
    assert frames[-1].t_ms == pytest.approx(max(u.end_ms for u in result.phonemes if u.text), abs=1)


# ------------------------------------------------------------------ visemes_between


def test_visemes_between_picks_one_chunk() -> None:
    frames = [Viseme(0, "sil"), Viseme(50, "CH"), Viseme(120, "aa"), Viseme(200, "U", 0.7), Viseme(380, "sil")]
    assert visemes_between(frames, 100, 300) == [Viseme(100, "CH"), Viseme(120, "aa"), Viseme(200, "U", 0.7)]
    assert visemes_between(frames, 120, 200) == [Viseme(120, "aa")]  # exact start: not duplicated
    assert visemes_between(frames, 130, 190) == [Viseme(130, "aa")]  # nothing new: the active one
    assert visemes_between(frames, 400, 500) == [Viseme(400, "sil")]
    assert visemes_between(frames, 300, 300) == []
    assert visemes_between([], 0, 100) == []
    # Chunks tile the speech: every keyframe lands in exactly one chunk.
    tiled = [v for start in range(0, 500, 40) for v in visemes_between(frames, start, start + 40) if v in frames]
    assert tiled == frames


# ------------------------------------------------------------------- phonemize module


def test_phonemize_groups_timed_phonemes_by_word() -> None:
    text = "The owner's naïve dog, Rex, won't bite."
    result = phonemize.phonemize(text)
    assert result.samples.size == 0
    assert [w.text for w in result.words] == ["The", "owner's", "naïve", "dog", "Rex", "won't", "bite"]
    for word in result.words:
        assert text[word.char_start : word.char_end] == word.text
        assert word.phonemes and word.end_ms > word.start_ms
    starts = [u.start_ms for u in result.phonemes]
    assert starts == sorted(starts)
    assert all(b.start_ms == pytest.approx(a.end_ms) for a, b in zip(result.phonemes, result.phonemes[1:]))
    assert "".join(u.text for u in result.words[2].phonemes).replace("ˈ", "") == "naɪiːv"
    # Spans never overlap, even where espeak splits one written word in two ("42").
    tricky = phonemize.phonemize("A well-known chef sold 42 pies.").words
    assert all(a.char_end <= b.char_start for a, b in zip(tricky, tricky[1:]))
    assert [w.text for w in tricky][-3:] == ["4", "2", "pies"]


def test_phonemize_is_thread_safe() -> None:
    texts = [f"Sentence number {word} is spoken here." for word in ("one", "two", "three", "four")]
    expected = {t: [u.text for u in phonemize.phonemize(t).phonemes] for t in texts}
    failures: list[str] = []

    def worker(text: str) -> None:
        for _ in range(15):
            got = [u.text for u in phonemize.phonemize(text).phonemes]
            if got != expected[text]:
                failures.append(text)

    threads = [threading.Thread(target=worker, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_phonemize_rejects_unknown_voice() -> None:
    with pytest.raises(phonemize.EspeakError, match="no voice 'xx-nowhere'"):
        phonemize.phonemize("hello", "xx-nowhere")
    assert phonemize.phoneme_string("hello") == "həlˈoʊ"  # and the engine still works


# ------------------------------------------------------- characters and audio only


@pytest.fixture(scope="module")
def slow_espeak() -> phonemize.EspeakSynthesis:
    """A different 'speaker' with known truth: espeak with another voice, rate and pitch,
    after 300 ms of silence."""
    result = phonemize.synthesize(
        "I never expected to see you here again, old friend. Shall we walk to the harbour?",
        "en-us+m3", rate=140, pitch=35,
    )
    pad = int(0.3 * result.sample_rate)
    result.samples = np.concatenate([np.zeros(pad, dtype=np.int16), result.samples])
    result.phonemes = [U("", 0.0, 300.0)] + [U(u.text, u.start_ms + 300, u.end_ms + 300) for u in result.phonemes]
    result.words = [
        phonemize.WordPhonemes(w.text, w.char_start, w.char_end, tuple(U(p.text, p.start_ms + 300, p.end_ms + 300) for p in w.phonemes))
        for w in result.words
    ]
    return result


def character_alignment(result: phonemize.EspeakSynthesis) -> list[U]:
    """What a character aligner would report: each word's true span, letters spread evenly."""
    chars = [U(c, 0.0, 0.0) for c in result.text]
    previous = 0.0
    for word in result.words:
        n = word.char_end - word.char_start
        step = (word.end_ms - word.start_ms) / n
        for k in range(word.char_start, word.char_start + n):
            i = k - word.char_start
            chars[k] = U(result.text[k], word.start_ms + i * step, word.start_ms + (i + 1) * step)
    for k, c in enumerate(chars):  # spaces and punctuation: from the previous char's end
        if c.end_ms == 0.0:
            chars[k] = U(c.text, previous, previous)
        previous = chars[k].end_ms
    return chars


def test_visemes_from_characters_places_phonemes_inside_word_spans(slow_espeak: phonemize.EspeakSynthesis) -> None:
    truth = visemes_from_phonemes(slow_espeak.phonemes)
    estimate = visemes_from_characters(slow_espeak.text, character_alignment(slow_espeak))
    check_shape(estimate)
    errors = paired_errors(truth, estimate)
    # Word edges are exact; inside words espeak's 175 wpm proportions stand in for 140.
    assert float(np.mean(errors)) < 12.0
    assert visemes_from_characters("", []) == []


def test_visemes_from_audio_recovers_timing_and_beats_even_spread(slow_espeak: phonemize.EspeakSynthesis) -> None:
    truth = visemes_from_phonemes(slow_espeak.phonemes)
    estimate = visemes_from_audio(slow_espeak.samples, slow_espeak.sample_rate, slow_espeak.text)
    check_shape(estimate)
    errors = paired_errors(truth, estimate)
    assert float(np.mean(errors)) < 10.0 and float(np.percentile(errors, 90)) < 25.0
    assert estimate[1].t_ms > 280  # the leading silence is found
    # The naive baseline: the same phonemes spread evenly over the audio.
    spoken = [u.text for u in phonemize.phonemize(slow_espeak.text).phonemes if u.text]
    step = slow_espeak.duration_ms / len(spoken)
    naive = visemes_from_phonemes([U(p, i * step, (i + 1) * step) for i, p in enumerate(spoken)])
    linear = visemes_from_audio(slow_espeak.samples, slow_espeak.sample_rate, slow_espeak.text, method="linear")
    assert float(np.mean(paired_errors(truth, linear))) > 2 * float(np.mean(errors))
    duration = slow_espeak.duration_ms
    assert frame_agreement(truth, estimate, duration) > 0.9
    assert frame_agreement(truth, naive, duration) < 0.5


def frame_agreement(truth: Sequence[Viseme], estimate: Sequence[Viseme], duration_ms: float) -> float:
    """Share of 10 ms frames where both lists show the same mouth shape."""
    grid = np.arange(5.0, duration_ms, 10.0)

    def active(frames: Sequence[Viseme]) -> list[str]:
        index = np.searchsorted([f.t_ms for f in frames], grid, side="right") - 1
        return [frames[k].name if k >= 0 else "sil" for k in index]

    return float(np.mean([a == b for a, b in zip(active(truth), active(estimate))]))


def test_visemes_from_audio_edge_cases() -> None:
    silence = np.zeros(16000, dtype=np.int16)
    assert visemes_from_audio(silence, 16000, "Hello there.") == [Viseme(0.0, "sil")]
    assert visemes_from_audio(np.zeros(0, dtype=np.int16), 16000, "Hello") == []
    noise = (np.random.default_rng(0).normal(0, 3000, 8000)).astype(np.int16)
    assert visemes_from_audio(noise, 16000, "   ") == [Viseme(0.0, "sil")]
    with pytest.raises(ValueError, match="unknown alignment method"):
        visemes_from_audio(noise, 16000, "Hello", method="magic")
