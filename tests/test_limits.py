"""Every free-text field has a limit, held actions are capped, and nothing the bridge sends
is over the frame limit it announces (issue 11 items 4 and 5). Real bridge, real WebSocket,
the Python SDK.
"""

from __future__ import annotations

import pytest
import trio

NO_SPEECH = {"tts": "none", "stt": "none", "vad": "none", "countenance": "none"}
LONG_NAME = "n" * 201
LONG_TEXT = "t" * 4001


REQUESTS = [
    pytest.param("user.utterance", {"kind": "verbal", "text": "hi", "speaker": LONG_NAME}, "payload.speaker", id="speaker"),
    pytest.param("world.event", {"text": "a door slams", "actor": LONG_NAME}, "payload.actor", id="actor"),
    pytest.param("entity.init", {"character": {"name": "g", "modules": {"llm": "echo", **NO_SPEECH}, "persona": LONG_TEXT}}, "payload.character.persona", id="persona"),
    pytest.param("entity.init", {"character": {"name": "g", "modules": {"llm": "echo", **NO_SPEECH}, "display_name": LONG_NAME}}, "payload.character.display_name", id="display_name"),
    pytest.param("entity.init", {"character": {"name": "g", "modules": {"llm": "echo", **NO_SPEECH}, "greeting": LONG_TEXT}}, "payload.character.greeting", id="greeting"),
    pytest.param("movement.actions", {"actions": [{"name": "wave", "description": LONG_TEXT}]}, "payload.actions[0].description", id="action-description"),
    pytest.param("movement.actions", {"actions": [{"name": "wave", "params": {LONG_NAME: "x"}}]}, "a key in payload.actions[0].params", id="map-key"),
    pytest.param("movement.actions", {"actions": [{"name": f"a{i}", "description": "d" * 3900} for i in range(9)]}, "characters of text", id="whole-request"),
]  # fmt: skip


@pytest.mark.parametrize(("type_", "payload", "named"), REQUESTS)
async def test_every_free_text_field_has_a_limit(bridge, connect, type_: str, payload: dict, named: str) -> None:
    async with connect(bridge) as client:
        await client.init_entity("npc", "ava")
        entity = "other" if type_ == "entity.init" else "npc"
        reply = await client.request(type_, payload, entity=entity, check=False)
        assert reply.status == "error" and reply.payload["code"] == "too_large", reply.payload
        assert named in reply.payload["message"]
        # Inside the limits the same request is fine, and the session goes on.
        assert (await client.request("user.utterance", {"kind": "verbal", "text": "still there?", "speaker": "n" * 200}, entity="npc")).status == "success"


async def test_held_delayed_actions_are_capped(bridge, connect) -> None:
    async with connect(bridge) as client:
        npc = await client.init_entity("npc", "ava")
        for i in range(16):
            held = await client.request("user.utterance", {"kind": "nonverbal_delayed", "text": f"nods {i}"}, entity="npc")
            assert held.payload["held"] is True
        refused = await client.request("user.utterance", {"kind": "nonverbal_delayed", "text": "nods again"}, entity="npc", check=False)
        assert refused.status == "error" and refused.payload["code"] == "too_large"
        reply = await npc.say("Well?")  # the held ones go out with the next utterance...
        assert "nods 0" in reply.payload["reply"] and "nods 15" in reply.payload["reply"]
        again = await client.request("user.utterance", {"kind": "nonverbal_delayed", "text": "shrugs"}, entity="npc")
        assert again.payload["held"] is True  # ...which makes room again
        big = "s" * 3000
        await client.request("user.utterance", {"kind": "nonverbal_delayed", "text": big}, entity="npc")
        over = await client.request("user.utterance", {"kind": "nonverbal_delayed", "text": big}, entity="npc", check=False)
        assert over.payload["code"] == "too_large" and "characters" in over.payload["message"]


async def test_chat_history_is_paged_to_fit_the_frame_limit(bridge, connect) -> None:
    """140 lines of 3900 four-byte characters are ~2.2 MB: one reply used to be that large,
    and the client (accepting the announced 1 MiB) dropped the connection with 1009."""
    async with connect(bridge, max_size=1_048_576) as client:  # the client accepts what the bridge announces
        assert client.hello["limits"]["max_frame_bytes"] == 1_048_576
        npc = await client.init_entity("npc", "ava")
        line = "\U0001f600" * 3890
        for i in range(70):
            await npc.say(f"{i:03d}{line}")
        seen: list[str] = []
        before = None
        with trio.fail_after(60):
            while True:
                payload = {"limit": 200} if before is None else {"limit": 200, "before": before}
                page = await client.request("chat.history", payload, entity="npc")
                seen = [m["text"][:13] for m in page.payload["messages"]] + seen
                if not page.payload.get("more"):
                    break
                before = page.payload["before"]
        assert not client.closed.is_set()
        assert len(seen) == 140
        assert seen[0].startswith("000") and seen[-1].startswith("You said: 069")
        assert [s[:3] for s in seen[::2]] == [f"{i:03d}" for i in range(70)]
        too_many = await client.request("chat.history", {"limit": 1001}, entity="npc", check=False)
        assert too_many.status == "error" and too_many.payload["code"] == "bad_event"


async def test_no_outbound_frame_is_over_the_announced_limit(connect) -> None:
    """A final reply that would not fit arrives as a `too_large` error reply instead; the
    client, accepting exactly the announced size, stays connected."""
    from bridge.config import parse_config
    from tests.conftest import ECHO_CONFIG, start_bridge

    config = parse_config({**ECHO_CONFIG, "limits": {"max_frame_bytes": 4096, "max_text_chars": 2000}}, "test")
    async with start_bridge(config) as running:
        async with connect(running, max_size=4096) as client:
            npc = await client.init_entity("npc", "ava")
            long = await client.request("user.utterance", {"kind": "verbal", "text": "w" * 1990}, entity="npc", check=False)
            assert long.status == "error" and long.payload["code"] == "too_large"
            assert "4096-byte frame limit" in long.payload["message"]
            assert (await npc.say("short")).payload["reply"] == "You said: short"
