"""A bridge in this process on a free 127.0.0.1 port, and an SDK client on it.

`say` and `chat` go through the same path a game does (WebSocket, protocol, turn, voice),
so what you hear and read in the terminal is what a game would get; nothing is special-cased.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import trio

from bridge.config import BridgeConfig, CharacterConfig
from bridge.providers.base import ConfigError
from bridge.server.app import BridgeApp
from bridge.server.serve import RunningBridge, serve_bridge
from entity_bridge_sdk import BridgeClient


def pick_character(config: BridgeConfig, name: str | None) -> CharacterConfig:
    if name is None:
        return next(iter(config.characters.values()))
    found = config.characters.get(name)
    if found is None:
        raise ConfigError(f"no character {name!r}; configured: {', '.join(config.characters)}")
    return found


def without_speech(config: BridgeConfig) -> BridgeConfig:
    """The same characters with no voice and no ears (a terminal chat only reads text)."""
    quiet = {
        name: replace(c, modules={slot: m for slot, m in c.modules.items() if slot not in ("tts", "stt", "vad")})
        for name, c in config.characters.items()
    }
    return replace(config, characters=quiet)


@asynccontextmanager
async def client_on(config: BridgeConfig, **connect: object) -> AsyncIterator[BridgeClient]:
    app = BridgeApp(config.with_server(host="127.0.0.1", port=0))
    async with trio.open_nursery() as nursery:
        running: RunningBridge = await nursery.start(serve_bridge, app)
        try:
            async with BridgeClient.connect(running.url, **connect) as client:  # type: ignore[arg-type]
                yield client
        finally:
            with trio.move_on_after(10) as scope:
                scope.shield = True
                await running.aclose()
                await app.aclose()
            nursery.cancel_scope.cancel()
