"""What every HTTP-based module shares: timeouts, bounded retries on 429/503, and turning
httpx failures and provider error bodies into ProviderError with the provider's own words.

Modules keep their wire format to themselves; this file only knows HTTP.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import httpx
import trio
from httpx._utils import get_environment_proxies  # httpx is pinned: its own reading of HTTP(S)_PROXY / NO_PROXY

from bridge.providers.base import ProviderError
from bridge.providers.h1 import ACCEPT_ENCODING, H1Response
from bridge.providers.h1_pool import H1Pool, Origin
from bridge.providers.net import SpareNetwork
from bridge.providers.redact import install_log_filters

log = logging.getLogger(__name__)

install_log_filters()  # httpx's request log line prints the URL, credentials and all

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_RETRY_AFTER_S = 10.0
RETRYABLE_STATUS = frozenset({429, 503})
#: How much of an error body is read into a message (it is cut to MESSAGE_CHARS later).
MAX_BODY_CHARS = 65_536


def make_timeout(options: Any) -> httpx.Timeout:
    """`timeout` bounds each wait for bytes (first token, and between chunks)."""
    read = float(options.get("timeout", DEFAULT_TIMEOUT_S))
    connect = float(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S))
    return httpx.Timeout(read, connect=connect)


#: Connections one module may hold open at once. httpx's default (100) is below one request
#: per character in a crowd; the rest would queue.
DEFAULT_MAX_CONNECTIONS = 1024
#: Connection pools per module. httpcore's pool rescans all its connections for each idle
#: one on every request (quadratic): profiled at 200 talking characters with one pool of
#: ~600 connections, that scan was 43 % of the bridge's CPU. Pools of ~40 make it noise.
POOL_SHARDS = 16


class ShardedTransport(httpx.AsyncBaseTransport):
    """Several httpx transports, each with its own small connection pool; a request goes to
    the shard with the fewest responses open (the lowest-numbered one on a tie).

    Each shard may keep all its connections alive (keep-alive equals its connection limit):
    with a lower keep-alive limit httpcore closes every idle connection once the pool holds
    more than that many, and a new connection costs ~0.5-1 ms of a turn's first audio.
    Idle connections still expire after httpx's keep-alive expiry (5 s).

    Why the least-busy shard and not round robin: round robin sent each request of a lone
    character to the next shard, which had no idle connection yet, so every turn's LLM and
    TTS request opened a new connection (16 connections for 16 requests in a row). Filling
    the lowest shard first reuses the connection the last request left idle, and a crowd
    still spreads evenly over all shards.

    Every shard opens its connections through one `SpareNetwork` (`providers/net.py`): a
    connection cut mid-response is replaced by a spare in the background, and a request's
    head and body go out in one write.
    """

    def __init__(self, max_connections: int, shards: int = POOL_SHARDS) -> None:
        per_shard = max(1, -(-max_connections // shards))
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        tls = _tls_context()  # one for all shards: each load of the CA bundle costs ~25 ms
        self._shards = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(shards)]
        self.network = SpareNetwork()
        for shard in self._shards:
            # httpx takes no network backend; its httpcore pool opens every connection
            # through this attribute (httpx and httpcore are pinned; tests/test_spare_connection_e2e.py
            # fails if the wiring stops working).
            shard._pool._network_backend = self.network  # type: ignore[union-attr]
        self._open = [0] * shards  # responses not yet closed, per shard

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._shards)), key=self._open.__getitem__)
        self._open[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._open[index] -= 1
            raise
        response.stream = _CountedStream(response.stream, lambda: self._release(index))
        return response

    def _release(self, index: int) -> None:
        self._open[index] -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()
        await self.network.aclose()


class _CountedStream(httpx.AsyncByteStream):
    """A response body that calls `on_close` once, when it is closed (read to the end,
    closed early, or cut by a cancellation: httpx closes the stream in every case)."""

    def __init__(self, stream: Any, on_close: Callable[[], None]) -> None:
        self._stream = stream
        self._on_close: Callable[[], None] | None = on_close

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()  # the body's own iterator: no extra layer per read

    async def aclose(self) -> None:
        on_close, self._on_close = self._on_close, None
        try:
            await self._stream.aclose()
        finally:
            if on_close is not None:
                on_close()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context (certifi's CA bundle), built once per process."""
    return httpx.create_ssl_context()


