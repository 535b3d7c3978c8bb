"""Mouth shapes for speech: IPA phonemes to the 15 Oculus/Meta visemes, with timing.

Engines receive keyframes ``[t_ms, name, weight]``: at ``t_ms`` (from the start of the
speech) the mouth starts moving to ``name`` at strength ``weight`` and holds it until the
next keyframe. Backends differ in what timing they give, so there are three ways in:

- `visemes_from_phonemes`: timed phonemes (piper's alignments, espeak's events). Exact.
- `visemes_from_characters`: timed characters (ElevenLabs). Each word's span is known;
  espeak-ng phonemizes the text and its own relative durations place the phonemes inside
  the word.
- `visemes_from_audio`: audio and text only (OpenAI, Harmony Speech). espeak-ng speaks
  the text itself, and dynamic time warping of the two recordings' spectra maps espeak's
  (known) phoneme times onto the real audio. See docs/visemes.md for measured accuracy.
- `visemes_quick`: the same inputs, no espeak rendering and no warping: a much cheaper,
  rougher estimate for when the aligner is backlogged and audio must not wait.

`visemes_between` then picks the keyframes of one audio chunk.
"""

from __future__ import annotations

import math
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bridge.media import phonemize as espeak
from bridge.providers.base import TimedUnit
from bridge.speech import audio as pcm

VISEMES: tuple[str, ...] = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")

# ---------------------------------------------------------------------------- the table

# One IPA symbol (or affricate) -> viseme. Covers every symbol espeak-ng's English voices
# (en-us, en, en-gb-x-rp, en-gb-scotland, en-029, en-us-nyc, en-gb-x-gbcwmd, -gbclan)
# produce, plus the common IPA a non-English word in a sentence may bring in.
_CONSONANTS: dict[str, str] = {
    # lips closed
    "p": "PP", "b": "PP", "m": "PP", "ɱ": "PP", "ɓ": "PP", "ʙ": "PP",
    # lower lip to teeth
    "f": "FF", "v": "FF", "ʋ": "FF", "ɸ": "FF", "β": "FF",
    # tongue between teeth
    "θ": "TH", "ð": "TH",
    # tongue tip on the ridge
    "t": "DD", "d": "DD", "ɾ": "DD", "ʔ": "DD", "ʈ": "DD", "ɖ": "DD", "ɗ": "DD", "c": "DD", "ɟ": "DD",
    # back of the tongue
    "k": "kk", "g": "kk", "ɡ": "kk", "ŋ": "kk", "x": "kk", "ɣ": "kk", "q": "kk", "ɢ": "kk",
    "χ": "kk", "ç": "kk", "ʝ": "kk", "ɴ": "kk",
    # lips pushed forward
    "tʃ": "CH", "dʒ": "CH", "ʃ": "CH", "ʒ": "CH", "ʧ": "CH", "ʤ": "CH", "ɕ": "CH", "ʑ": "CH",
    "ʂ": "CH", "ʐ": "CH", "tɕ": "CH", "dʑ": "CH",
    # teeth together
    "s": "SS", "z": "SS", "ts": "SS", "dz": "SS", "ʦ": "SS", "ʣ": "SS",
    # tongue up, mouth slightly open
    "n": "nn", "l": "nn", "ɫ": "nn", "ɬ": "nn", "ɮ": "nn", "ɲ": "nn", "ʎ": "nn", "ɳ": "nn", "ɭ": "nn", "ʟ": "nn",
    # r sounds
    "ɹ": "RR", "r": "RR", "ɻ": "RR", "ʀ": "RR", "ʁ": "RR", "ɽ": "RR", "ɺ": "RR",
    # glides take the shape of the vowel they lead into
    "w": "U", "ʍ": "U", "ɥ": "U", "j": "I", "ɰ": "U",
}
_VOWELS: dict[str, str] = {
    # open
    "a": "aa", "ɑ": "aa", "ɐ": "aa", "æ": "aa", "ʌ": "aa", "ä": "aa", "ɶ": "aa",
    # mid, spread
    "e": "E", "ɛ": "E", "ə": "E", "ɜ": "E", "ɘ": "E", "ɞ": "E", "ɤ": "E",
    # close, spread
    "i": "I", "ɪ": "I", "ᵻ": "I", "ɨ": "I", "ɯ": "I",
    # mid, rounded
    "o": "O", "ɔ": "O", "ɒ": "O", "ø": "O", "œ": "O", "ɵ": "O",
    # close, rounded
    "u": "U", "ʊ": "U", "ʉ": "U", "y": "U", "ʏ": "U",
    # r-coloured vowels look like r
    "ɚ": "RR", "ɝ": "RR",
}
SYMBOLS: dict[str, str] = {**_CONSONANTS, **_VOWELS}
_AFFRICATES = frozenset(s for s in _CONSONANTS if len(s) == 2)

