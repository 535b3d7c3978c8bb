"""`echo`: a deterministic LLM with no model, for plugin tests and demos.

It answers from a script (`replies = [...]`, used in turn) or by echoing the player, one
word per delta, at a configurable pace. Plugin authors use it to test their event handling
without waiting on a model; the bridge's own tests use it as the in-process fake provider.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import trio

from bridge.providers.base import LLMRequest, ProviderError
from bridge.providers.registry import ModuleSpec


class EchoLLM:
    def __init__(self, replies: list[str] | None, first_token_ms: float, token_ms: float, fail: str | None) -> None:
        self.name = "echo"
        self._replies: Iterator[str] | None = itertools.cycle(replies) if replies else None
        self.first_token_s = first_token_ms / 1000
        self.token_s = token_ms / 1000
        self.fail = fail
        self.active_streams = 0  # open streams right now: tests check cancellation closes them

    def _reply_for(self, request: LLMRequest) -> str:
        if self._replies is not None:
            return next(self._replies)
        return f"You said: {request.new_message}"

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[str]]:
        if self.fail:
            raise ProviderError("backend_error", f"echo was configured to fail: {self.fail}")
        reply = self._reply_for(request)

        async def deltas() -> AsyncIterator[str]:
            await trio.sleep(self.first_token_s)
            words = reply.split(" ")
            for i, word in enumerate(words):
                if i:
                    await trio.sleep(self.token_s)
                yield word if i == 0 else " " + word

        self.active_streams += 1
        gen = deltas()
        try:
            yield gen
        finally:
            self.active_streams -= 1
            await gen.aclose()

    async def aclose(self) -> None:
        return None


def create(spec: ModuleSpec) -> EchoLLM:
    replies = spec.option("replies")
    if replies is not None and (not isinstance(replies, list) or not all(isinstance(r, str) for r in replies)):
        from bridge.providers.base import ConfigError

        raise ConfigError(f"module {spec.name!r}: `replies` must be a list of strings")
    return EchoLLM(
        replies,
        float(spec.option("first_token_ms", 0)),
        float(spec.option("token_ms", 0)),
        spec.option("fail"),
    )
