"""How well do the viseme methods without exact timing match piper's exact timing?

    python -m bench.viseme_accuracy [--sentences N] [--show]

Piper (joe, medium) speaks each sentence; its per-phoneme sample counts give the true
visemes (`visemes_from_phonemes`). On the same audio and text we then run:

- characters: what an ElevenLabs-style character alignment gives. Character times are
  derived from piper's timing: each word gets its true span, its letters spread evenly
  over it; spaces and punctuation fill the gaps (words that espeak runs together share
  their span by phoneme count). Only the word spans carry information, so this measures
  how well espeak's relative durations place phonemes inside a word.
- audio (dtw): `visemes_from_audio`, text and audio only (OpenAI, Harmony Speech).
- audio (dtw, cached): the same with espeak's rendering of the text already cached (a
  repeated line); same result, lower cost.
- audio (linear): espeak's timeline stretched onto the speech span found by energy.
- quick: `visemes_quick`, the fallback when the aligner is backlogged: espeak only
  transcribes, words are spread by their sounds over the clauses' stretches of speech.
- even spread (naive baseline): espeak's phonemes spread evenly over the whole audio.

Error: the keyframe name sequences are aligned (edit distance), and for every keyframe
matched by name, |t_estimate - t_truth| is a boundary error; "matched" is the share of
true keyframes that found a partner; "bias" is the mean signed error (negative: the
estimate is early). "frames" is the share of 10 ms frames where the estimated mouth shape
equals the true one. "ms/s audio" is the method's compute time per second of speech. Piper's real-time factor is printed too.
"""

from __future__ import annotations

import argparse
import datetime
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.common import machine, percentile
from bridge.media import phonemize
from bridge.providers.base import TimedUnit
from bridge.providers.tts.piper import alignment_units, default_model_paths, load_voice
from bridge.speech.visemes import (
    Viseme,
    clear_reference_cache,
    visemes_from_audio,
    visemes_from_characters,
    visemes_from_phonemes,
    visemes_quick,
)

SENTENCES: tuple[str, ...] = (
    "Hello there, traveller! Welcome to our quiet little village.",
    "The quick brown fox jumps over the lazy dog.",
    "I never expected to see you here again, old friend.",
    "Would you like to buy some fresh bread before the market closes?",
    "The dragon has been sleeping under the mountain for centuries.",
    "Please keep your voice down; the guards are listening.",
    "She sells sea shells by the sea shore every summer morning.",
    "My brother went north to find work in the mines.",
    "Why did the captain refuse to leave the harbour?",
    "That sword belonged to my grandfather, and I will not sell it.",
    "If you follow the river, you will reach the old bridge by nightfall.",
    "Thank you so much for helping me with the harvest.",
    "The wizard's tower is just beyond the misty forest.",
    "Watch out for wolves when you cross the valley at night.",
    "We should gather more firewood before the storm arrives.",
    "Do you remember the song we used to sing as children?",
    "The merchant claims his potions can cure any illness.",
    "I think someone has been stealing apples from my orchard.",
    "Bring me three silver coins and I will tell you everything.",
    "Our ship leaves at dawn, so get some rest tonight.",
    "The judge looked tired, but his voice was calm and clear.",
    "Nobody knows exactly what happened to the missing shepherd.",
    "Measure twice and cut once, as my teacher always said.",
    "The children laughed and chased the chickens around the yard.",
)

_WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")


@dataclass
class Sample:
    text: str
    samples: np.ndarray
    sample_rate: int
    units: list[TimedUnit]
    synth_s: float

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.samples.size / self.sample_rate


@dataclass
class Score:
    errors: list[float] = field(default_factory=list)
    signed: list[float] = field(default_factory=list)
    matched: int = 0
    truth_keyframes: int = 0
    frames_equal: int = 0
    frames_total: int = 0
    seconds: float = 0.0


def synthesize_all(texts: Sequence[str]) -> list[Sample]:
    from piper import SynthesisConfig

    model, config = default_model_paths()
    voice = load_voice(model, config)
    rate = int(voice.config.sample_rate)
    list(voice.synthesize("Warm up.", include_alignments=True))  # first run allocates
    result: list[Sample] = []
    for text in texts:
        started = time.perf_counter()
        chunks = list(voice.synthesize(text, syn_config=SynthesisConfig(), include_alignments=True))
        elapsed = time.perf_counter() - started
        pieces, units, offset = [], [], 0
        for chunk in chunks:
            audio = np.asarray(chunk.audio_int16_array, dtype=np.int16)
            if not chunk.phoneme_alignments:
                raise SystemExit(f"piper gave no alignment for {text!r}; is the `onnx` package installed?")
            units += alignment_units(chunk.phoneme_alignments, offset, rate)
            pieces.append(audio)
            offset += audio.size
        result.append(Sample(text, np.concatenate(pieces), rate, units, elapsed))
    return result


