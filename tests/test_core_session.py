"""The core over a real WebSocket with the SDK: lifecycle, framings, bad input, turns."""

from __future__ import annotations

import json

import msgpack
import pytest
import trio
from websockets.exceptions import InvalidStatus

from bridge.config import parse_config
from entity_bridge_sdk import BridgeClient, BridgeError, EntityHandle
from tests.conftest import ECHO_CONFIG, live_tasks, start_bridge


@pytest.mark.parametrize("framing", ["msgpack", "json"])
async def test_turn_lifecycle_pending_outputs_and_one_final_reply(bridge, connect, outbound, framing) -> None:
    async with connect(bridge, framing=framing) as client:
        assert client.hello["protocol"] == 1
        assert "ava" in client.hello["characters"]
        ava = await client.init_entity("npc-1", "ava")
        assert ava.info["modules"]["llm"] == "echo"

        seen = []
        client.on_event = lambda e: (outbound(e), seen.append(e))
        result = await ava.say("Good morning")

    assert result.payload["reply"] == "You said: Good morning"
    mine = [e for e in seen if e.id == result.reply.id]
    assert [e.status for e in mine] == ["pending", "success"], "exactly one pending then one final reply"
    deltas = result.of_type("ai.text")
    assert "".join(d.payload["delta"] for d in deltas) == "You said: Good morning"
    assert all(d.ref == result.reply.id and d.entity == "npc-1" for d in deltas)
    assert outbound.count >= 4


async def test_json_hello_gets_text_frames_and_msgpack_hello_gets_binary(bridge) -> None:
    from websockets.trio.client import connect as ws_connect

    for data, expected in (
        (json.dumps({"type": "session.hello", "id": "h1", "payload": {"protocol": 1}}), str),
        (msgpack.packb({"type": "session.hello", "id": "h1", "payload": {"protocol": 1}}), bytes),
    ):
        async with ws_connect(bridge.url, compression=None) as ws:
            await ws.send(data)
            answer = await ws.recv()
            assert isinstance(answer, expected)


async def _raw_error(client: BridgeClient, frame: bytes | str) -> dict:
    """Send a malformed frame and return the next `error` event."""
    events = client.events()
    await client.send_raw(frame)
    with trio.fail_after(5):
        async for event in events:
            if event.type == "error":
                return event.payload
    raise AssertionError("no error event")


async def test_bad_frames_get_error_events_and_the_session_carries_on(bridge, connect) -> None:
    async with connect(bridge) as client:
        ava = await client.init_entity("npc-1", "ava")
        assert (await _raw_error(client, b"\xc1\xff\x00garbage"))["code"] == "bad_frame"
        assert (await _raw_error(client, msgpack.packb([1, 2, 3])))["code"] == "bad_frame"
        assert (await _raw_error(client, msgpack.packb({"payload": {}})))["code"] == "bad_event"
        no_id = await _raw_error(client, msgpack.packb({"type": "user.utterance", "entity": "npc-1"}))
        assert no_id["code"] == "bad_event" and "id" in no_id["message"]
        # ... and the entity still answers.
        assert (await ava.say("still there?")).payload["reply"] == "You said: still there?"


@pytest.mark.parametrize(
    ("event_type", "payload", "entity", "code"),
    [
        ("user.utterance", {"kind": "verbal", "text": 5}, "npc-1", "bad_event"),
        ("user.utterance", {"kind": "shouting", "text": "hi"}, "npc-1", "bad_event"),
        ("user.utterance", {"kind": "verbal", "text": "hi"}, "nobody", "unknown_entity"),
        ("entity.init", {"character": "ava"}, "npc-1", "entity_exists"),
        ("entity.init", {"character": "ghost"}, "npc-2", "unknown_character"),
        ("user.utterance", {"kind": "verbal", "text": "x" * 4001}, "npc-1", "too_large"),
        ("session.hello", {"protocol": 1}, None, "bad_event"),
        ("user.utterance", {"kind": "verbal", "text": "hi"}, None, "bad_event"),
    ],
)
async def test_bad_requests_get_error_replies_in_kind(bridge, connect, event_type, payload, entity, code) -> None:
    async with connect(bridge) as client:
        ava = await client.init_entity("npc-1", "ava")
        reply = await client.request(event_type, payload, entity=entity, check=False)
        assert reply.status == "error"
        assert reply.payload["code"] == code, reply.payload
        assert reply.payload["message"]
        assert (await ava.say("ok")).payload["reply"] == "You said: ok"


