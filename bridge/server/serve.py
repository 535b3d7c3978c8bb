"""The WebSocket server: websockets' trio implementation, plus `/health`, `/modules`, `/console`
and the Origin check.

Only this module and `connection.py` touch sockets. `serve_bridge` is what the CLI runs and
what tests start in their own nursery, so tests drive exactly the server users run.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from websockets.http11 import Request, Response
from websockets.trio.server import Server, ServerConnection, serve

from bridge.server.app import BridgeApp
from bridge.server.console_routes import console_response, is_console_path, own_origins
from bridge.server.metrics import CONTENT_TYPE
from bridge.server.modules_report import modules_report
from bridge.server.connection import Connection
from bridge.server.guard import RateLimitedLog, host_allowed, peer_of

log = logging.getLogger(__name__)


def quiet_accept_errors() -> None:
    """One line per 10 s instead of a traceback every 0.1 s while accept() fails (EMFILE)."""
    logger = logging.getLogger("trio.serve_listeners")
    if not any(isinstance(f, RateLimitedLog) for f in logger.filters):
        logger.addFilter(RateLimitedLog())


@dataclass
class RunningBridge:
    """A started server: where it listens and how to stop it (closing clients with 1001)."""

    app: BridgeApp
    server: Server
    host: str
    port: int
    #: The Harmony Link listener (`[compat.harmony_link]`), None when it is off.
    harmony_link: Server | None = None

    @property
    def harmony_link_url(self) -> str | None:
        if self.harmony_link is None:
            return None
        host, port = self.harmony_link.listeners[0].socket.getsockname()[:2]
        return f"ws://{host}:{port}"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    async def aclose(self) -> None:
        if self.harmony_link is not None:
            await self.harmony_link.aclose()
        await self.server.aclose()


def _json_response(connection: ServerConnection, status: int, body: dict[str, Any]) -> Response:
    response = connection.respond(status, json.dumps(body) + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


def _metrics_response(connection: ServerConnection, body: bytes) -> Response:
    response = connection.respond(200, "")
    response.body = body
    for name, value in (("Content-Length", str(len(body))), ("Content-Type", CONTENT_TYPE)):
        del response.headers[name]  # websockets' Headers append on assignment
        response.headers[name] = value
    return response


def make_request_checker(app: BridgeApp) -> Callable[[ServerConnection, Request], Any]:
    allowed = set(app.config.server.allowed_origins)
    listen_host = app.config.server.host
    hosts = frozenset(h.lower() for h in app.config.server.allowed_hosts) | {listen_host.lower()}

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        host = request.headers.get("Host")
        if not host_allowed(host, hosts):
            log.warning("refused a request for host %r (not an address of this bridge; see [server] allowed_hosts)", host[:100] if host else host)
            return connection.respond(403, "this bridge does not answer for that host name; add it to [server] allowed_hosts\n")
        port = connection.local_address[1]
        origin = request.headers.get("Origin")
        # Native engines send no Origin; a browser always does. A web page must not drive a
        # local bridge (and spend the player's API keys) unless the config allows its origin,
        # or it is the bridge's own console (served on this port, see console_routes).
        foreign = origin is not None and origin not in allowed and origin not in own_origins(listen_host, port)
        if path == "/health":
            # A web page may learn that something listens here (it could by timing anyway), nothing more.
            return _json_response(connection, 200, {"status": "ok"} if foreign else app.health())
        if path == "/metrics" and not foreign:
            return _metrics_response(connection, app.metrics.render())
        if path == "/modules" and not foreign:
            loaded = {name for name in app.config.modules if app.loaded_provider(name) is not None}
            return _json_response(connection, 200, await modules_report(app.config, loaded))
        if is_console_path(path):
            return console_response(request, path, listen_host, port)
        if foreign:
            log.warning("refused a connection from origin %s", origin[:200] if origin else origin)
            return connection.respond(
                403,
                f"origin {origin} is not allowed; add it to [server] allowed_origins in the bridge config\n",
            )
        refusal = app.peers.refusal(peer_of(connection))
        if refusal is not None:
            log.warning("refused a connection: %s", refusal)
            response = connection.respond(503, refusal + "\n")
            response.headers["Retry-After"] = "5"
            return response
        return None

    return process_request


async def serve_bridge(
    app: BridgeApp,
    host: str | None = None,
    port: int | None = None,
    *,
    task_status: trio.TaskStatus[RunningBridge] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the bridge until cancelled or closed; reports a RunningBridge once listening."""
    host = host or app.config.server.host
    port = app.config.server.port if port is None else port

    async def handler(ws: ServerConnection) -> None:
        peer = peer_of(ws)
        app.peers.opened(peer)
        try:
            await Connection(app, ws).run()
        finally:
            app.peers.closed(peer)

    quiet_accept_errors()

    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            lambda task_status: serve(
                handler,
                port,
                host=host,
                compression=None,
                process_request=make_request_checker(app),
                max_size=app.config.limits.max_frame_bytes,
                max_queue=64,
                task_status=task_status,
            )
        )
        sockname = server.listeners[0].socket.getsockname()
        running = RunningBridge(app=app, server=server, host=host, port=sockname[1])
        log.info("listening on %s", running.url)
        if app.config.harmony_link.enabled:  # imported only when on: EEP/1 pays nothing otherwise
            from bridge.server.harmony_link import serve_harmony_link

            running.harmony_link = await nursery.start(functools.partial(serve_harmony_link, app))
            log.info("Harmony Link plugins: listening on %s", running.harmony_link_url)
        task_status.started(running)
