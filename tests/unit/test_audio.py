"""bridge.speech.audio: conversions, streaming resampling, chunking, loudness, features."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bridge.speech.audio import (
    Chunker,
    StreamResampler,
    spectral_frames,
    to_float32,
    to_int16,
    volume_envelope,
    volume_envelopes,
)


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return to_int16(amplitude * np.sin(2 * np.pi * freq * t))


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    data = to_float32(samples) * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(data, 8 * samples.size))
    return float(np.fft.rfftfreq(8 * samples.size, 1 / rate)[np.argmax(spectrum)])


def pieces(samples: np.ndarray, seed: int = 1) -> list[np.ndarray]:
    """Cut into random sizes, including empty and 1-sample pieces, like a network would."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < samples.size:
        n = int(rng.choice([0, 1, 7, 255, 1024, 3001]))
        out.append(samples[i : i + n])
        i += n
    return out


def test_int16_float_conversions_round_trip_and_clip() -> None:
    floats = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.7, -3.0], dtype=np.float32)
    ints = to_int16(floats)
    assert ints.dtype == np.int16
    assert ints.tolist() == [0, 16384, -16384, 32767, -32767, 32767, -32768]
    back = to_float32(ints)
    assert back.dtype == np.float32
    assert np.allclose(back[:3], floats[:3], atol=1e-4)
    same = np.array([1, -2, 3], dtype=np.int16)
    assert to_int16(same) is same  # no copy for the common case
    assert to_int16(np.array([0x7FFF0000, -0x80000000], dtype=np.int32)).tolist() == [32767, -32768]
    assert to_int16(np.array([0, 128, 255], dtype=np.uint8)).tolist() == [-32768, 0, 32512]


