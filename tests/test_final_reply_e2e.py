"""Issue 11 item 3 over a real WebSocket: every request gets exactly one final reply.

Before the fix: `entity.remove` during a turn left that turn and the turns queued behind it
without a final reply; internal errors were answered with a bare `error` event (no `ref`)
and the request never got its reply; a lone surrogate ("\\ud800") in a JSON `id` or
`entity` dropped the connection without a close frame, and in `text` failed the turn with
`internal`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import msgpack
import trio
from entity_bridge_sdk import BridgeClient, Event


class Recorder:
    """Every event the client receives, and how many final replies each request id got."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = trio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.arrived.set()

    def finals(self, event_id: str) -> list[Event]:
        return [e for e in self.events if e.id == event_id and e.is_final]

    async def final(self, event_id: str, timeout: float = 30) -> Event:
        with trio.fail_after(timeout):
            while not self.finals(event_id):
                self.arrived = trio.Event()
                await self.arrived.wait()
        return self.finals(event_id)[0]

    def bare_errors(self) -> list[Event]:
        return [e for e in self.events if e.type == "error" and "ref" not in (e.payload or {})]


async def test_entity_remove_answers_the_running_turn_and_every_queued_one(bridge, outbound) -> None:
    seen = Recorder()
    async with BridgeClient.connect(bridge.url, on_event=lambda e: (outbound(e), seen(e))) as client:
        await client.init_entity("q-1", "queued")  # turn_policy = queue, a slow LLM
        ids = [await client.send("user.utterance", {"kind": "verbal", "text": f"line {n} " * 20}, entity="q-1") for n in range(4)]
        with trio.fail_after(30):  # the first turn is running (its LLM stream has begun)
            while not any(e.type == "ai.text" and e.ref == ids[0] for e in seen.events):
                seen.arrived = trio.Event()
                await seen.arrived.wait()
        removed = await client.request("entity.remove", {}, entity="q-1")
        assert removed.status == "success"
        finals = [await seen.final(i) for i in ids]
        after = await client.init_entity("q-2", "ava")
        assert (await after.say("ok?")).payload["reply"] == "You said: ok?"
    for event_id, final in zip(ids, finals):
        assert len(seen.finals(event_id)) == 1
        assert final.status == "error" and final.payload["code"] == "cancelled", final.payload


def _hostile_requests() -> list[tuple[str, bytes | str]]:
    """(id, frame) pairs that each used to end in an internal error with no final reply."""
    def mp(wire: dict[str, Any]) -> bytes:
        return msgpack.packb(wire, use_bin_type=True)

    return [
        ("h1", mp({"type": "chat.history", "id": "h1", "entity": "npc-1", "payload": {"limit": 2**63}})),
        ("h2", mp({"type": "entity.init", "id": "h2", "entity": "npc-2", "payload": {"character": {"name": "odd", "token_budget": "lots"}}})),
        ("h3", mp({"type": "playback.progress", "id": "h3", "entity": "npc-1", "payload": {"speech": "s1", "played_ms": 2**63}})),
    ]


async def test_internal_errors_are_the_requests_one_final_reply(bridge) -> None:
    seen = Recorder()
    async with BridgeClient.connect(bridge.url, on_event=seen) as client:
        npc = await client.init_entity("npc-1", "ava")
        assert (await npc.say("hello")).reply.status == "success"
        for event_id, frame in _hostile_requests():
            await client.send_raw(frame)
            final = await seen.final(event_id)
            assert len(seen.finals(event_id)) == 1
            assert final.status in ("success", "error"), final
        assert seen.bare_errors() == []
        assert (await npc.say("still fine?")).payload["reply"] == "You said: still fine?"


async def test_json_numbers_too_big_for_a_float_or_an_int_get_a_final_reply(bridge) -> None:
    seen = Recorder()
    async with BridgeClient.connect(bridge.url, framing="json", on_event=seen) as client:
        npc = await client.init_entity("npc-1", "ava")
        await client.send_raw('{"type":"chat.history","id":"j1","entity":"npc-1","payload":{"limit":1e300}}')
        await client.send_raw('{"type":"playback.progress","id":"j2","entity":"npc-1","payload":{"speech":"s","played_ms":1' + "0" * 400 + "}}")
        for event_id in ("j1", "j2"):
            assert len([await seen.final(event_id)]) == 1 and len(seen.finals(event_id)) == 1
        assert seen.bare_errors() == []
        assert (await npc.say("fine")).payload["reply"] == "You said: fine"


async def test_lone_surrogates_in_json_are_refused_cleanly(bridge) -> None:
    seen = Recorder()
    async with BridgeClient.connect(bridge.url, framing="json", on_event=seen) as client:
        npc = await client.init_entity("npc-1", "ava")
        # In the envelope: nothing can carry a reply to it, so an `error` event; the
        # connection stays open.
        await client.send_raw('{"type":"user.utterance","id":"\\ud800","entity":"npc-1","payload":{"kind":"verbal","text":"hi"}}')
        await client.send_raw('{"type":"user.utterance","id":"s1","entity":"\\udfff","payload":{"kind":"verbal","text":"hi"}}')
        # In the payload: the request's own error reply, `bad_event`, not a failed turn.
        await client.send_raw('{"type":"user.utterance","id":"s2","entity":"npc-1","payload":{"kind":"verbal","text":"a\\ud800b"}}')
        reply = await seen.final("s2")
        assert reply.status == "error" and reply.payload["code"] == "bad_event", reply.payload
        assert "surrogate" in reply.payload["message"]
        # A proper pair is text, and fine.
        ok = await npc.say("smile \ud83d\ude00")
        assert ok.payload["reply"] == "You said: smile \U0001F600"
        errors = [e for e in seen.events if e.type == "error"]
        assert len(errors) == 2 and all(e.payload["code"] == "bad_frame" for e in errors)
        assert not client.closed.is_set()
