"""Mic audio conversion (any supported rate -> 16 kHz int16) and WAV encode/decode."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.media.pcm import (
    SUPPORTED_INPUT_RATES,
    MicResampler,
    decode_wav,
    encode_wav,
    int16_to_pcm,
    pcm_to_int16,
    resample,
    to_int16,
)


def tone(rate: int, freq: float = 440.0, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def feed_in_chunks(resampler: MicResampler, data: bytes, sizes: list[int]) -> np.ndarray:
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(resampler.feed(data[pos : pos + size]))
        pos += size
        i += 1
    out.append(resampler.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("rate", SUPPORTED_INPUT_RATES)
def test_every_supported_rate_becomes_16k_with_pitch_and_length_kept(rate: int) -> None:
    data = int16_to_pcm(tone(rate, 440.0, seconds=1.0))
    # Odd chunk sizes split samples across messages, as a client may.
    out = feed_in_chunks(MicResampler(rate), data, [1, 333, 4095, 7, 960])
    assert out.dtype == np.int16
    assert abs(out.size - 16000) <= 2, out.size
    assert abs(dominant_hz(out, 16000) - 440.0) < 2.0
    # The level survives too (a resampler bug often halves or clips it).
    rms = np.sqrt(np.mean(out[1000:-1000].astype(np.float64) ** 2))
    assert 0.5 * 32767 / np.sqrt(2) * 0.95 < rms < 0.5 * 32767 / np.sqrt(2) * 1.05


@settings(max_examples=25, deadline=None)
@given(
    rate=st.sampled_from([8000, 22050, 44100, 48000]),
    sizes=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=8),
)
def test_chunking_never_changes_the_output(rate: int, sizes: list[int]) -> None:
    data = int16_to_pcm(tone(rate, 300.0, seconds=0.5))
    whole = feed_in_chunks(MicResampler(rate), data, [len(data)])
    chunked = feed_in_chunks(MicResampler(rate), data, sizes)
    assert np.array_equal(whole, chunked)


def test_streaming_matches_one_shot_resampling() -> None:
    samples = tone(44100, 523.0, seconds=0.7)
    streamed = feed_in_chunks(MicResampler(44100), int16_to_pcm(samples), [1001, 17])
    once = resample(samples, 44100, 16000)
    assert streamed.size == once.size
    assert np.abs(streamed.astype(np.int32) - once.astype(np.int32)).max() <= 1


def test_16k_passes_through_unchanged_and_odd_byte_is_carried() -> None:
    resampler = MicResampler(16000)
    samples = np.array([1, -2, 300, -32768, 32767], dtype=np.int16)
    data = int16_to_pcm(samples)
    first = resampler.feed(data[:3])  # one sample and half of the next
    assert first.tolist() == [1]
    second = resampler.feed(data[3:])
    assert second.tolist() == [-2, 300, -32768, 32767]
    assert resampler.flush().size == 0


def test_little_endian_is_honoured() -> None:
    assert MicResampler(16000).feed(b"\x01\x02").tolist() == [0x0201]
    assert pcm_to_int16(b"\xff\xff\x00\x80").tolist() == [-1, -32768]


def test_unsupported_rate_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"11025 is not supported; use one of 8000, 16000, 22050"):
        MicResampler(11025)


def test_odd_length_pcm_is_refused_where_no_carry_is_possible() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        pcm_to_int16(b"\x00\x01\x02")


def test_flush_restarts_the_stream() -> None:
    resampler = MicResampler(48000)
    data = int16_to_pcm(tone(48000, seconds=0.2))
    first = np.concatenate([resampler.feed(data), resampler.flush()])
    second = np.concatenate([resampler.feed(data), resampler.flush()])
    assert np.array_equal(first, second)


def test_one_shot_resample_and_float_input() -> None:
    out = resample(tone(44100, 1000.0, seconds=0.5), 44100, 16000)
    assert abs(out.size - 8000) <= 1
    assert abs(dominant_hz(out, 16000) - 1000.0) < 4
    assert to_int16(np.array([0.0, 1.0, -1.0, 2.0])).tolist() == [0, 32767, -32768, 32767]
    with pytest.raises(TypeError):
        to_int16(np.array([1, 2], dtype=np.int32))


def test_wav_round_trip_is_bit_exact() -> None:
    samples = (np.random.default_rng(1).integers(-32768, 32767, 12345)).astype(np.int16)
    data = encode_wav(samples, 22050)
    with wave.open(io.BytesIO(data)) as reader:  # a standard reader agrees on the header
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate(), reader.getnframes()) == (
            1, 2, 22050, 12345,
        )  # fmt: skip
    decoded, rate = decode_wav(data)
    assert rate == 22050
    assert np.array_equal(decoded, samples)


def test_stereo_wav_is_mixed_to_mono() -> None:
    left = np.array([1000, -1000, 0], dtype=np.int16)
    right = np.array([3000, -3000, 10], dtype=np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(48000)
        writer.writeframes(np.column_stack([left, right]).astype("<i2").tobytes())
    mono, rate = decode_wav(buffer.getvalue())
    assert rate == 48000
    assert mono.tolist() == [2000, -2000, 5]


def test_wav_that_is_not_16_bit_or_not_wav_is_refused() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(1)
        writer.setframerate(8000)
        writer.writeframes(b"\x80" * 100)
    with pytest.raises(ValueError, match="16-bit"):
        decode_wav(buffer.getvalue())
    with pytest.raises(ValueError, match="not a readable PCM WAV"):
        decode_wav(b"ID3\x04 this is an mp3")