_PRIMARY, _SECONDARY = "ˈ", "ˌ"
_STRESS = frozenset({_PRIMARY, _SECONDARY, "'", ","})
_LENGTH = frozenset({"ː", "ˑ", ":"})
_TIES = frozenset({"\u0361", "\u035c", "‿"})
# Modifier letters that colour the previous sound without changing its mouth shape.
_MODIFIERS = frozenset({"ʰ", "ʲ", "ʷ", "ˠ", "ˤ", "ⁿ", "ˡ", "˞", "ʼ", "-", "_", "#", "^", "~"})
_PAUSE_MARKS = frozenset(".,;:!?…—–\"()[]{}«»¡¿$^") | {"", "_"}
_REDUCED = frozenset({"ə", "ɐ", "ᵻ", "ɚ", "ɨ"})
_ASPIRATE = frozenset({"h", "ɦ", "ħ", "ʕ", "ɧ"})

# Weights: how far the mouth goes towards the shape. Closures and stressed vowels are
# full; unstressed and reduced vowels are smaller, which keeps fast speech from flapping.
WEIGHT_CONSONANT = 1.0
WEIGHT_PRIMARY = 1.0
WEIGHT_SECONDARY = 0.85
WEIGHT_UNSTRESSED = 0.7
WEIGHT_REDUCED = 0.5
WEIGHT_ASPIRATE = 0.4
WEIGHT_SILENCE = 1.0

# A hole in the timeline (or a word gap) at least this long is shown as a closed mouth;
# shorter ones keep the previous shape, as lips do not close between words.
PAUSE_MS = 120.0


def symbol_viseme(symbol: str) -> str | None:
    """The viseme of one IPA symbol (base letter, diacritics ignored), or None if unknown."""
    if symbol in SYMBOLS:
        return SYMBOLS[symbol]
    base = "".join(c for c in unicodedata.normalize("NFD", symbol) if not unicodedata.combining(c))
    base = "".join(c for c in base if c not in _LENGTH and c not in _STRESS and c not in _MODIFIERS)
    if base in SYMBOLS:
        return SYMBOLS[base]
    if base in _ASPIRATE:
        return "sil"
    return None


def unmapped_symbols(ipa: str) -> list[str]:
    """The sounds in an IPA string that the table does not know (for tests and diagnostics).

    Stress, length, tie and modifier marks are understood, not reported; words are split
    at whitespace and pauses (punctuation) are skipped.
    """
    unknown: list[str] = []
    for word in ipa.split():
        if _is_pause_text(word):
            continue
        sounds, _, _, _ = _split_unit(word)
        unknown += [symbol for symbol, _ in sounds if symbol_viseme(symbol) is None and symbol not in _PAUSE_MARKS]
    return unknown


# --------------------------------------------------------------------------- keyframes


@dataclass(frozen=True, slots=True)
class Viseme:
    """A keyframe: from ``t_ms`` on, move the mouth to ``name`` at strength ``weight``."""

    t_ms: float
    name: str
    weight: float = 1.0

    def as_wire(self) -> list[object]:
        """``[t_ms, name, weight]`` as the protocol carries it (whole ms, 2 decimals)."""
        return [int(round(self.t_ms)), self.name, round(float(self.weight), 2)]


@dataclass(slots=True)
class _Segment:
    """One sound inside the timeline, before it becomes a keyframe."""

    symbol: str  # "" for a pause
    start: float
    end: float
    stress: str = ""
    long: bool = False

    @property
    def is_pause(self) -> bool:
        return self.symbol == ""


def _split_unit(text: str) -> tuple[list[tuple[str, bool]], str, bool, bool]:
    """Break one phoneme unit's text into (symbol, long) sounds.

    Returns the sounds, the stress mark found, and whether the unit is only a length mark
    or only a stress mark (piper times those codepoints separately).
    """
    sounds: list[tuple[str, bool]] = []
    stress = ""
    chars = unicodedata.normalize("NFD", text)
    i = 0
    join_next = False
    while i < len(chars):
        c = chars[i]
        if c in _STRESS and not (c == "," and len(chars) == 1):
            stress = stress or ("ˈ" if c in (_PRIMARY, "'") else "ˌ")
        elif c in _LENGTH and sounds:
            sounds[-1] = (sounds[-1][0], True)
        elif c in _TIES:
            join_next = True
        elif unicodedata.combining(c) or c in _MODIFIERS or c in _LENGTH or c.isspace() or c.isdigit():
            pass
        elif c == "(":  # espeak's language switch "(fr)...(en)": skip the tag
            close = chars.find(")", i)
            i = close if close >= 0 else len(chars)
        elif join_next and sounds:
            sounds[-1] = (sounds[-1][0] + c, sounds[-1][1])
            join_next = False
        elif sounds and (sounds[-1][0] + c) in _AFFRICATES and not sounds[-1][1]:
            sounds[-1] = (sounds[-1][0] + c, False)
        else:
            sounds.append((c, False))
        i += 1
    only_length = not sounds and any(c in _LENGTH for c in chars) and not any(c in _PAUSE_MARKS - {":"} for c in chars)
    only_stress = not sounds and bool(stress)
    return sounds, stress, only_length, only_stress


