"""Viseme accuracy of an untimed voice's segments as the bridge streams them (issue 15 item 3).

    python -m bench.viseme_streaming [--sentences N] [--rtf 0.25] [--piece-ms 100]

Piper (joe, medium) speaks each sentence of `bench.viseme_accuracy`; its phoneme timing is
the truth. The audio is then replayed as an untimed TTS would send it: pieces of
`--piece-ms` arriving at `--rtf` times real time from the first, which comes at t = 0. The
speaker's own code (`bridge.speech.provisional.StreamingAlignment`) decides which timeline
each 40 ms chunk carries while pacing releases chunks 200 ms ahead of playback; alignment
jobs run one at a time as the bridge's aligner would, each taking the time it really takes
here (measured), its result used from the chunk after it finished. The keyframes of all
chunks, joined as an engine receives them, are scored against the truth like
`bench.viseme_accuracy` (edit-distance matching by name, |t_estimate - t_truth|).

Rows:
- first segment, voice never heard: default speaking rate (what a fresh bridge's first
  line gets);
- first segment, rate learned: the voice's rate and onset learned from the precise
  alignments of the other sentences (every later turn's first segment);
- later segments (synthesized ahead): the segment's audio is complete before its first
  chunk is due, so it is aligned whole first (what segments after the first get);
- whole-segment DTW as before, for reference (the old first-segment behaviour, ~500 ms
  later).
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Sequence

import numpy as np

from bench.common import machine, percentile
from bench.viseme_accuracy import SENTENCES, Sample, Score, score, synthesize_all
from bridge.speech.provisional import StreamingAlignment, VoiceRate, loudness_visemes
from bridge.speech.visemes import Viseme, espeak_reference, visemes_between, visemes_from_audio, visemes_from_phonemes

CHUNK_MS = 40.0
LEAD_MS = 200.0
STEP_S = 0.002


def stream(sample: Sample, rate: VoiceRate, rtf: float, piece_ms: float, ahead: bool = False) -> tuple[list[Viseme], dict[str, int]]:
    """The keyframes an engine receives for `sample` streamed as described above, and how
    many chunks went out with each kind of timeline."""
    sr = sample.sample_rate
    per_piece = max(1, int(sr * piece_ms / 1000))
    pieces = [sample.samples[i : i + per_piece] for i in range(0, sample.samples.size, per_piece)]
    arrivals = [0.0 if ahead else k * piece_ms / 1000 * rtf for k in range(len(pieces))]
    state = StreamingAlignment(sample.text, rate, playing=True)  # its chunks go out as it arrives
    state.set_reference(espeak_reference(sample.text))  # started with the TTS request: ready at first audio
    total_ms = sample.duration_ms
    chunks = int(np.ceil(total_ms / CHUNK_MS))
    fed = 0
    busy_until: float | None = None
    pending: tuple[str, object, float] | None = None
    sent: list[Viseme] = []
    kinds: dict[str, int] = {}
    t = 0.0
    c = 0
    while c < chunks:
        while fed < len(pieces) and arrivals[fed] <= t + 1e-9:
            state.add(pieces[fed], sr)
            fed += 1
        if fed == len(pieces) and not state.complete:
            state.finish()
        if pending is not None and busy_until is not None and t >= busy_until:
            job, result, seen_ms = pending
            state.apply(job, result, seen_ms)  # type: ignore[arg-type]
            pending, busy_until = None, None
        if pending is None:
            job = state.next_job()
            if job is not None:
                audio = state.audio()
                started = time.perf_counter()
                result = state.run_job(job, audio)
                busy_until = t + (time.perf_counter() - started)
                pending = (job, result, 1000.0 * audio.size / sr)
        if ahead and (state.kind != "whole") and pending is not None:
            t = busy_until or t  # synthesized ahead: the first chunk waits for the whole alignment
            continue
        # Send every chunk whose audio is in and whose pacing time has come.
        while c < chunks:
            start, end = c * CHUNK_MS, min((c + 1) * CHUNK_MS, total_ms)
            arrived_ms = min(fed * piece_ms, total_ms)
            if end > arrived_ms + 1e-6 or t < (start - LEAD_MS) / 1000:
                break
            timeline = state.current()
            kind = state.kind if timeline is not None else "loudness"
            kinds[kind] = kinds.get(kind, 0) + 1
            if timeline is None:
                lo, hi = int(start * sr / 1000), int(end * sr / 1000)
                timeline = loudness_visemes(sample.samples[lo:hi], sr, start)
            for v in visemes_between(timeline, start, end):
                if not sent or sent[-1].name != v.name:
                    sent.append(v)
            c += 1
        t += STEP_S
    return sent, kinds


def learned_rate(samples: Sequence[Sample], skip: int) -> VoiceRate:
    """The voice's rate as the bridge learns it from the other sentences' whole alignments."""
    rate = VoiceRate()
    for k, sample in enumerate(samples):
        if k == skip:
            continue
        state = StreamingAlignment(sample.text, rate)
        state.set_reference(espeak_reference(sample.text))
        state.add(sample.samples, sample.sample_rate)
        state.finish()
        state.apply("whole", state.run_job("whole", state.audio()), sample.duration_ms)
    return rate


def run(count: int, rtf: float, piece_ms: float) -> tuple[str, list[tuple[str, str]]]:
    samples = synthesize_all(SENTENCES[:count])
    rows_spec = ("first segment, voice never heard", "first segment, rate learned", "later segments (synthesized ahead)", "whole-segment DTW before sending (old)")
    scores = {name: Score() for name in rows_spec}
    kinds: dict[str, dict[str, int]] = {name: {} for name in rows_spec}
    rates: list[float] = []
    for k, sample in enumerate(samples):
        truth = visemes_from_phonemes(sample.units)
        learned = learned_rate(samples, k)
        rates.append(learned.rate)
        runs = {
            rows_spec[0]: lambda: stream(sample, VoiceRate(), rtf, piece_ms),
            rows_spec[1]: lambda: stream(sample, VoiceRate(learned.rate, learned.onset_ms, learned.learned), rtf, piece_ms),
            rows_spec[2]: lambda: stream(sample, VoiceRate(learned.rate, learned.onset_ms, learned.learned), rtf, piece_ms, ahead=True),
            rows_spec[3]: lambda: (visemes_from_audio(sample.samples, sample.sample_rate, sample.text), {"whole": 1}),
        }
        for name, go in runs.items():
            estimate, used = go()
            score(scores[name], truth, estimate, sample.duration_ms)
            for kind, n in used.items():
                kinds[name][kind] = kinds[name].get(kind, 0) + n
    header = f"{'segment':40} {'mean ms':>8} {'p90 ms':>7} {'bias ms':>8} {'matched':>8} {'frames':>7}  chunks by timeline"
    lines = [header, "-" * len(header)]
    rows: list[tuple[str, str]] = []
    for name, sc in scores.items():
        mean, p90 = float(np.mean(sc.errors)), percentile(sc.errors, 90)
        frames = sc.frames_equal / max(sc.frames_total, 1)
        used = ", ".join(f"{k} {v}" for k, v in sorted(kinds[name].items()))
        lines.append(f"{name:40} {mean:8.1f} {p90:7.1f} {float(np.mean(sc.signed)):+8.1f} {sc.matched / max(sc.truth_keyframes, 1):8.0%} {frames:7.0%}  {used}")
        rows.append((f"streamed visemes: {name}", f"mean {mean:.1f} ms, p90 {p90:.1f} ms, frames {frames:.0%}"))
    lines.append("")
    lines.append(f"{len(samples)} sentences; TTS pieces of {piece_ms:g} ms at real-time factor {rtf:g}; chunks {CHUNK_MS:g} ms, lead {LEAD_MS:g} ms; learned rate {np.mean(rates):.3f} (default {VoiceRate().rate})")
    title = f"Streamed viseme accuracy vs piper's exact timing, {datetime.date.today()} ({machine()})"
    return title + "\n" + "\n".join(lines), rows


def main(argv: Sequence[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    parser.add_argument("--rtf", type=float, default=0.25, help="the TTS's real-time factor (bench.speech_latency's fake: 0.25)")
    parser.add_argument("--piece-ms", type=float, default=100.0, help="audio per TTS piece (the OpenAI fake sends 100 ms)")
    args = parser.parse_args(argv)
    report, rows = run(args.sentences, args.rtf, args.piece_ms)
    print(report)
    return rows


if __name__ == "__main__":
    main()
