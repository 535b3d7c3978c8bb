"""Perception over the wire: movement.scene feeds the prompt; a stale scene is refreshed with
movement.scene.request before the turn. The LLM is the OpenAI fake, which records the prompt."""

from __future__ import annotations

from typing import Any

import trio
from entity_bridge_sdk import BridgeClient, Event

from tests.conftest import make_config, start_bridge
from tests.fakes.openai_chat import fake_openai_chat

NO_SPEECH = {"tts": "none", "stt": "none", "vad": "none", "countenance": "none"}
SCENE = {
    "characters": [
        {"name": "player", "position": {"x": 0.0, "y": 0.0, "z": 3.0}, "action": "waving"},
        {"name": "Rhys", "position": {"x": 0.0, "y": 0.0, "z": 0.0}},
    ],
    "objects": [{"name": "gate", "position": {"x": -20.0, "y": 0.0, "z": 0.0}, "description": "the north gate"}],
}


def config(options: dict[str, Any], **character: Any) -> Any:
    return make_config(
        {
            "server": {"history_path": ":memory:"},
            "modules": {"gpt": {"kind": "llm", "provider": "openai", **options}},
            "characters": {"guard": {"display_name": "Rhys", "modules": {"llm": "gpt", **NO_SPEECH}, **character}},
        }
    )


async def test_scene_feeds_the_prompt() -> None:
    async with fake_openai_chat(reply="I see you.") as fake:
        async with start_bridge(config(fake.options(timeout=10))) as running:
            async with BridgeClient.connect(running.url) as client:
                guard = await client.init_entity("g", "guard")
                await guard.update_scene(**SCENE)
                await guard.say("What do you see?")
        system = fake.requests[0].json()["messages"][0]["content"]
    assert "- player: close (3 m), ahead of you; waving" in system
    assert "- gate (the north gate): a short walk away (20 m), to your left" in system


async def test_a_stale_scene_is_requested_from_the_engine_before_the_turn() -> None:
    asked: list[Event] = []
    async with fake_openai_chat(reply="Hm.") as fake:
        async with start_bridge(config(fake.options(timeout=10), scene_max_age_s=0.001)) as running:
            async with BridgeClient.connect(running.url) as client:
                guard = await client.init_entity("g", "guard")

                def scene(event: Event) -> dict[str, Any]:
                    asked.append(event)
                    moved = {**SCENE, "characters": [{**SCENE["characters"][0], "action": f"dancing {len(asked)}"}, SCENE["characters"][1]]}
                    return moved

                client.handle("movement.scene.request", scene)
                await guard.say("Look!")
                await trio.sleep(0.01)  # older than scene_max_age_s: asked again
                await guard.say("Look again!")
        prompts = [r.json()["messages"][0]["content"] for r in fake.requests]
    assert len(asked) == 2 and asked[0].entity == "g"
    assert "dancing 1" in prompts[0] and "dancing 2" in prompts[1]


async def test_an_engine_that_does_not_answer_the_scene_request_does_not_stop_the_turn() -> None:
    async with fake_openai_chat(reply="Hm.") as fake:
        async with start_bridge(config(fake.options(timeout=10), scene_max_age_s=1, scene_request_timeout_s=0.3)) as running:
            async with BridgeClient.connect(running.url) as client:
                guard = await client.init_entity("g", "guard")
                with trio.fail_after(30):
                    turn = await guard.say("Anyone?")
    assert turn.payload["spoken"] == "Hm."
    assert len(fake.requests) == 1
