"""Reading an OpenAI-style chat-completions stream: SSE of ``chat.completion.chunk`` objects.

Shared by the `openai` and `textgen` modules, which both POST ``/v1/chat/completions`` with
``stream: true`` through httpx and read the body with our SSE decoder.

Why not the `openai` SDK: it builds a pydantic object per chunk and a request through
several layers; measured in-process against the fake on 127.0.0.1, its stream cost ~0.15 ms
of CPU per chunk and ~1 ms per request open, which at 200 talking characters (8000 chunks a
second) is more than one core. This reader does a `json.loads` per chunk. It also forgives
what compatible servers bend: no ``data: [DONE]`` (the reply ends at the chunk with a
``finish_reason`` or at a clean end of body), ``\\r\\n`` separators, the role repeated in
every chunk.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import trio

from bridge.providers.base import ProviderError, ToolCall
from bridge.providers.http import body_chunks, error_message_from_body, transport_error
from bridge.providers.llm._common import empty_reply, malformed, redacted
from bridge.providers.llm._sse import SSEDecoder

#: How long to keep reading after the reply is complete, for the connection's sake.
DRAIN_S = 0.5


def read_chat_event(provider: str, data: str) -> tuple[str, str | None, bool]:
    """One SSE payload -> (content, finish_reason, reply is over). Raises ProviderError."""
    text, _, finish, done = read_chat_chunk(provider, data)
    return text, finish, done


def read_chat_chunk(provider: str, data: str) -> tuple[str, list[dict[str, Any]], str | None, bool]:
    """One SSE payload -> (content, tool-call fragments, finish_reason, reply is over).

    Tool-call fragments are the chunk's ``delta.tool_calls`` items as sent
    (``{index, id?, function: {name?, arguments?}}``): a call's name comes in its first
    fragment and its JSON arguments are cut across the following ones.
    """
    if data.strip() == "[DONE]":
        return "", [], None, True
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise malformed(provider, f"bad JSON in a data line ({exc}): {data[:80]!r}") from None
    if not isinstance(obj, dict):
        raise malformed(provider, f"a data line that is not a JSON object: {data[:80]!r}")
    if "error" in obj or "detail" in obj:  # a failure reported inside the stream
        raise ProviderError("backend_error", f"{provider} failed mid-reply: {error_message_from_body(data)}")
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise malformed(provider, "a chunk without `choices`")
    text, finish = "", None
    tools: list[dict[str, Any]] = []
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("index", 0) not in (0, "0"):
            continue
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            text += content
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        if isinstance(calls, list):
            tools.extend(c for c in calls if isinstance(c, dict))
        finish = choice.get("finish_reason") or finish
    return text, tools, finish, finish is not None


class ToolCallAssembler:
    """Joins streamed tool-call fragments into complete `ToolCall`s.

    A call is complete when a fragment of another index starts (models stream calls one
    after another) or the reply ends; `feed` returns the calls the fragments completed.
    """

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._index: Any = None
        self._name = ""
        self._id: str | None = None
        self._args: list[str] = []

    def feed(self, fragments: list[dict[str, Any]]) -> list[ToolCall]:
        done: list[ToolCall] = []
        for fragment in fragments:
            index = fragment.get("index", 0)
            if index != self._index:
                done.extend(self.finish())
                self._index = index
            function = fragment.get("function") or {}
            if not isinstance(function, dict):
                raise malformed(self.provider, "a tool call whose `function` is not an object")
            if isinstance(fragment.get("id"), str):
                self._id = fragment["id"]
            if isinstance(function.get("name"), str):
                self._name += function["name"]
            if isinstance(function.get("arguments"), str):
                self._args.append(function["arguments"])
        return done

    def finish(self) -> list[ToolCall]:
        if self._index is None:
            return []
        call = ToolCall(self._name, "".join(self._args), self._id)
        self._index, self._name, self._id, self._args = None, "", None, []
        return [call] if call.name else []


async def chat_deltas(response: httpx.Response, provider: str, secret: str | None) -> AsyncIterator[str | ToolCall]:
    """The reply's text pieces (and complete tool calls) as they arrive; ProviderError (never
    naming `secret`) on faults."""
    decoder = SSEDecoder()
    tools = ToolCallAssembler(provider)
    got_text = False
    finish: str | None = None
    done = False
    try:
        async with aclosing(body_chunks(response)) as chunks:
            async for raw in chunks:
                for event in decoder.feed(raw):
                    text, fragments, finish, done = read_chat_chunk(provider, event.data)
                    if text:
                        got_text = True
                        yield text
                    for call in tools.feed(fragments):
                        got_text = True
                        yield call
                    if done:
                        break
                if done:  # [DONE] or finish_reason: the reply is complete
                    break
            if done:
                # Read to the end of the body (usage chunk, [DONE], the chunked terminator)
                # so httpx can reuse the connection: a new one costs ~0.5 ms a turn.
                with trio.move_on_after(DRAIN_S):
                    async for _ in chunks:
                        pass
        if not done:  # a clean end of body; its last event may lack the blank line
            for event in decoder.close():
                text, fragments, finish, done = read_chat_chunk(provider, event.data)
                if text:
                    got_text = True
                    yield text
                for call in tools.feed(fragments):
                    got_text = True
                    yield call
        for call in tools.finish():
            got_text = True
            yield call
    except httpx.HTTPError as exc:
        raise redacted(transport_error(provider, exc), secret) from None
    except ProviderError as exc:
        raise redacted(exc, secret) from None
    if not got_text:
        raise empty_reply(provider, f"finish_reason={finish}" if finish else "")
