"""The embedded LLM's first clause reaches the client before its end (issue 15, first answer audio).

A real bridge (in-process, real WebSocket, the Python SDK) with the `local` module, whose
llama.cpp `Llama` object is the scripted stand-in of tests/providers/test_llm_local_guard.py
(the third-party interface only: everything of ours, the worker thread, the loop guard, the
turn, runs for real). `text_deltas` shows what the guard let out, and when.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from bridge.providers.llm import local
from tests.conftest import make_config, start_bridge
from tests.providers.test_llm_local_guard import ScriptedLlama

REPLY = ["The", " copper", " kettle", " is", " open", " until", " the", " last", " guest", " leaves", "."]


def config(path: Path, **options: Any) -> Any:
    return make_config(
        {
            "server": {"history_path": ":memory:"},
            "modules": {"fake-local": {"kind": "llm", "provider": "local", "model_path": str(path), **options}},
            "characters": {"mira": {"display_name": "Mira", "persona": "Keeps the tavern.", "prime_prompt": False, "modules": {"llm": "fake-local", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}}},
        }
    )


async def deltas_of_one_turn(tmp_path: Path, connect: Any, **options: Any) -> list[str]:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF")
    async with start_bridge(config(path, **options)) as running:
        llm = await running.app.provider("fake-local")
        key = (llm.path, llm.n_ctx, llm.n_threads)
        local._models[key] = local._Model(llama=ScriptedLlama(REPLY), load_s=0.0)
        try:
            async with connect(running, text_deltas=True) as client:
                npc = await client.init_entity("mira-1", "mira")
                with trio.fail_after(60):
                    result = await npc.say("Halt, who goes there at this hour of the night?")
        finally:
            local._models.pop(key, None)
    assert result.reply.status == "success"
    assert result.payload["spoken"] == "The copper kettle is open until the last guest leaves."
    return [str((e.payload or {}).get("delta", "")) for e in result.of_type("ai.text")]


async def test_the_first_clause_streams_before_its_full_stop(tmp_path: Path, connect: Any) -> None:
    deltas = await deltas_of_one_turn(tmp_path, connect)
    assert "".join(deltas).strip() == "The copper kettle is open until the last guest leaves."
    # At "The copper kettle is", three words the 10-word line lacks (more than a quarter of
    # it): no ending can make an echo of it, so the words before "is" go out.
    assert len(deltas) >= 5 and deltas[0].strip() == "The copper kettle"


async def test_stream_first_clause_false_sends_it_whole(tmp_path: Path, connect: Any) -> None:
    deltas = await deltas_of_one_turn(tmp_path, connect, stream_first_clause=False)
    assert [d.strip() for d in deltas] == ["The copper kettle is open until the last guest leaves."]
