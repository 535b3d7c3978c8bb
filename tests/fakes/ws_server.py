"""A WebSocket server on 127.0.0.1 for fake providers, the twin of `http_server.serve_http`.

    async with serve_ws(handler, process_request=check_auth) as url:   # "ws://127.0.0.1:PORT"
        ...

Compression and keep-alive pings are off, as the fakes want every frame they see to be one
the client sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
from websockets.trio.server import ServerConnection, serve


@asynccontextmanager
async def serve_ws(
    handler: Callable[[ServerConnection], Awaitable[None]],
    *,
    process_request: Callable[..., Any] | None = None,
) -> AsyncIterator[str]:
    """Serve `handler` on a fresh port until the block exits; yields the ws:// base URL."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve,
                handler,
                0,
                host="127.0.0.1",
                compression=None,
                ping_interval=None,
                process_request=process_request,
            )
        )
        port = server.listeners[0].socket.getsockname()[1]
        try:
            yield f"ws://127.0.0.1:{port}"
        finally:
            nursery.cancel_scope.cancel()
