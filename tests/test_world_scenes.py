"""Scenes with several characters, over real WebSockets: hearing range, who answers, memory
with speaker names, chains with a cap and interrupted by the player, scenes across two
connections, scene.converse with audio for each speaker, and interrupting one speaker.

The characters' LLMs are scripted `echo` modules (one per character, so each has its lines).
"""

from __future__ import annotations

import itertools
from typing import Any

import trio
from entity_bridge_sdk import BridgeClient, Event

from tests.conftest import make_config, start_bridge

NO_SPEECH = {"tts": "none", "stt": "none", "vad": "none", "countenance": "none"}
VOICE = {"tts": "espeak", "stt": "none", "vad": "none", "countenance": "none"}


def config(lines: dict[str, list[str]], world: dict[str, Any] | None = None, voices: bool = False, token_ms: float = 0) -> Any:
    names = {"rhys": "Rhys", "mira": "Mira", "tom": "Tom"}
    return make_config(
        {
            "server": {"history_path": ":memory:"},
            "world": {"chain_cooldown_s": 0, **(world or {})},
            "modules": {f"llm_{c}": {"kind": "llm", "provider": "echo", "replies": r, "token_ms": token_ms} for c, r in lines.items()},
            "characters": {c: {"display_name": names[c], "modules": {"llm": f"llm_{c}", **(VOICE if voices else NO_SPEECH)}} for c in lines},
        }
    )


async def history(handle: Any) -> list[tuple[str, str]]:
    reply = await handle.request("chat.history", {"limit": 50})
    return [(m["speaker"], m["text"]) for m in reply.payload["messages"]]


async def test_three_characters_the_addressed_answers_the_others_remember_out_of_range_hears_nothing() -> None:
    lines = {"rhys": ["The road is safe enough."], "mira": ["Mira never answers here."], "tom": ["Tom is too far."]}
    async with start_bridge(config(lines)) as running:
        async with BridgeClient.connect(running.url) as client:
            rhys = await client.init_entity("npc-rhys", "rhys")
            mira = await client.init_entity("npc-mira", "mira")
            tom = await client.init_entity("npc-tom", "tom")
            await rhys.join_scene("square", {"x": 0.0, "y": 0.0})
            await mira.join_scene("square", {"x": 3.0, "y": 0.0})
            joined = await tom.join_scene("square", {"x": 100.0, "y": 0.0})
            assert joined.payload["members"] == ["npc-rhys", "npc-mira", "npc-tom"]
            result = await client.scene_say("square", "Rhys, is the road safe?", position={"x": 1.0, "y": 0.0})
            assert result.payload["heard_by"] == ["npc-rhys", "npc-mira"]
            assert [(r["entity"], r["spoken"]) for r in result.payload["replies"]] == [("npc-rhys", "The road is safe enough.")]
            assert result.payload["interrupted"] is False
            # The answer streamed as Rhys's turn, with the scene request's id as ref.
            assert {e.entity for e in result.of_type("ai.text")} == {"npc-rhys"}
            heard = [e for e in result.of_type("scene.heard")]
            assert [(e.entity, e.payload["speaker"], e.payload["text"]) for e in heard] == [
                ("npc-mira", "Player", "Rhys, is the road safe?"),
                ("npc-mira", "Rhys", "The road is safe enough."),
            ]
            assert await history(rhys) == [("Player", "Rhys, is the road safe?"), ("rhys", "The road is safe enough.")]
            assert await history(mira) == [("Player", "Rhys, is the road safe?"), ("Rhys", "The road is safe enough.")]
            assert await history(tom) == []


async def test_without_a_name_the_nearest_answers_and_without_positions_everyone_hears() -> None:
    lines = {"rhys": ["Rhys here."], "mira": ["Mira here."]}
    async with start_bridge(config(lines)) as running:
        async with BridgeClient.connect(running.url) as client:
            rhys = await client.init_entity("r", "rhys")
            mira = await client.init_entity("m", "mira")
            await rhys.join_scene("inn", {"x": 5.0, "y": 0.0})
            await mira.join_scene("inn", {"x": 1.0, "y": 0.0})
            near = await client.scene_say("inn", "Anyone here?", position={"x": 0.0, "y": 0.0})
            assert [r["entity"] for r in near.payload["replies"]] == ["m"]
            await rhys.join_scene("inn")  # position unchanged
            far = await client.scene_say("inn", "Hello?", to="r")
            assert [r["entity"] for r in far.payload["replies"]] == ["r"]
            assert far.payload["heard_by"] == ["r", "m"], "with no speaker position, everyone hears"


async def test_a_chain_of_npc_replies_stops_at_the_cap() -> None:
    lines = {"rhys": ["Ask Mira, she knows."], "mira": ["Rhys is being modest."]}
    async with start_bridge(config(lines, {"max_chain": 2})) as running:
        async with BridgeClient.connect(running.url) as client:
            rhys = await client.init_entity("r", "rhys")
            mira = await client.init_entity("m", "mira")
            await rhys.join_scene("gate")
            await mira.join_scene("gate")
            result = await client.scene_say("gate", "Rhys, who built the gate?")
    assert [r["speaker"] for r in result.payload["replies"]] == ["Rhys", "Mira", "Rhys"]


