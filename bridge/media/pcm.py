"""Microphone audio in: raw `pcm_s16le` bytes at the client's rate -> 16 kHz int16 samples.

Every speech model the bridge uses (Silero VAD, Whisper locally or behind an API) wants
16 kHz mono, so the bridge converts once, as the audio arrives, and everything after this
module counts time in 16 kHz samples. The conversion is streaming and stateful: a network
message may end in the middle of a sample (an odd byte) or in the middle of the resampler's
filter window, and both are carried to the next message so that chunking never changes the
result.

Also here: WAV encode/decode for int16 mono (the format HTTP STT backends accept and the
`stt.transcribe` event may carry). Sans-I/O: no trio, no sockets.
"""

from __future__ import annotations

import io
import wave

import numpy as np
import soxr

TARGET_RATE = 16_000
SUPPORTED_INPUT_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 44100, 48000)


def check_input_rate(sample_rate: int) -> int:
    """Return `sample_rate` if the bridge accepts it for mic audio, else raise ValueError."""
    if sample_rate not in SUPPORTED_INPUT_RATES:
        rates = ", ".join(str(r) for r in SUPPORTED_INPUT_RATES)
        raise ValueError(f"audio_in.sample_rate {sample_rate} is not supported; use one of {rates}")
    return sample_rate


def pcm_to_int16(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Little-endian 16-bit PCM bytes (even length) as a native int16 array (a copy)."""
    if len(data) % 2:
        raise ValueError(f"pcm_s16le needs an even number of bytes, got {len(data)}")
    return np.frombuffer(bytes(data), dtype="<i2").astype(np.int16)


def int16_to_pcm(samples: np.ndarray) -> bytes:
    """Native int16 samples as little-endian PCM bytes."""
    return np.asarray(samples, dtype=np.int16).astype("<i2", copy=False).tobytes()


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Accept int16 as is, or float in [-1, 1) (scaled by 32768, clipped); else a caller bug."""
    array = np.asarray(samples)
    if array.dtype == np.int16:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return float32_to_int16(array)
    raise TypeError(f"expected int16 or float samples, got {array.dtype}")


def resample(samples: np.ndarray, from_rate: int, to_rate: int = TARGET_RATE) -> np.ndarray:
    """One-shot resampling of a whole int16 mono buffer (for utterances, not streams)."""
    samples = to_int16(samples)
    if from_rate == to_rate:
        return samples.copy()
    if samples.size == 0:
        return np.zeros(0, np.int16)
    return float32_to_int16(soxr.resample(int16_to_float32(samples), from_rate, to_rate))


def int16_to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1), the form neural audio models take."""
    return np.asarray(samples, dtype=np.int16).astype(np.float32) / 32768.0


def float32_to_int16(samples: np.ndarray) -> np.ndarray:
    """The inverse of `int16_to_float32`, rounding and clipping (resampling can overshoot)."""
    return np.clip(np.rint(np.asarray(samples) * 32768.0), -32768, 32767).astype(np.int16)


class MicResampler:
    """Streams `pcm_s16le` bytes at `sample_rate` into 16 kHz int16 samples.

    Feed each `stt.audio` payload in order; the output concatenated over all calls (plus
    `flush()`) is the same whatever the chunking, bit for bit. (soxr's int16 mode is not:
    it rounds per block, so chunking moves samples by 1-2 LSB; hence float32 inside.) An
    odd trailing byte is kept for the next call, since a client may split a sample across
    messages.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = check_input_rate(sample_rate)
        self._carry = b""
        self._stream: soxr.ResampleStream | None = None
        if sample_rate != TARGET_RATE:
            self._stream = self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream:
        return soxr.ResampleStream(self.sample_rate, TARGET_RATE, 1, dtype="float32")

    def feed(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        """Convert one payload; may return fewer samples than expected (filter latency)."""
        raw = self._carry + bytes(data)
        usable = len(raw) - (len(raw) % 2)
        self._carry = raw[usable:]
        samples = np.frombuffer(raw[:usable], dtype="<i2").astype(np.int16)
        if self._stream is None:
            return samples
        if samples.size == 0:
            return np.zeros(0, np.int16)
        return float32_to_int16(self._stream.resample_chunk(int16_to_float32(samples)))

    def flush(self) -> np.ndarray:
        """End of stream: return the samples the resampler was still holding.

        A dangling odd byte is dropped (it is half a sample). The resampler starts afresh
        for the next stream.
        """
        self._carry = b""
        if self._stream is None:
            return np.zeros(0, np.int16)
        tail = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        self._stream = self._new_stream()
        return float32_to_int16(tail)


# --------------------------------------------------------------------------- WAV


def encode_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """A complete RIFF/WAVE file holding `samples` as 16-bit mono PCM."""
    pcm = int16_to_pcm(to_int16(samples))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(int(sample_rate))
        writer.writeframes(pcm)
    return buffer.getvalue()


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV into (mono int16 samples, sample rate).

    Stereo and other multi-channel files are averaged to mono, since a game may hand over
    whatever its recorder produced; other sample widths and compressed WAVs are refused
    with a ValueError that says what was found.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            frames = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a readable PCM WAV file: {exc}") from None
    if width != 2:
        raise ValueError(f"WAV must be 16-bit PCM, this one has {8 * width}-bit samples")
    samples = np.frombuffer(frames[: len(frames) - len(frames) % (2 * channels)], dtype="<i2")
    if channels > 1:
        mixed = samples.reshape(-1, channels).astype(np.int32).mean(axis=1)
        return mixed.round().astype(np.int16), rate
    return samples.astype(np.int16), rate
