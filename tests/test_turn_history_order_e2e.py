"""When a turn stores the user's line, over a real WebSocket against the fake OpenAI server.

The user's line is written while the LLM thinks, not before its request (the SQLite write
is a worker-thread hop the request would wait on for nothing); it is still stored in every
case, before the character's own lines, and each prompt carries each line exactly once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.fakes.http_server import FakeRequest
from tests.fakes.openai_chat import fake_openai_chat

NO_VOICE = {"tts": "none", "stt": "none", "vad": "none", "countenance": "none"}


def config_with(options: dict[str, Any], history: Path) -> Any:
    return parse_config(
        {
            **ECHO_CONFIG,
            "server": {"history_path": str(history)},
            "modules": {**ECHO_CONFIG["modules"], "brain": {"kind": "llm", "provider": "openai", **options}},
            "characters": {"npc": {"display_name": "Ava", "persona": "An innkeeper.", "modules": {"llm": "brain", **NO_VOICE}}},
        },
        "test",
    )


def stored_texts(history: Path) -> list[str]:
    """The history file's lines as another reader sees them (committed rows only)."""
    conn = sqlite3.connect(history)
    try:
        return [row[0] for row in conn.execute("SELECT text FROM messages ORDER BY id")]
    finally:
        conn.close()


async def test_the_llm_request_does_not_wait_for_the_users_line_to_be_stored(tmp_path: Path, connect) -> None:
    history = tmp_path / "history.sqlite3"
    at_request: list[list[str]] = []
    prompts: list[list[tuple[str, str]]] = []

    def on_request(request: FakeRequest) -> None:
        at_request.append(stored_texts(history))
        prompts.append([(m["role"], m["content"]) for m in request.json()["messages"] if m["role"] != "system"])

    async with fake_openai_chat(reply="Rooms are free.", on_request=on_request) as server:
        async with start_bridge(config_with(server.options(timeout=5), history)) as running:
            async with connect(running) as client:
                npc = await client.init_entity("npc-1", "npc")
                await npc.say("Any rooms?")
                await npc.say("How much?")
                lines = [(m["speaker"], m["text"]) for m in (await npc.request("chat.history", {})).payload["messages"]]

    # The request went out before this turn's line was committed...
    assert at_request == [[], ["Any rooms?", "Rooms are free."]]
    # ...and the line was stored all the same, before the reply; each prompt has it once.
    assert lines == [("Player", "Any rooms?"), ("npc", "Rooms are free."), ("Player", "How much?"), ("npc", "Rooms are free.")]
    assert prompts == [
        [("user", "Any rooms?")],
        [("user", "Any rooms?"), ("assistant", "Rooms are free."), ("user", "How much?")],
    ]


async def test_the_users_line_is_stored_when_the_llm_fails(tmp_path: Path, connect) -> None:
    history = tmp_path / "history.sqlite3"
    async with fake_openai_chat(fault="error", error_status=500, error_message="The server had an error") as server:
        async with start_bridge(config_with(server.options(max_retries=0, timeout=5), history)) as running:
            async with connect(running) as client:
                npc = await client.init_entity("npc-1", "npc")
                result = await client.wait(await npc.start_say("Anyone there?"), check=False)
                assert result.reply.status == "error"
                lines = [(m["speaker"], m["text"]) for m in (await npc.request("chat.history", {})).payload["messages"]]
    assert lines == [("Player", "Anyone there?")]
    assert stored_texts(history) == ["Anyone there?"]
