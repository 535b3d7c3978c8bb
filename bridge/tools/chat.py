"""`entity-bridge chat`: talk to a character in the terminal, its reply streamed as it comes.

For trying brains (LLM modules and personas) without a game: each line you type is a
`user.utterance` on an in-process bridge, and the `ai.text` deltas are printed as they
arrive. The character keeps its LLM and mood but not its voice, which a terminal cannot play
and whose real-time pacing would only slow the reply down. An empty line or EOF ends it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import trio

from bridge.config import BridgeConfig
from bridge.tools.session import client_on, pick_character, without_speech
from entity_bridge_sdk.client import Event


async def run_chat(config: BridgeConfig, character: str | None, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    chosen = pick_character(config, character)
    async with client_on(without_speech(config), text_deltas=True) as client:
        entity = await client.init_entity("chat", chosen.name)
        stdout.write(f"talking to {chosen.display_name} ({entity.info.get('modules', {}).get('llm')}); an empty line ends\n")
        stdout.flush()
        while True:
            stdout.write("you> ")
            stdout.flush()
            line = await trio.to_thread.run_sync(stdin.readline)
            if not line.strip():
                stdout.write("\n")
                return 0
            stdout.write(f"{chosen.display_name.lower()}> ")
            stdout.flush()
            started = time.perf_counter()
            first: list[float] = []

            def show(event: Event) -> None:
                if event.type == "ai.text" and event.entity == "chat":
                    if not first:
                        first.append(time.perf_counter() - started)
                    stdout.write(event.payload["delta"])
                    stdout.flush()

            client.on_event = show
            result = await entity.say(line.strip(), timeout=300, check=False)
            client.on_event = None
            if result.reply.status != "success":
                stdout.write(f"[{(result.reply.payload or {}).get('code')}: {(result.reply.payload or {}).get('message')}]")
            ttft = f"{first[0]:.2f} s to first text, " if first else ""
            stdout.write(f"\n   ({ttft}{time.perf_counter() - started:.2f} s)\n")
            stdout.flush()
