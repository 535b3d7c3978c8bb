"""One HTTP/1.1 connection of the lean path: a request out in one socket write, the response
head, then the body read straight from the trio stream as it arrives.

Why not httpx/httpcore for the bridge's own streamed requests: building and sending one
request through them costs ~0.6 ms of CPU (request and header objects, the pool's locks,
httpcore's state machine and several context managers) and every read of a streamed body
goes through several async-generator layers and a timeout scope each (measured at one
character, `bench.speech_latency --probe`, and in-process: see docs/performance.md "Session
6: lean HTTP path"). The wire itself is `h11` (what httpcore uses underneath): it frames the
request, parses the response head, and undoes content-length and chunked framing.

Errors are raised as httpx's own exception types (ReadTimeout, ReadError,
RemoteProtocolError, DecodingError, ...), so every caller keeps its `except httpx.HTTPError`
and `http.transport_error` maps them to the same ProviderError texts as on the httpx path.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

import h11
import httpx
import trio

#: The most one read takes from the socket (httpcore reads 64 KiB at a time too).
READ_BYTES = 65_536
#: What the lean path can decode, so what it asks for.
ACCEPT_ENCODING = b"gzip, deflate"


class StaleConnection(Exception):
    """The server closed a kept-alive connection before it answered anything: the request
    may be sent again on a new connection (the server has not seen it)."""


# ---------------------------------------------------------------------------- decoding


class _Gzip:
    def __init__(self) -> None:
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def decode(self, data: bytes) -> bytes:
        try:
            return self._z.decompress(data)
        except zlib.error as exc:
            raise httpx.DecodingError(str(exc)) from None

    def flush(self) -> bytes:
        try:
            return self._z.flush()
        except zlib.error as exc:  # pragma: no cover - zlib's flush seldom raises
            raise httpx.DecodingError(str(exc)) from None


class _Deflate:
    """`deflate` as httpx reads it: zlib-wrapped, or raw deflate if the first bytes are not."""

    def __init__(self) -> None:
        self._first = True
        self._z = zlib.decompressobj()

    def decode(self, data: bytes) -> bytes:
        first, self._first = self._first, False
        try:
            return self._z.decompress(data)
        except zlib.error as exc:
            if first:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data)
            raise httpx.DecodingError(str(exc)) from None

    def flush(self) -> bytes:
        try:
            return self._z.flush()
        except zlib.error as exc:  # pragma: no cover
            raise httpx.DecodingError(str(exc)) from None


class _Chain:
    """Several encodings (`gzip, deflate`): undone in the reverse order of application."""

    def __init__(self, decoders: list[Any]) -> None:
        self._decoders = decoders

    def decode(self, data: bytes) -> bytes:
        for decoder in self._decoders:
            data = decoder.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for decoder in self._decoders:
            data = decoder.decode(data) + decoder.flush()
        return data


_DECODERS: dict[str, Callable[[], Any]] = {"gzip": _Gzip, "x-gzip": _Gzip, "deflate": _Deflate}


def decoder_for(content_encoding: str) -> Any | None:
    """None for an identity body, else an object with `decode(bytes)` and `flush()`."""
    names = [n.strip().lower() for n in content_encoding.split(",")]
    names = [n for n in names if n and n != "identity"]
    if not names:
        return None
    unknown = [n for n in names if n not in _DECODERS]
    if unknown:  # not asked for (ACCEPT_ENCODING): httpx without brotli/zstd would not read it either
        raise httpx.DecodingError(f"content-encoding {', '.join(unknown)} is not supported")
    decoders = [_DECODERS[n]() for n in reversed(names)]
    return decoders[0] if len(decoders) == 1 else _Chain(decoders)


# ---------------------------------------------------------------------------- connection


class H1Connection:
    """A socket (plain or TLS) and its h11 state, one request at a time.

    `socket` is the TCP socket under the stream, for the readability check before reuse.
    """

    def __init__(self, stream: trio.abc.Stream, socket: Any, origin: tuple[bytes, bytes, int]) -> None:
        self.stream = stream
        self.socket = socket
        self.origin = origin
        self.h11 = h11.Connection(h11.CLIENT)
        self.requests = 0  # requests sent on it (the first is 1)
        self.answered = False  # a byte of the current request's response has come
        self.complete = False  # its response was read to the end (a close then is no cut)
        self.idle_since = 0.0
        self.closed = False

    async def send(self, request: h11.Request, body: bytes, write_timeout: float) -> None:
        """Head and body in ONE socket write (one system call, one checkpoint)."""
        conn = self.h11
        data = conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())  # type: ignore[operator]
        self.requests += 1
        self.answered = self.complete = False
        try:
            with trio.fail_after(write_timeout):
                await self.stream.send_all(data)
        except trio.TooSlowError:
            raise httpx.WriteTimeout("timed out sending the request") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            if self.requests > 1:
                raise StaleConnection() from None
            raise httpx.WriteError(str(exc) or type(exc).__name__) from None

    async def receive(self, read_timeout: float) -> Any:
        """The next h11 event, reading the socket as needed."""
        conn = self.h11
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await self.read(read_timeout))

    async def read(self, read_timeout: float) -> bytes:
        try:
            with trio.fail_after(read_timeout):
                data = await self.stream.receive_some(READ_BYTES)
        except trio.TooSlowError:
            raise httpx.ReadTimeout("timed out reading the response") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from None
        if data:
            self.answered = True
        return data

    async def response_head(self, read_timeout: float) -> h11.Response:
        """The response's status and headers (1xx skipped). StaleConnection if a reused
        connection was closed before any of it came."""
        while True:
            try:
                event = await self.receive(read_timeout)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                if self.requests > 1 and not self.answered:  # closed (or reset) before any answer
                    raise StaleConnection() from None
                raise
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.ConnectionClosed):
                if self.requests > 1:
                    raise StaleConnection()
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            # h11.InformationalResponse (100 Continue, 103 Early Hints): the real one follows

    def reusable(self) -> bool:
        """Both sides done with a keep-alive exchange: ready for the next request."""
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False

    def close_now(self) -> None:
        """Close the socket at once, without a checkpoint (no TLS close_notify either: the
        connection is being abandoned, and a shielded close must not wait on the server)."""
        if not self.closed:
            self.closed = True
            self.socket.close()


class H1Response:
    """A streamed response, shaped like the part of httpx.Response the modules use:
    `status_code`, `headers`, `aread()`, `aclose()`, and the body for `http.body_chunks`
    (`chunks()`). The response ends once, by `on_done(connection, reusable)`: at the
    body's end (the connection goes back to its pool) or when closed before it (the pool
    closes the connection)."""

    def __init__(
        self,
        connection: H1Connection,
        head: h11.Response,
        read_timeout: float,
        on_done: Callable[[H1Connection, bool], None],
    ) -> None:
        self.status_code = head.status_code
        self.headers = httpx.Headers(head.headers)  # (h11 gives the names lower-cased)
        self._connection: H1Connection | None = connection
        self._read_timeout = read_timeout
        self._on_done = on_done
        self.is_stream_consumed = False
        self.is_closed = False

    def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body's bytes as they arrive, decoded (gzip/deflate). Once per response."""
        if self.is_stream_consumed or self.is_closed:
            raise httpx.StreamConsumed() if self.is_stream_consumed else httpx.StreamClosed()
        self.is_stream_consumed = True
        return self._body(decoder_for(self.headers.get("content-encoding", "")))

    async def _body(self, decoder: Any | None) -> AsyncGenerator[bytes, None]:
        connection = self._connection
        if connection is None:
            return
        timeout = self._read_timeout
        while True:
            event = await connection.receive(timeout)
            kind = type(event)
            if kind is h11.Data:
                data = event.data
                if decoder is not None:
                    data = decoder.decode(data)
                if data:
                    yield data
            elif kind is h11.EndOfMessage:
                if decoder is not None:
                    tail = decoder.flush()
                    self._finish(reuse=True)
                    if tail:
                        yield tail
                else:
                    self._finish(reuse=True)
                return
            elif kind is h11.ConnectionClosed:  # (h11 raises on a body cut short; this is an end by close)
                self._finish(reuse=False)
                return

    def _finish(self, reuse: bool) -> None:
        connection, self._connection = self._connection, None
        self.is_closed = True
        if connection is not None:
            connection.complete = True  # (a `Connection: close` answer ends here too: not a cut)
            self._on_done(connection, reuse and connection.reusable())

    async def aread(self) -> bytes:
        """The whole (decoded) body."""
        parts = [chunk async for chunk in self.chunks()]
        return b"".join(parts)

    async def aclose(self) -> None:
        """Before the end of the body: the connection is closed (a cut; `on_done` orders a
        spare if the server was still sending). After it: nothing left to do. No
        checkpoint either way."""
        connection, self._connection = self._connection, None
        self.is_closed = True
        if connection is not None:
            self._on_done(connection, False)
