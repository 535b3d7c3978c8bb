"""Harmony Link's HTTP fallback on the same port as its WebSocket listener.

VNGE's plugin falls back to HTTP when its runtime lacks System.Net.WebSockets: it POSTs each
event as JSON to http://127.0.0.1:28080 with `Harmony-Session-Id` ("" the first time) and
`Harmony-Result-Port`; the 200 answer carries the session id it keeps; results come back as
POSTs to http://localhost:<result port> with the same session id header. Both use the port
of the WebSocket listener, so each accepted connection is sniffed: a request that starts
with `POST ` is handled here, anything else goes on to websockets with the bytes already
read put back in front.

An HTTP session is an ordinary `HarmonyLinkConnection` whose "socket" takes events from the
POSTs and sends its events as POSTs: the entity, its turns and the translator are the ones
a WebSocket plugin gets.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import httpx
import trio

log = logging.getLogger(__name__)

#: How long a new connection may take to send its first bytes (WebSocket or POST).
SNIFF_TIMEOUT_S = 10.0
#: Largest event a plugin may POST (Harmony Link's clientconnectionbuffer).
MAX_BODY_BYTES = 8192000
#: An HTTP session nobody posted to for this long is closed (its entity removed).
IDLE_SESSION_S = 600.0


class PrefixStream(trio.abc.HalfCloseableStream):
    """A socket stream with bytes already read from it put back in front."""

    def __init__(self, prefix: bytes, stream: trio.SocketStream) -> None:
        self.prefix = prefix
        self.stream = stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.prefix:
            data, self.prefix = self.prefix, b""
            return data
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


class SniffingListener(trio.abc.Listener[trio.abc.Stream]):
    """Accepts on the real socket, answers POSTs itself, hands WebSocket streams to `accept()`.

    Accepting and sniffing run in background tasks so a slow client never holds up others.
    """

    def __init__(
        self,
        inner: trio.SocketListener,
        on_post: Callable[[trio.SocketStream, bytes], Awaitable[None]],
        allowed: Callable[[Any], bool],
    ) -> None:
        self.inner = inner
        self.socket = inner.socket  # for the server's address
        self._on_post = on_post
        self._allowed = allowed
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](64)

    async def run(self, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await self.inner.accept()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._send.close()
                return
            nursery.start_soon(self._sniff, stream)

    async def _sniff(self, stream: trio.SocketStream) -> None:
        try:
            if not self._allowed(stream.socket.getpeername()):
                log.warning("refused a Harmony Link client from %s (not in allowed_clients)", stream.socket.getpeername())
                await stream.send_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await stream.aclose()
                return
            with trio.fail_after(SNIFF_TIMEOUT_S):
                head = await stream.receive_some(65536)
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await trio.aclose_forcefully(stream)
            return
        if head.startswith(b"POST "):
            await self._on_post(stream, head)
            return
        try:
            self._send.send_nowait(PrefixStream(head, stream))
        except (trio.WouldBlock, trio.ClosedResourceError):
            await trio.aclose_forcefully(stream)

    async def accept(self) -> trio.abc.Stream:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError() from None

    async def aclose(self) -> None:
        await self.inner.aclose()


class HttpSession:
    """One plugin over HTTP: a duck-typed socket for `HarmonyLinkConnection`."""

    def __init__(self, session_id: str, result_port: int, client: httpx.AsyncClient) -> None:
        self.session_id = session_id
        self.result_port = result_port
        self.client = client
        self._events_send, self._events = trio.open_memory_channel[str](64)
        self.last_post = trio.current_time()
        self.stream = None  # nothing to close forcefully under a stalled writer

    async def deliver(self, body: str) -> None:
        self.last_post = trio.current_time()
        await self._events_send.send(body)

    async def recv(self) -> str:
        from websockets.exceptions import ConnectionClosedOK
        from websockets.frames import Close

        with trio.move_on_after(IDLE_SESSION_S):
            try:
                return await self._events.receive()
            except trio.EndOfChannel:
                pass
        raise ConnectionClosedOK(Close(1000, "session over"), None)

    async def send(self, text: str) -> None:
        """A result event: POSTed to the plugin's own little HTTP server."""
        headers = {"Content-Type": "application/json", "Accept": "application/json", "Harmony-Session-Id": self.session_id}
        try:
            response = await self.client.post(f"http://127.0.0.1:{self.result_port}/", content=text.encode(), headers=headers)
            if response.status_code >= 300:
                log.warning("the plugin's result server answered HTTP %s", response.status_code)
        except httpx.HTTPError as exc:
            log.warning("could not POST a result to the plugin on port %s: %s", self.result_port, exc)

    def close(self) -> None:
        self._events_send.close()


class HttpFallback:
    """The POST side of the listener: sessions by id, each driving one connection."""

    def __init__(self, run_connection: Callable[[Any], Awaitable[None]], nursery: trio.Nursery) -> None:
        self.run_connection = run_connection
        self.nursery = nursery
        self.sessions: dict[str, HttpSession] = {}
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))

    async def handle(self, stream: trio.SocketStream, head: bytes) -> None:
        """Serve the POSTs of one TCP connection (keep-alive), then close it."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=65536)
        conn.receive_data(head)
        try:
            while True:
                request, body = await self._read_request(conn, stream)
                if request is None:
                    return
                status, session_id, text = await self._answer(request, body)
                headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(text.encode())))]
                if session_id:
                    headers.append(("Harmony-Session-Id", session_id))
                await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
                await stream.send_all(conn.send(h11.Data(data=text.encode())) or b"")
                await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError) as exc:
            log.info("Harmony Link HTTP connection ended: %s", exc)
        finally:
            await trio.aclose_forcefully(stream)

    async def _read_request(self, conn: h11.Connection, stream: trio.SocketStream) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        with trio.fail_after(SNIFF_TIMEOUT_S * 3):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data and request is None:
                        return None, b""
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_BODY_BYTES:
                        raise h11.RemoteProtocolError("body too large")
                elif isinstance(event, h11.EndOfMessage):
                    return request, bytes(body)
                elif isinstance(event, h11.ConnectionClosed):
                    return None, b""

    async def _answer(self, request: h11.Request, body: bytes) -> tuple[int, str, str]:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        session_id = headers.get("harmony-session-id", "")
        session = self.sessions.get(session_id)
        if session is None:
            try:
                port = int(headers.get("harmony-result-port", ""))
            except ValueError:
                return 400, "", "a new session needs a Harmony-Result-Port header (the plugin's result server)\n"
            if not 0 < port < 65536:
                return 400, "", "Harmony-Result-Port must be a TCP port\n"
            session_id = uuid.uuid4().hex
            session = HttpSession(session_id, port, self.client)
            self.sessions[session_id] = session
            self.nursery.start_soon(self._run, session)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = "\ufffd"  # the translator answers a non-JSON body with an ERROR event
        with trio.move_on_after(5):
            await session.deliver(text)
            return 200, session_id, ""
        return 503, session_id, "the bridge is busy with this session's earlier events\n"

    async def _run(self, session: HttpSession) -> None:
        try:
            await self.run_connection(session)
        finally:
            session.close()
            self.sessions.pop(session.session_id, None)

    async def aclose(self) -> None:
        for session in list(self.sessions.values()):
            session.close()
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await self.client.aclose()


def loopback_or_listed(allowed: tuple[str, ...]) -> Callable[[Any], bool]:
    def check(address: Any) -> bool:
        host = address[0] if isinstance(address, tuple) else str(address)
        try:
            if ipaddress.ip_address(host).is_loopback:
                return True
        except ValueError:
            return False
        return host in allowed

    return check

