"""Fuzz a live session over a real WebSocket: random and mutated frames never kill it."""

from __future__ import annotations

import json
import logging
import random

import msgpack
import trio

from bridge.config import parse_config
from entity_bridge_sdk import BridgeClient
from tests.conftest import ECHO_CONFIG, start_bridge

VALID = [
    {"type": "user.utterance", "id": "u", "entity": "npc", "payload": {"kind": "verbal", "text": "hi"}},
    {"type": "entity.init", "id": "i", "entity": "npc2", "payload": {"character": "ava"}},
    {"type": "world.event", "id": "w", "entity": "npc", "payload": {"text": "it rains"}},
    {"type": "entity.interrupt", "id": "x", "entity": "npc", "payload": {}},
    {"type": "chat.history", "id": "c", "entity": "npc", "payload": {"limit": 3}},
    {"type": "stt.audio", "id": "a", "entity": "npc", "payload": {"audio": b"\x00\x01" * 8, "seq": 0}},
    {"type": "entity.remove", "id": "r", "entity": "npc2", "payload": None},
    {"type": "scene.loaded", "id": "s", "payload": {}},
]
ODD_VALUES = [None, True, -1, 2**40, 1.5, "", "x" * 200, [], {}, [1, "a"], {"k": None}, b"\xff"]


def mutate(rng: random.Random, event: dict) -> dict:
    event = json.loads(json.dumps(event, default=lambda b: "AA=="))
    for _ in range(rng.randint(1, 3)):
        target = event if rng.random() < 0.5 or not isinstance(event.get("payload"), dict) else event["payload"]
        key = rng.choice(list(target) + ["extra", "type", "id"])
        if rng.random() < 0.3:
            target.pop(key, None)
        else:
            target[key] = rng.choice(ODD_VALUES)
    return event


async def test_random_and_mutated_frames_never_break_the_session(caplog) -> None:
    caplog.set_level(logging.ERROR)
    config = parse_config({**ECHO_CONFIG, "limits": {"max_bad_frames": 10_000, "events_per_second": 100_000, "event_burst": 100_000}}, "fuzz")
    rng = random.Random(20261124)
    async with start_bridge(config) as running:
        async with BridgeClient.connect(running.url) as client:
            await client.init_entity("npc", "ava")
            errors = client.events()
            for n in range(400):
                roll = rng.random()
                if roll < 0.3:
                    frame: bytes | str = rng.randbytes(rng.randint(0, 64))
                elif roll < 0.4:
                    frame = "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(0, 40)))
                else:
                    wire = mutate(rng, rng.choice(VALID))
                    wire["id"] = f"f{n}" if rng.random() < 0.9 else wire.get("id")
                    try:
                        frame = msgpack.packb(wire) if rng.random() < 0.7 else json.dumps(wire)
                    except (TypeError, ValueError, OverflowError):
                        continue
                await client.send_raw(frame)
            # The session still works, and answered without a single internal error.
            with trio.fail_after(10):
                reply = await client.request("scene.loaded", {})
            assert reply.status == "success"
            del errors
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
