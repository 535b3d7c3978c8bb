"""What the fake STT servers share: judging the audio they receive as a real service would
(refusing what it would refuse), and hanging the way a stuck upstream does.

The WAV checks are deliberately independent of `bridge.speech.pcm`: they read the file with
the stdlib `wave` module and their own rules, so a bug in the bridge's encoder cannot also
hide in the fake.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import numpy as np
import trio

from tests.fakes.http_server import Responder


@dataclass(frozen=True)
class ReceivedAudio:
    sample_rate: int
    channels: int
    sample_width: int
    samples: np.ndarray  # int16, first channel

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate

    @property
    def rms(self) -> float:
        if self.samples.size == 0:
            return 0.0
        return float(np.sqrt(np.mean(self.samples.astype(np.float64) ** 2)))


def read_wav(data: bytes) -> ReceivedAudio:
    """Parse a PCM WAV or raise ValueError saying what is wrong with it."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
            declared = reader.getnframes()
            frames = reader.readframes(declared)
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"unreadable WAV: {exc}") from None
    if width != 2:
        raise ValueError(f"expected 16-bit samples, got {8 * width}-bit")
    if len(frames) != declared * channels * width:
        raise ValueError(f"WAV header declares {declared} frames but the data holds {len(frames) // (channels * width)}")
    samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels)[:, 0].astype(np.int16)
    return ReceivedAudio(rate, channels, width, samples)


def audio_problem(
    audio: ReceivedAudio, expect_duration_s: float | None, tolerance_s: float, min_duration_s: float = 0.1
) -> str | None:
    """Why this audio would be refused, or None when it is acceptable."""
    if audio.channels != 1:
        return f"expected mono audio, got {audio.channels} channels"
    if not 8000 <= audio.sample_rate <= 48000:
        return f"unsupported sample rate {audio.sample_rate}"
    if audio.duration_s < min_duration_s:
        return f"Audio file is too short. Minimum audio length is {min_duration_s} seconds."
    if expect_duration_s is not None and abs(audio.duration_s - expect_duration_s) > tolerance_s:
        return f"expected {expect_duration_s:.3f} s of audio, got {audio.duration_s:.3f} s"
    return None


def spread_words(text: str, duration_s: float) -> list[dict[str, float | str]]:
    """Word timings as a recognizer would give them: the words spread over the audio."""
    words = text.split()
    if not words:
        return []
    step = duration_s / len(words)
    return [
        {"word": word.strip(".,!?;:"), "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
        for i, word in enumerate(words)
    ]


async def hang_until_disconnect(res: Responder, limit_s: float) -> bool:
    """Send nothing until the client hangs up (True) or `limit_s` passes (False).

    Reading the socket is how the fake notices a client that gave up, so tests can check
    that cancelling a request really closes its connection. (Responder has no public way
    to wait for that; this reads its stream directly.)
    """
    stream = res._stream  # noqa: SLF001 - see docstring
    with trio.move_on_after(limit_s):
        try:
            while await stream.receive_some(4096):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        return True
    return False