def _is_pause_text(text: str) -> bool:
    stripped = text.strip()
    return stripped == "" and text == "" or (stripped != "" and all(c in _PAUSE_MARKS for c in stripped))


def _segments(units: Iterable[TimedUnit]) -> list[_Segment]:
    """Flatten timed units into timed sounds, resolving piper's per-codepoint marks.

    espeak gives whole phonemes ("ˈaʊ", "ɑːɹ"); piper gives codepoints, each with its
    own duration ("ˈ", "a", "ʊ"). A lone stress mark's time goes to the sound after it
    (it is the onset of that vowel), a lone length mark's to the sound before it, and a
    unit with several sounds is split among them (a diphthong's glide gets less time).
    Spaces carry no sound: their time stays with the previous sound unless the gap is
    long enough to be a pause.
    """
    segments: list[_Segment] = []
    pending_stress = ""
    pending_start: float | None = None
    for unit in units:
        start, end = float(unit.start_ms), float(max(unit.end_ms, unit.start_ms))
        text = unit.text
        if text and text.isspace():
            if end - start >= PAUSE_MS:
                segments.append(_Segment("", start, end))
            continue
        if _is_pause_text(text) or text in ("^", "$"):
            segments.append(_Segment("", start, end))
            pending_stress, pending_start = "", None
            continue
        sounds, stress, only_length, only_stress = _split_unit(text)
        if only_stress:
            pending_stress = stress
            pending_start = start if pending_start is None else pending_start
            continue
        if only_length or not sounds:
            if segments and not segments[-1].is_pause:
                segments[-1].end = max(segments[-1].end, end)
                segments[-1].long = segments[-1].long or only_length
            continue
        if pending_start is not None:
            start = min(start, pending_start)
        stress = stress or pending_stress
        pending_stress, pending_start = "", None
        shares = []
        vowel_seen = False
        for symbol, long in sounds:
            is_vowel = symbol in _VOWELS
            share = 1.0 + (0.6 if long else 0.0)
            if is_vowel and vowel_seen:
                share *= 0.7  # the glide of a diphthong is quicker than its nucleus
            vowel_seen = vowel_seen or is_vowel
            shares.append(share)
        total = sum(shares)
        cursor = start
        for (symbol, long), share in zip(sounds, shares):
            length = (end - start) * share / total
            # Stress belongs to the nucleus, the first vowel; a diphthong's glide is weaker.
            vowel_stress = stress if symbol in _VOWELS else ""
            if vowel_stress:
                stress = ""
            segments.append(_Segment(symbol, cursor, cursor + length, vowel_stress, long))
            cursor += length
    return _merge_affricates(segments)


def _merge_affricates(segments: list[_Segment]) -> list[_Segment]:
    """t + ʃ and d + ʒ timed separately (piper) are one sound, as espeak reports them."""
    merged: list[_Segment] = []
    for seg in segments:
        prev = merged[-1] if merged else None
        if prev is not None and (prev.symbol + seg.symbol) in _AFFRICATES and abs(prev.end - seg.start) < 1.0:
            prev.symbol += seg.symbol
            prev.end = seg.end
            continue
        merged.append(seg)
    return merged


def _vowel_weight(symbol: str, stress: str) -> float:
    if stress == _PRIMARY:
        return WEIGHT_PRIMARY
    if stress == _SECONDARY:
        return WEIGHT_SECONDARY
    if symbol in _REDUCED:
        return WEIGHT_REDUCED
    return WEIGHT_UNSTRESSED


def visemes_from_phonemes(phonemes: Sequence[TimedUnit]) -> list[Viseme]:
    """Keyframes for timed IPA phonemes (espeak-ng's symbols, as piper and espeak give them).

    Units may be whole phonemes with stress and length marks ("ˈaʊ", "ɑːɹ") or single
    codepoints; empty units and punctuation are pauses. The result starts at 0 ms, has no
    two neighbours with the same name, and ends with ``sil`` where the speech ends. An /h/
    takes the shape of the sound after it (the mouth is already forming the vowel). A hole
    of `PAUSE_MS` or more between phonemes closes the mouth.
    """
    segments = [s for s in _segments(phonemes) if s.end >= s.start]
    frames: list[Viseme] = []
    cursor = 0.0

    def emit(t: float, name: str, weight: float) -> None:
        if frames and frames[-1].name == name:
            if weight > frames[-1].weight:
                frames[-1] = Viseme(frames[-1].t_ms, name, weight)
            return
        if frames and t <= frames[-1].t_ms:
            frames[-1] = Viseme(frames[-1].t_ms, name, weight)  # same instant: the later sound wins
            if len(frames) > 1 and frames[-2].name == name:
                frames.pop()
            return
        frames.append(Viseme(t, name, weight))

    for index, seg in enumerate(segments):
        start = max(seg.start, cursor if frames else seg.start)
        if frames and start - cursor >= PAUSE_MS:
            emit(cursor, "sil", WEIGHT_SILENCE)
        if not frames and start > 0:
            emit(0.0, "sil", WEIGHT_SILENCE)
        if seg.is_pause:
            emit(start, "sil", WEIGHT_SILENCE)
        elif seg.symbol in _ASPIRATE:
            nxt = segments[index + 1] if index + 1 < len(segments) else None
            if nxt is not None and not nxt.is_pause and nxt.symbol not in _ASPIRATE:
                emit(start, symbol_viseme(nxt.symbol) or "sil", WEIGHT_ASPIRATE)
            else:
                emit(start, "sil", WEIGHT_SILENCE)
        else:
            name = symbol_viseme(seg.symbol)
            if name is None:
                cursor = max(cursor, seg.end)
                continue  # an unknown symbol keeps the current shape
            weight = _vowel_weight(seg.symbol, seg.stress) if seg.symbol in _VOWELS else WEIGHT_CONSONANT
            emit(start, name, weight)
        cursor = max(cursor, seg.end)
    if frames and frames[-1].name != "sil":
        emit(cursor, "sil", WEIGHT_SILENCE)
    return frames


