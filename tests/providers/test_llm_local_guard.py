"""The `local` module's reply shaping, through its real worker thread and token channel.

llama.cpp is replaced by a stand-in for its `Llama` object (the third-party interface the
module calls: `create_chat_completion(stream=True)` yielding OpenAI-style chunks), put into
the module's model cache for a file path, so everything of ours runs for real: the worker
thread, the loop guard, the channel to trio, and the stream's close.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from bridge.providers.base import ChatMessage, LLMRequest, ProviderError
from bridge.providers.llm import local
from bridge.providers.registry import ModuleSpec


class ScriptedLlama:
    """Streams `pieces` (cycled forever when `loop`), counting what was pulled.

    Like llama.cpp it has a vocabulary (`tokenize` gives every new piece of text an id,
    `detokenize` spells ids back) and runs a `logits_processor` before every token, with the
    ids so far (a prompt, then the reply's): when the processor forbids the next piece, the
    stand-in says `instead` (if given) from there on, once. `replies` scripts consecutive
    calls (one list of pieces per call).
    """

    def __init__(self, pieces: list[str], loop: bool = False, replies: list[list[str]] | None = None, instead: list[str] | None = None) -> None:
        self.pieces = pieces
        self.loop = loop
        self.replies = list(replies or [])
        self.instead = instead
        self.pulled = 0
        self.closed = False
        self.params: dict[str, Any] = {}
        self.calls: list[dict[str, Any]] = []
        self.vocab: dict[str, int] = {}

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        pieces = re.findall(r" ?[\w']+|[^\w\s]|\s+", text.decode())
        return [self.vocab.setdefault(piece, len(self.vocab)) for piece in pieces]

    def detokenize(self, tokens: list[int]) -> bytes:
        spelled = {token: piece for piece, token in self.vocab.items()}
        return "".join(spelled[token] for token in tokens).encode()

    def create_chat_completion(self, messages: list[dict[str, str]], stream: bool, **params: Any) -> Iterator[dict[str, Any]]:
        assert stream
        self.params = params
        self.calls.append({**params, "messages": messages})
        pieces = self.replies.pop(0) if self.replies else self.pieces
        processors = params.get("logits_processor") or []
        source = itertools.cycle(pieces) if self.loop else iter(pieces)
        prompt = list(range(7))  # the processor sees the prompt's ids first

        def forbidden(piece: str, ids: list[int]) -> bool:
            token = self.tokenize(piece.encode())[0]
            scores = np.zeros(4096, dtype=np.single)  # room for ids the processor may still tokenize
            for processor in processors:
                scores = processor(np.array(prompt + ids, dtype=np.intc), scores)
            return bool(scores[token] == -np.inf)

        def chunks() -> Iterator[dict[str, Any]]:
            nonlocal source
            ids: list[int] = []
            switched = False
            try:
                while (piece := next(source, None)) is not None:
                    if processors and not switched and forbidden(piece, ids):
                        assert self.instead is not None, f"the stand-in was told not to say {piece!r} after {self.detokenize(ids)!r}"
                        switched, source = True, iter(self.instead)
                        piece = next(source)
                    self.pulled += 1
                    ids += self.tokenize(piece.encode())
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


# --------------------------------------------------------------------------- echoes


async def ask_reply(llm: local.LocalLLM, line: str) -> str:
    with trio.fail_after(30):
        async with llm.stream(ask(line)) as deltas:
            return "".join([d async for d in deltas])


async def test_the_reply_may_not_start_with_the_players_first_word(module: Any) -> None:
    """The real model's echo (docs/quickstart.md): the first word is forbidden, so it answers."""
    llm, install = module
    fake = ScriptedLlama(["This", " is", " the", " best", " ale", " I've", " ever", " had", "."], instead=["Glad", " you", " like", " it", "!"])
    install(fake)
    assert await ask_reply(llm, "This is the best ale I've ever had.") == "Glad you like it!"
    assert len(fake.calls) == 1


async def test_an_echo_that_gets_through_is_dropped_and_the_reply_goes_on(module: Any) -> None:
    llm, install = module
    echo_then_answer = ["hand", " over", " your", ",", " eh", "?", " Not", " a", " chance", "."]  # 3 words: a first try's most
    install(ScriptedLlama(echo_then_answer))  # lower case: another token than the forbidden "Hand"
    text = await ask_reply(llm, "Hand over your coin or I'll burn this place down!")
    assert text == "Eh? Not a chance."  # the echoed clause is gone; the answer starts like a sentence
    assert llm.last_stats is not None and llm.last_stats.attempts == 1


async def test_a_reply_that_is_only_an_echo_is_generated_again(module: Any) -> None:
    llm, install = module
    echo = ["I'll", " burn", " this", "."]
    fake = ScriptedLlama([], replies=[echo, echo], instead=["Try", " it", " and", " the", " guard", " will", " have", " you", "."])
    install(fake)
    text = await ask_reply(llm, "Hand over your coin or I'll burn this place down!")
    assert text == "Try it and the guard will have you."
    assert llm.last_stats is not None and llm.last_stats.attempts == 2
    assert llm.last_stats.echo_dropped == "I'll burn this."
    assert fake.calls[1]["messages"] == fake.calls[0]["messages"]  # the same prompt, one more word forbidden


async def test_three_echoes_send_nothing_and_say_so(module: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Should the model say nothing but the echo three times, the player's words are not sent
    back (they were, as the last resort): the turn gets an empty reply, stats and log say why."""
    llm, install = module
    echo = ["Burn", " this", " place", "!"]
    fake = ScriptedLlama([], replies=[echo, echo, echo], instead=echo)
    install(fake)
    with pytest.raises(ProviderError, match="empty reply"):
        await ask_reply(llm, "Hand over your coin or I'll burn this place down!")
    stats = llm.last_stats
    assert stats is not None and stats.attempts == local.MAX_ATTEMPTS == 3 and stats.gave_up
    assert stats.echo_dropped == "Burn this place!"
    assert "nothing sent" in caplog.text
    last = fake.calls[-1]["messages"][-1]  # the last try quotes the line as the player's
    assert last == {"role": "user", "content": 'Player: "Hand over your coin or I\'ll burn this place down!"'}


BENCH_LINE = "We should leave before the guard change shifts."
SMILES = ["*", "smiles", "*"]


async def test_the_first_word_ban_holds_through_an_opening_action(module: Any) -> None:
    """The default character opens with "*smiles*": a first-token ban only ever met the "*"."""
    llm, install = module
    fake = ScriptedLlama([*SMILES, " We", " should", " leave", " before", " the", " guard", " changes", " shifts", "."], instead=[" Not", " yet", ",", " love", "."])
    install(fake)
    assert await ask_reply(llm, BENCH_LINE) == "*smiles* Not yet, love."
    assert llm.last_stats is not None and llm.last_stats.attempts == 1 and not llm.last_stats.gave_up


async def test_a_retry_may_not_carry_on_a_run_of_the_line(module: Any) -> None:
    """After an echo-only try, the next one may not say two words of the line in a row."""
    llm, install = module
    # " we": not the banned " We"; no run of more than 3 of the line's words (a first try's most)
    echo = [*SMILES, " we", " should", " leave", " the", " guard", " changes", " shifts", "."]
    again = [*SMILES, " Aye", ",", " leave", " before", " the", " guard", " changes", " shifts", "."]
    fake = ScriptedLlama([], replies=[echo, again], instead=[" at", " dawn", "."])
    install(fake)
    assert await ask_reply(llm, BENCH_LINE) == "*smiles* Aye, leave at dawn."  # "leave before" was the line's
    stats = llm.last_stats
    assert stats is not None and stats.attempts == 2 and not stats.gave_up
    assert stats.echo_dropped == "*smiles* we should leave the guard changes shifts."


async def test_a_first_try_may_not_say_more_than_three_words_of_the_line_in_a_row(module: Any) -> None:
    """With the first word banned the 0.5B model said "You should leave before the guard
    changes shifts.": the line said back at the player. "You should leave" is three words
    of the line as a restatement words it ("we" -> "you"), so "before" may not follow."""
    llm, install = module
    fake = ScriptedLlama([*SMILES, " You", " should", " leave", " before", " the", " guard", " changes", " shifts", "."], instead=[" at", " dawn", "."])
    install(fake)
    assert await ask_reply(llm, BENCH_LINE) == "*smiles* You should leave at dawn."
    assert llm.last_stats is not None and llm.last_stats.attempts == 1


async def test_a_first_try_may_not_say_more_than_three_words_of_the_line_as_it_was_said(module: Any) -> None:
    """The line's own words count as before: "we should leave" may not go on with "before"."""
    llm, install = module
    fake = ScriptedLlama([*SMILES, " Yes", ",", " we", " should", " leave", " before", " the", " guard", "."], instead=[" now", "."])
    install(fake)
    assert await ask_reply(llm, BENCH_LINE) == "*smiles* Yes, we should leave now."


async def test_a_try_that_says_nothing_is_tried_again(module: Any) -> None:
    llm, install = module
    fake = ScriptedLlama([], replies=[[], ["Not", " a", " copper", "!"]])
    install(fake)
    assert await ask_reply(llm, "Hand over your coin or I'll burn this place down!") == "Not a copper!"
    assert len(fake.calls) == 2


async def test_no_echo_false_leaves_the_reply_alone(tmp_path: Path) -> None:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF")
    llm = local.create(ModuleSpec("local", "llm", "local", {"model_path": str(path), "no_echo": False}))
    key = (llm.path, llm.n_ctx, llm.n_threads)
    fake = ScriptedLlama(["Hello", " there", "!"])
    local._models[key] = local._Model(llama=fake, load_s=0.0)
    try:
        assert await ask_reply(llm, "Hello there!") == "Hello there!"
        assert "logits_processor" not in fake.params
    finally:
        local._models.pop(key, None)


# --------------------------------------------------------------------------- first clause


FIRST_SENTENCE = ["The", " stew", " is", " hot", " and", " thick", " tonight", "."]


async def test_the_first_clause_goes_out_a_word_at_a_time_once_it_cannot_echo(module: Any) -> None:
    """A first sentence without a comma used to come out whole, at its full stop."""
    llm, install = module
    install(ScriptedLlama(FIRST_SENTENCE))
    parts = await reply(llm)  # the player asked "How is the stew?"
    assert "".join(parts) == "The stew is hot and thick tonight."
    # "The stew is hot" has two words the line lacks (of its four): it cannot become an echo.
    assert parts == ["The stew is", " hot", " and", " thick", " tonight."]


async def test_stream_first_clause_false_keeps_clause_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF")
    llm = local.create(ModuleSpec("local", "llm", "local", {"model_path": str(path), "stream_first_clause": False}))
    key = (llm.path, llm.n_ctx, llm.n_threads)
    local._models[key] = local._Model(llama=ScriptedLlama(FIRST_SENTENCE), load_s=0.0)
    try:
        assert await reply(llm) == ["The stew is hot and thick tonight."]
    finally:
        local._models.pop(key, None)
