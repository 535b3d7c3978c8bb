"""A Harmony Link plugin's side of the wire, written from ../shared/harmony-link-wire.md.

What the public plugins do: one WebSocket per entity to ws://host:port with no path, JSON
text frames of exactly four keys, status NEW on what they send, and a strict decoder
(`HarmonyLinkEvent(**json)`), reproduced here so a fifth key fails the test like it kills
their receive loop.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

import trio
from websockets.trio.client import connect

#: The VTS plugin's websockets client limit (its default max_size).
PLUGIN_MAX_SIZE = 1024 * 1024


@dataclass
class HarmonyLinkEvent:
    event_id: str
    event_type: str
    status: str
    payload: Any


class Plugin:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.received: list[HarmonyLinkEvent] = []

    async def send(self, event_type: str, payload: Any, event_id: str | None = None, status: str = "NEW") -> None:
        await self.ws.send(json.dumps({"event_id": event_id or event_type.lower(), "event_type": event_type, "status": status, "payload": payload}))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def next(self, timeout: float = 30) -> HarmonyLinkEvent:
        with trio.fail_after(timeout):
            data = await self.ws.recv()
        assert isinstance(data, str), "Harmony Link plugins read text frames only"
        assert len(data.encode()) < PLUGIN_MAX_SIZE
        event = HarmonyLinkEvent(**json.loads(data))  # TypeError on any extra key, as in the plugins
        self.received.append(event)
        return event

    async def wait_for(self, event_type: str, status: str | None = None, timeout: float = 60) -> HarmonyLinkEvent:
        with trio.fail_after(timeout):
            while True:
                event = await self.next(timeout)
                if event.event_type == event_type and (status is None or event.status == status):
                    return event

    async def init(self, entity_id: str) -> HarmonyLinkEvent:
        await self.send("INIT_ENTITY", {"entity_id": entity_id}, "init_entity")
        return await self.wait_for("INIT_ENTITY")


@asynccontextmanager
async def plugin(url: str) -> AsyncIterator[Plugin]:
    async with connect(url, max_size=PLUGIN_MAX_SIZE) as ws:
        yield Plugin(ws)
