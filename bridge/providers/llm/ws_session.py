"""What the WebSocket-based LLM modules share: opening a socket, reading it, and turning
websockets' failures into ProviderError with the protocol's codes.

The counterpart of `bridge/providers/http.py` for backends without an HTTP API (Kajiwoto's
Socket.IO, Character AI's neo socket). Each stream opens its own socket and closes it when
the stream ends or is cancelled, so a cancelled turn leaves no reader behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.trio.client import ClientConnection, connect

from bridge.providers.base import ProviderError
from bridge.providers.llm._common import redact

DEFAULT_CONNECT_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 4 * 2**20
UNAVAILABLE_STATUS = frozenset({502, 503, 504})


def _where(url: str) -> str:
    """Host and port only: URLs may carry query strings we would rather not echo."""
    parts = urlsplit(url)
    return parts.netloc or url


def connect_error(provider: str, url: str, exc: BaseException) -> ProviderError:
    """Map a failure to open the socket onto the protocol's codes."""
    if isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
        return ProviderError("timeout", f"{provider} did not complete the WebSocket handshake in time")
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        body = exc.response.body.decode("utf-8", "replace").strip()[:200] if exc.response.body else ""
        code = "backend_unavailable" if status in UNAVAILABLE_STATUS else "backend_error"
        detail = f": {body}" if body else ""
        return ProviderError(code, f"{provider} refused the WebSocket connection with HTTP {status}{detail}")
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return ProviderError("backend_unavailable", f"cannot reach {provider} at {_where(url)}: {reason}")
    if isinstance(exc, InvalidURI):
        return ProviderError("backend_error", f"{provider} WebSocket URL is not valid: {exc}")
    return ProviderError("backend_error", f"{provider} WebSocket handshake failed: {type(exc).__name__}: {exc}")


@asynccontextmanager
async def open_websocket(
    provider: str,
    url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    headers: Mapping[str, str] | None = None,
    origin: str | None = None,
) -> AsyncIterator[ClientConnection]:
    """Connect, or raise ProviderError; the socket is closed when the block exits.

    Closing on cancellation is websockets' own safety net: its ``aclose`` closes the TCP
    stream forcefully when the closing handshake is cancelled, so the peer sees the socket
    go at once and no task of ours stays behind.
    """
    connected = False
    try:
        async with connect(
            url,
            compression=None,  # deflate costs far more than it saves on short JSON frames
            open_timeout=connect_timeout,
            close_timeout=2,
            additional_headers=dict(headers or {}),
            origin=origin,  # type: ignore[arg-type]
            max_size=MAX_MESSAGE_BYTES,
        ) as ws:
            connected = True
            yield ws
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        if connected:
            raise
        raise connect_error(provider, url, exc) from None


def closed_error(provider: str, exc: ConnectionClosed, during: str) -> ProviderError:
    """The peer went away while we waited for something."""
    frame = exc.rcvd
    if frame is None:
        how = "dropped the connection"
    else:
        reason = f" {frame.reason}" if frame.reason else ""
        how = f"closed the connection (code {frame.code}{reason})"
    return ProviderError("backend_error", f"{provider} {how} {during}")


async def recv_text(ws: ClientConnection, provider: str, during: str) -> str:
    """The next text message; binary ones are decoded as UTF-8 (no backend here sends them)."""
    try:
        message = await ws.recv()
    except ConnectionClosed as exc:
        raise closed_error(provider, exc, during) from None
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    return message


async def send_text(ws: ClientConnection, provider: str, text: str, during: str) -> None:
    try:
        await ws.send(text)
    except ConnectionClosed as exc:
        raise closed_error(provider, exc, during) from None


def scrub(message: str, secrets: Iterable[str | None]) -> str:
    """Blank out every secret a backend echoed back into its error text."""
    for secret in secrets:
        message = redact(message, secret)
    return message


@asynccontextmanager
async def scrubbed_errors(secrets: Iterable[str | None]) -> AsyncIterator[None]:
    """Rewrite ProviderErrors raised inside so their message holds none of ``secrets``."""
    keep = [s for s in secrets if s]
    try:
        yield
    except ProviderError as exc:
        clean = scrub(exc.message, keep)
        if clean != exc.message:
            exc.message = clean
            exc.args = (clean,)
        raise


def deadline_error(provider: str, what: str, seconds: float) -> ProviderError:
    return ProviderError("timeout", f"{provider} did not answer in time ({what}; waited {seconds:g} s)")
