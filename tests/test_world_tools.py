"""Actions as tool calls: the `openai` module offers registered actions as function tools and
reads the streamed tool-call deltas; the bridge performs each call as soon as its arguments
are complete. The LLM is the OpenAI fake on 127.0.0.1, which streams tool calls the way the
API does (a head fragment with index, id and name, then the JSON arguments in pieces).
"""

from __future__ import annotations

import json
from typing import Any

import trio
from entity_bridge_sdk import BridgeClient, Event

from tests.conftest import make_config, start_bridge
from tests.fakes.openai_chat import fake_openai_chat

NO_SPEECH = {"tts": "none", "stt": "none", "vad": "none", "countenance": "none"}
ACTIONS = [
    {"name": "open_gate", "description": "Open a gate of the town.", "params": {"gate": {"type": "string", "enum": ["north", "south"]}}},
    {"name": "draw_sword", "description": "Draw the sword."},
]


def config(options: dict[str, Any], **character: Any) -> Any:
    return make_config(
        {
            "server": {"history_path": ":memory:"},
            "modules": {"gpt": {"kind": "llm", "provider": "openai", **options}},
            "characters": {"guard": {"display_name": "Rhys", "modules": {"llm": "gpt", **NO_SPEECH}, **character}},
        }
    )


async def test_tool_calls_become_movement_perform_before_the_reply_ends() -> None:
    calls = [("open_gate", json.dumps({"gate": "north"})), ("draw_sword", "{}")]
    completed_at_perform: list[int] = []
    release = trio.Event()
    async with fake_openai_chat(reply="Right away.", tool_calls=calls, tool_piece_chars=2, hold_before_finish=release) as fake:
        async with start_bridge(config(fake.options(timeout=10))) as running:
            async with BridgeClient.connect(running.url) as client:
                guard = await client.init_entity("g", "guard")
                await guard.register_actions(ACTIONS)

                def perform(event: Event) -> dict[str, Any]:
                    completed_at_perform.append(fake.watch.completed)
                    release.set()  # the fake holds its reply open until the first perform
                    return {"feedback": f"did {event.payload['actions'][0]['name']}"}

                client.handle("movement.perform", perform)
                with trio.fail_after(30):  # a bridge that waited for the end of the reply would hang here
                    turn = await guard.say("Open the north gate and be ready!")
        body = fake.requests[0].json()
    performs = turn.of_type("movement.perform")
    assert [e.payload["actions"] for e in performs] == [[{"name": "open_gate", "args": {"gate": "north"}}], [{"name": "draw_sword", "args": {}}]]
    assert all(e.ref == turn.reply.id for e in performs)
    assert completed_at_perform[0] == 0, "the first call was performed while the fake was still streaming the reply"
    assert [p["status"] for p in turn.payload["performed"]] == ["success", "success"]
    assert turn.payload["spoken"] == "Right away."
    # The request offered the actions as tools, and the prompt does not also list them inline.
    assert [t["function"]["name"] for t in body["tools"]] == ["open_gate", "draw_sword"]
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {"gate": {"type": "string", "enum": ["north", "south"]}}, "required": ["gate"]}
    assert "[[" not in body["messages"][0]["content"]


async def test_a_reply_of_only_a_tool_call_is_not_empty() -> None:
    async with fake_openai_chat(reply="", tool_calls=[("draw_sword", "")]) as fake:
        async with start_bridge(config(fake.options(timeout=10))) as running:
            async with BridgeClient.connect(running.url) as client:
                guard = await client.init_entity("g", "guard")
                await guard.register_actions(ACTIONS)
                client.handle("movement.perform", lambda e: {})
                turn = await guard.say("Guard!")
    assert turn.reply.status == "success"
    assert turn.payload["performed"] == [{"name": "draw_sword", "args": {}, "status": "success"}]
    assert turn.payload["spoken"] == ""


async def test_bad_tool_calls_are_dropped() -> None:
    calls = [("fly", "{}"), ("open_gate", '{"gate": "west"}'), ("open_gate", '{"gate": '), ("open_gate", '{"gate": "south"}')]
    async with fake_openai_chat(reply="Hm.", tool_calls=calls) as fake:
        async with start_bridge(config(fake.options(timeout=10))) as running:
            async with BridgeClient.connect(running.url) as client:
                guard = await client.init_entity("g", "guard")
                await guard.register_actions(ACTIONS)
                client.handle("movement.perform", lambda e: {})
                turn = await guard.say("Do things.")
    assert [e.payload["actions"] for e in turn.of_type("movement.perform")] == [[{"name": "open_gate", "args": {"gate": "south"}}]]


async def test_tools_off_lists_the_actions_for_the_inline_syntax() -> None:
    async with fake_openai_chat(reply='Sure. [[open_gate {"gate": "south"}]]') as fake:
        async with start_bridge(config(fake.options(timeout=10, tools=False))) as running:
            async with BridgeClient.connect(running.url) as client:
                guard = await client.init_entity("g", "guard")
                await guard.register_actions(ACTIONS)
                client.handle("movement.perform", lambda e: {})
                with trio.fail_after(30):
                    turn = await guard.say("South gate, please.")
        body = fake.requests[0].json()
    assert "tools" not in body
    assert '[[open_gate {"gate": "north"}]]' in body["messages"][0]["content"]
    assert [e.payload["actions"] for e in turn.of_type("movement.perform")] == [[{"name": "open_gate", "args": {"gate": "south"}}]]
    assert turn.payload["spoken"] == "Sure."


async def test_no_tools_are_sent_without_registered_actions() -> None:
    async with fake_openai_chat(reply="Hello.") as fake:
        async with start_bridge(config(fake.options(timeout=10))) as running:
            async with BridgeClient.connect(running.url) as client:
                guard = await client.init_entity("g", "guard")
                await guard.say("Hi")
        body = fake.requests[0].json()
    assert "tools" not in body
