"""The lean HTTP/1.1 path of the streamed provider requests (`bridge/providers/h1.py`,
`h1_pool.py`, routed by `http.open_stream(..., lean=True)`), over a real WebSocket against
the fake OpenAI chat and speech servers; checked by counts, never by time.

What it must keep from the httpx path: one socket write per request, kept-alive
connections reused across turns, a connection the server closed never used, gzip bodies
read, the spare connection after an interrupt, the module's `max_connections`, and the
redaction of URL credentials (which go through httpx). What it adds: the environment's
proxies (HTTP_PROXY, NO_PROXY) are honoured on every HTTP path (httpx ignored them once
given its transport).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.fakes.openai_chat import fake_openai_chat
from tests.fakes.openai_speech import fake_openai_speech
from tests.refused_port import refused_port
from tests.test_spare_connection_e2e import AUDIO_OUT, ONE_SEGMENT, PIECE_MS, _wait_until
from tests.test_speech_load_e2e import LONG_LINE, REPLY, config

PLAYED = {"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}


async def _tts_pool(running: Any) -> Any:
    return (await running.app.provider("voice"))._client().lean


async def _llm_pool(running: Any) -> Any:
    return (await running.app.provider("chat"))._client.lean


async def test_each_request_is_one_socket_write_on_the_lean_path(connect: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two turns (one LLM and two TTS requests each): every request is one `send_all` on
    its socket, head and JSON body together, and the lean pools carried all of them."""
    from tests.conftest import start_bridge

    writes: list[bytes] = []
    ports: list[int] = []
    send_all = trio.SocketStream.send_all

    async def counted(self: trio.SocketStream, data: Any) -> None:
        if self.socket.getpeername()[1] in ports:  # the bridge's writes to the fakes
            writes.append(bytes(data))
        await send_all(self, data)

    monkeypatch.setattr(trio.SocketStream, "send_all", counted)
    async with fake_openai_chat(REPLY) as llm, fake_openai_speech() as tts:
        ports += [llm.http.port, tts.http.port]
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), llm.options(timeout=10))) as running:
            async with connect(running, audio_out=PLAYED, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                for _ in range(2):
                    await npc.say("Is the road open?")
            llm_pool, tts_pool = await _llm_pool(running), await _tts_pool(running)
    assert len(llm.requests) == 2 and len(tts.requests) == 4
    assert len(writes) == 6 and all(w.startswith(b"POST ") and w.endswith(b"}") for w in writes), [w[:30] for w in writes]
    assert (llm_pool.requests_sent, tts_pool.requests_sent) == (2, 4)


async def test_turns_reuse_the_lean_connections(connect: Any) -> None:
    """Three turns: the LLM's three requests share one connection, the TTS's six at most
    two (two segments are asked for at once); the pools count the reuse."""
    from tests.conftest import start_bridge

    async with fake_openai_chat(REPLY) as llm, fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), llm.options(timeout=10))) as running:
            async with connect(running, audio_out=PLAYED, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                for _ in range(3):
                    result = await npc.say("Is the road open?")
                    assert len(result.of_type("ai.speech.start")) == 2
            llm_pool, tts_pool = await _llm_pool(running), await _tts_pool(running)
    assert llm.http.connections_accepted == 1 and (llm_pool.connections_opened, llm_pool.reused) == (1, 2)
    assert tts.http.connections_accepted == tts_pool.connections_opened <= 2
    assert tts_pool.reused == 6 - tts_pool.connections_opened


async def test_an_idle_connection_the_server_closed_is_not_used(connect: Any) -> None:
    """The fake TTS hangs up after each response (as a server closing idle keep-alive
    connections does). The next line's request does not go out on the dead connection:
    it is dropped before reuse and the line is spoken over a new one."""
    from tests.conftest import start_bridge

    async with fake_openai_speech() as tts:
        tts.http.close_after_response = True
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), segmenter=ONE_SEGMENT)) as running:
            async with connect(running, audio_out=PLAYED, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                await npc.speak("The road north is closed.", timeout=30)
                assert await _wait_until(lambda: tts.http.connections_closed == 1)
                second = await npc.speak("The ferry is running.", timeout=30)
            pool = await _tts_pool(running)
    assert len(second.of_type("ai.speech.start")) == 1
    assert [r.connection for r in tts.requests] == [1, 2]
    assert (pool.connections_opened, pool.reused, pool.requests_sent) == (2, 0, 2)


async def test_a_kept_alive_connection_closed_as_it_is_reused_is_retried_on_a_new_one(connect: Any) -> None:
    """The keep-alive race: the server reads the request that came on a kept-alive
    connection and hangs up without a byte of answer. The request goes out again on a new
    connection and the line is spoken. Before (httpx), the line failed with
    `backend_error` ('dropped the connection mid-reply')."""
    from tests.conftest import start_bridge

    async with fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), segmenter=ONE_SEGMENT)) as running:
            async with connect(running, audio_out=PLAYED, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                await npc.speak("The road north is closed.", timeout=30)
                tts.http.hang_up_on_reuse = True
                second = await npc.speak("The ferry is running.", timeout=30)
    assert len(second.of_type("ai.speech.start")) == 1
    assert tts.http.hung_up_requests == 1
    assert [r.connection for r in tts.requests] == [1, 2]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_bodies_are_read_on_the_lean_path(connect: Any, encoding: str) -> None:
    """Both fakes compress their streamed bodies (SSE and PCM, each write flushed): the
    reply's text and all its audio arrive as from plain bodies, through the lean pools."""
    from tests.conftest import start_bridge

    async with fake_openai_chat(REPLY) as llm, fake_openai_speech() as tts:
        llm.http.encoding = tts.http.encoding = encoding
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), llm.options(timeout=10))) as running:
            async with connect(running, audio_out=PLAYED, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                result = await npc.say("Is the road open?")
            llm_pool, tts_pool = await _llm_pool(running), await _tts_pool(running)
    assert " ".join(e.payload["text"] for e in result.of_type("ai.speech.start")) == REPLY
    audio_ms = sum(e.payload.get("duration_ms", 40) for e in result.of_type("ai.speech.audio"))
    assert audio_ms > 0
    assert (llm_pool.requests_sent, tts_pool.requests_sent) == (1, 2)


async def test_the_environments_http_proxy_is_used(connect: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY names the fake (which answers absolute-form requests as a forward proxy
    would pass them on); the TTS's base_url is a host that does not resolve. The request
    goes to the proxy, absolute-form, through httpx (the lean path does not speak to
    proxies). Before, the proxy was ignored and the line failed: the host cannot be
    reached."""
    from tests.conftest import start_bridge

    async with fake_openai_speech() as tts:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{tts.http.port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the SDK's WebSocket to the bridge goes direct
        monkeypatch.delenv("no_proxy", raising=False)
        options = {**tts.options(model="tts-1", timeout=10), "base_url": "http://tts.proxied.invalid/v1"}
        async with start_bridge(config(options, segmenter=ONE_SEGMENT)) as running:
            async with connect(running, audio_out=PLAYED, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                result = await npc.speak("The road north is closed.", timeout=30)
            pool = await _tts_pool(running)
    assert len(result.of_type("ai.speech.start")) == 1
    assert [r.target for r in tts.requests] == ["http://tts.proxied.invalid/v1/audio/speech"]
    assert pool.requests_sent == 0


async def test_no_proxy_hosts_go_direct_on_the_lean_path(connect: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY names a port nobody listens on, NO_PROXY names 127.0.0.1: the request goes
    straight to the fake, through the lean pool."""
    from tests.conftest import start_bridge

    with refused_port() as dead:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.delenv("no_proxy", raising=False)
        async with fake_openai_speech() as tts:
            async with start_bridge(config(tts.options(model="tts-1", timeout=10), segmenter=ONE_SEGMENT)) as running:
                async with connect(running, audio_out=PLAYED, visemes="none") as client:
                    npc = await client.init_entity("npc-1", "npc")
                    result = await npc.speak("The road north is closed.", timeout=30)
                pool = await _tts_pool(running)
    assert len(result.of_type("ai.speech.start")) == 1
    assert [r.target for r in tts.requests] == ["/v1/audio/speech"]
    assert pool.requests_sent == 1


async def test_url_credentials_go_through_httpx_and_stay_masked(connect: Any) -> None:
    """A base_url with user:password@ is carried by httpx (which sends them as basic auth
    and whose log line `redact.py` masks), never by the lean pool; the error the client
    gets shows `***@`, not the password."""
    from tests.conftest import start_bridge

    password = "pw-lean-0123456789"
    async with fake_openai_speech(fault="status", status=500, message="upstream sad") as tts:
        options = {**tts.options(model="tts-1", timeout=10, max_retries=0), "base_url": f"http://proxyuser:{password}@127.0.0.1:{tts.http.port}/v1"}
        async with start_bridge(config(options, segmenter=ONE_SEGMENT)) as running:
            async with connect(running, audio_out=PLAYED, visemes="none") as client:
                await client.init_entity("npc-1", "npc")
                turn = await client.send("tts.say", {"text": "The road north is closed."}, entity="npc-1", collect=True)
                result = await client.wait(turn, timeout=30, check=False)
            pool = await _tts_pool(running)
    assert tts.requests and tts.requests[0].headers["authorization"].startswith("Basic ")
    text = repr(result.events) + repr(result.reply.payload)
    assert password not in text
    assert pool.requests_sent == 0


async def test_max_connections_bounds_the_lean_pool(connect: Any) -> None:
    """`max_connections = 1`: a two-segment line asks for both segments at once, but only
    one connection is ever open; the second request waits for the first response's end
    and reuses its connection. Before, the bound was per httpx shard (16 shards: 16
    connections allowed), and both requests were open at once on two connections."""
    from tests.conftest import start_bridge

    async with fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10, max_connections=1))) as running:
            async with connect(running, audio_out=PLAYED, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                result = await npc.speak(REPLY, timeout=30)
    assert len(result.of_type("ai.speech.start")) == 2 and len(tts.requests) == 2
    assert tts.http.max_open_connections == 1 and tts.http.connections_accepted == 1


async def test_the_lean_request_after_an_interrupt_goes_out_on_the_spare(connect: Any) -> None:
    """As `test_spare_connection_e2e`, through the lean pool: the interrupt cuts the long
    line's response, a spare is opened in the background, and the next line's request is
    sent on it (the pool opened two connections itself: none, the spare is the network's)."""
    from tests.conftest import start_bridge

    async with fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), segmenter=ONE_SEGMENT)) as running:
            async with connect(running, audio_out=AUDIO_OUT, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                turn = await client.send("tts.say", {"text": LONG_LINE}, entity="npc-1")
                async for event in npc.events():
                    if event.type == "ai.speech.audio":
                        if PIECE_MS * len(tts.requests[0].write_times) > event.payload["t"] + 40 + 2000:
                            break  # the fake has sent more than the bridge can have read: a cut
                await npc.interrupt()
                result = await client.wait(turn, timeout=30, check=False)
                assert result.reply.payload["code"] == "cancelled", result.reply
                assert await _wait_until(lambda: tts.http.connections_accepted == 2), "no spare connection was opened"
                second = await npc.speak("The road north is closed.", timeout=30)
            voice = await running.app.provider("voice")
            pool, network = voice._client().lean, voice._client()._transport.network
    assert len(second.of_type("ai.speech.start")) == 1
    assert [r.connection for r in tts.requests] == [1, 2]
    assert network.spares_used == 1 and pool.requests_sent == 2
