"""The fake server itself must behave, or every provider test built on it lies."""

import httpx
import pytest

from tests.fakes.http_server import FakeRequest, Responder, serve_http, sse


async def test_streams_and_records_requests() -> None:
    async def handler(req: FakeRequest, res: Responder) -> None:
        await res.start(200, {"content-type": "text/event-stream"})
        await res.write(sse({"n": 1}))
        await res.write(sse("[DONE]"))
        await res.end()

    async with serve_http(handler) as server:
        async with httpx.AsyncClient() as client:
            r = await client.post(server.url + "/v1/x?a=1", json={"q": 2})
    assert r.status_code == 200
    assert r.text == 'data: {"n": 1}\n\ndata: [DONE]\n\n'
    assert server.requests[0].path == "/v1/x"
    assert server.requests[0].query == {"a": ["1"]}
    assert server.requests[0].json() == {"q": 2}


async def test_abort_breaks_the_client_read() -> None:
    async def handler(req: FakeRequest, res: Responder) -> None:
        await res.start(200, {"content-type": "text/plain"})
        await res.write(b"partial")
        await res.abort()

    async with serve_http(handler) as server:
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(server.url)
