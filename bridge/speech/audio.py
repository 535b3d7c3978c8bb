"""PCM helpers for speech going out to engines: format conversion, streaming resampling,
fixed-size chunking and a loudness envelope.

Everything here is synchronous numpy work on small buffers, cheap enough to call from the
event loop between awaits. Audio on the wire is always mono s16le, so int16 numpy arrays
are the currency; float32 in [-1, 1] only appears at the edges (models, DSP).
"""

from __future__ import annotations

import math
import struct

import numpy as np
import soxr

INT16_SCALE = 32768.0
VOLUME_FLOOR_DB = -60.0


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] (or any integer PCM) as mono int16, clipping what overflows.

    Floats are scaled by 32767 so that +1.0 and -1.0 both fit; int16 input is returned
    unchanged (no copy), other integer widths are rescaled by their own range.
    """
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(np.rint(arr * 32767.0), -32768, 32767).astype(np.int16)
    if np.issubdtype(arr.dtype, np.integer):
        bits = np.iinfo(arr.dtype).bits
        if np.issubdtype(arr.dtype, np.unsignedinteger):
            centred = arr.astype(np.int64) - (1 << (bits - 1))
        else:
            centred = arr.astype(np.int64)
        shifted = centred >> (bits - 16) if bits > 16 else centred << (16 - bits)
        return np.clip(shifted, -32768, 32767).astype(np.int16)
    raise TypeError(f"cannot convert {arr.dtype} audio to int16")


def to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 PCM as float32 in [-1, 1); float input is only cast."""
    arr = np.asarray(samples)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    return to_int16(arr).astype(np.float32) / INT16_SCALE