def visemes_between(visemes: Sequence[Viseme], start_ms: float, end_ms: float) -> list[Viseme]:
    """The keyframes of one audio chunk ``[start_ms, end_ms)``.

    The keyframe already active at `start_ms` comes first, moved to `start_ms`, so an
    engine that starts playing at this chunk (or dropped the previous one) still knows the
    mouth shape; keyframes exactly at `start_ms` are not duplicated.
    """
    if end_ms <= start_ms:
        return []
    result: list[Viseme] = []
    active: Viseme | None = None
    for v in visemes:
        if v.t_ms <= start_ms:
            active = v
        elif v.t_ms < end_ms:
            if active is not None and not result:
                result.append(Viseme(float(start_ms), active.name, active.weight))
                active = None
            result.append(v)
        else:
            break
    if not result and active is not None:
        result.append(Viseme(float(start_ms), active.name, active.weight))
    elif active is not None and result and result[0].t_ms > start_ms:
        result.insert(0, Viseme(float(start_ms), active.name, active.weight))
    return result


# ------------------------------------------------------------------ character alignment


def _char_times(text: str, chars: Sequence[TimedUnit]) -> list[tuple[float, float]]:
    """One (start, end) per character of `text`, spreading multi-character units evenly."""
    times: list[tuple[float, float]] = []
    for unit in chars:
        n = max(1, len(unit.text))
        step = (unit.end_ms - unit.start_ms) / n
        for k in range(n):
            times.append((unit.start_ms + k * step, unit.start_ms + (k + 1) * step))
    if len(times) < len(text):
        last = times[-1][1] if times else 0.0
        times.extend([(last, last)] * (len(text) - len(times)))
    return times


def _warp_word(word: espeak.WordPhonemes, t0: float, t1: float) -> list[TimedUnit]:
    """The word's phonemes, stretched from espeak's span onto [t0, t1] keeping proportions."""
    e0, e1 = word.start_ms, word.end_ms
    scale = (t1 - t0) / (e1 - e0) if e1 > e0 else 0.0
    return [
        TimedUnit(p.text, t0 + (p.start_ms - e0) * scale, t0 + (p.end_ms - e0) * scale)
        for p in word.phonemes
    ]


def visemes_from_characters(text: str, chars: Sequence[TimedUnit], *, voice: str = espeak.DEFAULT_VOICE) -> list[Viseme]:
    """Keyframes from a character alignment (ElevenLabs' ``alignment``).

    The characters' own text is what the times refer to, so it is phonemized (`text` is
    used only when the alignment carries no text). Each word's span comes from its first
    and last character; espeak-ng's phonemes for the word are laid across that span in
    proportion to espeak's durations. Punctuation between words is a pause.
    Blocks for about 1 ms per second of speech (espeak); fine to call from a worker thread.
    Raises `EspeakError` when libespeak-ng is not installed.
    """
    aligned = "".join(u.text for u in chars) or text
    if not aligned.strip() or not chars:
        return []
    times = _char_times(aligned, chars)
    result = espeak.phonemize(aligned, voice)
    units: list[TimedUnit] = []
    previous_end: float | None = None
    previous_char_end = 0
    for word in result.words:
        if not word.phonemes or word.char_start >= len(times):
            continue
        t0 = times[word.char_start][0]
        t1 = times[min(word.char_end, len(times)) - 1][1]
        if previous_end is not None:
            t0 = max(t0, previous_end)
        t1 = max(t1, t0)
        between = aligned[previous_char_end : word.char_start]
        if previous_end is not None and t0 > previous_end and any(c in _PAUSE_MARKS for c in between):
            units.append(TimedUnit("", previous_end, t0))
        units.extend(_warp_word(word, t0, t1))
        previous_end, previous_char_end = t1, word.char_end
    return visemes_from_phonemes(units)


