"""Movement V1 actions over the real WebSocket: the LLM picks an action, the bridge asks the
engine (`movement.perform`, ref = the turn), the engine's answer reaches memory, the turn's
final reply and, when configured, a follow-up line.

The LLM here is the scripted `echo` module: a text-only module, so the actions travel in the
inline syntax ``[[name {"arg": "value"}]]`` (tool calls are tested with the OpenAI fake in
test_world_tools.py). The engine side is the Python SDK's bridge-request handler.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from entity_bridge_sdk import BridgeClient, Event, HandlerError

from tests.conftest import make_config, start_bridge

NO_SPEECH = {"tts": "none", "stt": "none", "vad": "none", "countenance": "none"}
GATE = [{"name": "open_gate", "description": "Open a gate of the town.", "params": {"gate": {"type": "string", "enum": ["north", "south"]}}}]


def config(replies: list[str], **character: Any) -> Any:
    return make_config(
        {
            "server": {"history_path": ":memory:"},
            "modules": {
                "actor": {"kind": "llm", "provider": "echo", "replies": replies},
                "actor_voice": {"kind": "llm", "provider": "echo", "replies": replies},
            },
            "characters": {
                "guard": {"display_name": "Rhys", "modules": {"llm": "actor", **NO_SPEECH}, **character},
                "voiced": {"display_name": "Rhys", "modules": {"llm": "actor_voice", "tts": "espeak", "stt": "none", "vad": "none", "countenance": "none"}, **character},
            },
        }
    )


async def guard_turn(replies: list[str], handler: Any, text: str = "Open the north gate!", *, actions: Any = GATE, **character: Any) -> tuple[Any, list[Event], Any]:
    """One turn of a guard with `actions` registered; returns (turn result, performs seen, client history)."""
    performed: list[Event] = []

    async def record(event: Event) -> Any:
        performed.append(event)
        result = handler(event)
        return await result if hasattr(result, "__await__") else result

    async with start_bridge(config(replies, **character)) as running:
        async with BridgeClient.connect(running.url) as client:
            guard = await client.init_entity("guard-1", "guard")
            if actions is not None:
                await guard.register_actions(actions)
            if handler is not None:
                client.handle("movement.perform", record)
            turn = await guard.say(text, timeout=60)
            history = await guard.request("chat.history", {"limit": 20})
    return turn, performed, history.payload["messages"]


async def test_inline_action_becomes_movement_perform_and_is_never_spoken() -> None:
    turn, performed, history = await guard_turn(
        ['Right away. [[open_gate {"gate": "north"}]] There you go.'], lambda e: {"feedback": "The north gate swings open."}
    )
    assert [e.payload for e in performed] == [{"actions": [{"name": "open_gate", "args": {"gate": "north"}}]}]
    assert performed[0].ref == turn.reply.id, "movement.perform carries the turn's id as ref"
    assert performed[0].entity == "guard-1"
    assert turn.payload["spoken"] == "Right away. There you go."
    assert "[[" not in "".join(e.payload["delta"] for e in turn.of_type("ai.text"))
    assert turn.payload["performed"] == [{"name": "open_gate", "args": {"gate": "north"}, "status": "success", "feedback": "The north gate swings open."}]
    assert [(m["speaker"], m["kind"], m["text"]) for m in history] == [
        ("Player", "verbal", "Open the north gate!"),
        ("guard", "speech", "Right away. There you go."),
        ("guard", "action", '[[open_gate {"gate": "north"}]]'),
        ("game", "action_result", "open_gate done: The north gate swings open."),
    ]


async def test_perform_is_sent_before_the_reply_ends() -> None:
    """The action goes out as soon as it is parsed: the engine sees it while the LLM still writes."""
    seen_at: list[int] = []
    deltas_so_far: list[str] = []

    async with start_bridge(
        make_config(
            {
                "server": {"history_path": ":memory:"},
                "modules": {"slow_actor": {"kind": "llm", "provider": "echo", "token_ms": 30, "replies": ["[[open_gate]] " + " ".join(["and"] * 30) + " done."]}},
                "characters": {"guard": {"display_name": "Rhys", "modules": {"llm": "slow_actor", **NO_SPEECH}}},
            }
        )
    ) as running:
        async with BridgeClient.connect(running.url, text_deltas=True) as client:
            guard = await client.init_entity("g", "guard")
            await guard.register_actions([{"name": "open_gate"}])

            def on_perform(event: Event) -> dict[str, Any]:
                seen_at.append(len(deltas_so_far))
                return {}

            client.handle("movement.perform", on_perform)
            turn_id = await guard.start_say("Open up.")
            async for event in guard.events():
                if event.type == "ai.text":
                    deltas_so_far.append(event.payload["delta"])
                if event.type == "user.utterance" or (seen_at and len(deltas_so_far) > 5):
                    break
            result = await client.wait(turn_id, timeout=60)
    assert seen_at and seen_at[0] < 5, f"movement.perform came after {seen_at} text deltas of 31"
    assert result.payload["performed"][0]["status"] == "success"


@pytest.mark.parametrize(
    "reply, why",
    [
        ("Hm. [[fly_away]] No.", "unknown action"),
        ('Hm. [[open_gate {"gate": "west"}]] No.', "argument outside its enum"),
        ('Hm. [[open_gate {"gate": 3}]] No.', "argument of the wrong type"),
        ('Hm. [[open_gate {"door": "north"}]] No.', "unknown argument"),
        ("Hm. [[open_gate]] No.", "missing argument"),
        ('Hm. [[open_gate {"gate": north}]] No.', "arguments that are not JSON"),
    ],
)
async def test_unknown_actions_and_bad_arguments_are_dropped(reply: str, why: str, caplog: pytest.LogCaptureFixture) -> None:
    turn, performed, history = await guard_turn([reply], lambda e: {})
    assert performed == [], why
    assert turn.payload["spoken"] == "Hm. No.", "a dropped action is never spoken either"
    assert "performed" not in turn.payload
    assert any("dropped" in r.getMessage() for r in caplog.records), "a dropped action leaves a log line"
    assert [m["kind"] for m in history] == ["verbal", "speech"]


async def test_an_action_without_registered_actions_is_dropped() -> None:
    turn, performed, _ = await guard_turn(['Sure. [[open_gate {"gate": "north"}]]'], lambda e: {}, actions=None)
    assert performed == [] and turn.payload["spoken"] == "Sure."


async def test_engine_error_is_reported_and_remembered() -> None:
    def refuse(event: Event) -> None:
        raise HandlerError("backend_error", "the north gate is stuck")

    turn, performed, history = await guard_turn(['At once. [[open_gate {"gate": "north"}]]'], refuse)
    assert len(performed) == 1
    assert turn.payload["performed"] == [{"name": "open_gate", "args": {"gate": "north"}, "status": "error", "message": "the north gate is stuck"}]
    assert history[-1] == {**history[-1], "speaker": "game", "kind": "action_result", "text": "open_gate failed: the north gate is stuck"}


async def test_engine_that_never_answers_times_out_and_the_turn_still_ends() -> None:
    async with start_bridge(config(['At once. [[open_gate {"gate": "south"}]]'], action_timeout_s=0.5)) as running:
        async with BridgeClient.connect(running.url) as client:
            guard = await client.init_entity("guard-1", "guard")
            await guard.register_actions(GATE)
            # No handler: the request reaches the event stream and nobody answers it.
            with trio.fail_after(30):
                turn = await guard.say("Open the south gate.")
            unanswered = turn.of_type("movement.perform")
            assert len(unanswered) == 1
            assert turn.payload["performed"] == [{"name": "open_gate", "args": {"gate": "south"}, "status": "timeout"}]
            # An answer after the timeout is dropped, the session carries on.
            await client.answer(unanswered[0], {"feedback": "late"})
            history = await guard.request("chat.history", {"limit": 10})
    assert history.payload["messages"][-1]["text"] == "open_gate got no answer from the game (it may not have happened)."
    assert running.app is not None


async def test_follow_up_line_after_the_result_when_configured() -> None:
    def stuck(event: Event) -> None:
        raise HandlerError("backend_error", "the gate is stuck")

    turn, performed, history = await guard_turn(
        ['Let me try. [[open_gate {"gate": "north"}]]', "Blast, it is stuck!"], stuck, react_to_action_result=True
    )
    assert len(performed) == 1
    assert turn.payload["follow_up"] == "Blast, it is stuck!"
    assert turn.payload["spoken"] == "Let me try. Blast, it is stuck!"
    assert [m["kind"] for m in history] == ["verbal", "speech", "action", "action_result", "speech"]
    assert history[-1]["text"] == "Blast, it is stuck!"


async def test_two_actions_are_performed_in_order_one_request_each() -> None:
    turn, performed, _ = await guard_turn(
        ['[[open_gate {"gate": "north"}]] and [[open_gate {"gate": "south"}]] done.'], lambda e: {"feedback": e.payload["actions"][0]["args"]["gate"]}
    )
    assert [e.payload["actions"][0]["args"]["gate"] for e in performed] == ["north", "south"]
    assert [p["feedback"] for p in turn.payload["performed"]] == ["north", "south"]


async def test_engine_answers_that_match_nothing_or_are_malformed_do_not_break_the_session() -> None:
    async with start_bridge(config(["Hello."])) as running:
        async with BridgeClient.connect(running.url) as client:
            guard = await client.init_entity("guard-1", "guard")
            # An answer to a request the bridge never sent: dropped, no reply.
            await client.answer(Event("movement.perform", "b999", entity="guard-1"), {"feedback": "done"})
            # A malformed answer (a number for the feedback text): an `error` event with ref.
            await client.answer(Event("movement.perform", "b998", entity="guard-1"), {"feedback": 5})
            errors = []
            async for event in client.events():
                if event.type == "error":
                    errors.append(event)
                    break
            turn = await guard.say("Hi")
    assert errors[0].payload["code"] == "bad_event" and errors[0].payload["ref"] == "b998"
    assert turn.payload["spoken"] == "Hello."


async def test_a_client_may_not_send_requests_with_an_answer_status() -> None:
    async with start_bridge(config(["Hello."])) as running:
        async with BridgeClient.connect(running.url) as client:
            await client.init_entity("guard-1", "guard")
            # status success on a client request type is still refused
            await client.answer(Event("user.utterance", "x1", entity="guard-1"), {"text": "hi"})
            reply = await client.wait("x1", check=False)
    assert reply.reply.status == "error" and reply.reply.payload["code"] == "bad_event"


async def test_interrupting_while_waiting_for_the_engine_cancels_the_turn() -> None:
    async with start_bridge(config(['On it. [[open_gate {"gate": "north"}]]'], action_timeout_s=60)) as running:
        async with BridgeClient.connect(running.url) as client:
            guard = await client.init_entity("guard-1", "guard")
            await guard.register_actions(GATE)
            got = trio.Event()

            def hold(event: Event) -> Any:
                got.set()
                return trio.sleep_forever()

            client.handle("movement.perform", hold)
            turn_id = await guard.start_say("Open it.")
            with trio.fail_after(30):
                await got.wait()
            await guard.interrupt()
            result = await client.wait(turn_id, check=False, timeout=30)
            assert result.reply.payload["code"] == "cancelled"
            client.handle("movement.perform", lambda e: {})
            after = await guard.say("Still there?")
    assert after.payload["spoken"] == "On it."