@pytest.mark.parametrize("event_type", ["no.such.event", "ai.text"])
async def test_unknown_or_bridge_only_types_get_an_error_event_with_ref(bridge, connect, event_type) -> None:
    async with connect(bridge) as client:
        payload = await _raw_error(client, msgpack.packb({"type": event_type, "id": "x1", "entity": "e", "payload": {}}))
        assert payload["code"] == "unknown_type" and payload["ref"] == "x1"
        assert event_type in payload["message"]
        assert (await client.request("scene.loaded", {})).status == "success"


async def test_unknown_fields_are_tolerated(bridge, connect) -> None:
    async with connect(bridge) as client:
        await client.init_entity("npc-1", "ava")
        reply = await client.request(
            "user.utterance", {"kind": "verbal", "text": "hi", "mood_hint": "tired"}, entity="npc-1"
        )
        assert reply.payload["reply"] == "You said: hi"


async def test_events_before_hello_are_refused(bridge, connect) -> None:
    async with connect(bridge, hello=False) as client:
        reply = await client.request("entity.init", {"character": "ava"}, entity="npc-1", check=False)
        assert reply.payload["code"] == "hello_required"
        hello = await client.request("session.hello", {"protocol": 1})
        assert hello.status == "success"


async def test_wrong_protocol_version_is_refused_and_closed(bridge, connect) -> None:
    async with connect(bridge, hello=False) as client:
        reply = await client.request("session.hello", {"protocol": 99}, check=False)
        assert reply.payload["code"] == "unsupported_version"
        with trio.fail_after(5):
            await client.closed.wait()
        assert client.close_code == 1008


async def test_frame_over_the_size_limit_closes_with_1009() -> None:
    config = parse_config({**ECHO_CONFIG, "limits": {"max_frame_bytes": 4096}}, "test")
    async with start_bridge(config) as running:
        async with BridgeClient.connect(running.url) as client:
            await client.send_raw(msgpack.packb({"type": "stt.audio", "id": "a", "entity": "x", "payload": {"audio": b"\0" * 10000, "seq": 0}}))
            with trio.fail_after(5):
                await client.closed.wait()
            assert client.close_code == 1009


async def test_flood_over_the_event_rate_is_rate_limited() -> None:
    config = parse_config({**ECHO_CONFIG, "limits": {"events_per_second": 20, "event_burst": 20}}, "test")
    async with start_bridge(config) as running:
        async with BridgeClient.connect(running.url) as client:
            ids = [await client.send("scene.loaded", {}) for _ in range(60)]
            codes = []
            for event_id in ids:
                result = await client.wait(event_id, check=False)
                codes.append(result.reply.payload.get("code") if result.reply.status == "error" else "ok")
            assert "rate_limited" in codes
            assert codes[:10] == ["ok"] * 10
            await trio.sleep(1.1)  # the bucket refills: the session carries on
            assert (await client.request("scene.loaded", {})).status == "success"


async def test_entity_count_over_the_limit() -> None:
    config = parse_config({**ECHO_CONFIG, "limits": {"max_entities": 2}}, "test")
    async with start_bridge(config) as running:
        async with BridgeClient.connect(running.url) as client:
            await client.init_entity("a", "ava")
            await client.init_entity("b", "ava")
            with pytest.raises(BridgeError) as err:
                await client.init_entity("c", "ava")
            assert err.value.code == "too_large"
            await client.request("entity.remove", {}, entity="a")
            await client.init_entity("c", "ava")


async def test_inline_character_and_remove(bridge, connect) -> None:
    async with connect(bridge) as client:
        # Inline characters use the embedded modules (issue 11 item 6: configured ones such as
        # "scripted" only when [inline_characters] modules lists them).
        npc = await client.init_entity("guard", {"name": "guard", "persona": "A stern guard.", "modules": {"llm": "echo", "tts": "none"}})
        assert npc.info["character"] == "guard"
        assert (await npc.say("Halt?")).payload["reply"] == "You said: Halt?"
        await npc.remove()
        reply = await client.request("user.utterance", {"kind": "verbal", "text": "hi"}, entity="guard", check=False)
        assert reply.payload["code"] == "unknown_entity"
        bad = await client.request("entity.init", {"character": {"name": "x", "modules": {"llm": "nope"}}}, entity="x", check=False)
        assert bad.payload["code"] == "bad_event" and "nope" in bad.payload["message"]


async def first_delta(npc: EntityHandle) -> None:
    """Wait for the entity's first streamed `ai.text`: its turn is running, the LLM streaming."""
    with trio.fail_after(30):
        async for event in npc.events():
            if event.type == "ai.text":
                return