# ------------------------------------------------------------------------- audio only


class AlignmentAbandoned(Exception):
    """`should_stop` said stop: the caller no longer wants this alignment."""


def _speech_frames(log_energy: np.ndarray, below_peak_db: float = 35.0, floor_db: float = -55.0) -> np.ndarray:
    """Which 10 ms frames hold speech: louder than both the floor and (peak - 35 dB)."""
    if log_energy.size == 0:
        return np.zeros(0, dtype=bool)
    threshold = max(floor_db, float(np.percentile(log_energy, 99)) - below_peak_db)
    return log_energy > threshold


def _dtw_path(cost: np.ndarray, should_stop: Callable[[], bool] | None = None, *, open_end: bool = False) -> np.ndarray:
    """Minimum-cost monotonic path through `cost` (steps right, down, diagonal).

    With `open_end` the path ends in the last column at whichever row is cheapest per step
    (accumulated cost over the path length ``i + m``): `cost`'s columns are a recording
    that is only partly there yet, its rows the whole reference, and the row where the
    path ends is how far into the reference the partial recording has got.

    Each row is computed with numpy: with ``a`` the best of the two cells above, the row
    recurrence ``D[j] = c[j] + min(a[j], D[j-1])`` unrolls to
    ``D = C + minimum.accumulate(a - C_prev)`` where ``C`` is the row's running cost. The
    running costs of all rows are computed at once and every row op writes in place: the
    loop's cost is numpy's per-call overhead, so fewer calls per row is what makes it fast.
    The way back compares Python floats (ties prefer diagonal, then up, as before), which
    is far cheaper than a numpy call per step. `should_stop` is polled every 64 rows.
    Returns (i, j) pairs from (0, 0) to the last cell.
    """
    n, m = cost.shape
    running = np.cumsum(cost, axis=1)
    before = np.zeros_like(running)  # running cost up to, not including, each cell
    before[:, 1:] = running[:, :-1]
    acc = np.empty((n, m))
    acc[0] = running[0]
    best = np.empty(m)
    for i in range(1, n):
        if i % 8 == 0:
            # Each row is ~10 us of small numpy calls that hold the GIL. Without a pause
            # the event loop, which drops the GIL on every socket send, waits up to the
            # 5 ms switch interval to get it back each time (the convoy effect): one
            # aligner thread then throttles every entity's audio. sleep(0) hands it over.
            time.sleep(0)
            if should_stop is not None and i % 64 == 0 and should_stop():
                raise AlignmentAbandoned
        above = acc[i - 1]
        best[0] = above[0]
        np.minimum(above[1:], above[:-1], out=best[1:])
        best -= before[i]
        np.minimum.accumulate(best, out=acc[i])
        acc[i] += running[i]
    i, j = n - 1, m - 1
    if open_end:
        i = int(np.argmin(acc[:, m - 1] / (np.arange(n) + m)))
    rows = [i]
    cols = [j]
    item = acc.item
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diagonal, up, left = item(i - 1, j - 1), item(i - 1, j), item(i, j - 1)
            if diagonal <= up and diagonal <= left:
                i, j = i - 1, j - 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
        rows.append(i)
        cols.append(j)
        if len(rows) % 128 == 0:
            time.sleep(0)  # as above: let the event loop have the GIL
    return np.column_stack([rows[::-1], cols[::-1]])


