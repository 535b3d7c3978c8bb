"""A tiny HTTP/1.1 server on 127.0.0.1 for fake providers, built on h11 and trio.

Written for tests rather than borrowed from a framework because the fakes must misbehave
on purpose: stream slowly, hang, drop the connection mid-body, or send bytes no real
server would. Each fake is an async handler ``(request, responder)``.

    async def handler(req: FakeRequest, res: Responder) -> None:
        await res.start(200, {"content-type": "text/event-stream"})
        await res.write(b"data: {...}\\n\\n")
        await res.end()

    async with serve_http(handler) as server:
        ... server.url ... server.requests ...
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio


@dataclass
class FakeRequest:
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    #: `time.monotonic()` when the request was complete, and when each response write was
    #: handed to the socket: benchmarks in another process (same clock) use them to tell the fake's own time
    #: from the client's.
    received_at: float = 0.0
    write_times: list[float] = field(default_factory=list)
    #: Which connection it came on: 1 for the server's first accepted connection, and so on.
    connection: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


class Responder:
    """Writes one response; `abort()` closes the socket without finishing it."""

    def __init__(
        self, stream: trio.SocketStream, conn: h11.Connection, request: FakeRequest | None = None, encoding: str | None = None
    ) -> None:
        self._stream = stream
        self._conn = conn
        self._request = request
        self.aborted = False
        #: "gzip" or "deflate": every response body is sent compressed, each write flushed
        #: (a streamed body stays streamed), labelled with content-encoding.
        self._encoding = encoding
        self._compressor: Any = None

    def _compress(self, data: bytes, final: bool = False) -> bytes:
        if self._compressor is None:
            return data
        out = self._compressor.compress(data)
        return out + self._compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)

    async def _send(self, event: Any) -> None:
        data = self._conn.send(event)
        if data:
            await self._stream.send_all(data)

    async def start(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        """Begin a streamed (chunked) response."""
        hdrs = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        if self._encoding is not None and not any(k.lower() == b"content-encoding" for k, _ in hdrs):
            hdrs = [(k, v) for k, v in hdrs if k.lower() != b"content-length"]
            hdrs.append((b"content-encoding", self._encoding.encode()))
            wbits = zlib.MAX_WBITS | 16 if self._encoding == "gzip" else zlib.MAX_WBITS
            self._compressor = zlib.compressobj(wbits=wbits)
        if not any(k.lower() == b"content-length" for k, _ in hdrs):
            hdrs.append((b"transfer-encoding", b"chunked"))
        await self._send(h11.Response(status_code=status, headers=hdrs))

    async def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        if data:
            if self._request is not None:
                self._request.write_times.append(time.monotonic())
            await self._send(h11.Data(data=self._compress(data)))

    async def end(self) -> None:
        if self._compressor is not None:
            tail, self._compressor = self._compressor.flush(zlib.Z_FINISH), None
            if tail:
                await self._send(h11.Data(data=tail))
        await self._send(h11.EndOfMessage())

    async def send(
        self, status: int, body: bytes | str = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """A whole response with a content-length."""
        if isinstance(body, str):
            body = body.encode()
        hdrs = dict(headers or {})
        hdrs["content-length"] = str(len(body))
        await self.start(status, hdrs)
        await self.write(body)
        await self.end()

    async def send_json(
        self, status: int, obj: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        hdrs = {"content-type": "application/json", **(headers or {})}
        await self.send(status, json.dumps(obj), hdrs)

    async def abort(self) -> None:
        """Drop the connection mid-response, as a crashed upstream would."""
        self.aborted = True
        await self._stream.aclose()


Handler = Callable[[FakeRequest, Responder], Awaitable[None]]


@dataclass
class FakeHTTPServer:
    url: str
    port: int
    requests: list[FakeRequest] = field(default_factory=list)
    open_connections: int = 0
    connections_accepted: int = 0  # ever: tells a kept-alive connection from new ones
    connections_closed: int = 0  # ever: the client hung up (or the fake did)
    #: Misbehaviours a test may switch on while the server runs:
    #: hang up after each complete response, as a server closing idle keep-alive connections does;
    close_after_response: bool = False
    #: read a request that came on a kept-alive connection, then hang up without answering
    #: (the keep-alive race: the server closed it just as the client reused it);
    hang_up_on_reuse: bool = False
    #: compress response bodies ("gzip" / "deflate"), see `Responder`.
    encoding: str | None = None
    #: The most connections open at once.
    max_open_connections: int = 0
    #: Requests read and not answered (`hang_up_on_reuse`).
    hung_up_requests: int = 0


async def _read_request(stream: trio.SocketStream, conn: h11.Connection, connection: int = 0) -> FakeRequest | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            if not data and head is None:
                return None
            continue
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            target = head.target.decode()
            parts = urlsplit(target)
            return FakeRequest(
                method=head.method.decode(),
                target=target,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.decode().lower(): v.decode() for k, v in head.headers},
                body=bytes(body),
                received_at=time.monotonic(),
                connection=connection,
            )
        elif isinstance(event, h11.ConnectionClosed):
            return None


@asynccontextmanager
async def serve_http(handler: Handler) -> AsyncIterator[FakeHTTPServer]:
    """Run `handler` for every request on a fresh 127.0.0.1 port until the block exits."""

    server: FakeHTTPServer

    async def serve_connection(stream: trio.SocketStream) -> None:
        server.open_connections += 1
        server.max_open_connections = max(server.max_open_connections, server.open_connections)
        server.connections_accepted += 1
        number = server.connections_accepted
        conn = h11.Connection(h11.SERVER)
        answered = 0
        try:
            while True:
                try:
                    request = await _read_request(stream, conn, number)
                except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
                    return
                if request is None:
                    return
                if answered and server.hang_up_on_reuse:
                    server.hung_up_requests += 1
                    return
                answered += 1
                server.requests.append(request)
                responder = Responder(stream, conn, request, server.encoding)
                try:
                    await handler(request, responder)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if responder.aborted or conn.our_state is not h11.DONE or server.close_after_response:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        finally:
            server.open_connections -= 1
            server.connections_closed += 1
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, serve_connection, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        server = FakeHTTPServer(url=f"http://127.0.0.1:{port}", port=port)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


def sse(obj: Any, *, sep: str = "\n") -> bytes:
    """One server-sent event carrying JSON (or a raw string such as `[DONE]`)."""
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"data: {data}{sep}{sep}".encode()
