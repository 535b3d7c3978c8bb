"""The `local` module's reply shaping, through its real worker thread and token channel.

llama.cpp is replaced by a stand-in for its `Llama` object (the third-party interface the
module calls: `create_chat_completion(stream=True)` yielding OpenAI-style chunks), put into
the module's model cache for a file path, so everything of ours runs for real: the worker
thread, the loop guard, the channel to trio, and the stream's close.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from bridge.providers.base import ChatMessage, LLMRequest
from bridge.providers.llm import local
from bridge.providers.registry import ModuleSpec


class ScriptedLlama:
    """Streams `pieces` (cycled forever when `loop`), counting what was pulled."""

    def __init__(self, pieces: list[str], loop: bool = False) -> None:
        self.pieces = pieces
        self.loop = loop
        self.pulled = 0
        self.closed = False
        self.params: dict[str, Any] = {}

    def create_chat_completion(self, messages: list[dict[str, str]], stream: bool, **params: Any) -> Iterator[dict[str, Any]]:
        assert stream
        self.params = params
        source = itertools.cycle(self.pieces) if self.loop else iter(self.pieces)

        def chunks() -> Iterator[dict[str, Any]]:
            try:
                for piece in source:
                    self.pulled += 1
                    yield {"choices": [{"delta": {"content": piece}}]}
            finally:
                self.closed = True

        return chunks()


@pytest.fixture
def module(tmp_path: Path) -> Iterator[tuple[local.LocalLLM, Any]]:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF")
    llm = local.create(ModuleSpec("local", "llm", "local", {"model_path": str(path)}))
    key = (llm.path, llm.n_ctx, llm.n_threads)

    def install(fake: ScriptedLlama) -> None:
        local._models[key] = local._Model(llama=fake, load_s=0.0)

    yield llm, install
    local._models.pop(key, None)


def ask(text: str = "How is the stew?") -> LLMRequest:
    messages = [ChatMessage("system", "You are Mira."), ChatMessage("user", text)]
    return LLMRequest(messages=messages, new_message=text, character="mira")


async def reply(llm: local.LocalLLM) -> list[str]:
    with trio.fail_after(30):  # without the guard the looping stream would never end
        async with llm.stream(ask()) as deltas:
            return [d async for d in deltas]


async def test_a_looping_model_is_stopped_and_the_reply_ends_cleanly(module: Any) -> None:
    llm, install = module
    fake = ScriptedLlama(["The", " stew", " is", " hot", ".", " Aye", ",", " the", " stew", " is", " hot", " and", " good", ", "], loop=True)
    install(fake)
    parts = await reply(llm)
    text = "".join(parts)
    assert text == "The stew is hot. Aye, the stew is hot and good,"
    assert llm.last_stats is not None and llm.last_stats.stopped_by == "loop"
    assert fake.pulled < 40  # an endless stream, yet generation stopped at the repeat
    assert fake.closed  # llama.cpp's generator was closed, so it stops decoding
    assert llm.active_workers == 0


async def test_penalty_stops_and_sentence_cap_reach_llama(module: Any) -> None:
    llm, install = module
    fake = ScriptedLlama(["One", ".", " Two", ".", " Three", ".", " Four", ".", " Five", "."])
    install(fake)
    assert "".join(await reply(llm)) == "One. Two. Three."
    assert llm.last_stats is not None and llm.last_stats.stopped_by == "length"
    assert fake.params["repeat_penalty"] == local.DEFAULT_REPEAT_PENALTY
    assert "Player:" in fake.params["stop"] and "\n\n" in fake.params["stop"]
    assert fake.params["max_tokens"] == local.DEFAULTS["max_tokens"]


async def test_a_good_reply_streams_whole(module: Any) -> None:
    llm, install = module
    words = ["Welcome", ",", " traveller", "!", " The", " stew", " is", " three", " coppers", "."]
    install(ScriptedLlama(words))
    parts = await reply(llm)
    assert "".join(parts) == "".join(words)
    assert len(parts) == 3  # a clause at a time: "Welcome," / " traveller!" / " The stew ..."
    assert llm.last_stats is not None and llm.last_stats.stopped_by is None