async def test_the_players_next_line_interrupts_the_chain() -> None:
    lines = {"rhys": ["Ask Mira, she knows."], "mira": ["Only bread today."]}
    async with start_bridge(config(lines, {"max_chain": 5, "chain_cooldown_s": 600})) as running:
        async with BridgeClient.connect(running.url) as client:
            rhys = await client.init_entity("r", "rhys")
            mira = await client.init_entity("m", "mira")
            await rhys.join_scene("gate")
            await mira.join_scene("gate")
            first = await client.start_scene_say("gate", "Rhys, who built the gate?")
            with trio.fail_after(30):
                async for event in rhys.events():
                    if event.type == "ai.text":
                        break  # Rhys answers; then the chain would wait 600 s before Mira reacts
                second = await client.scene_say("gate", "Mira, what do you sell?")
                interrupted = await client.wait(first, timeout=30)
    assert interrupted.payload["interrupted"] is True
    assert [r["speaker"] for r in interrupted.payload["replies"]] == ["Rhys"]
    assert [(r["speaker"], r["spoken"]) for r in second.payload["replies"]] == [("Mira", "Only bread today.")]


async def test_a_scene_across_two_connections() -> None:
    lines = {"rhys": ["Welcome, both of you."], "mira": ["Fresh bread, Rhys!"]}
    async with start_bridge(config(lines, {"max_chain": 0})) as running:
        async with BridgeClient.connect(running.url, scope="session-7") as alice, BridgeClient.connect(running.url, scope="session-7") as bob:
            rhys = await alice.init_entity("npc-rhys", "rhys")
            mira = await bob.init_entity("npc-mira", "mira")
            await rhys.join_scene("market")
            joined = await mira.join_scene("market")
            assert joined.payload["members"] == ["npc-rhys", "npc-mira"]
            # Another scope with the same scene name is another scene.
            async with BridgeClient.connect(running.url, scope="other") as carol:
                tom = await carol.init_entity("npc-rhys", "rhys")
                assert (await tom.join_scene("market")).payload["members"] == ["npc-rhys"]
            result = await alice.scene_say("market", "Mira, what is for sale?")
            assert [(r["entity"], r["spoken"]) for r in result.payload["replies"]] == [("npc-mira", "Fresh bread, Rhys!")]
            # Bob's client streamed its own entity's answer; Alice's got none of Mira's events.
            assert not [e for e in result.events if e.entity == "npc-mira"]
            with trio.fail_after(30):
                async for event in mira.events():
                    if event.type == "ai.text":
                        break
            with trio.fail_after(30):
                async for event in rhys.events():
                    if event.type == "scene.heard" and event.payload["speaker"] == "Mira":
                        break
            assert await history(rhys) == [("Player", "Mira, what is for sale?"), ("Mira", "Fresh bread, Rhys!")]


async def test_converse_alternates_speakers_with_audio_for_each() -> None:
    lines = {"rhys": ["Have you heard about the wolves?", "They came from the north."], "mira": ["Wolves? Tell me more.", "Then we bar the gate."]}
    async with start_bridge(config(lines, voices=True)) as running:
        async with BridgeClient.connect(running.url, audio_out={"lead_ms": 5000}) as client:
            rhys = await client.init_entity("r", "rhys")
            mira = await client.init_entity("m", "mira")
            await rhys.join_scene("road")
            await mira.join_scene("road")
            result = await client.converse("road", ["r", "m"], topic="the wolves", turns=4)
            assert [(l["speaker"], l["spoken"]) for l in result.payload["lines"]] == [
                ("Rhys", "Have you heard about the wolves?"),
                ("Mira", "Wolves? Tell me more."),
                ("Rhys", "They came from the north."),
                ("Mira", "Then we bar the gate."),
            ]
            audio = result.of_type("ai.speech.audio")
            assert {e.entity for e in audio} == {"r", "m"}
            starts = [entity for entity, _ in itertools.groupby(e.entity for e in result.of_type("ai.speech.start"))]
            assert starts == ["r", "m", "r", "m"], "each line spoken in turn, never two speakers at once"
            assert (await history(mira))[:2] == [("Rhys", "Have you heard about the wolves?"), ("mira", "Wolves? Tell me more.")]


async def test_interrupting_one_speaker_does_not_break_the_others() -> None:
    long = "This is a long story about the old war, the siege, the fire and the long winter after it."
    lines = {"rhys": [long, "As I was saying."], "mira": ["Go on then.", "Fine."]}
    async with start_bridge(config(lines, voices=True)) as running:
        async with BridgeClient.connect(running.url, audio_out={"lead_ms": 0}) as client:
            rhys = await client.init_entity("r", "rhys")
            mira = await client.init_entity("m", "mira")
            await rhys.join_scene("road")
            await mira.join_scene("road")
            started = await client.send("scene.converse", {"scene": "road", "participants": ["r", "m"], "turns": 3}, collect=True)
            with trio.fail_after(60):
                async for event in rhys.events():
                    if event.type == "ai.speech.audio":
                        break
                await rhys.interrupt(played_ms=100)
                result = await client.wait(started, timeout=60)
    statuses = [(l["speaker"], l["status"]) for l in result.payload["lines"]]
    assert statuses == [("Rhys", "error"), ("Mira", "success"), ("Rhys", "success")]
    assert result.payload["lines"][0]["code"] == "cancelled"
    assert result.payload["interrupted"] is False


