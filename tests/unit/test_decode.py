"""bridge.speech.decode: whole-file and incremental decoding against PyAV's own decoding."""

from __future__ import annotations

import io
import random
import struct
import wave

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.media.decode import (
    DecodeError,
    G711Decoder,
    PcmDecoder,
    WavStreamDecoder,
    decode_audio,
    sniff_format,
    stream_decoder,
)


def sine(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def pyav_encode(samples: np.ndarray, rate: int, container: str, codec: str, options: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=container, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def pyav_decode(data: bytes) -> tuple[np.ndarray, int]:
    """PyAV's own whole-file decode (demuxer and all), as a reference."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.rate)
        parts = [f.to_ndarray().reshape(-1) for frame in container.decode(stream) for f in resampler.resample(frame)]
        return np.concatenate(parts), stream.rate


def feed_split(fmt: str, data: bytes, sizes: list[int], sample_rate: int | None = None) -> tuple[np.ndarray, int | None]:
    decoder = stream_decoder(fmt, sample_rate)
    parts: list[np.ndarray] = []
    pos = i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        parts.append(decoder.feed(data[pos : pos + n]))
        pos += n
        i += 1
    parts.append(decoder.flush())
    return np.concatenate(parts), decoder.sample_rate


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(float) * np.hanning(len(samples))))
    return float(np.argmax(spectrum)) * rate / len(samples)


MP3_24K = pyav_encode(sine(440, 1.3, 24000), 24000, "mp3", "libmp3lame")
MP3_44K = pyav_encode(sine(1000, 0.8, 44100), 44100, "mp3", "libmp3lame")
OPUS = pyav_encode(sine(660, 1.0, 48000), 48000, "ogg", "libopus")
ODD_SPLITS = [1, 7, 333, 2, 1001, 3, 17]


# --------------------------------------------------------------------------- MP3


@pytest.mark.parametrize(("data", "rate", "n", "freq"), [(MP3_24K, 24000, 31200, 440), (MP3_44K, 44100, 35280, 1000)])
def test_mp3_whole_decode_matches_pyav_and_the_input_length(data: bytes, rate: int, n: int, freq: float) -> None:
    assert data[:3] == b"ID3"  # PyAV writes an ID3 tag and a Xing/LAME header frame
    decoded = decode_audio(data)
    reference, ref_rate = pyav_decode(data)
    assert decoded.sample_rate == ref_rate == rate
    assert len(decoded.samples) == n  # encoder delay and padding trimmed: gapless
    assert np.array_equal(decoded.samples, reference)
    assert abs(peak_hz(decoded.samples, rate) - freq) < 2


def test_mp3_split_at_odd_byte_boundaries_equals_whole_decode() -> None:
    whole = decode_audio(MP3_24K).samples
    split, rate = feed_split("mp3", MP3_24K, ODD_SPLITS)
    assert rate == 24000 and np.array_equal(split, whole)
    byte_by_byte, _ = feed_split("mp3", MP3_24K[:3000], [1])
    assert np.array_equal(byte_by_byte, decode_audio(MP3_24K[:3000]).samples)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=2500), min_size=1, max_size=12))
def test_mp3_any_split_equals_whole_decode(sizes: list[int]) -> None:
    split, _ = feed_split("mp3", MP3_44K, sizes)
    assert np.array_equal(split, decode_audio(MP3_44K).samples)


def test_mp3_stream_without_headers_and_with_a_big_id3_tag_split_mid_tag() -> None:
    bare = pyav_encode(sine(300, 0.5, 22050), 22050, "mp3", "libmp3lame", {"id3v2_version": "0", "write_xing": "0"})
    assert bare[:3] != b"ID3"
    bare_decoded = decode_audio(bare, "mp3").samples
    assert len(bare_decoded) >= 11025  # no gapless info: delay and padding stay
    size = 5000
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    tag = b"ID3\x04\x00\x00" + syncsafe + b"\xff\xfb" * (size // 2)  # fake sync words inside the tag
    tagged, _ = feed_split("mp3", tag + bare, [3, 4, 1000, 9])
    assert np.array_equal(tagged, bare_decoded)


def test_mp3_samples_come_out_while_bytes_arrive() -> None:
    decoder = stream_decoder("mp3")
    out = [len(decoder.feed(MP3_24K[i : i + 500])) for i in range(0, len(MP3_24K), 500)]
    assert sum(1 for n in out[: len(out) // 2] if n) >= 3  # not held back until the end


# --------------------------------------------------------------------------- Ogg Opus, AAC, FLAC


def test_opus_incremental_equals_whole_and_matches_pyav() -> None:
    whole = decode_audio(OPUS)
    assert whole.sample_rate == 48000
    split, rate = feed_split("opus", OPUS, ODD_SPLITS)
    assert rate == 48000 and np.array_equal(split, whole.samples)
    reference, _ = pyav_decode(OPUS)
    # Pre-skip applied like PyAV; the end is cut at the last granule position per RFC 7845,
    # which for ffmpeg-written files keeps up to one pre-skip more than ffmpeg does.
    assert 48000 <= len(whole.samples) <= len(reference) + 960
    n = min(len(reference), len(whole.samples))
    assert np.array_equal(whole.samples[:n], reference[:n])
    assert abs(peak_hz(whole.samples, 48000) - 660) < 2


def test_adts_aac_incremental_equals_pyav() -> None:
    data = pyav_encode(sine(500, 0.7, 24000), 24000, "adts", "aac")
    split, rate = feed_split("aac", data, ODD_SPLITS)
    reference, _ = pyav_decode(data)
    assert rate == 24000 and np.array_equal(split, reference)


def test_flac_is_buffered_and_lossless() -> None:
    samples = sine(220, 0.6, 22050)
    data = pyav_encode(samples, 22050, "flac", "flac")
    decoder = stream_decoder("flac")
    assert len(decoder.feed(data[:1000])) == 0  # buffered until the end: documented
    split, rate = feed_split("flac", data, ODD_SPLITS)
    assert rate == 22050 and np.array_equal(split, samples)
    assert sniff_format(data) == "flac" and np.array_equal(decode_audio(data).samples, samples)


# --------------------------------------------------------------------------- WAV


def wav_file(samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def test_wav_written_by_stdlib_wave_decodes_exactly_in_any_split() -> None:
    samples = sine(440, 0.3, 16000)
    data = wav_file(samples, 16000)
    assert np.array_equal(decode_audio(data).samples, samples)
    for sizes in ([1], [3], ODD_SPLITS):
        split, rate = feed_split("wav", data, sizes)
        assert rate == 16000 and np.array_equal(split, samples)


def test_streamed_wav_with_unknown_sizes_and_extra_chunks() -> None:
    samples = sine(300, 0.2, 24000)
    pcm = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 24000, 48000, 2, 16)
    data = (
        b"RIFF\xff\xff\xff\xffWAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"LIST" + struct.pack("<I", 5) + b"INFOx\x00"  # odd-sized chunk: padded
        + b"data\xff\xff\xff\xff" + pcm
    )
    split, rate = feed_split("wav", data, [5, 11, 2])
    assert rate == 24000 and np.array_equal(split, samples)


def test_wav_data_size_is_respected_when_chunks_follow() -> None:
    samples = sine(300, 0.1, 8000)
    data = wav_file(samples, 8000) + b"LIST" + struct.pack("<I", 4) + b"junk"
    assert np.array_equal(decode_audio(data).samples, samples)


def test_wav_other_sample_formats_and_stereo_downmix() -> None:
    mono = sine(250, 0.05, 8000)
    stereo = np.stack([mono, mono // 2], axis=1).reshape(-1)
    got = decode_audio(wav_file(stereo, 8000, channels=2)).samples
    assert np.array_equal(got, np.rint((mono.astype(float) + (mono // 2)) / 2).astype(np.int16))
    u8 = ((mono.astype(np.int32) >> 8) + 128).astype(np.uint8)
    got8 = decode_audio(wav_file(u8, 8000, width=1)).samples
    assert np.max(np.abs(got8.astype(int) - mono.astype(int))) < 256
    s24 = b"".join(struct.pack("<i", int(v) << 8)[:3] for v in mono)
    got24 = decode_audio(wav_file(np.frombuffer(s24, np.uint8), 8000, width=3)).samples
    assert np.array_equal(got24, mono)
    floats = (mono.astype("<f4") / 32767).tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    float_wav = b"RIFF" + struct.pack("<I", 36 + len(floats)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
    float_wav += b"data" + struct.pack("<I", len(floats)) + floats
    assert np.max(np.abs(decode_audio(float_wav).samples.astype(int) - mono.astype(int))) <= 1


def test_wav_errors() -> None:
    with pytest.raises(DecodeError, match="RIFF"):
        decode_audio(b"RIFX" + b"\x00" * 40, "wav")
    decoder = WavStreamDecoder()
    decoder.feed(wav_file(sine(100, 0.01, 8000), 8000)[:20])
    with pytest.raises(DecodeError, match="before its audio"):
        decoder.flush()


# --------------------------------------------------------------------------- raw PCM and G.711


def test_pcm_odd_bytes_are_carried_to_the_next_piece() -> None:
    samples = sine(700, 0.05, 24000)
    raw = samples.astype("<i2").tobytes()
    decoder = PcmDecoder(24000)
    first = decoder.feed(raw[:3])  # one sample and half of the next
    assert list(first) == [samples[0]]
    rest = decoder.feed(raw[3:])
    assert np.array_equal(np.concatenate([first, rest]), samples)
    assert len(decoder.feed(b"\x01")) == 0 and len(decoder.flush()) == 0  # a lone byte is no sample
    byte_by_byte, _ = feed_split("pcm", raw, [1], sample_rate=24000)
    assert np.array_equal(byte_by_byte, samples)


def test_pcm_stereo_frames_are_kept_whole_and_downmixed() -> None:
    frames = np.array([[100, 300], [-200, -400], [32767, 32767]], dtype="<i2")
    decoder = stream_decoder("pcm", 8000, channels=2)
    assert isinstance(decoder, PcmDecoder)
    out = np.concatenate([decoder.feed(frames.tobytes()[:5]), decoder.feed(frames.tobytes()[5:])])
    assert list(out) == [200, -300, 32767]


@pytest.mark.parametrize(("law", "codec"), [("ulaw", "pcm_mulaw"), ("alaw", "pcm_alaw")])
def test_g711_tables_match_ffmpeg(law: str, codec: str) -> None:
    codes = bytes(range(256))
    ctx = av.CodecContext.create(codec, "r")
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    frames = ctx.decode(av.Packet(codes))
    reference = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    assert np.array_equal(G711Decoder(law).feed(codes), reference)


# --------------------------------------------------------------------------- garbage and sniffing


@pytest.mark.parametrize("fmt", ["mp3", "aac", "opus", "wav", "flac"])
@pytest.mark.parametrize("junk", [random.Random(6000).randbytes(6000), b'{"error": "no audio"}\n' * 200])  # seeded: the same bytes every run
def test_garbage_raises_decode_error(fmt: str, junk: bytes) -> None:
    with pytest.raises(DecodeError):
        feed_split(fmt, junk, [700])


def test_sniffing_and_pcm_needs_a_rate() -> None:
    assert sniff_format(MP3_24K) == "mp3"
    assert sniff_format(OPUS) == "ogg"
    assert sniff_format(wav_file(sine(1, 0.01, 8000), 8000)) == "wav"
    assert sniff_format(b"\x00\x01\x02\x03") is None
    assert decode_audio(OPUS).sample_rate == 48000  # format found by sniffing
    with pytest.raises(ValueError, match="sample rate"):
        stream_decoder("pcm")