class StreamResampler:
    """Resamples a stream of int16 pieces of any size without clicks at the joins.

    A backend's rate (piper 22050, OpenAI 24000) rarely matches the rate the engine asked
    for, and audio arrives piece by piece, so resampling each piece on its own would leave
    filter edge effects at every boundary. soxr's streaming resampler keeps its filter state
    between calls; `flush()` drains the tail so the total output length is exactly
    ``round(total_in * dst_rate / src_rate)``.
    """

    def __init__(self, src_rate: int, dst_rate: int, *, quality: str = "HQ") -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
        self.src_rate = int(src_rate)
        self.dst_rate = int(dst_rate)
        self._passthrough = self.src_rate == self.dst_rate
        self._stream = None if self._passthrough else soxr.ResampleStream(
            self.src_rate, self.dst_rate, 1, dtype="int16", quality=quality
        )
        self._finished = False

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Resample the next piece; may return fewer samples than expected (filter delay)."""
        if self._finished:
            raise RuntimeError("StreamResampler.process() after flush(); make a new resampler")
        data = np.ascontiguousarray(to_int16(samples).reshape(-1))
        if self._stream is None:
            return data.copy()
        return self._stream.resample_chunk(data, last=False)

    def flush(self) -> np.ndarray:
        """The samples still held in the filter; call once at the end of the stream."""
        if self._finished:
            return np.zeros(0, dtype=np.int16)
        self._finished = True
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)


class Chunker:
    """Cuts a stream of samples into chunks of exactly `chunk_ms` (the last may be shorter).

    Engines schedule playback per chunk and visemes travel with their chunk, so every
    chunk but the final one has the same length whatever piece sizes the backend produced.
    """

    def __init__(self, sample_rate: int, chunk_ms: float) -> None:
        if sample_rate <= 0 or chunk_ms <= 0:
            raise ValueError(f"need a positive rate and chunk length, got {sample_rate} Hz, {chunk_ms} ms")
        self.sample_rate = int(sample_rate)
        self.chunk_ms = float(chunk_ms)
        self.chunk_samples = max(1, round(self.sample_rate * self.chunk_ms / 1000.0))
        self._pending: list[np.ndarray] = []
        self._pending_len = 0

    @property
    def pending_samples(self) -> int:
        return self._pending_len

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """Add samples; return every whole chunk now available (possibly none)."""
        return list(self.push_block(samples))

    def push_block(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return every whole chunk now available as the rows of one 2-D
        array (possibly of 0 rows), so their bytes and volumes can be had in one pass."""
        data = to_int16(samples).reshape(-1)
        if data.size:
            self._pending.append(data)
            self._pending_len += data.size
        if self._pending_len < self.chunk_samples:
            return np.zeros((0, self.chunk_samples), dtype=np.int16)
        joined = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        whole = (joined.size // self.chunk_samples) * self.chunk_samples
        chunks = joined[:whole].reshape(-1, self.chunk_samples).copy()  # not a view of the caller's array
        rest = joined[whole:].copy() if whole < joined.size else joined[:0]
        self._pending = [rest] if rest.size else []
        self._pending_len = rest.size
        return chunks

    def flush(self) -> np.ndarray | None:
        """The last partial chunk, or None when nothing is left."""
        if not self._pending_len:
            return None
        rest = np.concatenate(self._pending)
        self._pending, self._pending_len = [], 0
        return rest


def volume_envelope(
    samples: np.ndarray,
    sample_rate: int,
    window_ms: float = 10.0,
    *,
    floor_db: float = VOLUME_FLOOR_DB,
) -> list[float]:
    """Loudness per `window_ms`, as values in 0..1 an engine can drive a jaw or a meter with.

    Mapping: RMS of the window in dBFS (0 dB = a full-scale square wave, so a full-scale
    sine reads -3.0 dB), then ``(dB - floor_db) / -floor_db`` clipped to 0..1. With the
    default floor of -60 dBFS, silence is 0.0, a full-scale sine 0.95, typical speech
    (-30..-15 dBFS) 0.5..0.75. Decibels rather than raw RMS because loudness is heard
    logarithmically; a linear mapping leaves quiet syllables looking closed. Values are
    rounded to 3 decimals; a final partial window counts as a window.
    """
    if floor_db >= 0:
        raise ValueError("floor_db must be negative")
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return volume_envelopes(arr.reshape(1, -1), sample_rate, window_ms, floor_db=floor_db)[0]
    data = to_float32(arr).reshape(-1)
    window = max(1, round(sample_rate * window_ms / 1000.0))
    if data.size == 0:
        return []
    whole = (data.size // window) * window
    squares = data.astype(np.float64)
    squares *= squares
    sums = squares[:whole].reshape(-1, window).sum(axis=1)
    lengths = np.full(sums.size, float(window))
    if whole < data.size:
        sums = np.append(sums, squares[whole:].sum())
        lengths = np.append(lengths, float(data.size - whole))
    means = sums / lengths
    means[np.isnan(means)] = 0.0  # as the definition reads it (NaN is not above 1e-12)
    return _levels(means, floor_db).tolist()


#: int16 squared and summed exactly in float64, divided by this: the same float as summing
#: the squares of int16 / 32768 (every term and partial sum is exact in both).
_INT16_POWER = INT16_SCALE * INT16_SCALE


def volume_envelopes(
    chunks: np.ndarray,
    sample_rate: int,
    window_ms: float = 10.0,
    *,
    floor_db: float = VOLUME_FLOOR_DB,
) -> list[list[float]]:
    """`volume_envelope` of each row of a 2-D int16 array (chunks of equal length), in one
    numpy pass; the values are exactly those of `volume_envelope` on each row.

    Why: the envelope is computed for every chunk sent (25 a second per talking character);
    per call, numpy's overheads and the per-window float arithmetic in Python cost more than
    the sums themselves, so a TTS piece's chunks are measured together, int16 is squared in
    float64 directly (integers up to 2^30, exact) and each window's value is looked up.
    """
    if floor_db >= 0:
        raise ValueError("floor_db must be negative")
    rows, size = chunks.shape
    window = max(1, round(sample_rate * window_ms / 1000.0))
    if rows == 0 or size == 0:
        return [[] for _ in range(rows)]
    squares = chunks.astype(np.float64)
    squares *= squares
    per_row = size // window
    whole = per_row * window
    sums = squares[:, :whole].reshape(rows, per_row, window).sum(axis=2)
    if whole == size:
        # One division: the sum over 2^30 is exact, so dividing by 2^30 * window at once
        # rounds the same exact quotient as dividing by 2^30 and then by window.
        sums /= _INT16_POWER * window
        return _levels(sums, floor_db).tolist()
    # a final partial window per row
    sums = np.concatenate([sums, squares[:, whole:].sum(axis=1, keepdims=True)], axis=1)
    sums /= _INT16_POWER
    lengths = np.append(np.full(per_row, float(window)), float(size - whole))
    return _levels(sums / lengths, floor_db).tolist()


def _level(mean_square: float, floor_db: float) -> float:
    """One window's envelope value from the mean of its squared float samples: the
    definition (`volume_envelope`), evaluated in Python floats."""
    rms = math.sqrt(mean_square)
    db = 20.0 * math.log10(rms) if rms > 1e-12 else -240.0
    return round(min(1.0, max(0.0, (db - floor_db) / -floor_db)), 3)


#: Per floor_db: (thresholds, values): a window whose mean square is at least
#: thresholds[k - 1] (and below thresholds[k]) has the value values[k].
_LEVEL_TABLES: dict[float, tuple[np.ndarray, np.ndarray]] = {}


def _levels(mean_squares: np.ndarray, floor_db: float) -> np.ndarray:
    """`_level` of every element, looked up: the value only takes the 1001 steps 0.000..1.000
    and rises with the mean square, so a table of the mean square where each step starts
    gives exactly `_level`'s result with one `searchsorted` instead of a sqrt, a log10 and a
    decimal rounding in Python per window (~3 us each; four windows per chunk)."""
    table = _LEVEL_TABLES.get(floor_db)
    if table is None:
        table = _LEVEL_TABLES[floor_db] = _level_table(floor_db)
    thresholds, values = table
    return values.take(np.searchsorted(thresholds, mean_squares, side="right"))


def _level_table(floor_db: float) -> tuple[np.ndarray, np.ndarray]:
    """For each step k/1000 the smallest float mean square with `_level` >= it, found by
    bisection over the floats (their bit patterns are ordered like their values) around
    where the formula puts it; steps a full-scale signal cannot reach start at infinity."""
    steps = [round(k / 1000, 3) for k in range(1001)]
    top = _bits(4.0)  # beyond any float audio in [-1, 1] (and a full-scale int16 square is 1.0)
    thresholds: list[float] = []
    lo_bound = 0
    for k in range(1, 1001):
        target = steps[k]
        if _level(_float(top), floor_db) < target:
            thresholds.append(math.inf)
            continue
        guess = 10.0 ** ((floor_db + (k - 0.5) / 1000 * -floor_db) / 10.0)
        lo, hi = max(lo_bound, _bits(guess * (1 - 1e-12))), min(top, _bits(guess * (1 + 1e-12)))
        if lo > lo_bound and _level(_float(lo), floor_db) >= target:
            lo = lo_bound  # the guess was off: search the whole remaining range
        if _level(_float(hi), floor_db) < target:
            hi = top
        while lo < hi:  # smallest bit pattern in [lo, hi] whose level reaches the step
            mid = (lo + hi) // 2
            if _level(_float(mid), floor_db) >= target:
                hi = mid
            else:
                lo = mid + 1
        thresholds.append(_float(lo))
        lo_bound = lo
    values = [_level(0.0, floor_db)] + [_level(t, floor_db) if t != math.inf else 1.0 for t in thresholds]
    if any(values[k] != steps[k] for k in range(1, 1001) if thresholds[k - 1] != math.inf) or values[0] != 0.0:
        raise ArithmeticError(f"no monotonic volume table for floor {floor_db} dB")  # pragma: no cover
    return np.array(thresholds), np.array(values)


def _bits(value: float) -> int:
    return int.from_bytes(struct.pack("<d", value), "little")


def _float(bits: int) -> float:
    return float(struct.unpack("<d", bits.to_bytes(8, "little"))[0])


# ------------------------------------------------------------------ spectral features

FEATURE_RATE = 16000
FEATURE_HOP_MS = 10.0
FEATURE_WINDOW_MS = 25.0
_N_FFT = 512
_N_MELS = 40
_N_CEPSTRA = 13
_FILTERBANK: np.ndarray | None = None
_DCT: np.ndarray | None = None


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_filterbank() -> np.ndarray:
    """Triangular filters on the mel scale, 60..7600 Hz (speech, below 16 kHz Nyquist)."""
    global _FILTERBANK
    if _FILTERBANK is None:
        edges_mel = np.linspace(_mel(60.0), _mel(7600.0), _N_MELS + 2)
        edges_hz = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
        bins = np.fft.rfftfreq(_N_FFT, 1.0 / FEATURE_RATE)
        bank = np.zeros((_N_MELS, bins.size))
        for k in range(_N_MELS):
            lo, mid, hi = edges_hz[k], edges_hz[k + 1], edges_hz[k + 2]
            rising = (bins - lo) / (mid - lo)
            falling = (hi - bins) / (hi - mid)
            bank[k] = np.clip(np.minimum(rising, falling), 0.0, None)
        _FILTERBANK = bank
    return _FILTERBANK


def _dct_matrix() -> np.ndarray:
    global _DCT
    if _DCT is None:
        n = np.arange(_N_MELS)
        k = np.arange(_N_CEPSTRA)[:, None]
        _DCT = np.cos(np.pi * k * (2 * n + 1) / (2 * _N_MELS)) * np.sqrt(2.0 / _N_MELS)
    return _DCT


def spectral_frames(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mel cepstra and loudness of speech, one row per 10 ms.

    Frame ``i`` is centred on ``i * 10 ms``. Returns ``(cepstra, energy_db)``: 12 mel
    cepstral coefficients (c1..c12; c0, the loudness, is left out) per frame, the classic
    speaker-tolerant description of what is being said, and each frame's RMS in dBFS.
    Audio is resampled to 16 kHz first, so recordings at any rate are comparable.
    """
    data = to_float32(samples).reshape(-1).astype(np.float64)
    if sample_rate != FEATURE_RATE and data.size:
        data = soxr.resample(data, sample_rate, FEATURE_RATE)
    hop = int(FEATURE_RATE * FEATURE_HOP_MS / 1000)
    win = int(FEATURE_RATE * FEATURE_WINDOW_MS / 1000)
    count = max(0, math.ceil(data.size / hop))
    if count == 0:
        return np.zeros((0, _N_CEPSTRA - 1)), np.zeros(0)
    padded = np.zeros(count * hop + win)
    padded[win // 2 : win // 2 + data.size] = data
    index = np.arange(win)[None, :] + hop * np.arange(count)[:, None]
    frames = padded[index]
    energy = np.sqrt((frames**2).mean(axis=1))
    energy_db = 20.0 * np.log10(np.maximum(energy, 1e-7))
    emphasised = frames - 0.97 * np.concatenate([np.zeros((count, 1)), frames[:, :-1]], axis=1)
    spectrum = np.abs(np.fft.rfft(emphasised * np.hanning(win), _N_FFT)) ** 2
    log_mel = np.log(spectrum @ _mel_filterbank().T + 1e-10)
    cepstra = (log_mel @ _dct_matrix().T)[:, 1:]
    return cepstra, energy_db