async def test_scene_errors_get_one_clear_reply() -> None:
    async with start_bridge(config({"rhys": ["Hi."]})) as running:
        async with BridgeClient.connect(running.url) as client:
            rhys = await client.init_entity("r", "rhys")
            missing = await client.request("scene.utterance", {"scene": "nowhere", "text": "hi"}, check=False)
            assert missing.status == "error" and missing.payload["code"] == "bad_event" and "scene.join" in missing.payload["message"]
            await rhys.join_scene("road")
            lonely = await client.request("scene.converse", {"scene": "road", "participants": ["r", "ghost"]}, check=False)
            assert lonely.status == "error" and "ghost" in lonely.payload["message"]
            left = await rhys.leave_scene()
            assert left.payload["left"] == ["road"]
            gone = await client.request("scene.utterance", {"scene": "road", "text": "hi"}, check=False)
            assert gone.payload["code"] == "bad_event"


async def test_movement_scene_with_a_scene_name_joins_it_at_the_entitys_own_position() -> None:
    lines = {"rhys": ["Rhys here."], "mira": ["Mira here."]}
    async with start_bridge(config(lines)) as running:
        async with BridgeClient.connect(running.url) as client:
            rhys = await client.init_entity("r", "rhys")
            mira = await client.init_entity("m", "mira")
            characters = [{"name": "r", "position": {"x": 0.0, "y": 0.0}}, {"name": "Mira", "position": {"x": 40.0, "y": 0.0}}]
            await rhys.update_scene(characters, scene="square")
            joined = await mira.update_scene(characters, scene="square")
            assert joined.payload == {"scene": "square", "members": ["r", "m"]}
            result = await client.scene_say("square", "Anyone?", position={"x": 39.0, "y": 0.0})
    assert result.payload["heard_by"] == ["m"], "Rhys, 39 m away, is out of range"
    assert [r["entity"] for r in result.payload["replies"]] == ["m"]


def llm_pick_config(director: list[str] | None, **world: Any) -> Any:
    data = {
        "server": {"history_path": ":memory:"},
        "world": {"chain_cooldown_s": 0, "max_chain": 0, "reply_rule": "llm", "reply_llm": "director", **world},
        "modules": {
            **{f"llm_{c}": {"kind": "llm", "provider": "echo", "replies": [f"{c} answers."]} for c in ("rhys", "mira", "tom")},
            "director": {"kind": "llm", "provider": "echo", **({"replies": director} if director else {"fail": "down"})},
        },
        "characters": {c: {"display_name": c.capitalize(), "modules": {"llm": f"llm_{c}", **NO_SPEECH}} for c in ("rhys", "mira", "tom")},
    }
    return make_config(data)


async def scene_of_three(cfg: Any, text: str) -> Any:
    async with start_bridge(cfg) as running:
        async with BridgeClient.connect(running.url) as client:
            for i, c in enumerate(("rhys", "mira", "tom")):
                handle = await client.init_entity(c, c)
                await handle.join_scene("hall", {"x": float(i * 3), "y": 0.0})
            return await client.scene_say("hall", text, position={"x": 0.0, "y": 0.0})


async def test_reply_rule_llm_lets_an_llm_pick_who_answers() -> None:
    picked = await scene_of_three(llm_pick_config(["I would say Tom, he knows the roads."]), "Which road is safest?")
    assert [r["entity"] for r in picked.payload["replies"]] == ["tom"], "the LLM's pick, not the nearest (rhys)"
    addressed_line = await scene_of_three(llm_pick_config(["Tom"]), "Mira, which road is safest?")
    assert [r["entity"] for r in addressed_line.payload["replies"]] == ["mira"], "an addressed member still answers"


async def test_reply_rule_llm_falls_back_to_the_nearest() -> None:
    nobody = await scene_of_three(llm_pick_config(["Nobody should answer that."]), "Which road?")
    assert [r["entity"] for r in nobody.payload["replies"]] == ["rhys"]
    failing = await scene_of_three(llm_pick_config(None), "Which road?")
    assert [r["entity"] for r in failing.payload["replies"]] == ["rhys"]


def test_reply_llm_must_name_an_llm_module() -> None:
    import pytest

    from bridge.providers.base import ConfigError
    from bridge.server.app import BridgeApp

    with pytest.raises(ConfigError, match="reply_llm names 'nope'"):
        BridgeApp(make_config({"world": {"reply_rule": "llm", "reply_llm": "nope"}, "characters": {"rhys": {"modules": {"llm": "echo"}}}}))