def _normalise(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    ref = features[mask] if mask.any() else features
    mean = ref.mean(axis=0)
    std = ref.std(axis=0) + 1e-6
    return (features - mean) / std


def _warp_times(times_ms: np.ndarray, path: np.ndarray, src_offset: int, dst_offset: int, hop_ms: float) -> np.ndarray:
    """Map times in the source recording onto the target through a DTW path."""
    src = path[:, 0]
    dst = path[:, 1].astype(float)
    # Average the target frames matched to each source frame: a horizontal run means the
    # source frame was held, and its middle is the best single estimate.
    order, inverse, counts = np.unique(src, return_inverse=True, return_counts=True)
    centre = np.bincount(inverse, weights=dst) / counts
    frames = times_ms / hop_ms - src_offset
    mapped = np.interp(frames, order.astype(float), centre)
    return (mapped + dst_offset) * hop_ms


# Cepstra used for alignment (c1..c8) plus loudness. Measured on piper speech (see
# docs/visemes.md): the higher cepstra and deltas describe the voice more than the words,
# and loudness marks syllable nuclei and closures in any voice.
_ALIGN_CEPSTRA = 8
# Above this many DTW cells (about 15 s of speech on each side) the quadratic cost is not
# worth it: stretch linearly instead. The bridge synthesizes a sentence at a time.
MAX_DTW_CELLS = 2_250_000


def _alignment_features(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    cepstra, energy_db = pcm.spectral_frames(samples, sample_rate)
    features = np.concatenate([cepstra[:, :_ALIGN_CEPSTRA], energy_db[:, None]], axis=1)
    return features, energy_db


def _speech_span(speech: np.ndarray) -> tuple[int, int]:
    """First speech frame and one past the last."""
    return int(np.argmax(speech)), int(len(speech) - np.argmax(speech[::-1]))


# ------------------------------------------------------------ espeak's reference, cached


@dataclass(frozen=True, slots=True)
class EspeakReference:
    """What the alignment needs from espeak's own rendering of a text.

    It depends only on (text, voice), and game characters repeat their lines (greetings,
    barks, shop talk), so it is kept: a repeated line then costs only the target's
    features and the warping, not an espeak synthesis and a second feature pass.
    """

    phonemes: tuple[TimedUnit, ...]
    times: np.ndarray  # (phonemes, 2): start and end ms in espeak's audio
    features: np.ndarray  # normalised, speech span only
    r0: int  # speech span in 10 ms frames
    r1: int


#: References kept (least recently used dropped). One costs ~8 KB per second of speech
#: (9 float64 features per 10 ms), so a full cache of sentence-long lines is a few MB.
REFERENCE_CACHE_SIZE = 256
_CACHE: OrderedDict[tuple[str, str], EspeakReference | None] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def clear_reference_cache() -> None:
    """Forget every cached espeak reference (benchmarks measuring the uncached cost)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _cached_reference(text: str, voice: str) -> tuple[bool, EspeakReference | None]:
    """(found, reference) without computing anything; None means espeak said nothing."""
    with _CACHE_LOCK:
        if (text, voice) in _CACHE:
            _CACHE.move_to_end((text, voice))
            return True, _CACHE[(text, voice)]
    return False, None


def _reference(text: str, voice: str, should_stop: Callable[[], bool] | None = None) -> EspeakReference | None:
    """espeak's timeline and features for `text`, from the cache or freshly synthesized."""
    found, ref = _cached_reference(text, voice)
    if found:
        return ref
    synth = espeak.synthesize(text, voice, should_stop=should_stop)
    if synth.aborted:
        raise AlignmentAbandoned
    ref = None
    if any(u.text for u in synth.phonemes) and synth.samples.size:
        feats, energy = _alignment_features(synth.samples, synth.sample_rate)
        speech = _speech_frames(energy)
        if speech.any():
            r0, r1 = _speech_span(speech)
            times = np.array([[u.start_ms, u.end_ms] for u in synth.phonemes], dtype=float)
            ref = EspeakReference(tuple(synth.phonemes), times, _normalise(feats, speech)[r0:r1], r0, r1)
    with _CACHE_LOCK:
        _CACHE[(text, voice)] = ref
        _CACHE.move_to_end((text, voice))
        while len(_CACHE) > REFERENCE_CACHE_SIZE:
            _CACHE.popitem(last=False)
    return ref


# -------------------------------------------------------------------------- alignment


def _placed(phonemes: Sequence[TimedUnit], mapped: np.ndarray, speech_start: float, speech_end: float) -> list[TimedUnit]:
    """Mapped (start, end) per phoneme as a monotonic timeline inside the speech span."""
    units: list[TimedUnit] = []
    last = 0.0
    for unit, (start, end) in zip(phonemes, mapped):
        start, end = float(max(start, 0.0)), float(max(end, start, 0.0))
        if unit.text and (end <= speech_start or start >= speech_end):
            start = end = min(max(start, speech_start), speech_end)
        start, end = max(start, last), max(end, last)
        units.append(TimedUnit(unit.text, start, end))
        last = end
    if units and units[0].text:
        units.insert(0, TimedUnit("", 0.0, units[0].start_ms))
    return units


@dataclass(frozen=True, slots=True)
class Alignment:
    """Phoneme times found in a recording, and the speech spans that were matched.

    ``reference_end_ms`` is how far into espeak's speech the recording reached: its speech
    end for a whole recording, the open end's match for a partial one. `rate` is the
    recording's speaking time per unit of espeak's over the matched spans.
    """

    units: list[TimedUnit]
    speech_start_ms: float
    speech_end_ms: float
    reference_start_ms: float
    reference_end_ms: float

    @property
    def rate(self) -> float:
        span = self.reference_end_ms - self.reference_start_ms
        return (self.speech_end_ms - self.speech_start_ms) / span if span > 0 else 1.0


def espeak_reference(text: str, voice: str = espeak.DEFAULT_VOICE, should_stop: Callable[[], bool] | None = None) -> EspeakReference | None:
    """espeak's rendering of `text` as the alignment needs it (cached; None: nothing said).

    Blocks (a worker-process espeak call and a feature pass, a few ms a sentence)."""
    return _reference(text, voice, should_stop)


def align_to_reference(
    samples: np.ndarray,
    sample_rate: int,
    ref: EspeakReference,
    *,
    method: str = "dtw",
    partial: bool = False,
    rate: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
) -> Alignment | None:
    """Map `ref`'s phoneme times onto `samples` (see `align_espeak_to_audio`).

    With `partial` the recording is only the start of the speech (the rest is still being
    synthesized): its speech span is matched to however much of espeak's it covers
    (open-end DTW), and the phonemes past that point follow at `rate` target ms per
    espeak ms. Returns None when the recording holds too little speech to match.
    """
    if method not in ("dtw", "linear"):
        raise ValueError(f"unknown alignment method {method!r}; use 'dtw' or 'linear'")
    target = pcm.to_int16(np.asarray(samples)).reshape(-1)
    if target.size == 0:
        return None
    hop_ms = pcm.FEATURE_HOP_MS
    target_feats, target_energy = _alignment_features(target, sample_rate)
    target_speech = _speech_frames(target_energy)
    if not target_speech.any():
        return None
    t0, t1 = _speech_span(target_speech)
    r0, r1 = ref.r0, ref.r1
    too_big = (t1 - t0) * (r1 - r0) > MAX_DTW_CELLS
    if partial:
        if method == "linear" or too_big or min(t1 - t0, r1 - r0) < _MIN_PARTIAL_FRAMES:
            return None
    if method == "linear" or too_big or min(t1 - t0, r1 - r0) < 3:
        scale = (t1 - t0) / max(r1 - r0, 1)
        mapped = ((ref.times / hop_ms - r0) * scale + t0) * hop_ms
        reached = r1
    else:
        a = ref.features
        b = _normalise(target_feats, target_speech)[t0:t1]
        # Euclidean distances via the dot-product identity: one matrix product, no loops.
        squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        path = _dtw_path(np.sqrt(np.maximum(squared, 0.0)), should_stop, open_end=partial)
        mapped = _warp_times(ref.times.reshape(-1), path, r0, t0, hop_ms).reshape(ref.times.shape)
        reached = r0 + int(path[-1, 0]) + 1
        if partial:
            # Past the matched point espeak's times go on at the given rate from there.
            ref_end, target_end = reached * hop_ms, t1 * hop_ms
            beyond = ref.times > ref_end
            mapped = np.where(beyond, target_end + (ref.times - ref_end) * rate, mapped)
    end_ms = math.inf if partial else t1 * hop_ms
    units = _placed(ref.phonemes, mapped, t0 * hop_ms, end_ms)
    return Alignment(units, t0 * hop_ms, t1 * hop_ms, r0 * hop_ms, reached * hop_ms)


#: A partial recording is matched once it holds this much speech (10 ms frames): less says
#: too little about where in the text it is.
_MIN_PARTIAL_FRAMES = 20


def align_espeak_to_audio(
    samples: np.ndarray,
    sample_rate: int,
    text: str,
    *,
    voice: str = espeak.DEFAULT_VOICE,
    method: str = "dtw",
    should_stop: Callable[[], bool] | None = None,
) -> list[TimedUnit]:
    """Estimate phoneme times in `samples` (speech of `text`) with no timing from the backend.

    espeak-ng speaks the text (or its cached rendering is reused); its phoneme events give
    exact times in its own audio. The speech spans of both recordings are found by
    loudness (leading and trailing silence cut off); then either
    ``method="dtw"``: the two spans are aligned frame by frame by dynamic time warping of
    their mel cepstra and loudness, each normalised per recording, and espeak's phoneme
    times follow the warping path; or
    ``method="linear"``: espeak's span is stretched linearly onto the target's.
    Phonemes that land outside the target's speech span are squeezed onto its edge.
    `should_stop` is polled during the work; when it says True, `AlignmentAbandoned` is
    raised so a worker thread whose caller went away stops within a millisecond or so.
    """
    if method not in ("dtw", "linear"):
        raise ValueError(f"unknown alignment method {method!r}; use 'dtw' or 'linear'")
    target = pcm.to_int16(np.asarray(samples)).reshape(-1)
    if target.size == 0 or not text.strip():
        return []
    ref = _reference(text, voice, should_stop)
    if ref is None:
        return []
    if should_stop is not None and should_stop():
        raise AlignmentAbandoned
    found = align_to_reference(target, sample_rate, ref, method=method, should_stop=should_stop)
    return found.units if found is not None else []


def visemes_from_audio(
    samples: np.ndarray,
    sample_rate: int,
    text: str,
    *,
    voice: str = espeak.DEFAULT_VOICE,
    method: str = "dtw",
    should_stop: Callable[[], bool] | None = None,
) -> list[Viseme]:
    """Keyframes for speech audio whose backend gave no timing at all (OpenAI, Harmony).

    See `align_espeak_to_audio`; costs about 2-3 ms of CPU per second of speech (about
    half that for a text aligned before) and blocks: run it in a worker thread under
    trio. Raises `EspeakError` when libespeak-ng is not installed and `AlignmentAbandoned`
    when `should_stop` asked to stop.
    """
    units = align_espeak_to_audio(samples, sample_rate, text, voice=voice, method=method, should_stop=should_stop)
    if not units:
        return [Viseme(0.0, "sil", WEIGHT_SILENCE)] if np.asarray(samples).size else []
    return visemes_from_phonemes(units)


# ------------------------------------------------------------------- the quick estimate

#: A silence inside the speech at least this long may be a clause break (10 ms frames).
_CLAUSE_GAP_FRAMES = 15


def _frame_energy_db(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS in dBFS per 10 ms block: loudness only, no resampling or spectrum (cheap)."""
    data = pcm.to_float32(samples).reshape(-1)
    hop = max(1, int(sample_rate * pcm.FEATURE_HOP_MS / 1000))
    count = data.size // hop
    if count == 0:
        return np.zeros(0)
    blocks = data[: count * hop].reshape(count, hop).astype(np.float64)
    return 20.0 * np.log10(np.maximum(np.sqrt((blocks * blocks).mean(axis=1)), 1e-7))


def _speech_islands(speech: np.ndarray, t0: int, t1: int, wanted: int) -> list[tuple[int, int]]:
    """Split the speech span at its `wanted - 1` longest silences (if it has that many).

    Clause breaks (commas, full stops) are where a speaker pauses; giving each clause its
    own stretch of audio keeps a pause from being smeared over the words around it.
    """
    gaps: list[tuple[int, int, int]] = []  # (length, start, end) of silent runs inside
    run_start: int | None = None
    for k in range(t0, t1):
        if not speech[k]:
            run_start = k if run_start is None else run_start
        elif run_start is not None:
            if k - run_start >= _CLAUSE_GAP_FRAMES:
                gaps.append((k - run_start, run_start, k))
            run_start = None
    if wanted <= 1 or len(gaps) < wanted - 1:
        return [(t0, t1)]
    chosen = sorted(sorted(gaps, reverse=True)[: wanted - 1], key=lambda g: g[1])
    islands = []
    cursor = t0
    for _, start, end in chosen:
        islands.append((cursor, start))
        cursor = end
    islands.append((cursor, t1))
    return islands


def _word_weight(word: str) -> float:
    """Relative length of an IPA word: sounds, vowels counting more, long ones more still."""
    sounds, _, _, _ = _split_unit(word)
    weight = 0.0
    for symbol, long in sounds:
        weight += (1.5 if symbol in _VOWELS else 1.0) * (1.5 if long else 1.0)
    return weight


def visemes_quick(
    samples: np.ndarray,
    sample_rate: int,
    text: str,
    *,
    voice: str = espeak.DEFAULT_VOICE,
) -> list[Viseme]:
    """A cheap stand-in for `visemes_from_audio` when the aligner is backlogged.

    No espeak rendering and no spectrum: the speech span comes from loudness per 10 ms.
    If espeak's rendering of this text is cached, its timeline is stretched onto the span
    (``method="linear"``); otherwise espeak only transcribes the text (no audio, ~0.1 ms),
    each clause gets one stretch of speech between the longest silences, and its words are
    laid across it in proportion to their sounds (vowels count 1.5, long ones 1.5 times
    more). Costs well under 1 ms per second of speech; accuracy in docs/visemes.md.
    """
    energy = _frame_energy_db(np.asarray(samples), sample_rate)
    if energy.size == 0:
        return []
    speech = _speech_frames(energy)
    if not text.strip() or not speech.any():
        return [Viseme(0.0, "sil", WEIGHT_SILENCE)]
    hop_ms = pcm.FEATURE_HOP_MS
    t0, t1 = _speech_span(speech)
    found, ref = _cached_reference(text, voice)
    if found and ref is not None:
        scale = (t1 - t0) / max(ref.r1 - ref.r0, 1)
        mapped = ((ref.times / hop_ms - ref.r0) * scale + t0) * hop_ms
        return visemes_from_phonemes(_placed(ref.phonemes, mapped, t0 * hop_ms, t1 * hop_ms))
    clauses = [c.split() for c in espeak.phoneme_clauses(text, voice)]
    clauses = [c for c in clauses if c]
    if not clauses:
        return [Viseme(0.0, "sil", WEIGHT_SILENCE)]
    islands = _speech_islands(speech, t0, t1, len(clauses))
    if len(islands) < len(clauses):
        groups = [[w for c in clauses for w in c]]
    else:
        groups = clauses
    units: list[TimedUnit] = [TimedUnit("", 0.0, t0 * hop_ms)] if t0 else []
    for (start, end), words in zip(islands, groups):
        if units and units[-1].end_ms < start * hop_ms:
            units.append(TimedUnit("", units[-1].end_ms, start * hop_ms))
        weights = [max(_word_weight(w), 1e-3) for w in words]
        scale = (end - start) * hop_ms / sum(weights)
        cursor = start * hop_ms
        for word, weight in zip(words, weights):
            units.append(TimedUnit(word, cursor, cursor + weight * scale))
            cursor += weight * scale
    return visemes_from_phonemes(units)
