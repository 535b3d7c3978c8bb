"""The sockets under every module's HTTP client: a spare connection after a cut, and a
request's head and body in one write.

httpx/httpcore open a connection when a request finds no idle one, inside that request:
measured at one character (`bench.speech_latency --probe`), the new TCP connection of the
TTS request after an interrupt was ~1.2 ms wall and ~0.5 ms of the bridge's CPU of the
segment -> TTS leg. An interrupt cuts the turn's open TTS responses, and closing is the
only way to stop a streamed response, so the character's next turn always paid it. httpx
has no way to open a connection ahead of a request; its network backend (httpcore's
`AsyncNetworkBackend`, which opens every connection of a pool) is the one place to do it.

`SpareNetwork` is that backend, wrapping httpcore's own trio backend:

- When a connection is closed while the server was still sending on it (bytes or its
  close waiting unread: a response cut short), one spare connection to the same place is
  opened in the background, and the next connection the pool asks for is that one. A spare
  is kept at most `spare_idle_s` (httpx's keep-alive expiry, 5 s), is dropped if the server
  closed it meanwhile, and only plain TCP is opened ahead (TLS is still negotiated on the
  request's path). The lean HTTP/1.1 path (`providers/h1_pool.py`) takes and orders
  spares through the same backend (`open_socket`, `closed_while_sending`). Only cuts order spares: a character whose responses end
  normally reuses its kept-alive connections and holds no extra one.
- httpcore writes a request's head and its body as two socket writes, each a trio
  checkpoint and a system call (~0.1 ms of each request, measured): the head is held and
  goes out with the next write (the body), or before the next read if none comes. The
  bridge's request bodies are whole (JSON); a streamed body would have its head wait for
  its first chunk.
"""

from __future__ import annotations

import logging
import select
import ssl
import typing
from dataclasses import dataclass

import httpcore
import trio
from httpcore._backends.trio import TrioStream  # httpcore is pinned: its trio stream over a socket we opened

log = logging.getLogger(__name__)

#: How long an unused spare connection is kept (httpx's own keep-alive expiry for idle ones).
SPARE_IDLE_S = 5.0

_Key = tuple[str, int, "str | None", tuple[typing.Any, ...]]


@dataclass
class _Spare:
    """One spare connection of a destination: being opened, or open and waiting to be taken."""

    stream: trio.SocketStream | None = None


def socket_readable(sock: typing.Any) -> bool:
    """True when reading `sock` would not block: bytes or the peer's close are waiting (on
    an idle connection that means the server closed it, or talks out of turn). The check
    httpcore makes on an idle connection before it reuses one."""
    fileno = sock.fileno()
    if fileno < 0:
        return True
    poll = select.poll()
    poll.register(fileno, select.POLLIN)
    return bool(poll.poll(0))


async def _open_tcp(host: str, port: int, timeout: float | None, local_address: str | None = None, options: tuple[typing.Any, ...] = ()) -> trio.SocketStream:
    """A TCP connection as httpcore's trio backend opens one (its errors are trio's/OSError)."""
    with trio.fail_after(float("inf") if timeout is None else timeout):
        stream = await trio.open_tcp_stream(host, port, local_address=local_address)
    for option in options:
        stream.setsockopt(*option)
    return stream


class SpareNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's trio backend, plus a spare connection after a cut (see the module's text).

    One per module (shared by its pool shards): a spare belongs to a module's destination.
    """

    def __init__(self, spare_idle_s: float = SPARE_IDLE_S) -> None:
        self._backend = httpcore.TrioBackend()
        self._spare_idle_s = spare_idle_s
        self._spares: dict[_Key, _Spare] = {}
        self._closed = False
        #: Spares opened, and connections a request got from one (for tests and /metrics).
        self.spares_opened = 0
        self.spares_used = 0

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        options = tuple(socket_options or ())
        key: _Key = (host, port, local_address, options)
        spare = await self._take_spare(key)
        if spare is None:
            stream = await self._backend.connect_tcp(host, port, timeout=timeout, local_address=local_address, socket_options=options)
        else:
            stream = TrioStream(spare)
        return _Stream(stream, self, key, timeout)

    async def open_socket(self, host: str, port: int, timeout: float | None) -> trio.SocketStream:
        """A plain trio TCP stream to `host:port` for the lean HTTP/1.1 path
        (`providers/h1_pool.py`): the spare if one waits, else a new connection.
        Raises trio.TooSlowError (connect timeout) or OSError."""
        spare = await self._take_spare((host, port, None, ()))
        return spare if spare is not None else await _open_tcp(host, port, timeout)

    def closed_while_sending(self, host: str, port: int, connect_timeout: float | None) -> None:
        """The lean path closed a connection its server was still sending on: order a spare."""
        self.order_spare((host, port, None, ()), connect_timeout)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - no module speaks over a unix socket
        return await self._backend.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def _take_spare(self, key: _Key) -> trio.SocketStream | None:
        spare = self._spares.get(key)
        if spare is None or spare.stream is None:
            return None  # none, or still being opened: this request does not wait for it
        del self._spares[key]
        stream, spare.stream = spare.stream, None
        if socket_readable(stream.socket):  # the server closed it (or talks out of turn)
            with trio.CancelScope(shield=True):
                await _close_quietly(stream)
            return None
        self.spares_used += 1
        return stream

    def order_spare(self, key: _Key, timeout: float | None) -> None:
        """Open one spare connection to `key` in the background, unless one is there already."""
        if self._closed or key in self._spares:
            return
        spare = self._spares[key] = _Spare()
        # A system task: the pool's owner (a module, shared by every connection of the
        # process) has no nursery, and the spare must outlive the request that cut its
        # connection. It never raises: a spare that cannot be opened is simply not there.
        trio.lowlevel.spawn_system_task(self._open_spare, key, spare, timeout, name="spare connection")

    async def _open_spare(self, key: _Key, spare: _Spare, timeout: float | None) -> None:
        host, port, local_address, options = key
        stream: trio.SocketStream | None = None
        try:
            stream = await _open_tcp(host, port, timeout, local_address, options)
            if self._closed or self._spares.get(key) is not spare:
                return
            spare.stream, stream = stream, None
            self.spares_opened += 1
            # Not woken when taken (that would be a task step on the taking request's path):
            # it closes the spare at the deadline if it is still there.
            await trio.sleep(self._spare_idle_s)
        except Exception as exc:  # noqa: BLE001 - a spare is an optimisation, never an error
            log.debug("spare connection to %s:%s not opened: %s", host, port, type(exc).__name__)
        finally:
            if self._spares.get(key) is spare:
                del self._spares[key]
            leftover = stream if stream is not None else spare.stream
            spare.stream = None
            if leftover is not None:
                with trio.CancelScope(shield=True):
                    await _close_quietly(leftover)

    async def aclose(self) -> None:
        """Close the spares (the pools close their own connections)."""
        self._closed = True
        spares, self._spares = list(self._spares.values()), {}
        for spare in spares:
            stream, spare.stream = spare.stream, None
            if stream is not None:
                await _close_quietly(stream)


async def _close_quietly(stream: httpcore.AsyncNetworkStream | trio.abc.AsyncResource) -> None:
    try:
        await stream.aclose()
    except Exception:  # noqa: BLE001 - closing a socket the peer already dropped
        pass


class _Stream(httpcore.AsyncNetworkStream):
    """One connection: holds a request's head until its body (or the first read), and
    orders a spare when it is closed while the server was still sending."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, network: SpareNetwork, key: _Key, connect_timeout: float | None) -> None:
        self._stream = stream
        self._network = network
        self._key = key
        self._connect_timeout = connect_timeout
        self._held = b""
        self._held_timeout: float | None = None
        self._closed = False

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._held:
            buffer, self._held = self._held + buffer, b""
        elif buffer.endswith(b"\r\n\r\n"):  # a request's head (h11 writes it in one piece)
            self._held, self._held_timeout = bytes(buffer), timeout
            return
        await self._stream.write(buffer, timeout)

    async def _flush(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            await self._stream.write(held, self._held_timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            await self._flush()
        return await self._stream.read(max_bytes, timeout)

    async def aclose(self) -> None:
        if self._closed:
            return  # (a closed socket reads as readable: it must not order a spare again)
        self._closed = True
        self._held = b""  # a request that never got to its read is abandoned, not sent
        cut = bool(self._stream.get_extra_info("is_readable"))
        await self._stream.aclose()
        if cut:
            self._network.order_spare(self._key, self._connect_timeout)

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        await self._flush()
        tls = await self._stream.start_tls(ssl_context, server_hostname=server_hostname, timeout=timeout)
        return _Stream(tls, self._network, self._key, self._connect_timeout)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)