@pytest.mark.parametrize("dst", [24000, 16000, 48000])
def test_stream_resampler_keeps_frequency_and_exact_length(dst: int) -> None:
    src = 22050
    signal = sine(440.0, src, 1.0)
    resampler = StreamResampler(src, dst)
    out = [resampler.process(p) for p in pieces(signal)]
    out.append(resampler.flush())
    result = np.concatenate(out)
    assert result.dtype == np.int16
    assert result.size == round(signal.size * dst / src)
    assert dominant_frequency(result, dst) == pytest.approx(440.0, abs=1.0)
    # Same loudness, no clicks at the joins: compare against a one-shot resample.
    middle = slice(dst // 10, -dst // 10)
    rms_in = np.sqrt(np.mean(to_float32(signal) ** 2))
    rms_out = np.sqrt(np.mean(to_float32(result[middle]) ** 2))
    assert rms_out == pytest.approx(rms_in, rel=0.01)
    expected = np.sin(2 * np.pi * 440.0 * np.arange(result.size) / dst) * 0.5
    # A pure sine stays a sine: the residual after removing a best-fit sine is tiny.
    t = np.arange(result.size) / dst
    basis = np.stack([np.sin(2 * np.pi * 440 * t), np.cos(2 * np.pi * 440 * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis[middle], to_float32(result[middle]), rcond=None)
    residual = to_float32(result[middle]) - basis[middle] @ coef
    assert np.sqrt(np.mean(residual**2)) < 0.002
    assert np.hypot(*coef) == pytest.approx(np.max(np.abs(expected)), rel=0.01)


def test_stream_resampler_same_rate_passes_through_and_refuses_after_flush() -> None:
    resampler = StreamResampler(16000, 16000)
    signal = sine(300.0, 16000, 0.1)
    assert np.array_equal(np.concatenate([resampler.process(p) for p in pieces(signal)]), signal)
    assert resampler.flush().size == 0
    with pytest.raises(RuntimeError, match="after flush"):
        resampler.process(signal)
    with pytest.raises(ValueError):
        StreamResampler(0, 16000)


def test_chunker_emits_equal_chunks_in_order_and_the_rest_on_flush() -> None:
    chunker = Chunker(24000, 20)
    assert chunker.chunk_samples == 480
    signal = np.arange(10_000, dtype=np.int64).astype(np.int16)
    chunks: list[np.ndarray] = []
    for piece in pieces(signal, seed=3):
        chunks += chunker.push(piece)
    rest = chunker.flush()
    assert all(c.size == 480 for c in chunks)
    assert len(chunks) == 10_000 // 480
    assert rest is not None and rest.size == 10_000 % 480
    assert np.array_equal(np.concatenate([*chunks, rest]), signal)
    assert chunker.flush() is None
    assert chunker.push(np.zeros(479, dtype=np.int16)) == []
    assert chunker.pending_samples == 479
    assert [c.size for c in chunker.push(np.zeros(481, dtype=np.int16))] == [480, 480]


def test_chunker_rounds_odd_rates() -> None:
    assert Chunker(22050, 20).chunk_samples == 441
    assert Chunker(11025, 10).chunk_samples == 110  # 110.25 rounds down
    with pytest.raises(ValueError):
        Chunker(16000, 0)


def test_volume_envelope_maps_dbfs_to_unit_range() -> None:
    rate = 16000
    assert volume_envelope(np.zeros(1600, dtype=np.int16), rate) == [0.0] * 10
    square = np.where(np.arange(1600) % 40 < 20, 32767, -32767).astype(np.int16)
    assert volume_envelope(square, rate) == [1.0] * 10
    full_sine = volume_envelope(sine(1000.0, rate, 0.1, amplitude=1.0), rate)
    assert full_sine == [0.95] * 10  # -3.01 dBFS
    quiet = volume_envelope(sine(1000.0, rate, 0.1, amplitude=0.1), rate)
    assert quiet == [pytest.approx((-23.01 + 60) / 60, abs=0.002)] * 10
    very_quiet = volume_envelope(sine(1000.0, rate, 0.1, amplitude=0.0005), rate)
    assert max(very_quiet) == 0.0  # below the -60 dBFS floor


def test_volume_envelope_windows_and_partial_tail() -> None:
    rate = 24000
    loud_then_silent = np.concatenate([sine(500.0, rate, 0.05, 0.5), np.zeros(rate // 20 + 100, dtype=np.int16)])
    env = volume_envelope(loud_then_silent, rate)
    assert len(env) == math.ceil(loud_then_silent.size / 240)
    assert all(v > 0.8 for v in env[:5]) and all(v == 0.0 for v in env[5:])
    assert volume_envelope(np.zeros(0, dtype=np.int16), rate) == []
    assert len(volume_envelope(np.ones(100, dtype=np.int16), rate, window_ms=20)) == 1
    assert all(isinstance(v, float) and round(v, 3) == v for v in env)


def test_spectral_frames_are_10ms_and_tell_sounds_apart() -> None:
    rate = 22050
    low, high = sine(300.0, rate, 0.5), sine(3000.0, rate, 0.5)
    cep_low, energy_low = spectral_frames(low, rate)
    cep_high, _ = spectral_frames(high, rate)
    assert cep_low.shape == (50, 12) and energy_low.shape == (50,)
    assert energy_low[10:40] == pytest.approx(-9.03, abs=0.3)  # 0.5 amplitude sine
    within = np.linalg.norm(cep_low[10] - cep_low[30])
    across = np.linalg.norm(cep_low[10] - cep_high[10])
    assert across > 10 * within


@pytest.mark.parametrize(("rate", "size"), [(24000, 960), (24000, 1000), (22050, 882), (16000, 37), (48000, 1920), (8000, 5)])
def test_volume_envelopes_of_int16_chunks_are_exactly_those_of_the_float_path(rate: int, size: int) -> None:
    """The batched int16 envelope (one numpy pass over a piece's chunks, int16 squared in
    float64) gives the same floats as the float32 path on each chunk: every square and
    partial sum is exact in both, and the per-window arithmetic is the same. Loud, quiet,
    silent, full-scale and partial-window chunks."""
    rng = np.random.default_rng(7)
    rows = [
        rng.integers(-32768, 32768, size),
        (rng.normal(0, 300, size)).astype(np.int64),
        np.zeros(size, np.int64),
        np.full(size, -32768),
        np.where(np.arange(size) % 2, 32767, -32768),
        (rng.normal(0, 3, size)).astype(np.int64),
    ]
    chunks = np.clip(np.array(rows), -32768, 32767).astype(np.int16)
    expected = [volume_envelope(to_float32(row), rate, 10) for row in chunks]
    assert volume_envelopes(chunks, rate, 10) == expected
    assert [volume_envelope(row, rate, 10) for row in chunks] == expected


def test_chunker_blocks_are_the_chunks_push_gives() -> None:
    """push_block hands the same chunks as push, as the rows of one array, and keeps no
    view of the caller's buffer (a backend may reuse it)."""
    rng = np.random.default_rng(3)
    stream = rng.integers(-32768, 32768, 24000 * 2 + 100).astype(np.int16)
    by_list, by_block = Chunker(24000, 40), Chunker(24000, 40)
    listed: list[np.ndarray] = []
    blocked: list[np.ndarray] = []
    for start in range(0, stream.size, 2222):
        piece = stream[start : start + 2222].copy()
        listed += by_list.push(piece)
        block = by_block.push_block(piece)
        assert block.dtype == np.int16 and block.shape[1:] == (960,)
        piece[:] = 0  # the caller reuses its buffer
        blocked += list(block)
    assert len(listed) == len(blocked) == stream.size // 960
    assert all(np.array_equal(a, b) for a, b in zip(listed, blocked))
    assert np.array_equal(np.concatenate(blocked), stream[: len(blocked) * 960])
    assert np.array_equal(by_block.flush(), stream[len(blocked) * 960 :])
