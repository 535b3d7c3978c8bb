"""The embedded LLM's first clause reaches the client before its end (issue 15, first answer audio).

A real bridge (in-process, real WebSocket, the Python SDK) with the `local` module, whose
llama.cpp `Llama` object is the scripted stand-in of tests/providers/test_llm_local_guard.py
(the third-party interface only: everything of ours, the worker thread, the loop guard, the
turn, runs for real). `text_deltas` shows what the guard let out, and when.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
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


async def deltas_of_one_turn(tmp_path: Path, connect: Any, first: list[str] | None = None, **options: Any) -> list[str]:
    """One turn's text deltas; `first` scripts the model's first attempt (then it says REPLY)."""
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF")
    llama = ScriptedLlama(REPLY, replies=[first] if first is not None else None)
    async with start_bridge(config(path, **options)) as running:
        llm = await running.app.provider("fake-local")
        key = (llm.path, llm.n_ctx, llm.n_threads)
        local._models[key] = local._Model(llama=llama, load_s=0.0)
        try:
            async with connect(running, text_deltas=True) as client:
                npc = await client.init_entity("mira-1", "mira")
                with trio.fail_after(60):
                    result = await npc.say("Halt, who goes there at this hour of the night?")
        finally:
            local._models.pop(key, None)
    assert result.reply.status == "success", result.reply
    assert len(llama.calls) == (1 if first is None else 2)
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


@pytest.mark.parametrize("first", [[" [", "neut", "ral", "]"], [" *", "sm", "iles", "*"], [" ", "...", " !"], ["[happy]", " *", "nods", "*"]])
async def test_an_attempt_with_nothing_speakable_is_tried_again(tmp_path: Path, connect: Any, first: list[str]) -> None:
    # A bare "[neutral]" has a word, but the reply parser drops the tag: the module counted
    # it as spoken, did not try again, and the turn failed with "the LLM returned an empty reply".
    deltas = await deltas_of_one_turn(tmp_path, connect, first=first)
    assert "The copper kettle is open until the last guest leaves." in "".join(deltas)
