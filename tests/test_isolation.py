"""Conversations stay apart and a client cannot spend more of the owner's LLM than the
owner's own characters do (issue 11 items 6 and 7), over a real WebSocket with the SDK.

The LLM is a local fake of OpenAI's chat endpoint, so what the bridge sends upstream (the
cost) is measured on the wire.
"""

from __future__ import annotations

import json

import trio

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.fakes.openai_chat import fake_openai_chat

NO_SPEECH = {"tts": "none", "stt": "none", "vad": "none", "countenance": "none"}


def config(**extra: object):
    return parse_config({**ECHO_CONFIG, **extra}, "test")


async def test_inline_character_with_a_configured_name_does_not_read_its_history(connect) -> None:
    async with start_bridge(config()) as running:
        async with connect(running, scope="slot-1") as client:
            ava = await client.init_entity("real", "ava")
            await ava.say("the vault code is 1234")
            thief = await client.init_entity("fake", {"name": "ava", "modules": {"llm": "echo", **NO_SPEECH}})
            stolen = await client.request("chat.history", {}, entity="fake")
            assert stolen.payload["messages"] == []
            own = await client.request("chat.history", {}, entity="real")
            assert any("1234" in m["text"] for m in own.payload["messages"])
            await client.request("chat.clear", {}, entity="fake")  # clears only its own
            assert (await client.request("chat.history", {}, entity="real")).payload["messages"]
            del thief


async def test_scope_mode_connection_gives_every_connection_its_own_conversation(connect) -> None:
    async with start_bridge(config(server={**ECHO_CONFIG["server"], "scope_mode": "connection"})) as running:
        async with connect(running, scope="shared-slot") as first:
            await (await first.init_entity("n", "ava")).say("my password is swordfish")
            assert (await first.request("chat.history", {}, entity="n")).payload["messages"]
        async with connect(running, scope="shared-slot") as second:
            await second.init_entity("n", "ava")
            assert (await second.request("chat.history", {}, entity="n")).payload["messages"] == []


async def test_inline_characters_use_only_the_modules_the_owner_allows(connect) -> None:
    inline = {"name": "mallory", "modules": {"llm": "scripted", **NO_SPEECH}}
    async with start_bridge(config()) as running:
        async with connect(running) as client:
            refused = await client.request("entity.init", {"character": inline}, entity="m", check=False)
            assert refused.status == "error" and refused.payload["code"] == "bad_event"
            assert "scripted" in refused.payload["message"] and "not a configured module" in refused.payload["message"]
            echo = await client.init_entity("e", {"name": "mallory", "modules": {"llm": "echo", **NO_SPEECH}})
            assert echo.info["modules"]["llm"] == "echo"
    async with start_bridge(config(inline_characters={"modules": ["scripted"]})) as running:
        async with connect(running) as client:
            allowed = await client.init_entity("m", inline)
            assert allowed.info["modules"] == {"llm": "scripted"}
    async with start_bridge(config(inline_characters={"enabled": False})) as running:
        async with connect(running) as client:
            off = await client.request("entity.init", {"character": {"name": "x", "modules": {"llm": "echo"}}}, entity="x", check=False)
            assert off.status == "error" and "does not accept inline characters" in off.payload["message"]


async def test_inline_characters_cannot_raise_runtime_options(connect) -> None:
    async with start_bridge(config()) as running:
        async with connect(running) as client:
            for option, value in (("token_budget", 1_000_000), ("history_limit", 100_000), ("world_event_cap", 10_000), ("segmenter", {"max_chars": 100_000})):
                character = {"name": "greedy", "modules": {"llm": "echo", **NO_SPEECH}, option: value}
                reply = await client.request("entity.init", {"character": character}, entity="g", check=False)
                assert reply.status == "error" and reply.payload["code"] == "bad_event", option
                assert "over what an inline character may use" in reply.payload["message"], reply.payload
            lower = {"name": "frugal", "modules": {"llm": "echo", **NO_SPEECH}, "token_budget": 300, "history_limit": 5}
            assert (await client.init_entity("f", lower)).info["character"] == "frugal"


async def test_token_budget_covers_world_events(connect) -> None:
    """20 world events of 3900 characters each used to ride along with every later turn
    (~80 000 characters upstream per 'hi'); the budget now bounds the whole prompt."""
    async with fake_openai_chat(reply="Noted.") as llm:
        data = {
            **ECHO_CONFIG,
            "modules": {"gpt": {"kind": "llm", "provider": "openai", **llm.options()}},
            "characters": {"paid": {"modules": {"llm": "gpt", **NO_SPEECH}, "token_budget": 1500}},
        }
        async with start_bridge(parse_config(data, "test")) as running:
            async with connect(running) as client:
                paid = await client.init_entity("p", "paid")
                for i in range(20):
                    await client.request("world.event", {"text": f"event {i} " + "x" * 3900, "actor": "a" * 100}, entity="p")
                with trio.fail_after(30):
                    await paid.say("hi")
        body = json.loads(llm.requests[-1].body)
        prompt_chars = sum(len(m["content"]) for m in body["messages"])
        assert prompt_chars <= 1500 * 4, prompt_chars
        assert "event 19" in body["messages"][0]["content"], "the newest events are the ones kept"
        assert "event 0 " not in body["messages"][0]["content"]
