"""Turn the audio bytes a TTS backend sends into mono int16 samples and a sample rate.

Backends stream their audio, so every decoder here is incremental: ``feed(bytes)`` returns
whatever samples those bytes completed (possibly none) and ``flush()`` returns the rest
once the stream has ended. Bytes may arrive split anywhere, mid-sample or mid-frame, and
the result never depends on where they were split.

- raw ``pcm_s16le`` (OpenAI ``pcm``, ElevenLabs ``pcm_*``) and G.711 (``ulaw``/``alaw``) are
  converted with numpy alone; an odd trailing byte waits for the next piece;
- WAV is parsed chunk by chunk by hand (streamed WAVs carry a bogus data size, and the
  stdlib ``wave`` module wants a seekable whole file), then treated as raw PCM;
- MP3 and ADTS AAC go through PyAV's codec parsers packet by packet. MP3 honours the
  Xing/LAME header when present (drops that silent frame, trims encoder delay and
  padding) so a stream decodes to the same samples as PyAV decoding the whole file;
- Ogg Opus is demuxed here page by page (Ogg framing is simple, PyAV's demuxer would
  want to read ahead) and decoded with PyAV's opus decoder, which applies pre-skip; the
  last page's granule position trims the end, as RFC 7845 says;
- anything else (FLAC, Ogg Vorbis, containers) is buffered and decoded whole at the end:
  correct but not streamed. No backend we use streams those by default.

``decode_audio(data)`` decodes a whole file, sniffing the format when not told.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np

__all__ = [
    "BufferedDecoder",
    "DecodeError",
    "DecodedAudio",
    "G711Decoder",
    "Mp3StreamDecoder",
    "OggOpusStreamDecoder",
    "ParsedStreamDecoder",
    "PcmDecoder",
    "StreamDecoder",
    "WavStreamDecoder",
    "decode_audio",
    "sniff_format",
    "stream_decoder",
]

EMPTY = np.zeros(0, dtype=np.int16)
MAX_BAD_PACKETS = 8  # corrupt packets tolerated before the stream is declared garbage


class DecodeError(ValueError):
    """The bytes are not audio in the expected format (or are damaged beyond use)."""


@dataclass(slots=True)
class DecodedAudio:
    samples: np.ndarray  # mono int16
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0


class StreamDecoder(Protocol):
    """Incremental decoder. ``sample_rate`` is known once the first samples came out."""

    sample_rate: int | None

    def feed(self, data: bytes) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return EMPTY
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _downmix(frames: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved float or int samples, ``channels`` wide, to mono int16 (mean of channels)."""
    if channels == 1:
        mono = frames
    else:
        mono = frames.reshape(-1, channels).mean(axis=1)
    if mono.dtype == np.int16:
        return mono
    return np.clip(np.rint(mono), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------- raw PCM


class PcmDecoder:
    """Interleaved little-endian PCM; a partial frame at the end of a piece is carried over.

    ``sample_format`` is ``"s16"`` (the common case: no copy beyond the byte join),
    ``"u8"``, ``"s24"``, ``"s32"``, ``"f32"`` or ``"f64"``.
    """

    _WIDTH = {"u8": 1, "s16": 2, "s24": 3, "s32": 4, "f32": 4, "f64": 8}

    def __init__(self, sample_rate: int, channels: int = 1, sample_format: str = "s16") -> None:
        if sample_format not in self._WIDTH:
            raise ValueError(f"unsupported PCM sample format {sample_format!r}")
        if channels < 1 or sample_rate < 1:
            raise ValueError("PCM needs a positive sample rate and channel count")
        self.sample_rate: int | None = sample_rate
        self.channels = channels
        self.sample_format = sample_format
        self.frame_bytes = self._WIDTH[sample_format] * channels
        self._carry = b""

    def _convert(self, data: bytes) -> np.ndarray:
        fmt = self.sample_format
        if fmt == "s16":
            raw = np.frombuffer(data, dtype="<i2")
            if self.channels == 1:
                return raw.astype(np.int16)  # a writable, native-order copy
            return _downmix(raw.astype(np.float64), self.channels)
        if fmt == "u8":
            values = (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
        elif fmt == "s24":
            b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
            values = ints.astype(np.float64) / 256.0
        elif fmt == "s32":
            values = np.frombuffer(data, dtype="<i4").astype(np.float64) / 65536.0
        else:
            dtype = "<f4" if fmt == "f32" else "<f8"
            values = np.clip(np.frombuffer(data, dtype=dtype).astype(np.float64), -1.0, 1.0) * 32767.0
        return _downmix(values, self.channels)

    def feed(self, data: bytes) -> np.ndarray:
        if self._carry:
            data = self._carry + data
        usable = len(data) - len(data) % self.frame_bytes
        self._carry = data[usable:]
        if not usable:
            return EMPTY
        return self._convert(data[:usable])

    def flush(self) -> np.ndarray:
        """A trailing partial frame cannot be a sample: it is dropped."""
        self._carry = b""
        return EMPTY


def _g711_table(law: str) -> np.ndarray:
    """The 256 int16 values of G.711 mu-law or A-law bytes (ITU-T G.711 expansion)."""
    codes = np.arange(256, dtype=np.int32)
    if law == "ulaw":
        u = ~codes & 0xFF
        sign = u & 0x80
        exponent = (u >> 4) & 0x07
        mantissa = u & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        values = np.where(sign != 0, -magnitude, magnitude)
    else:
        a = codes ^ 0x55
        sign = a & 0x80
        exponent = (a >> 4) & 0x07
        mantissa = a & 0x0F
        magnitude = np.where(
            exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
        )
        values = np.where(sign != 0, magnitude, -magnitude)
    return values.astype(np.int16)


class G711Decoder:
    """mu-law / A-law bytes (ElevenLabs ``ulaw_8000``, ``alaw_8000``): one byte per sample."""

    def __init__(self, law: str, sample_rate: int = 8000) -> None:
        if law not in ("ulaw", "alaw"):
            raise ValueError(f"unknown G.711 law {law!r}")
        self.sample_rate: int | None = sample_rate
        self._table = _g711_table(law)

    def feed(self, data: bytes) -> np.ndarray:
        if not data:
            return EMPTY
        return self._table[np.frombuffer(data, dtype=np.uint8)]

    def flush(self) -> np.ndarray:
        return EMPTY


# --------------------------------------------------------------------------- WAV

_WAVE_PCM = 1
_WAVE_FLOAT = 3
_WAVE_ALAW = 6
_WAVE_MULAW = 7
_WAVE_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # what streaming writers put where they cannot know the size


class WavStreamDecoder:
    """RIFF/WAVE parsed as it arrives: header chunks first, then the ``data`` chunk as PCM."""

    def __init__(self) -> None:
        self.sample_rate: int | None = None
        self._buf = b""
        self._riff_done = False
        self._pcm: PcmDecoder | G711Decoder | None = None
        self._data_left: int | None = None  # bytes of the data chunk still expected (None: to the end)
        self._fmt: PcmDecoder | G711Decoder | None = None

    def _parse_fmt(self, body: bytes) -> PcmDecoder | G711Decoder:
        if len(body) < 16:
            raise DecodeError("WAV fmt chunk is too short")
        tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == _WAVE_EXTENSIBLE and len(body) >= 26:
            tag = struct.unpack("<H", body[24:26])[0]
        if channels < 1 or rate < 1:
            raise DecodeError(f"WAV header is not valid ({channels} channels at {rate} Hz)")
        self.sample_rate = rate
        if tag == _WAVE_PCM and bits in (8, 16, 24, 32):
            return PcmDecoder(rate, channels, {8: "u8", 16: "s16", 24: "s24", 32: "s32"}[bits])
        if tag == _WAVE_FLOAT and bits in (32, 64):
            return PcmDecoder(rate, channels, "f32" if bits == 32 else "f64")
        if tag in (_WAVE_MULAW, _WAVE_ALAW) and channels == 1:
            return G711Decoder("ulaw" if tag == _WAVE_MULAW else "alaw", rate)
        raise DecodeError(f"WAV encoding not supported (format tag {tag}, {bits} bits, {channels} channels)")

    def _parse_header(self) -> None:
        """Consume header chunks from the buffer until the data chunk starts (or bytes run out)."""
        if not self._riff_done:
            if len(self._buf) < 12:
                return
            if self._buf[:4] not in (b"RIFF", b"RF64") or self._buf[8:12] != b"WAVE":
                raise DecodeError("not a WAV file (no RIFF/WAVE header)")
            self._buf = self._buf[12:]
            self._riff_done = True
        while len(self._buf) >= 8:
            chunk_id = self._buf[:4]
            size = struct.unpack("<I", self._buf[4:8])[0]
            if chunk_id == b"data":
                if self._fmt is None:
                    raise DecodeError("WAV data chunk before its fmt chunk")
                self._pcm = self._fmt
                self._data_left = None if size in _UNKNOWN_SIZES else size
                self._buf = self._buf[8:]
                return
            padded = size + (size & 1)
            if len(self._buf) < 8 + padded:
                return  # wait for the whole chunk
            body = self._buf[8 : 8 + size]
            self._buf = self._buf[8 + padded :]
            if chunk_id == b"fmt ":
                self._fmt = self._parse_fmt(body)

    def feed(self, data: bytes) -> np.ndarray:
        if self._pcm is None:
            self._buf += data
            self._parse_header()
            if self._pcm is None:
                return EMPTY
            data, self._buf = self._buf, b""
        if self._data_left is not None:
            data = data[: self._data_left]
            self._data_left -= len(data)
        return self._pcm.feed(data)

    def flush(self) -> np.ndarray:
        if self._pcm is None:
            raise DecodeError("WAV stream ended before its audio data began")
        return self._pcm.flush()


# --------------------------------------------------------------------------- PyAV helpers


class _FrameConverter:
    """PyAV frames (any sample format and layout) to mono int16, via one swresample context."""

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._key: tuple[str, str, int] | None = None

    def convert(self, frame: av.AudioFrame) -> tuple[np.ndarray, int]:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if frame.format.name == "s16" and frame.layout.nb_channels == 1:
            return frame.to_ndarray().reshape(-1).astype(np.int16, copy=True), frame.sample_rate
        if self._resampler is None or key != self._key:
            # Same rate: swresample only converts format and downmixes, adding no delay.
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=frame.sample_rate)
            self._key = key
        parts = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return _concat(parts).astype(np.int16, copy=False), frame.sample_rate


class _PacketDecoder:
    """Decodes packets with one codec context, tolerating a few corrupt ones."""

    def __init__(self, codec: str, extradata: bytes | None = None) -> None:
        self.ctx = av.CodecContext.create(codec, "r")
        if extradata is not None:
            self.ctx.extradata = extradata
        self.converter = _FrameConverter()
        self.sample_rate: int | None = None
        self.bad_packets = 0
        self.samples_out = 0

    def decode(self, packet: av.Packet | None) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        try:
            frames = self.ctx.decode(packet)
        except av.error.EOFError:
            return out
        except av.error.FFmpegError as exc:
            self.bad_packets += 1
            if self.bad_packets > MAX_BAD_PACKETS and not self.samples_out:
                raise DecodeError(f"{self.ctx.codec.name} decoder rejects the stream: {exc}") from None
            return out
        for frame in frames:
            samples, rate = self.converter.convert(frame)
            self.sample_rate = rate
            self.samples_out += len(samples)
            out.append(samples)
        return out


class ParsedStreamDecoder:
    """A raw elementary stream PyAV can split into packets itself (ADTS AAC, MP3)."""

    def __init__(self, codec: str) -> None:
        self._dec = _PacketDecoder(codec)
        self.codec = codec
        self.bytes_in = 0

    @property
    def sample_rate(self) -> int | None:
        return self._dec.sample_rate

    def _packets(self, data: bytes | None) -> list[av.Packet]:
        return list(self._dec.ctx.parse(data))

    def _post(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """Hook for trimming decoded samples (MP3 gapless); identity here."""
        return parts

    def _decode_packets(self, packets: list[av.Packet]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for packet in packets:
            out.extend(self._dec.decode(packet))
        return self._post(out)

    def feed(self, data: bytes) -> np.ndarray:
        if not data:
            return EMPTY
        self.bytes_in += len(data)
        return _concat(self._decode_packets(self._packets(data)))

    def _finish(self) -> list[np.ndarray]:
        out = self._decode_packets(self._packets(None))
        out.extend(self._post(self._dec.decode(None)))
        return out

    def flush(self) -> np.ndarray:
        out = _concat(self._finish())
        if self.bytes_in and not self._dec.samples_out and not len(out):
            raise DecodeError(f"no {self.codec} audio found in {self.bytes_in} bytes")
        return out


# --------------------------------------------------------------------------- MP3


def _id3v2_size(head: bytes) -> int:
    """Total size of an ID3v2 tag given its 10-byte header (syncsafe size, optional footer)."""
    size = 0
    for b in head[6:10]:
        size = (size << 7) | (b & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


@dataclass(frozen=True, slots=True)
class _Mp3Gapless:
    """From a Xing/Info (+LAME) header frame: samples to drop at the start, total to keep."""

    skip: int
    total: int | None


_MP3_DECODER_DELAY = 529  # samples the MPEG layer III decoder lags behind the encoder


def _mp3_header_frame(packet: bytes) -> _Mp3Gapless | None:
    """If this first packet is a Xing/Info/VBRI header frame (silence, not audio), read it."""
    if len(packet) < 4 or packet[0] != 0xFF or (packet[1] & 0xE0) != 0xE0:
        return None
    mpeg1 = (packet[1] >> 3) & 0x03 == 0x03
    mono = (packet[3] >> 6) == 0x03
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    crc = 0 if packet[1] & 0x01 else 2  # protection bit clear: a CRC follows the header
    samples_per_frame = 1152 if mpeg1 else 576
    at = 4 + crc + side_info
    tag = packet[at : at + 4]
    if tag not in (b"Xing", b"Info"):
        if packet[36:40] == b"VBRI":
            return _Mp3Gapless(0, None)
        return None
    flags = struct.unpack(">I", packet[at + 4 : at + 8])[0] if len(packet) >= at + 8 else 0
    pos = at + 8
    frames: int | None = None
    if flags & 0x1 and len(packet) >= pos + 4:
        frames = struct.unpack(">I", packet[pos : pos + 4])[0]
        pos += 4
    pos += 4 if flags & 0x2 else 0
    pos += 100 if flags & 0x4 else 0
    pos += 4 if flags & 0x8 else 0
    lame = packet[pos : pos + 24]
    if len(lame) < 24 or lame[:4] not in (b"LAME", b"Lavf", b"Lavc"):
        return _Mp3Gapless(0, None)  # a header frame, but no encoder delay to trust
    delays = int.from_bytes(lame[21:24], "big")
    enc_delay, enc_padding = delays >> 12, delays & 0xFFF
    total = frames * samples_per_frame - enc_delay - enc_padding if frames else None
    return _Mp3Gapless(enc_delay + _MP3_DECODER_DELAY, total if total and total > 0 else None)


class Mp3StreamDecoder(ParsedStreamDecoder):
    """MP3 in arbitrary pieces: ID3v2 skipped, Xing/LAME gapless info honoured."""

    def __init__(self) -> None:
        super().__init__("mp3float")
        self.codec = "mp3"
        self._head = b""  # bytes held until we know whether an ID3 tag is in the way
        self._id3_checked = False
        self._skip_bytes = 0
        self._seen_first_packet = False
        self._skip_samples = 0
        self._keep: int | None = None  # samples still allowed out (None: no limit)

    def _strip_id3(self, data: bytes) -> bytes:
        """Hold the first 10 bytes until we know whether an ID3v2 tag leads; skip it if so.

        The tag is metadata (it may even hold a picture), and its bytes could fake an MP3
        sync word for the parser.
        """
        if self._skip_bytes:
            cut = min(self._skip_bytes, len(data))
            self._skip_bytes -= cut
            data = data[cut:]
        if self._id3_checked:
            return data
        self._head += data
        if len(self._head) < 10:
            return b""
        head, self._head = self._head, b""
        self._id3_checked = True
        if head[:3] == b"ID3":
            size = _id3v2_size(head)
            if len(head) >= size:
                return head[size:]
            self._skip_bytes = size - len(head)
            return b""
        return head

    def _post(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for samples in parts:
            if self._skip_samples:
                cut = min(self._skip_samples, len(samples))
                self._skip_samples -= cut
                samples = samples[cut:]
            if self._keep is not None:
                samples = samples[: self._keep]
                self._keep -= len(samples)
            if len(samples):
                out.append(samples)
        return out

    def _decode_packets(self, packets: list[av.Packet]) -> list[np.ndarray]:
        if packets and not self._seen_first_packet:
            self._seen_first_packet = True
            gapless = _mp3_header_frame(bytes(packets[0]))
            if gapless is not None:
                packets = packets[1:]  # the header frame decodes to silence that is not speech
                self._skip_samples = gapless.skip
                self._keep = gapless.total
        return super()._decode_packets(packets)

    def feed(self, data: bytes) -> np.ndarray:
        if not data:
            return EMPTY
        self.bytes_in += len(data)
        data = self._strip_id3(data)
        if not data:
            return EMPTY
        return _concat(self._decode_packets(self._packets(data)))

    def flush(self) -> np.ndarray:
        if self._head:  # fewer than 10 bytes in all: let the parser see them anyway
            head, self._head = self._head, b""
            tail = self._decode_packets(self._packets(head))
        else:
            tail = []
        tail.extend(self._finish())
        out = _concat(tail)
        if self.bytes_in and not self._dec.samples_out:
            raise DecodeError(f"no mp3 audio found in {self.bytes_in} bytes")
        return out


# --------------------------------------------------------------------------- Ogg Opus


class OggOpusStreamDecoder:
    """Ogg pages parsed as they arrive; Opus packets decoded one by one.

    A non-Opus Ogg stream (Vorbis, FLAC) falls back to decoding everything at the end.
    """

    def __init__(self) -> None:
        self.sample_rate: int | None = None
        self._buf = b""
        self._partial = b""  # a packet continued on the next page
        self._serial: int | None = None
        self._packets_seen = 0
        self._dec: _PacketDecoder | None = None
        self._pre_skip = 0
        self._samples_out = 0
        self._fallback: BufferedDecoder | None = None
        self._all = bytearray()  # kept only until the codec is known, for the fallback
        self._ended = False

    def _start(self, head: bytes) -> None:
        if head[:8] != b"OpusHead" or len(head) < 19:
            self._fallback = BufferedDecoder()
            self._fallback.feed(bytes(self._all))
            return
        self._pre_skip = struct.unpack("<H", head[10:12])[0]
        self._dec = _PacketDecoder("opus", extradata=head)

    def _page(self) -> tuple[int, int, int, list[bytes]] | None:
        """Take one whole page off the buffer: (header flags, granule, serial, packets ended on it)."""
        if self._serial is None and len(self._buf) >= 4 and not self._buf.startswith(b"OggS"):
            raise DecodeError("not an Ogg stream (it does not start with an OggS page)")
        start = self._buf.find(b"OggS")
        if start < 0:
            if len(self._buf) > 65536:
                raise DecodeError("Ogg stream lost: 64 KiB without a page header")
            return None
        self._buf = self._buf[start:]  # resynchronise after damage (start is 0 normally)
        if len(self._buf) < 27:
            return None
        flags = self._buf[5]
        granule, serial = struct.unpack("<qI", self._buf[6:18])
        nseg = self._buf[26]
        lacing = self._buf[27 : 27 + nseg]
        end = 27 + nseg + sum(lacing)
        if len(lacing) < nseg or len(self._buf) < end:
            return None
        body = self._buf[27 + nseg : end]
        self._buf = self._buf[end:]
        packets: list[bytes] = []
        pos = 0
        current = self._partial if flags & 0x01 else b""
        for seg in lacing:
            current += body[pos : pos + seg]
            pos += seg
            if seg < 255:  # a lacing value under 255 ends a packet
                packets.append(current)
                current = b""
        self._partial = current
        return flags, granule, serial, packets

    def _emit(self, parts: list[np.ndarray], limit: int | None) -> list[np.ndarray]:
        """Count samples out, keeping at most ``limit`` in all (None: no limit)."""
        out: list[np.ndarray] = []
        for samples in parts:
            if limit is not None:
                samples = samples[: max(0, limit - self._samples_out)]
            self._samples_out += len(samples)
            if len(samples):
                out.append(samples)
        return out

    def feed(self, data: bytes) -> np.ndarray:
        if self._fallback is not None:
            return self._fallback.feed(data)
        if self._dec is None:
            self._all += data
        self._buf += data
        out: list[np.ndarray] = []
        while not self._ended:
            page = self._page()
            if page is None:
                break
            flags, granule, serial, packets = page
            if self._serial is None:
                self._serial = serial
            elif serial != self._serial:
                continue  # another logical stream (chained or multiplexed): not ours
            limit: int | None = None
            if flags & 0x04:  # end of stream: its granule position says where audio really ends
                self._ended = True
                if granule >= 0:
                    limit = granule - self._pre_skip
            decoded: list[np.ndarray] = []
            for packet in packets:
                self._packets_seen += 1
                if self._packets_seen == 1:
                    self._start(packet)
                    if self._fallback is not None:
                        return EMPTY
                    self._all = bytearray()
                elif self._packets_seen > 2 and self._dec is not None:  # packet 2 is OpusTags
                    decoded.extend(self._dec.decode(av.Packet(packet)))
            if self._ended and self._dec is not None:
                decoded.extend(self._dec.decode(None))
            out.extend(self._emit(decoded, limit))
        if self._dec is not None:
            self.sample_rate = self._dec.sample_rate or 48000
        return _concat(out)

    def flush(self) -> np.ndarray:
        if self._fallback is not None:
            out = self._fallback.flush()
            self.sample_rate = self._fallback.sample_rate
            return out
        if self._dec is None:
            raise DecodeError("Ogg stream ended before its codec header")
        out = [] if self._ended else self._emit(self._dec.decode(None), None)
        self.sample_rate = self._dec.sample_rate or 48000
        if not self._samples_out and not out:
            raise DecodeError("Ogg Opus stream held no audio")
        return _concat(out)


# --------------------------------------------------------------------------- fallback


class BufferedDecoder:
    """Collects the whole stream, then lets PyAV probe and decode it: for formats we do not
    stream (FLAC, Vorbis, MP4/WebM). Correct, at the cost of latency."""

    def __init__(self, format_name: str | None = None) -> None:
        self.sample_rate: int | None = None
        self.format_name = format_name
        self._buf = bytearray()

    def feed(self, data: bytes) -> np.ndarray:
        self._buf += data
        return EMPTY

    def flush(self) -> np.ndarray:
        if not self._buf:
            raise DecodeError("no audio bytes to decode")
        converter = _FrameConverter()
        parts: list[np.ndarray] = []
        try:
            with av.open(io.BytesIO(bytes(self._buf)), format=self.format_name) as container:
                if not container.streams.audio:
                    raise DecodeError("the data holds no audio stream")
                stream = container.streams.audio[0]
                for frame in container.decode(stream):
                    samples, rate = converter.convert(frame)
                    self.sample_rate = rate
                    parts.append(samples)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"cannot decode audio: {exc}") from None
        if not parts:
            raise DecodeError("the audio stream decoded to nothing")
        return _concat(parts)


# --------------------------------------------------------------------------- entry points

STREAMED_FORMATS = ("pcm", "ulaw", "alaw", "wav", "mp3", "aac", "opus")


def sniff_format(data: bytes) -> str | None:
    """Guess a format from a file's first bytes; None when it does not look like one we know."""
    if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:3] == b"ID3":
        return "mp3"
    if len(data) >= 2 and data[0] == 0xFF:
        if data[1] & 0xF6 == 0xF0:
            return "aac"  # ADTS: sync word plus layer bits 00
        if data[1] & 0xE0 == 0xE0:
            return "mp3"
    return None


def stream_decoder(fmt: str, sample_rate: int | None = None, channels: int = 1) -> StreamDecoder:
    """An incremental decoder for ``fmt``.

    ``fmt`` is a codec/container name as backends say it: ``pcm`` (s16le; needs
    ``sample_rate``), ``ulaw``/``alaw``, ``wav``, ``mp3``, ``aac`` (ADTS), ``opus``/``ogg``
    (Ogg Opus), ``flac`` and anything else PyAV can open (buffered).
    """
    name = fmt.lower()
    if name in ("pcm", "pcm_s16le", "s16le", "raw"):
        if not sample_rate:
            raise ValueError("raw PCM needs a sample rate")
        return PcmDecoder(sample_rate, channels)
    if name in ("ulaw", "mulaw", "alaw"):
        return G711Decoder("alaw" if name == "alaw" else "ulaw", sample_rate or 8000)
    if name in ("wav", "wave"):
        return WavStreamDecoder()
    if name == "mp3":
        return Mp3StreamDecoder()
    if name in ("aac", "adts"):
        return ParsedStreamDecoder("aac")
    if name in ("opus", "ogg"):
        return OggOpusStreamDecoder()
    return BufferedDecoder(None if name in ("auto", "") else name)


def decode_audio(data: bytes, fmt: str | None = None, sample_rate: int | None = None) -> DecodedAudio:
    """Decode a whole file (or whole raw buffer) to mono int16; raises DecodeError."""
    name = fmt or sniff_format(data) or "auto"
    decoder = stream_decoder(name, sample_rate)
    try:
        samples = _concat([p for p in (decoder.feed(data), decoder.flush()) if len(p)])
    except av.error.FFmpegError as exc:
        raise DecodeError(f"cannot decode {name} audio: {exc}") from None
    rate = decoder.sample_rate or sample_rate
    if not rate:
        raise DecodeError(f"{name} audio decoded without a sample rate")
    return DecodedAudio(samples, rate)
