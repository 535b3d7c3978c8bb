"""The HTTP client every module shares: a crowd's requests must not queue inside the pool,
idle connections are reused, and retry hints are read the way providers send them."""

from __future__ import annotations

import httpx
import trio

from bridge.providers import http
from tests.fakes.http_server import FakeRequest, Responder, serve_http
from tests.fakes.inflight import InFlight


async def test_more_concurrent_requests_than_httpx_default_pool_all_reach_the_server() -> None:
    """httpx's default pool holds 100 connections: request 101 would wait for one to free up.
    200 talking characters need 200 streams open at once."""
    release = trio.Event()
    inflight = InFlight()

    async def handler(req: FakeRequest, res: Responder) -> None:
        await release.wait()
        await res.send(200, b"ok")

    async with serve_http(inflight.wrap(handler)) as server:
        client = http.make_client({"timeout": 5})
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(150):
                    nursery.start_soon(client.get, server.url + "/speak")
                with trio.fail_after(5):
                    while inflight.count < 150:
                        await trio.sleep(0.01)
                release.set()
        finally:
            await client.aclose()
    assert inflight.started == 150


async def test_sequential_requests_reuse_one_connection() -> None:
    peers: set[tuple[str, int]] = set()

    async def handler(req: FakeRequest, res: Responder) -> None:
        await res.send(200, b"ok")

    async with serve_http(handler) as server:
        client = http.make_client({"timeout": 5})
        try:
            for _ in range(3 * http.POOL_SHARDS):
                async with client.stream("GET", server.url + "/x") as response:
                    await response.aread()
                    stream = response.extensions["network_stream"]
                    peers.add(stream.get_extra_info("client_addr"))
        finally:
            await client.aclose()
    # One request at a time goes to the least busy shard, the first: the connection the last
    # request left idle is reused (round robin over the shards opened one per shard).
    assert len(peers) == 1


def test_retry_after_prefers_openais_milliseconds_then_seconds_then_one_second() -> None:
    assert http.retry_after_from(httpx.Headers({"retry-after-ms": "250", "retry-after": "7"})) == 0.25
    assert http.retry_after_from(httpx.Headers({"retry-after": "7"})) == 7.0
    assert http.retry_after_from(httpx.Headers({"retry-after-ms": "soon", "retry-after": "2"})) == 2.0
    assert http.retry_after_from(httpx.Headers({})) == 1.0


async def _body_through_body_chunks(headers: dict[str, str], parts: list[bytes]) -> tuple[bytes, int, bool]:
    """(body as `http.body_chunks` read it, pieces read, whether a second read was refused)."""

    async def handler(req: FakeRequest, res: Responder) -> None:
        await res.start(200, headers)
        for part in parts:
            await res.write(part)
        await res.end()

    async with serve_http(handler) as server:
        client = http.make_client({"timeout": 5})
        try:
            async with client.stream("GET", server.url + "/audio") as response:
                pieces = [chunk async for chunk in http.body_chunks(response)]
                try:
                    http.body_chunks(response)
                    refused = False
                except httpx.StreamConsumed:
                    refused = True
        finally:
            await client.aclose()
    return b"".join(pieces), len(pieces), refused


async def test_body_chunks_reads_a_plain_body_as_it_was_sent_and_only_once() -> None:
    body, count, refused = await _body_through_body_chunks({"content-type": "audio/pcm"}, [b"a" * 4800, b"b" * 4800, b"c" * 10])
    assert body == b"a" * 4800 + b"b" * 4800 + b"c" * 10
    assert 1 <= count <= 3 and refused


async def test_body_chunks_decodes_a_gzip_encoded_body() -> None:
    """An encoded body goes through httpx's decoder (the plain path would hand out gzip bytes)."""
    import gzip

    raw = b"the quick brown fox " * 500
    packed = gzip.compress(raw)
    body, _, refused = await _body_through_body_chunks(
        {"content-type": "text/event-stream", "content-encoding": "gzip"}, [packed[:100], packed[100:]]
    )
    assert body == raw and refused
