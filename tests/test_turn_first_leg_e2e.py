"""What a turn runs between the utterance and its LLM request, over a real WebSocket against
the fake OpenAI chat and speech servers, checked by what is running when the fake LLM gets
the request (never by how long anything took).

Every task started before the LLM request is out runs its first step inside the request's
path ("utterance -> LLM request", the first leg of `bench.speech_latency`): trio runs it in
the scheduler pass after the turn's first checkpoint, and the HTTP client has several before
its write. The speaker, the action runner and the store of the user's line have nothing to
do until the LLM answers, so they start then (a TTS fed words as they are written still
opens its stream at once: its handshake overlaps the LLM's wait).
"""

from __future__ import annotations

from typing import Any

from tests.conftest import live_tasks, start_bridge
from tests.fakes.http_server import FakeRequest
from tests.fakes.openai_chat import fake_openai_chat
from tests.fakes.openai_speech import fake_openai_speech
from tests.test_speech_load_e2e import config

REPLY = "Hello there, traveller. The road north is closed."
#: Tasks of a turn that wait for the LLM's answer (trio names a task after its function).
WAITING_FOR_THE_REPLY = (
    "bridge.speech.speaker.",
    "bridge.world.actions.ActionRun.",
    "bridge.character.conversation.ConversationTurn._remember_user_line",
)


def running_turn_tasks() -> list[str]:
    return [name for prefix in WAITING_FOR_THE_REPLY for name in live_tasks(prefix)]


async def test_nothing_but_the_turn_runs_before_its_llm_request(connect: Any) -> None:
    """Two turns with a voice: when the fake LLM receives each request, none of the turn's
    other tasks has been started; the turns still speak, and the history holds both sides
    in order. Before, the speaker's, the action runner's and the line store's tasks were
    all running by then."""
    at_request: list[list[str]] = []

    def on_request(request: FakeRequest) -> None:
        at_request.append(running_turn_tasks())

    async with fake_openai_chat(REPLY, on_request=on_request) as llm, fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), llm.options(timeout=10))) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                results = [await npc.say("Is the road open?"), await npc.say("Why?")]
                lines = [(m["speaker"], m["text"]) for m in (await npc.request("chat.history", {})).payload["messages"]]
    assert at_request == [[], []]
    for result in results:
        assert result.reply.status == "success", result.reply
        assert len(result.of_type("ai.speech.start")) == 2
        assert result.of_type("ai.speech.audio")
    assert lines == [("Player", "Is the road open?"), ("npc", REPLY), ("Player", "Why?"), ("npc", REPLY)]
