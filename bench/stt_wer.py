"""Word error rate and latency of the embedded speech input (Silero VAD + Whisper tiny.en).

    python -m bench.stt_wer [--sentences N] [--noise-dbfs -50] [--beam-size 1] [--sanity]

Every sentence of tests/data/stt_sentences.txt is spoken by piper (joe, 22050 Hz) between
0.5 s and 1.0 s of silence and goes through the bridge's real input path, as a client
would send it: 20 ms `pcm_s16le` messages -> MicResampler (16 kHz) -> Silero segmenter ->
local STT on each utterance. Reported:

- WER: corpus word error rate of the transcripts (normalized, bridge/speech/wer.py).
- end of speech -> stopped: stream time from the true end of speech (measured on the
  samples) to the sample at which the segmenter emitted SpeechStopped. With live audio this
  is wall time; it is mostly `min_silence_ms` (500 ms) by design.
- stopped -> transcript: wall time of `transcribe` on this machine.
- end of speech -> transcript: the sum, the delay a player feels before the character
  "heard" them (plus network and LLM time, not counted here).

`--sanity` also scores two known faults (audio declared at the wrong rate; utterances cut
300 ms short), to show the WER bound used by the tests separates working from broken.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from collections.abc import Sequence

import numpy as np
import trio

from bench.common import machine, percentile
from bridge.media.pcm import MicResampler, int16_to_pcm
from bridge.providers.stt import local
from bridge.providers.stt.local import LocalWhisperSTT
from bridge.providers.stt.silero import SileroVad
from bridge.speech.vad import SpeechStopped, UtteranceTooLong, VoiceActivitySegmenter
from bridge.speech.wer import corpus_wer, wer
from tests.speech_samples import load_sentences, speech_sample

CHUNK_S = 0.02


async def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    sentences = load_sentences()[: args.sentences or None]
    stt = LocalWhisperSTT(language="en", beam_size=args.beam_size)
    started = time.perf_counter()
    await trio.to_thread.run_sync(local.load_model)
    load_s = time.perf_counter() - started
    vad = SileroVad()

    pairs: list[tuple[str, str]] = []
    stop_delays: list[float] = []
    stt_times: list[float] = []
    totals: list[float] = []
    audio_seconds = vad_seconds = stt_seconds = 0.0
    for text in sentences:
        sample = speech_sample(text, lead_s=0.5, tail_s=1.0, noise_dbfs=args.noise_dbfs)
        data = int16_to_pcm(sample.samples)
        step = round(CHUNK_S * sample.sample_rate) * 2
        mic = MicResampler(sample.sample_rate)
        segmenter = VoiceActivitySegmenter(vad)
        utterances: list[tuple[np.ndarray, float]] = []  # (audio, stream ms when emitted)
        t0 = time.perf_counter()
        for pos in range(0, len(data), step):
            for event in segmenter.feed(mic.feed(data[pos : pos + step])):
                if isinstance(event, (SpeechStopped, UtteranceTooLong)):
                    utterances.append((event.audio, segmenter.position_ms))
        for event in segmenter.feed(mic.flush()) + segmenter.finish():
            if isinstance(event, (SpeechStopped, UtteranceTooLong)):
                utterances.append((event.audio, segmenter.position_ms))
        vad_seconds += time.perf_counter() - t0
        audio_seconds += sample.duration_ms / 1000

        heard: list[str] = []
        t0 = time.perf_counter()
        for audio, _ in utterances:
            heard.append((await stt.transcribe(audio, 16000)).text)
        stt_ms = (time.perf_counter() - t0) * 1000
        stt_seconds += stt_ms / 1000
        hypothesis = " ".join(heard)
        pairs.append((text, hypothesis))
        if utterances:
            delay = utterances[-1][1] - sample.speech_end_ms
            stop_delays.append(delay)
            stt_times.append(stt_ms)
            totals.append(delay + stt_ms)
        flag = "" if len(utterances) == 1 else f"  [{len(utterances)} utterances]"
        print(f"{wer(text, hypothesis):5.0%}  {stt_ms:5.0f} ms  {hypothesis}{flag}")
        if wer(text, hypothesis):
            print(f"{'':16}(said: {text})")

    score = corpus_wer(pairs)
    rows = [
        ("sentences", f"{len(pairs)} ({audio_seconds:.0f} s of audio, noise {args.noise_dbfs or 'none'} dBFS)"),
        ("model load", f"{load_s:.2f} s"),
        ("WER (corpus)", f"{score:.1%}"),
        ("sentences with errors", f"{sum(1 for p in pairs if wer(*p))}"),
        ("end of speech -> stopped p50/p90", f"{percentile(stop_delays, 50):.0f} / {percentile(stop_delays, 90):.0f} ms"),
        ("stopped -> transcript p50/p90", f"{percentile(stt_times, 50):.0f} / {percentile(stt_times, 90):.0f} ms"),
        ("end of speech -> transcript p50/p90", f"{percentile(totals, 50):.0f} / {percentile(totals, 90):.0f} ms"),
        ("STT real-time factor", f"{stt_seconds / audio_seconds:.3f}"),
        ("VAD + resampling real-time factor", f"{vad_seconds / audio_seconds:.4f}"),
    ]
    if args.sanity:
        rows += await sanity(stt, sentences[:8])
    return rows


async def sanity(stt: LocalWhisperSTT, sentences: Sequence[str]) -> list[tuple[str, str]]:
    """WER of two faults the tests must catch: wrong declared rate, and clipped utterances."""
    wrong_rate, clipped = [], []
    for text in sentences:
        sample = speech_sample(text, lead_s=0.5, tail_s=1.0)
        audio16 = sample.at_rate(16000)
        wrong_rate.append((text, (await stt.transcribe(sample.samples, 16000)).text))
        start = round(sample.speech_start_ms * 16) + 4800  # 300 ms late
        end = round(sample.speech_end_ms * 16) - 4800  # 300 ms early
        clipped.append((text, (await stt.transcribe(audio16[start:end], 16000)).text))
    return [
        ("sanity: 22.05 kHz declared as 16 kHz", f"WER {corpus_wer(wrong_rate):.1%}"),
        ("sanity: utterances cut 300 ms each end", f"WER {corpus_wer(clipped):.1%}"),
    ]


def main(argv: Sequence[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=0, help="only the first N sentences (0: all)")
    parser.add_argument("--noise-dbfs", type=float, default=None, help="add white noise at this RMS level")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--sanity", action="store_true", help="also score two known faults")
    args = parser.parse_args(argv)
    rows = trio.run(run, args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nSTT WER and latency, {datetime.date.today()} ({machine()}, load average {load:.2f})")
    for name, value in rows:
        print(f"  {name:38} {value}")
    return [(f"stt: {name}", value) for name, value in rows]


if __name__ == "__main__":
    main()
