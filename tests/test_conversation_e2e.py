"""Conversation turns over a real WebSocket with the SDK, against every LLM module's fake server."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Callable

import pytest

from bridge.config import parse_config
from entity_bridge_sdk import BridgeClient
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.fakes.characterai import fake_characterai
from tests.fakes.kajiwoto import fake_kajiwoto
from tests.fakes.kindroid import fake_kindroid
from tests.fakes.openai_chat import fake_openai_chat
from tests.fakes.textgen import fake_textgen

REPLY = "*waves* [happy] Hello there, traveller! Welcome to the inn."
SPOKEN = "Hello there, traveller! Welcome to the inn."
NO_VOICE = {"tts": "none", "stt": "none", "vad": "none", "countenance": "none"}

FAKES: dict[str, Callable[..., AbstractAsyncContextManager[Any]]] = {
    "openai": lambda **kw: fake_openai_chat(**kw),
    "textgen": lambda **kw: fake_textgen(**kw),
    "kindroid": lambda **kw: fake_kindroid(**kw),
    "kajiwoto": lambda **kw: fake_kajiwoto(**kw),
    "characterai": lambda **kw: fake_characterai(**kw),
}


def config_for(provider: str, options: dict[str, Any], **character: Any) -> Any:
    return parse_config(
        {
            **ECHO_CONFIG,
            "modules": {**ECHO_CONFIG["modules"], "brain": {"kind": "llm", "provider": provider, **options}},
            "characters": {
                **ECHO_CONFIG["characters"],
                "npc": {"display_name": "Ava", "persona": "An innkeeper.", "modules": {"llm": "brain", **NO_VOICE}, **character},
            },
        },
        "test",
    )


@pytest.mark.parametrize("provider", sorted(FAKES))
async def test_utterance_against_each_llm_module(provider: str, connect) -> None:
    async with FAKES[provider](reply=REPLY) as server:
        async with start_bridge(config_for(provider, server.options(timeout=5))) as running:
            async with connect(running, text_deltas=True) as client:
                npc = await client.init_entity("npc-1", "npc")
                seen: list[Any] = []
                checker = client.on_event
                client.on_event = lambda e: (checker(e), seen.append(e))
                result = await npc.say("Hi! Any rooms free?")
                history = await npc.request("chat.history", {"limit": 10})

    statuses = [e.status for e in seen if e.id == result.reply.id]
    assert statuses == ["pending", "success"]
    assert "".join(e.payload["delta"] for e in result.of_type("ai.text")) == SPOKEN
    assert [e.payload["text"] for e in result.of_type("ai.action")] == ["waves"]
    assert all(e.ref == result.reply.id for e in result.events)
    assert result.payload["reply"] == "*waves* " + SPOKEN
    assert result.payload["spoken"] == SPOKEN
    assert result.payload["emotion"] == "happy"
    lines = [(m["speaker"], m["text"]) for m in history.payload["messages"]]
    assert lines == [("Player", "Hi! Any rooms free?"), ("npc", "*waves* " + SPOKEN)]


async def test_fallback_llm_answers_when_the_first_fails_before_any_token(connect) -> None:
    async with fake_openai_chat(fault="error", error_status=500, error_message="The server had an error") as server:
        config = config_for("openai", server.options(max_retries=0), fallback_llms=["scripted"])
        async with start_bridge(config) as running:
            async with connect(running) as client:
                npc = await client.init_entity("npc-1", "npc")
                assert (await npc.say("Hi")).payload["reply"] == "Hello there, traveller."


async def test_harmonizer_kinds_world_events_and_memory_over_the_wire(connect) -> None:
    async with fake_openai_chat(reply="Oh! Thank you.") as server:
        async with start_bridge(config_for("openai", server.options())) as running:
            async with connect(running) as client:
                npc = await client.init_entity("npc-1", "npc")
                held = await npc.say("hands you a flower", kind="nonverbal_delayed")
                assert held.payload.get("held") is True and not held.of_type("ai.text")
                assert len(server.requests) == 0
                await npc.request("world.event", {"text": "It starts to rain."})
                await npc.say("This is for you.")
                body = server.requests[-1].json()
                user = body["messages"][-1]["content"]
                assert "*hands you a flower*" in user and "This is for you." in user
                assert "It starts to rain." in body["messages"][0]["content"]
                reacted = await npc.request("world.event", {"text": "A dragon lands outside.", "respond": True})
                assert reacted.payload["reply"] == "Oh! Thank you."
                history = (await npc.request("chat.history", {})).payload["messages"]
                flower = [m["text"] for m in history if "flower" in m["text"]]
                assert flower == ["*hands you a flower* This is for you."], "held action remembered once, with its line"
                empty = await npc.request("world.event", {"text": "   "}, check=False)
                assert empty.payload["code"] == "bad_event"
                cleared = await npc.request("chat.clear", {})
                assert cleared.payload["cleared"] == 3  # the line with the held action, its reply, the reaction
                assert (await npc.request("chat.history", {})).payload["messages"] == []


async def test_history_survives_a_restart(tmp_path: Path, connect) -> None:
    data = {**ECHO_CONFIG, "server": {"history_path": str(tmp_path / "history.sqlite3")}}
    for _ in range(2):
        async with start_bridge(parse_config(data, "test")) as running:
            async with BridgeClient.connect(running.url, scope="save-1") as client:
                npc = await client.init_entity("npc", "ava")
                await npc.say("remember me")
                messages = (await npc.request("chat.history", {})).payload["messages"]
    assert [m["text"] for m in messages] == ["remember me", "You said: remember me"] * 2


async def test_interrupted_reply_is_remembered_as_heard(connect) -> None:
    async with start_bridge(parse_config(ECHO_CONFIG, "test")) as running:
        async with connect(running) as client:
            npc = await client.init_entity("npc", "slowpoke")
            turn = await npc.start_say("one two three four five six seven")
            async for event in npc.events():
                if event.type == "ai.text" and "two" in event.payload["delta"]:
                    break
            await npc.interrupt()
            result = await client.wait(turn, check=False)
            assert result.reply.payload["code"] == "cancelled"
            heard = result.reply.payload["heard_text"]
            assert heard.startswith("You said: one") and not heard.endswith("seven")
            last = (await npc.request("chat.history", {})).payload["messages"][-1]
            assert last["interrupted"] is True and last["text"] == heard
