"""What whole-utterance speech costs: time to first audio over Harmony Link's API vs EEP/1.

One bridge process (`bridge.cli serve`, the embedded piper voice, a scripted LLM so the LLM
costs nothing) with the Harmony Link listener on. The same three-sentence reply is asked for
`--turns` times per path:

- EEP/1 (the SDK, visemes off, default pacing): utterance sent -> first `ai.speech.audio`
  chunk (the player can start hearing), and -> the final reply.
- Harmony Link (a plugin-style JSON client, audio_file output): USER_UTTERANCE sent -> the
  first AI_SPEECH (its WAV file written: the plugin can start playing), and -> the last one.

The difference of the first figures is what a plugin waits for because it gets each
sentence whole: the voice must finish the first segment before anything goes out.

    python -m bench.harmony_link_latency [--turns 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time

import trio
from websockets.trio.client import connect

from bench.common import machine
from bench.processes import bridge_process, toml_table
from entity_bridge_sdk import BridgeClient

REPLY = "Welcome to the Copper Kettle, traveller. The stew is hot and the beds are warm. Sit wherever you like."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(port: int, workdir: str) -> str:
    return "\n\n".join(
        [
            toml_table("server", {"history_path": ":memory:"}),
            toml_table("modules.scripted", {"kind": "llm", "provider": "echo", "replies": [REPLY]}),
            toml_table("characters.mira", {"display_name": "Mira", "history_limit": 0})
            + '\nmodules = { llm = "scripted", tts = "piper", stt = "none", vad = "none", countenance = "none" }',
            toml_table("compat.harmony_link", {"enabled": True, "port": port, "working_dir": workdir}),
        ]
    )


async def eep1(url: str, turns: int) -> list[tuple[float, float]]:
    results = []
    first: list[float] = []

    def on_event(event: object) -> None:
        if getattr(event, "type", "") == "ai.speech.audio" and not first:
            first.append(time.perf_counter())

    async with BridgeClient.connect(url, visemes="none", on_event=on_event) as client:
        mira = await client.init_entity("mira-1", "mira")
        for _ in range(turns + 1):  # one warm-up turn
            first.clear()
            sent = time.perf_counter()
            await mira.say("Hello!")
            results.append(((first[0] - sent) * 1000, (time.perf_counter() - sent) * 1000))
    return results[1:]


async def harmony_link(url: str, turns: int) -> list[tuple[float, float]]:
    results = []
    async with connect(url, max_size=1024 * 1024) as ws:
        await ws.send(json.dumps({"event_id": "init_entity", "event_type": "INIT_ENTITY", "status": "NEW", "payload": {"entity_id": "mira"}}))
        assert json.loads(await ws.recv())["status"] == "SUCCESS"
        for n in range(turns + 1):
            sent = time.perf_counter()
            await ws.send(json.dumps({"event_id": f"u{n}", "event_type": "USER_UTTERANCE", "status": "NEW", "payload": {"type": "UTTERANCE_VERBAL", "content": "Hello!"}}))
            heard, first_at = "", None
            while heard.strip() != REPLY:
                event = json.loads(await ws.recv())
                if event["event_type"] == "AI_SPEECH":
                    first_at = first_at or time.perf_counter()
                    heard += " " + event["payload"]["content"]
                    await ws.send(json.dumps({"event_id": "playback_done", "event_type": "TTS_PLAYBACK_DONE", "status": "NEW", "payload": event["payload"]["audio_file"]}))
            assert first_at is not None
            results.append(((first_at - sent) * 1000, (time.perf_counter() - sent) * 1000))
    return results[1:]


def summary(name: str, rows: list[tuple[float, float]]) -> str:
    firsts, totals = [r[0] for r in rows], [r[1] for r in rows]
    return f"{name:<14} first audio median {statistics.median(firsts):7.0f} ms (min {min(firsts):.0f}, max {max(firsts):.0f});  whole reply median {statistics.median(totals):7.0f} ms"


async def main(turns: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        async with bridge_process(config(port, workdir)) as bridge:
            eep = await eep1(bridge.url, turns)
            hl = await harmony_link(f"ws://127.0.0.1:{port}", turns)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; {turns} turns each after one warm-up")
    print(f"reply: {REPLY!r} (3 sentences, embedded piper voice, scripted LLM)")
    print(summary("EEP/1", eep))
    print(summary("Harmony Link", hl))
    cost = statistics.median(r[0] for r in hl) - statistics.median(r[0] for r in eep)
    print(f"whole-utterance cost to first audio: {cost:+.0f} ms (median vs median)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    trio.run(main, parser.parse_args().turns)
