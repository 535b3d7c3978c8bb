"""The whole embedded offline stack, end to end: player speech in, character speech out.

    python -m bench.embedded_stack [--sentences 12] [--full-turns] [--turn-end adaptive|fixed|off] [--character default|bench]

One bridge runs in-process on 127.0.0.1 with a character on the built-in modules
(`local` LLM, `piper` voice, `whisper` STT, `silero` VAD, `tags` countenance), and the SDK
talks to it over a real WebSocket, as a game would. By default the character is the one
`entity-bridge serve` gives without a config (Mira, `bridge.config.DEFAULT_CHARACTERS`:
its persona, greeting, compact prompt and history), so the figures are what a new user
gets; `--character bench` is the bench's older persona (no history, full prompt), kept to
compare with figures taken before 2026-12-02 03:00 UTC. Each sentence of
tests/data/stt_sentences.txt is spoken by piper (silence around it, so the true end of
speech is known to the sample), resampled to 16 kHz and sent as 20 ms `stt.audio` messages
in real time after `stt.listen.start {mode: vad}`. The bridge finds the end of speech,
transcribes, and answers with the transcript as a `user.utterance` whose outputs carry the
transcript's id as `ref`.

Every time is measured from the wall-clock moment the 20 ms chunk holding the true end of
speech was sent, to the moment the SDK's reader decoded the event:

- end of speech -> stt.speech.stopped: mostly the VAD's `min_silence_ms`, by design.
- end of speech -> stt.transcript: plus Whisper's time on this machine.
- end of speech -> first ai.speech.audio: what the player waits before the character
  starts talking (plus the engine's own playback buffering, not counted).

WER is scored on the transcripts (bridge/speech/wer.py), so a fast but deaf stack shows.

Turn ends. A listener's turn has no final reply to wait for (the player sent no request),
so by default the bench sends `entity.interrupt` as soon as the first audio arrives and,
once it is answered, waits for 0.3 s without events of that turn: the figures of interest
end at the first audio, and cutting the reply keeps runs short and every sentence starting
from an idle character. `--full-turns` lets each reply play out instead and waits for an
`ai.speech.end` followed by `--quiet-s` of silence; it adds the whole reply's duration.

Speech in while the player speaks (issue 15 item 2). `--turn-end` picks how the turn ends:

- `adaptive` (default, the bridge's default with the local STT): partial transcripts every
  `--partial-ms` of speech, the final transcript reused from the decode made when the voice
  paused, and a silence of 250 ms ending the turn after a finished sentence;
- `fixed`: partial transcripts as above, but always the VAD's 500 ms of silence;
- `off`: no partial transcripts (`partial_interval_ms = 0`): the utterance is decoded once
  it has ended, as before issue 15.

The table adds `stt.speech.stopped -> final stt.transcript` (near 0 when the final reused a
partial decode) and the number of partial transcripts per sentence. These are CPU-bound
wall-clock figures: run them on a quiet machine (`uptime` load below 1 on 2 cores) and
record them with the load average the table prints; on a loaded machine they show the
load, not the bridge.

A first sentence goes first and is reported apart ("first exchange after start"). By
default the bridge loads its models before it listens, as `entity-bridge serve` does
(`bridge.server.warmup`), so this first exchange should cost what later ones do; `--cold`
skips that (the old lazy loading, where it paid for loading Whisper, the LLM, piper and
Silero) to show the difference.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from entity_bridge_sdk import BridgeClient, EntityHandle
from entity_bridge_sdk.client import Event

from bench.common import machine, percentile, table
from bridge.config import DEFAULT_CHARACTERS, parse_config
from bridge.server.app import BridgeApp
from bridge.server.serve import serve_bridge
from bridge.server.warmup import Warmup
from bridge.speech.wer import corpus_wer, wer
from tests.speech_samples import SpeechSample, load_sentences, speech_sample

RATE = 16000
CHUNK_MS = 20
ENTITY = "keeper-1"
CHARACTER_NAME = "mira"
WARM_UP = "Good evening, is anyone here?"
#: `--character bench`: the persona the bench used before it switched to the default character.
CHARACTER: dict[str, Any] = {
    "display_name": "Mira",
    "persona": "Mira keeps the Copper Kettle tavern. She answers travellers warmly in one or two short sentences.",
    "modules": {"llm": "local", "tts": "piper", "stt": "whisper", "vad": "silero", "countenance": "tags"},
    # Every sentence is answered from the persona alone. With history, the cut replies
    # (interrupted at once, so nothing of them was "heard") leave a log of unanswered
    # player lines, and the 135M model starts parroting one short greeting: the
    # samples would then measure its degenerate replies rather than a first answer.
    "history_limit": 0,
}


def default_character() -> dict[str, Any]:
    """The default character (what `serve` gives without a config) as a config table."""
    mira = DEFAULT_CHARACTERS["mira"]
    table: dict[str, Any] = {"display_name": mira.display_name, "persona": mira.persona, **mira.options}
    if mira.greeting:
        table["greeting"] = mira.greeting
    return table


@dataclass
class Utterance:
    """What one spoken sentence produced, with SDK-reader arrival times (perf_counter s)."""

    sample: SpeechSample
    end_sent: float | None = None  # when the chunk holding the true end of speech was sent
    streamed: bool = False
    stopped: list[tuple[float, float]] = field(default_factory=list)  # (arrival, stream ms `t`)
    transcripts: list[tuple[float, str, str]] = field(default_factory=list)  # (arrival, id, text), final ones
    partials: list[tuple[float, str]] = field(default_factory=list)  # (arrival, text) of final: false ones
    first_start: dict[str, float] = field(default_factory=dict)  # transcript id -> first ai.speech.start
    first_audio: dict[str, float] = field(default_factory=dict)  # transcript id -> first ai.speech.audio
    first_text: dict[str, str] = field(default_factory=dict)  # transcript id -> text of its first segment
    last_event: dict[str, tuple[float, str]] = field(default_factory=dict)  # ref -> (arrival, type)
    ended: dict[str, float] = field(default_factory=dict)  # ref -> when our entity.interrupt was answered
    errors: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def heard(self) -> str:
        return " ".join(text for _, _, text in self.transcripts)

    @property
    def answered_ref(self) -> str | None:
        """The turn that answers the sentence: the one started by its last transcript."""
        return self.transcripts[-1][1] if self.transcripts else None

    def since_end(self, at: float | None) -> float | None:
        if at is None or self.end_sent is None:
            return None
        return (at - self.end_sent) * 1000


class Recorder:
    """Stamps every event of the entity as the SDK reader decodes it (its `on_event` hook).

    Stamping in the reader, not in a consumer task, keeps the times free of our own
    scheduling; the bookkeeping is synchronous and tiny.
    """

    def __init__(self) -> None:
        self.current: Utterance | None = None

    def __call__(self, event: Event) -> None:
        now = time.perf_counter()
        u = self.current
        if u is None or event.entity != ENTITY or event.status != "new":
            return
        if event.type == "stt.speech.stopped":
            u.stopped.append((now, float((event.payload or {}).get("t", float("nan")))))
        elif event.type == "stt.transcript":
            payload = event.payload or {}
            if payload.get("final") is False:
                u.partials.append((now, str(payload.get("text", ""))))
            else:
                u.transcripts.append((now, event.id, str(payload.get("text", ""))))
        elif event.type == "error":
            u.errors.append(str((event.payload or {}).get("message", "")))
        if event.ref is not None:
            u.last_event[event.ref] = (now, event.type)
            if event.type == "ai.speech.audio":
                u.first_audio.setdefault(event.ref, now)
            elif event.type == "ai.speech.start" and event.ref not in u.first_start:
                u.first_start[event.ref] = now
                u.first_text[event.ref] = str((event.payload or {}).get("text", ""))


async def drain(events: Any) -> None:
    """Consume an SDK event stream so its unbounded channel does not pile up audio."""
    async for _ in events:
        pass


async def stream_realtime(npc: EntityHandle, u: Utterance) -> None:
    """Send the sample as 20 ms chunks on a fixed clock (no drift), like a live microphone."""
    audio = u.sample.at_rate(RATE).astype("<i2")
    step = RATE * CHUNK_MS // 1000
    end_chunk = int(u.sample.speech_end_ms // CHUNK_MS)
    t0 = time.perf_counter()
    for seq, start in enumerate(range(0, audio.size, step)):
        await trio.sleep(max(0.0, t0 + seq * CHUNK_MS / 1000 - time.perf_counter()))
        await npc.client.send("stt.audio", {"audio": audio[start : start + step].tobytes(), "seq": seq}, entity=npc.name)
        if seq == end_chunk:
            u.end_sent = time.perf_counter()
    u.streamed = True


def turn_over(u: Utterance, full_turns: bool, quiet_s: float, now: float) -> bool:
    ref = u.answered_ref
    if ref is None or ref not in u.first_audio:
        return False
    last_at, last_type = u.last_event[ref]
    if full_turns:
        return last_type == "ai.speech.end" and now - last_at >= quiet_s
    # The interrupt's reply means the turn's scope is cancelled. Whether an
    # ai.speech.interrupted follows depends on where it was cut (none if the reply was all
    # sent already, with `lead_ms = 0`, or if the next segment had not started), so the end
    # is: interrupt answered, then a short quiet from that turn.
    return ref in u.ended and now - max(last_at, u.ended[ref]) >= quiet_s


async def one_sentence(npc: EntityHandle, recorder: Recorder, sample: SpeechSample, args: argparse.Namespace) -> Utterance:
    u = Utterance(sample)
    recorder.current = u
    await npc.request("stt.listen.start", {"mode": "vad"})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream_realtime, npc, u)
        deadline = time.perf_counter() + sample.duration_ms / 1000 + args.turn_timeout_s
        quiet = args.quiet_s if args.full_turns else 0.3
        while True:
            await trio.sleep(0.01)
            now = time.perf_counter()
            ref = u.answered_ref
            if not args.full_turns and ref is not None and ref in u.first_audio and ref not in u.ended:
                await npc.interrupt(played_ms=0)
                u.ended[ref] = time.perf_counter()
            if u.streamed and turn_over(u, args.full_turns, quiet, now):
                break
            if now > deadline:
                u.timed_out = True
                break
        nursery.cancel_scope.cancel()  # only the streamer can still run, and only on a timeout
    recorder.current = None
    return u


async def run(args: argparse.Namespace) -> tuple[Utterance, list[Utterance], float]:
    sentences = load_sentences()[: args.sentences]
    started = time.perf_counter()
    warm = speech_sample(WARM_UP, lead_s=args.lead_s, tail_s=args.tail_s)
    samples = [speech_sample(text, lead_s=args.lead_s, tail_s=args.tail_s) for text in sentences]
    render_s = time.perf_counter() - started
    print(f"rendered {len(samples) + 1} samples with piper in {render_s:.1f} s")
    character = dict(CHARACTER) if args.character == "bench" else default_character()
    if args.turn_end == "off":
        character["partial_interval_ms"] = 0
    else:
        character["partial_interval_ms"] = args.partial_ms
        character["end_of_turn"] = args.turn_end
    config = parse_config(
        {"server": {"history_path": ":memory:"}, "characters": {CHARACTER_NAME: character}},
        "bench.embedded_stack",
    )
    app = BridgeApp(config)
    warm_s = None
    if not args.cold:
        app.warmup = Warmup(app, progress=print)
        await app.warmup.run()
        warm_s = app.warmup.seconds
    args.warm_s = warm_s
    recorder = Recorder()
    results: list[Utterance] = []
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve_bridge, app, "127.0.0.1", 0)
        async with BridgeClient.connect(
            running.url,
            audio_in={"encoding": "pcm_s16le", "sample_rate": RATE},
            audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0},
            text_deltas=False,
            on_event=recorder,
        ) as client:
            npc = await client.init_entity(ENTITY, CHARACTER_NAME)
            nursery.start_soon(drain, npc.events())
            nursery.start_soon(drain, client.events())
            cold = await one_sentence(npc, recorder, warm, args)
            report(0, cold, "first exchange after start")
            for n, sample in enumerate(samples, 1):
                u = await one_sentence(npc, recorder, sample, args)
                report(n, u, "")
                results.append(u)
        await running.aclose()
        await app.aclose()
        nursery.cancel_scope.cancel()
    return cold, results, render_s


def report(n: int, u: Utterance, note: str) -> None:
    """One line per sentence as it finishes, so a stuck run shows where."""
    ref = u.answered_ref
    transcript = u.since_end(u.transcripts[-1][0]) if u.transcripts else None
    audio = u.since_end(u.first_audio.get(ref)) if ref else None
    flags = [note] if note else []
    if len(u.transcripts) > 1:
        flags.append(f"{len(u.transcripts)} utterances")
    if u.timed_out:
        flags.append("TIMED OUT")
    flags += [f"error: {e}" for e in u.errors]
    fmt = lambda v: f"{v:6.0f}" if v is not None else "     -"  # noqa: E731
    said = u.first_text.get(ref, "") if ref else ""
    print(f"{n:2}  transcript {fmt(transcript)} ms  audio {fmt(audio)} ms  WER {wer(u.sample.text, u.heard):4.0%}  {u.heard!r} -> {said!r}  {' '.join(flags)}")


def p50_p90(values: Sequence[float]) -> str:
    if not values:
        return "no samples"
    return f"{percentile(values, 50):.0f} / {percentile(values, 90):.0f} ms  (n={len(values)})"


def summarize(cold: Utterance, results: list[Utterance], args: argparse.Namespace) -> list[tuple[str, str]]:
    stopped, transcript, audio, llm_tts, vad_lag, llm, tts = [], [], [], [], [], [], []
    stop_to_final: list[float] = []
    for u in results:
        if u.stopped:
            arrival, t = u.stopped[-1]
            stopped.append(u.since_end(arrival))
            vad_lag.append(t - u.sample.speech_end_ms)
            if u.transcripts and u.transcripts[-1][0] >= arrival:
                stop_to_final.append((u.transcripts[-1][0] - arrival) * 1000)
        if u.transcripts:
            transcript.append(u.since_end(u.transcripts[-1][0]))
            ref = u.answered_ref
            if ref in u.first_audio:
                audio.append(u.since_end(u.first_audio[ref]))
                llm_tts.append((u.first_audio[ref] - u.transcripts[-1][0]) * 1000)
            if ref in u.first_start:
                llm.append((u.first_start[ref] - u.transcripts[-1][0]) * 1000)
                if ref in u.first_audio:
                    tts.append((u.first_audio[ref] - u.first_start[ref]) * 1000)
    pairs = [(u.sample.text, u.heard) for u in results]
    missed = sum(1 for u in results if not u.transcripts or u.answered_ref not in u.first_audio)
    cold_ref = cold.answered_ref
    cold_audio = cold.since_end(cold.first_audio.get(cold_ref)) if cold_ref else None
    cold_transcript = cold.since_end(cold.transcripts[-1][0]) if cold.transcripts else None
    audio_s = sum(u.sample.duration_ms for u in results) / 1000
    turn_end = "full replies, ai.speech.end + quiet" if args.full_turns else "entity.interrupt at first audio"
    return [
        ("character", "the default one (Mira, as serve gives it)" if args.character == "default" else "the bench persona (no history)"),
        ("sentences", f"{len(results)} ({audio_s:.0f} s of audio streamed in real time, 20 ms chunks, 16 kHz)"),
        ("reply end", turn_end),
        ("WER (corpus)", f"{corpus_wer(pairs):.1%}  ({sum(1 for p in pairs if wer(*p))} sentences with errors)"),
        ("end of speech -> stt.speech.stopped p50/p90", p50_p90([v for v in stopped if v is not None])),
        ("  (VAD stream-time lag p50/p90)", p50_p90(vad_lag)),
        ("turn end", f"{args.turn_end}" + (f", partial transcripts every {args.partial_ms} ms of speech" if args.turn_end != "off" else ", no partial transcripts")),
        ("partial transcripts per sentence (mean)", f"{sum(len(u.partials) for u in results) / max(len(results), 1):.1f}"),
        ("stt.speech.stopped -> final stt.transcript p50/p90", p50_p90(stop_to_final)),
        ("end of speech -> final stt.transcript p50/p90", p50_p90([v for v in transcript if v is not None])),
        ("stt.transcript -> first ai.speech.audio p50/p90", p50_p90(llm_tts)),
        ("  (LLM: transcript -> ai.speech.start)", p50_p90(llm)),
        ("  (TTS: ai.speech.start -> first audio)", p50_p90(tts)),
        ("end of speech -> first ai.speech.audio p50/p90", p50_p90([v for v in audio if v is not None])),
        ("missed (no transcript or no audio)", f"{missed}, timed out {sum(u.timed_out for u in results)}"),
        ("models loaded before listening", "no (--cold)" if args.warm_s is None else f"yes, in {args.warm_s:.1f} s"),
        (
            "first exchange after start",
            f"transcript {cold_transcript:.0f} ms, first audio {cold_audio:.0f} ms" if cold_transcript is not None and cold_audio is not None else "incomplete",
        ),
    ]


def load_average() -> float:
    """Other work on the machine slows the CPU-bound models; the table says how much there was."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main(argv: Sequence[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=12, help="how many sentences of stt_sentences.txt (after a warm-up one)")
    parser.add_argument("--lead-s", type=float, default=0.5, help="silence before each sentence")
    parser.add_argument("--tail-s", type=float, default=1.0, help="silence after each sentence (must exceed the VAD's min_silence_ms)")
    parser.add_argument("--full-turns", action="store_true", help="let each reply play out instead of interrupting at the first audio")
    parser.add_argument("--quiet-s", type=float, default=2.0, help="with --full-turns: silence after ai.speech.end that ends a turn")
    parser.add_argument("--cold", action="store_true", help="do not load the models before listening (the first turn loads them)")
    parser.add_argument("--turn-end", choices=("adaptive", "fixed", "off"), default="adaptive", help="adaptive: partials + end of turn by the words (default); fixed: partials, 500 ms silence; off: no partials")
    parser.add_argument("--partial-ms", type=int, default=600, help="partial_interval_ms with --turn-end adaptive or fixed")
    parser.add_argument("--character", choices=("default", "bench"), default="default", help="default: the character serve gives without a config (Mira); bench: the older bench persona, no history")
    parser.add_argument("--turn-timeout-s", type=float, default=12.0, help="give up on a sentence this long after its audio would have ended")
    args = parser.parse_args(argv)
    load_before = load_average()
    started, cpu_started = time.perf_counter(), time.process_time()
    cold, results, _ = trio.run(run, args)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rows = summarize(cold, results, args)
    rows.append(("machine load (1 min avg, start/end)", f"{load_before:.2f} / {load_average():.2f}; this process used {cpu / elapsed:.0%} of one core over {elapsed:.0f} s"))
    print()
    print(table(rows, f"embedded stack end to end over WebSocket, {datetime.date.today()} ({machine()})"))
    return [(f"embedded stack: {name.strip()}", value) for name, value in rows]


if __name__ == "__main__":
    main()