def word_groups(units: Sequence[TimedUnit]) -> list[tuple[float, float, int]]:
    """Spoken words in piper's timeline: (start, end, phoneme symbol count).

    espeak, and so piper, runs some function words together ("has been" -> "hɐzbɪn"),
    so a group can hold several words of the text.
    """
    groups: list[tuple[float, float, int]] = []
    current: list[TimedUnit] = []
    for unit in [*units, TimedUnit(" ", 0, 0)]:
        text = unit.text.strip()
        if not text or all(not c.isalpha() for c in text):
            if current:
                letters = sum(c.isalpha() for u in current for c in u.text)
                groups.append((current[0].start_ms, current[-1].end_ms, letters))
            current = []
        else:
            current.append(unit)
    return groups


def _assign(word_sizes: Sequence[int], group_sizes: Sequence[int]) -> list[int] | None:
    """Which group each word belongs to: monotonic, every group used, sizes matched best."""
    n, g = len(word_sizes), len(group_sizes)
    if g > n or g == 0:
        return None
    inf = float("inf")
    best = [[inf] * (g + 1) for _ in range(n + 1)]
    back = [[0] * (g + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    prefix = [0, *np.cumsum(word_sizes).tolist()]
    for i in range(1, n + 1):
        for k in range(1, min(i, g) + 1):
            for j in range(k - 1, i):
                cost = best[j][k - 1] + abs(group_sizes[k - 1] - (prefix[i] - prefix[j]))
                if cost < best[i][k]:
                    best[i][k], back[i][k] = cost, j
    owner = [0] * n
    i, k = n, g
    while k > 0:
        j = back[i][k]
        for w in range(j, i):
            owner[w] = k - 1
        i, k = j, k - 1
    return owner


def word_spans(text: str, units: Sequence[TimedUnit]) -> list[tuple[float, float]] | None:
    """True time span of each word of `text`, from piper's timeline.

    Words run together by espeak share their group's span in proportion to their own
    phoneme counts (from espeak), as a character aligner would split them.
    """
    words = list(_WORD.finditer(text))
    groups = word_groups(units)
    if len(words) == len(groups):
        return [(start, end) for start, end, _ in groups]
    by_start = {w.char_start: w for w in phonemize.phonemize(text).words}
    sizes = [
        max(1, sum(c.isalpha() for u in by_start[m.start()].phonemes for c in u.text)) if m.start() in by_start else len(m.group())
        for m in words
    ]
    owner = _assign(sizes, [size for _, _, size in groups])
    if owner is None:
        return None
    spans: list[tuple[float, float]] = []
    for index, group in enumerate(owner):
        start, end, _ = groups[group]
        members = [k for k, o in enumerate(owner) if o == group]
        total = sum(sizes[k] for k in members)
        before = sum(sizes[k] for k in members if k < index)
        spans.append((start + (end - start) * before / total, start + (end - start) * (before + sizes[index]) / total))
    return spans


def character_alignment(text: str, units: Sequence[TimedUnit]) -> list[TimedUnit] | None:
    """ElevenLabs-style per-character times built from piper's true word spans."""
    words = list(_WORD.finditer(text))
    spans = word_spans(text, units)
    if spans is None:
        return None
    end_of_audio = units[-1].end_ms if units else 0.0
    chars: list[TimedUnit] = []
    cursor = 0
    previous_end = 0.0
    for match, (start, end) in zip(words, spans):
        gap = text[cursor : match.start()]
        for k, c in enumerate(gap):  # spaces and punctuation share the gap
            step = (start - previous_end) / max(len(gap), 1)
            chars.append(TimedUnit(c, previous_end + k * step, previous_end + (k + 1) * step))
        word = match.group()
        step = (end - start) / len(word)
        for k, c in enumerate(word):
            chars.append(TimedUnit(c, start + k * step, start + (k + 1) * step))
        cursor, previous_end = match.end(), end
    tail = text[cursor:]
    for k, c in enumerate(tail):
        step = (end_of_audio - previous_end) / max(len(tail), 1)
        chars.append(TimedUnit(c, previous_end + k * step, previous_end + (k + 1) * step))
    return chars


def even_spread(sample: Sample) -> list[Viseme]:
    """The naive baseline: espeak's phonemes, equal length each, over the whole audio."""
    spoken = [u.text for u in phonemize.phonemize(sample.text).phonemes if u.text]
    step = sample.duration_ms / max(len(spoken), 1)
    return visemes_from_phonemes([TimedUnit(p, i * step, (i + 1) * step) for i, p in enumerate(spoken)])


def _align(truth: Sequence[Viseme], estimate: Sequence[Viseme]) -> list[tuple[int, int]]:
    """Pairs (i, j) of same-name keyframes on a minimum edit-distance alignment."""
    n, m = len(truth), len(estimate)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            same = truth[i - 1].name == estimate[j - 1].name
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (0 if same else 1))
    pairs: list[tuple[int, int]] = []
    i, j = n, m
    while i > 0 and j > 0:
        same = truth[i - 1].name == estimate[j - 1].name
        if cost[i, j] == cost[i - 1, j - 1] + (0 if same else 1):
            if same:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def _active(visemes: Sequence[Viseme], times: np.ndarray) -> list[str]:
    starts = np.array([v.t_ms for v in visemes])
    index = np.searchsorted(starts, times, side="right") - 1
    return [visemes[k].name if k >= 0 else "sil" for k in index]


def score(score: Score, truth: Sequence[Viseme], estimate: Sequence[Viseme], duration_ms: float) -> None:
    # The opening "sil" at 0 ms is given, not estimated: leave it out of the errors.
    pairs = [(i, j) for i, j in _align(truth, estimate) if truth[i].t_ms > 0 or estimate[j].t_ms > 0]
    score.signed += [estimate[j].t_ms - truth[i].t_ms for i, j in pairs]
    score.errors += [abs(truth[i].t_ms - estimate[j].t_ms) for i, j in pairs]
    score.matched += len(pairs)
    score.truth_keyframes += sum(1 for v in truth if v.t_ms > 0)
    grid = np.arange(0.0, duration_ms, 10.0) + 5.0
    a, b = _active(truth, grid), _active(estimate, grid) if estimate else ["sil"] * grid.size
    score.frames_equal += sum(x == y for x, y in zip(a, b))
    score.frames_total += grid.size


def run(count: int, show: bool = False) -> tuple[str, list[tuple[str, str]]]:
    texts = SENTENCES[:count]
    samples = synthesize_all(texts)
    methods: dict[str, Callable[[Sample], list[Viseme] | None]] = {
        "characters (word spans + espeak)": lambda s: (
            visemes_from_characters(s.text, chars) if (chars := character_alignment(s.text, s.units)) else None
        ),
        # Uncached rows clear espeak's cached rendering first so their cost includes it.
        "audio: espeak + DTW (visemes_from_audio)": lambda s: (
            clear_reference_cache(), visemes_from_audio(s.samples, s.sample_rate, s.text)
        )[1],
        "audio: DTW, espeak reference cached": lambda s: visemes_from_audio(s.samples, s.sample_rate, s.text),
        "audio: espeak stretched to speech span": lambda s: (
            clear_reference_cache(), visemes_from_audio(s.samples, s.sample_rate, s.text, method="linear")
        )[1],
        "quick: no rendering (visemes_quick)": lambda s: (
            clear_reference_cache(), visemes_quick(s.samples, s.sample_rate, s.text)
        )[1],
        "naive: even spread over the audio": even_spread,
    }
    scores = {name: Score() for name in methods}
    skipped: dict[str, int] = {name: 0 for name in methods}
    for sample in samples:
        truth = visemes_from_phonemes(sample.units)
        for name, method in methods.items():
            started = time.perf_counter()
            estimate = method(sample)
            scores[name].seconds += time.perf_counter() - started
            if estimate is None:
                skipped[name] += 1
                continue
            score(scores[name], truth, estimate, sample.duration_ms)
        if show:
            print(sample.text)
            print("  truth:", " ".join(f"{v.name}@{v.t_ms:.0f}" for v in truth))

    audio_s = sum(s.duration_ms for s in samples) / 1000.0
    synth_s = sum(s.synth_s for s in samples)
    header = f"{'method':44} {'mean ms':>8} {'p90 ms':>7} {'bias ms':>8} {'matched':>8} {'frames':>7} {'ms/s audio':>10}"
    lines = [header, "-" * len(header)]
    rows: list[tuple[str, str]] = []
    for name, sc in scores.items():
        if not sc.errors:
            lines.append(f"{name:44} (no result)")
            continue
        mean = float(np.mean(sc.errors))
        p90 = percentile(sc.errors, 90)
        matched = sc.matched / max(sc.truth_keyframes, 1)
        frames = sc.frames_equal / max(sc.frames_total, 1)
        cost = 1000.0 * sc.seconds / audio_s
        note = f" ({skipped[name]} skipped)" if skipped[name] else ""
        bias = float(np.mean(sc.signed))
        lines.append(f"{name:44} {mean:8.1f} {p90:7.1f} {bias:+8.1f} {matched:8.0%} {frames:7.0%} {cost:10.1f}{note}")
        rows.append((f"visemes {name}", f"mean {mean:.1f} ms, p90 {p90:.1f} ms, frames {frames:.0%}"))
    rtf = synth_s / audio_s
    lines.append("")
    lines.append(
        f"{len(samples)} sentences, {audio_s:.1f} s of audio; piper joe-medium real-time factor "
        f"{rtf:.3f} (synthesis {synth_s:.2f} s, onnxruntime CPU)"
    )
    rows.append(("piper real-time factor", f"{rtf:.3f}"))
    title = f"Viseme accuracy vs piper's exact timing, {datetime.date.today()} ({machine()})"
    return title + "\n" + "\n".join(lines), rows


def main(argv: Sequence[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="how many sentences (>= 20 for the docs)")
    parser.add_argument("--show", action="store_true", help="print every sentence's true keyframes")
    args = parser.parse_args(argv)
    report, rows = run(args.sentences, args.show)
    print(report)
    return rows


if __name__ == "__main__":
    main()
