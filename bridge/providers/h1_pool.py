"""The lean path's connections of one module: a last-in-first-out idle pool per origin,
bounded by the module's `max_connections`.

- LIFO: a character's next request takes the connection its last one just left (warm in
  the server's and the kernel's caches, and the one least likely to have expired).
- An idle connection is checked before reuse: if it is readable, the server closed it (or
  talks out of turn) and it is dropped; one idle longer than httpx's keep-alive expiry
  (5 s) is dropped too. A kept-alive connection that the server closes just as a request
  goes out (nothing of a response came) is retried once per idle connection, then on a
  new one: the server has not seen that request.
- At most `max_connections` responses are open at once (a semaphore; a request waits up
  to the pool timeout for a slot, as httpx's pool does).
- Connections are opened through the module's `SpareNetwork` (`providers/net.py`), shared
  with its httpx shards: a response cut while the server was still sending (an interrupt)
  orders a spare, and the next new connection is that spare.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import h11
import httpx
import trio

from bridge.providers.h1 import H1Connection, H1Response, StaleConnection
from bridge.providers.net import SpareNetwork, socket_readable

#: httpx's keep-alive expiry: an idle connection older than this is not reused.
KEEPALIVE_EXPIRY_S = 5.0

#: (scheme, host, port) as bytes/bytes/int.
Origin = tuple[bytes, bytes, int]


class H1Pool:
    """Idle connections per origin, newest on top; `request` sends one request and returns
    its streamed response (see the module's text)."""

    def __init__(self, network: SpareNetwork, max_connections: int, timeout: httpx.Timeout, tls: ssl.SSLContext | None) -> None:
        self._network = network
        self._slots = trio.Semaphore(max(1, max_connections))
        self._idle: dict[Origin, list[H1Connection]] = {}
        self._tls = tls
        self._connect_timeout = _seconds(timeout.connect)
        self._read_timeout = _seconds(timeout.read)
        self._write_timeout = _seconds(timeout.write)
        self._pool_timeout = _seconds(timeout.pool)
        self._closed = False
        #: Connections opened and requests sent on a reused one (tests, /metrics).
        self.connections_opened = 0
        self.reused = 0
        self.requests_sent = 0

    async def request(self, origin: Origin, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> H1Response:
        await self._acquire()
        try:
            request = h11.Request(method=method, target=target, headers=headers)
            while True:
                connection = self._take_idle(origin)
                if connection is None:
                    connection = await self._connect(origin)
                try:
                    await connection.send(request, body, self._write_timeout)
                    head = await connection.response_head(self._read_timeout)
                except StaleConnection:
                    connection.close_now()
                    continue  # a new connection has requests == 1: it never raises this
                except BaseException:
                    self._drop(connection)
                    raise
                self.requests_sent += 1
                if connection.requests > 1:
                    self.reused += 1
                return H1Response(connection, head, self._read_timeout, self._done)
        except BaseException:
            self._slots.release()
            raise

    async def _acquire(self) -> None:
        try:
            self._slots.acquire_nowait()  # no checkpoint when a slot is free (the usual case)
        except trio.WouldBlock:
            try:
                with trio.fail_after(self._pool_timeout):
                    await self._slots.acquire()
            except trio.TooSlowError:
                raise httpx.PoolTimeout("no free connection slot in time") from None

    def _take_idle(self, origin: Origin) -> H1Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        expired = trio.current_time() - KEEPALIVE_EXPIRY_S
        while idle:
            connection = idle.pop()
            if connection.idle_since >= expired and not socket_readable(connection.socket):
                return connection
            connection.close_now()  # closed by the server, or too old
        return None

    async def _connect(self, origin: Origin) -> H1Connection:
        scheme, host_bytes, port = origin
        host = host_bytes.decode("ascii")
        try:
            with trio.fail_after(self._connect_timeout):
                tcp = await self._network.open_socket(host, port, self._connect_timeout)
                stream: trio.abc.Stream = tcp
                if scheme == b"https":
                    if self._tls is None:  # pragma: no cover - the router sends https here only with a context
                        raise httpx.UnsupportedProtocol("no TLS context for the lean path")
                    tls = trio.SSLStream(tcp, self._tls, server_hostname=host, https_compatible=True)
                    try:
                        await tls.do_handshake()
                    except BaseException:
                        tcp.socket.close()
                        raise
                    stream = tls
        except trio.TooSlowError:
            raise httpx.ConnectTimeout("timed out connecting") from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        self.connections_opened += 1
        return H1Connection(stream, tcp.socket, origin)

    def _done(self, connection: H1Connection, reusable: bool) -> None:
        """A response ended: read to its end (`reusable`: back on top of the idle stack) or
        closed before it (the connection is closed; a spare is ordered if it was cut)."""
        self._slots.release()
        if reusable and not self._closed:
            connection.idle_since = trio.current_time()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            self._drop(connection)

    def _drop(self, connection: H1Connection) -> None:
        if connection.closed:
            return
        cut = not connection.complete and socket_readable(connection.socket)  # the server was still sending
        connection.close_now()
        if cut and not self._closed:
            _, host, port = connection.origin
            self._network.closed_while_sending(host.decode("ascii"), port, self._connect_timeout)

    @property
    def idle_connections(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        """Close the idle connections (open responses close theirs when they are closed)."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close_now()


def _seconds(value: float | None) -> float:
    return float("inf") if value is None else float(value)