async def test_interrupt_mid_turn_cancels_the_whole_turn(bridge, connect) -> None:
    async with connect(bridge) as client:
        npc = await client.init_entity("npc-1", "slowpoke")
        turn_id = await npc.start_say("tell me a long story about the old war and the dragons")
        await first_delta(npc)
        assert live_tasks(f"turn:npc-1:{turn_id}")
        interrupted = await npc.interrupt()
        assert interrupted.payload["interrupted"] is True
        result = await client.wait(turn_id, check=False)
        assert result.reply.status == "error" and result.reply.payload["code"] == "cancelled"
        assert live_tasks("turn:") == []
        llm = bridge.app.loaded_provider("slow")
        assert llm.active_streams == 0
        # Nothing was running any more: a second interrupt says so.
        assert (await npc.interrupt()).payload["interrupted"] is False


async def test_new_utterance_interrupts_by_default_and_queues_when_configured(bridge, connect) -> None:
    async with connect(bridge) as client:
        fast = await client.init_entity("npc-1", "slowpoke")
        first = await fast.start_say("one two three four five six")
        await first_delta(fast)  # the first turn is running (a sleep here raced the bridge)
        second = await fast.say("hi")
        assert (await client.wait(first, check=False)).reply.payload["code"] == "cancelled"
        assert second.payload["reply"] == "You said: hi"

        patient = await client.init_entity("npc-2", "queued")
        a = await patient.start_say("alpha")
        b = await patient.start_say("beta")
        ra, rb = await client.wait(a), await client.wait(b)
        assert ra.payload["reply"] == "You said: alpha"
        assert rb.payload["reply"] == "You said: beta"


async def test_disconnect_mid_turn_leaves_no_task(bridge) -> None:
    async with BridgeClient.connect(bridge.url) as client:
        npc = await client.init_entity("npc-9", "slowpoke")
        await npc.start_say("a long answer please with many many words")
        await first_delta(npc)  # mid-turn: the LLM is streaming (after a fixed sleep it might not be yet)
        assert live_tasks("turn:npc-9")
    with trio.fail_after(5):
        while live_tasks("turn:") or live_tasks("entity:"):
            await trio.sleep(0.02)
    assert bridge.app.loaded_provider("slow").active_streams == 0


async def test_two_entities_on_one_connection_talk_at_once(bridge, connect) -> None:
    async with connect(bridge) as client:
        a = await client.init_entity("a", "slowpoke")
        b = await client.init_entity("b", "slowpoke")
        order: list[str] = []
        checker = client.on_event
        client.on_event = lambda e: (checker(e), order.append(e.entity) if e.type == "ai.text" else None)
        ids = [await a.start_say("one two three four five"), await b.start_say("six seven eight nine ten")]
        results = [await client.wait(i) for i in ids]
    assert results[0].payload["reply"] == "You said: one two three four five"
    assert results[1].payload["reply"] == "You said: six seven eight nine ten"
    assert all(e.entity == "a" for e in results[0].events)
    assert all(e.entity == "b" for e in results[1].events)
    # Both streamed at the same time: their deltas interleave rather than one after the other.
    assert order.index("b") < len(order) - 1 - order[::-1].index("a"), order


async def test_origin_is_checked() -> None:
    config = parse_config({**ECHO_CONFIG, "server": {**ECHO_CONFIG["server"], "allowed_origins": ["http://localhost:3000"]}}, "test")
    async with start_bridge(config) as running:
        with pytest.raises(InvalidStatus) as refused:
            async with BridgeClient.connect(running.url, origin="http://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with BridgeClient.connect(running.url, origin="http://localhost:3000") as ok:
            assert ok.hello["protocol"] == 1
        async with BridgeClient.connect(running.url) as native:  # engines send no Origin
            assert native.hello["protocol"] == 1


async def test_token_is_required_when_configured() -> None:
    config = parse_config({**ECHO_CONFIG, "server": {**ECHO_CONFIG["server"], "token": "s3cret"}}, "test")
    async with start_bridge(config) as running:
        async with BridgeClient.connect(running.url, hello=False) as client:
            reply = await client.request("session.hello", {"protocol": 1, "token": "wrong"}, check=False)
            assert reply.payload["code"] == "unauthorized"
            assert "s3cret" not in reply.payload["message"]
            with trio.fail_after(5):
                await client.closed.wait()
            assert client.close_code == 1008
        async with BridgeClient.connect(running.url, token="s3cret") as client:
            assert client.hello["protocol"] == 1