@dataclass(frozen=True, slots=True)
class LeanTarget:
    """Where a lean request goes: its pool origin, request target and Host header."""

    origin: Origin
    target: bytes
    host: bytes


class BridgeClient(httpx.AsyncClient):
    """A module's httpx client plus its lean HTTP/1.1 pool (`providers/h1_pool.py`), which
    shares the client's `SpareNetwork`. `open_stream(..., lean=True)` uses the pool for
    the requests it can carry (`lean_target`) and httpx for everything else."""

    def __init__(self, *, lean: H1Pool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lean = lean
        self._lean_targets: dict[str, LeanTarget | None] = {}

    def lean_target(self, url: str) -> LeanTarget | None:
        """`url` as a lean target, or None if httpx must carry it: a scheme other than http(s),
        credentials in the URL (httpx turns them into basic auth; `redact.py` keeps them out
        of its log lines), or a proxy that applies to it (HTTP(S)_PROXY / NO_PROXY).
        Decided once per URL: the client's base URL and proxies are fixed when it is made."""
        try:
            return self._lean_targets[url]
        except KeyError:
            pass
        full = self._merge_url(parsed_url(url))
        target: LeanTarget | None = None
        if full.scheme in ("http", "https") and not full.userinfo and self._transport_for_url(full) is self._transport:
            port = full.port or (443 if full.scheme == "https" else 80)
            origin: Origin = (full.scheme.encode("ascii"), full.raw_host, port)
            target = LeanTarget(origin, full.raw_path, full.netloc)
        if len(self._lean_targets) < 256:
            self._lean_targets[url] = target
        return target

    async def aclose(self) -> None:
        self.lean.close()
        await super().aclose()


def _proxy_mounts(limit: int) -> dict[str, httpx.AsyncBaseTransport | None]:
    """The environment's proxies (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) as httpx
    mounts. httpx reads them only when it builds its own transport; a client given one (the
    shards) ignores them, so they are mounted here as httpx would. A NO_PROXY host maps to
    None: the client's own transport."""
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
    for pattern, proxy in get_environment_proxies().items():
        if proxy is None:
            mounts[pattern] = None
            continue
        try:
            mounts[pattern] = httpx.AsyncHTTPTransport(proxy=proxy, limits=limits, verify=_tls_context())
        except ImportError as exc:  # a socks:// proxy without httpx's socks extra
            log.warning("proxy for %s not used: %s", pattern, exc)
    return mounts


def make_client(options: Any, **kwargs: Any) -> BridgeClient:
    """The httpx client of one module: its timeouts and pools sized for a crowd of characters,
    the environment's proxies honoured, and a lean HTTP/1.1 pool beside httpx's.

    Options: `timeout`, `connect_timeout` (see `make_timeout`), `max_connections`.
    """
    limit = int(options.get("max_connections", DEFAULT_MAX_CONNECTIONS))
    timeout = make_timeout(options)
    transport = ShardedTransport(limit)
    if kwargs.get("trust_env", True):
        kwargs.setdefault("mounts", _proxy_mounts(limit))
    lean = H1Pool(transport.network, limit, timeout, _tls_context())
    return BridgeClient(lean=lean, timeout=timeout, transport=transport, **kwargs)


def error_message_from_body(body: bytes | str) -> str:
    """Pull the human message out of the error bodies providers send.

    Knows OpenAI's ``{"error": {"message"}}``, FastAPI's ``{"detail": ...}`` (ElevenLabs
    nests ``{"detail": {"status", "message"}}``), Harmony Speech's ``{"message"}``, GraphQL's
    ``{"errors": [{"message"}]}`` and plain text (Kindroid).
    """
    # Not cut here: the provider masks its secrets in the message first, and the message is
    # cut where it leaves (`redact.clip`), so a key straddling the cut cannot half-survive.
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()[:MAX_BODY_CHARS]
    try:
        data = json.loads(text)
    except ValueError:
        return text or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        detail = data.get("detail")
        if isinstance(detail, dict):
            status, message = detail.get("status"), detail.get("message")
            return ": ".join(str(x) for x in (status, message) if x) or json.dumps(detail)
        if detail is not None:
            return detail if isinstance(detail, str) else json.dumps(detail)
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", errors[0]))
        if data.get("message"):
            return str(data["message"])
    return text


def status_error(provider: str, status: int, body: bytes | str, retry_after: float | None = None) -> ProviderError:
    """An HTTP error status as a ProviderError; 5xx other than 503 stays `backend_error`."""
    message = f"{provider} answered HTTP {status}: {error_message_from_body(body)}"
    code = "backend_unavailable" if status == 503 else "backend_error"
    return ProviderError(code, message, retry_after=retry_after)


def transport_error(provider: str, exc: Exception) -> ProviderError:
    """Map httpx's exceptions onto the protocol's codes."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return ProviderError("timeout", f"{provider} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return ProviderError("backend_unavailable", f"cannot reach {provider}: {exc or type(exc).__name__}")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return ProviderError("backend_error", f"{provider} dropped the connection mid-reply")
    return ProviderError("backend_error", f"{provider} request failed: {type(exc).__name__}: {exc}")


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: treat as unknown, the default backoff applies


def retry_after_from(headers: Any) -> float:
    """Seconds to wait before retrying: `retry-after-ms` (OpenAI's), else `retry-after`, else 1."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    seconds = parse_retry_after(headers.get("retry-after"))
    return 1.0 if seconds is None else seconds


def raise_for_status(provider: str, response: httpx.Response, body: bytes | str) -> None:
    """Raise the ProviderError an error status means (with Retry-After for 429/503)."""
    if response.status_code >= 400:
        retry_after = retry_after_from(response.headers) if response.status_code in RETRYABLE_STATUS else None
        raise status_error(provider, response.status_code, body, retry_after)


async def with_retries(
    provider: str,
    attempt: Callable[[], Awaitable[Any]],
    options: Any,
) -> Any:
    """Run `attempt` and retry it on 429/503 ProviderErrors, honouring Retry-After.

    Retries are bounded in count (`max_retries`) and in wait (`max_retry_after`): a game
    would rather hear "rate limited" quickly than wait a minute in silence.
    """
    max_retries = int(options.get("max_retries", DEFAULT_MAX_RETRIES))
    cap = float(options.get("max_retry_after", DEFAULT_MAX_RETRY_AFTER_S))
    for tries in range(max_retries + 1):
        try:
            return await attempt()
        except ProviderError as exc:
            if exc.retry_after is None or tries == max_retries or exc.retry_after > cap:
                raise
            await trio.sleep(exc.retry_after)
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=256)
def parsed_url(url: str) -> httpx.URL:
    """`url` parsed once: httpx parses a string URL on every request (~40 us of a turn's
    ~90 us request building, measured), and a module sends to the same one or two URLs all
    the time. httpx.URL is immutable, so one object serves every request."""
    return httpx.URL(url)


#: Content encodings that leave the body's bytes as they are.
_IDENTITY = frozenset({"", "identity"})


def body_chunks(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """A streamed response's body, as the bytes arrive, with as few layers per read as httpx
    allows.

    `Response.aiter_bytes` runs every piece through two more async generators
    (`aiter_raw`, `aiter_bytes`), two re-chunkers and a content decoder; a TTS stream is
    read a ~100 ms piece at a time, ~10 pieces a second per speaking character. A body
    with no content encoding needs none of that, so it is read from the response's
    transport stream itself, which is still httpx's: its errors are httpx's, the read
    timeout still bounds each socket read, and closing the response closes it. An encoded
    body (gzip, br, ...) is decoded by `aiter_bytes` as before.
    """
    if isinstance(response, H1Response):  # the lean path: already as few layers as it gets
        return response.chunks()
    if response.is_stream_consumed or response.is_closed:  # (httpx would raise at the first read)
        raise httpx.StreamConsumed() if response.is_stream_consumed else httpx.StreamClosed()
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in _IDENTITY or not isinstance(response.stream, httpx.AsyncByteStream):
        return cast(AsyncGenerator[bytes, None], response.aiter_bytes())
    response.is_stream_consumed = True  # a second read fails as httpx's own would
    chunks = response.stream.__aiter__()
    if not hasattr(chunks, "aclose"):  # not a generator: give callers one to close
        return _closable(chunks)
    return cast(AsyncGenerator[bytes, None], chunks)


async def _closable(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    async for chunk in chunks:
        yield chunk


#: The request arguments the lean path carries; anything else goes through httpx.
_LEAN_KWARGS = frozenset({"json", "headers"})


def _lean_route(client: httpx.AsyncClient, url: str, kwargs: Mapping[str, Any]) -> LeanTarget | None:
    """The lean target of a JSON-body request, or None if httpx must carry it (see
    `BridgeClient.lean_target`; also auth, cookies, query params and event hooks, which
    only httpx applies)."""
    if not isinstance(client, BridgeClient) or "json" not in kwargs or not _LEAN_KWARGS.issuperset(kwargs):
        return None
    hooks = client.event_hooks
    if client.auth is not None or client.cookies or client.params or hooks["request"] or hooks["response"]:
        return None
    return client.lean_target(url)


def _lean_head(client: httpx.AsyncClient, target: LeanTarget, headers: Mapping[str, str] | None, body: bytes) -> list[tuple[bytes, bytes]]:
    """The request's headers as httpx would send them (Host first, the client's, the
    request's over those of the same name, then the body's), but asking only for the
    encodings the lean path decodes."""
    own = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()] if headers else []
    replaced = {k for k, _ in own} | {b"accept-encoding", b"host", b"content-length", b"content-type", b"transfer-encoding"}
    lines = [(b"host", target.host)]
    lines += [(k, v) for k, v in client.headers.raw if k.lower() not in replaced]
    lines += [(b"accept-encoding", ACCEPT_ENCODING), *own]
    if not any(k == b"content-type" for k, _ in own):
        lines.append((b"content-type", b"application/json"))
    lines.append((b"content-length", str(len(body)).encode("ascii")))
    return lines


def _json_body(value: Any) -> bytes:
    """The JSON body exactly as httpx 0.28 encodes `json=` (compact, UTF-8, no NaN)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    options: Any,
    *,
    lean: bool = False,
    **kwargs: Any,
) -> AsyncIterator[httpx.Response]:
    """Open a streamed request, raising ProviderError for error statuses (after retries).

    The yielded response has a 2xx status; reading it may still raise httpx errors, which
    callers pass through `transport_error`. With `lean=True` a JSON-body request goes
    through the client's lean HTTP/1.1 pool when it can (`_lean_route`): the response is
    then an `H1Response` with the same `status_code`, `headers`, `aread`, `aclose` and
    httpx's exception types (`http.body_chunks` reads either).
    """
    route = _lean_route(client, url, kwargs) if lean else None

    async def attempt() -> httpx.Response:
        try:
            if route is not None:
                pool = cast(BridgeClient, client).lean
                body = _json_body(kwargs["json"])
                head = _lean_head(client, route, kwargs.get("headers"), body)
                response = cast(httpx.Response, await pool.request(route.origin, method.encode("ascii"), route.target, head, body))
            else:
                request = client.build_request(method, parsed_url(url), **kwargs)
                response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(provider, exc) from exc
        if response.status_code >= 400:
            try:
                body = await response.aread()
            except httpx.HTTPError:
                body = b""
            finally:
                await response.aclose()
            raise_for_status(provider, response, body)
        return response

    response = await with_retries(provider, attempt, options)
    try:
        yield response
    finally:
        with trio.CancelScope(shield=True):
            await response.aclose()
