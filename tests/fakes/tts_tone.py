"""Known content for the fake TTS servers: a sine tone whose pitch and length follow the text.

Every fake speech backend "speaks" a text as one sine tone: its frequency comes from a hash
of the text (`tone_frequency`), its length from the number of characters
(`ms_per_char` each, 50 ms by default), and character ``i`` occupies
``[i * ms_per_char, (i + 1) * ms_per_char)``. A test can then check what a client decoded
(sample count, sample rate, dominant frequency) and the character timing it parsed,
without any real voice. The same helpers encode the tone in the formats backends send
(raw PCM, WAV, MP3, Ogg Opus, FLAC, AAC, G.711) and pace a stream (time to first audio,
real-time factor) for benchmarks.
"""

from __future__ import annotations

import io
import wave
import zlib
from dataclasses import dataclass

import av
import numpy as np
import trio

MS_PER_CHAR = 50.0
AMPLITUDE = 0.5


def tone_frequency(text: str) -> float:
    """200..1360 Hz in 40 Hz steps, chosen by the text: distinct texts usually differ."""
    return 200.0 + 40.0 * (zlib.crc32(text.encode("utf-8")) % 30)


def tone_sample_count(text: str, sample_rate: int, ms_per_char: float = MS_PER_CHAR) -> int:
    return round(len(text) * ms_per_char * sample_rate / 1000.0)


def tone(text: str, sample_rate: int, ms_per_char: float = MS_PER_CHAR, frequency: float | None = None) -> np.ndarray:
    """The fake speech for ``text``: mono int16 at ``sample_rate``."""
    n = tone_sample_count(text, sample_rate, ms_per_char)
    freq = tone_frequency(text) if frequency is None else frequency
    t = np.arange(n, dtype=np.float64) / sample_rate
    return np.rint(AMPLITUDE * 32767.0 * np.sin(2.0 * np.pi * freq * t)).astype(np.int16)


@dataclass(frozen=True, slots=True)
class CharSpan:
    char: str
    start_ms: float
    end_ms: float


def char_spans(text: str, ms_per_char: float = MS_PER_CHAR, offset_ms: float = 0.0) -> list[CharSpan]:
    return [CharSpan(c, offset_ms + i * ms_per_char, offset_ms + (i + 1) * ms_per_char) for i, c in enumerate(text)]


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """The strongest frequency in ``samples`` (Hann window, parabolic peak interpolation)."""
    x = samples.astype(np.float64)
    if len(x) < 16:
        return 0.0
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    if 0 < k < len(spectrum) - 1:
        a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
        denom = a - 2 * b + c
        k = k + (0.5 * (a - c) / denom if denom else 0.0)  # type: ignore[assignment]
    return float(k) * sample_rate / len(x)


# --------------------------------------------------------------------------- encoding


def wav_bytes(samples: np.ndarray, sample_rate: int, *, streamed: bool = False) -> bytes:
    """A mono 16-bit WAV; ``streamed`` writes 0xFFFFFFFF sizes as streaming servers do."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.astype("<i2").tobytes())
    data = bytearray(buf.getvalue())
    if streamed:
        data[4:8] = b"\xff\xff\xff\xff"
        data[40:44] = b"\xff\xff\xff\xff"
    return bytes(data)


_PYAV = {
    # name: (container format, codec, encoder rate or None to keep the input rate)
    "mp3": ("mp3", "libmp3lame", None),
    "opus": ("ogg", "libopus", 48000),
    "flac": ("flac", "flac", None),
    "aac": ("adts", "aac", None),
}


def encode_with_pyav(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    container_format, codec, rate = _PYAV[fmt]
    if rate is not None and rate != sample_rate:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        samples, sample_rate = np.concatenate(parts).astype(np.int16), rate
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def _g711(samples: np.ndarray, law: str) -> bytes:
    """Encode by nearest table value: slow-ish but exact and only used for small test clips."""
    from bridge.media.decode import _g711_table  # the decoder's own table: the inverse by search

    table = _g711_table(law).astype(np.int32)
    order = np.argsort(table)
    sorted_vals = table[order]
    idx = np.clip(np.searchsorted(sorted_vals, samples.astype(np.int32)), 1, 255)
    left, right = sorted_vals[idx - 1], sorted_vals[idx]
    pick = np.where(np.abs(samples - left) <= np.abs(right - samples), idx - 1, idx)
    return order[pick].astype(np.uint8).tobytes()


def encode(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """``fmt``: pcm (s16le), wav, wav_streamed, mp3, opus (Ogg), flac, aac (ADTS), ulaw, alaw."""
    if fmt == "pcm":
        return samples.astype("<i2").tobytes()
    if fmt in ("wav", "wav_streamed"):
        return wav_bytes(samples, sample_rate, streamed=fmt == "wav_streamed")
    if fmt in ("ulaw", "alaw"):
        return _g711(samples, fmt)
    return encode_with_pyav(samples, sample_rate, fmt)


# --------------------------------------------------------------------------- pacing


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast a fake speaks: ``ttfa`` seconds before the first audio, then each piece of
    ``d`` seconds of audio ``d * rtf`` seconds after the previous one (0: all at once)."""

    ttfa: float = 0.0
    rtf: float = 0.0

    async def before(self, index: int, seconds: float) -> None:
        """Sleep as long as making piece ``index`` (``seconds`` of audio) takes at this pace."""
        delay = self.ttfa if index == 0 else seconds * self.rtf
        if delay > 0:
            await trio.sleep(delay)


def split_even(data: bytes, parts: int) -> list[bytes]:
    """``data`` in ``parts`` nearly equal slices (no empty ones unless data is short)."""
    parts = max(1, min(parts, len(data) or 1))
    cuts = [round(len(data) * i / parts) for i in range(parts + 1)]
    return [data[cuts[i] : cuts[i + 1]] for i in range(parts)]
