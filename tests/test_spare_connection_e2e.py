"""The sockets under the modules' HTTP clients (`bridge/providers/net.py`), over a real
WebSocket against the fake OpenAI speech server, checked in ways that do not depend on the
machine's speed.

- An interrupt cuts the turn's TTS response (closing is the only way to stop a streamed
  one); the connection is replaced in the background, so the character's next TTS request
  goes out on a connection opened before it was needed. Before, the next request opened a
  new connection on its own path (~1.2 ms wall and ~0.5 ms CPU of the segment -> TTS leg at
  one entity, `bench.speech_latency --probe`).
- A request's head and body go out in one socket write (two before: ~0.1 ms a request).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio

from bridge.providers import net
from bridge.providers.http import make_client
from tests.fakes.openai_speech import fake_openai_speech
from tests.test_speech_load_e2e import LONG_LINE, config

AUDIO_OUT = {"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}
ONE_SEGMENT = {"clause_split": False, "first_max_words": 2000, "max_chars": 5000}
PIECE_MS = 100  # the fake's audio piece


async def _wait_until(condition: Any, timeout: float = 10.0) -> bool:
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.005)
        return True
    return False


async def test_the_tts_request_after_an_interrupt_goes_out_on_a_spare_connection(connect: Any) -> None:
    """A two-minute line from an instant TTS, interrupted once the fake has sent more than
    the bridge can have read (the rest waits unread in its socket: the response is cut, not
    finished), then a second line. The spare is opened after the cut, and the second line's
    request arrives on it: no connection is opened for it. Before, no spare was opened (the
    wait for a second connection timed out)."""
    from tests.conftest import start_bridge

    async with fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), segmenter=ONE_SEGMENT)) as running:
            async with connect(running, audio_out=AUDIO_OUT, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                turn = await client.send("tts.say", {"text": LONG_LINE}, entity="npc-1")
                async for event in npc.events():
                    if event.type == "ai.speech.audio":
                        received_ms = event.payload["t"] + 40
                        sent_ms = PIECE_MS * len(tts.requests[0].write_times)
                        # Read by the bridge: at most what it released (a lead ahead of the
                        # client) plus its 500 ms read-ahead and the piece being cut.
                        if sent_ms > received_ms + 2000:
                            break
                await npc.interrupt()
                result = await client.wait(turn, timeout=30, check=False)
                assert result.reply.payload["code"] == "cancelled", result.reply
                assert await _wait_until(lambda: tts.http.connections_accepted == 2), "no spare connection was opened"
                assert await _wait_until(lambda: tts.http.connections_closed >= 1), "the cut connection is still open"
                second = await npc.speak("The road north is closed.", timeout=30)
    assert len(second.of_type("ai.speech.start")) == 1
    assert len(tts.requests) == 2
    assert tts.requests[1].connection == 2  # the spare, opened before the request
    assert tts.http.connections_accepted == 2, tts.http.connections_accepted


async def test_a_finished_response_orders_no_spare(connect: Any) -> None:
    """Lines that play to their end leave their connection idle for the next one: nothing is
    cut, so no spare is opened (one connection for two requests)."""
    from tests.conftest import start_bridge

    async with fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), segmenter=ONE_SEGMENT)) as running:
            async with connect(running, audio_out={**AUDIO_OUT, "lead_ms": 0}, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                for _ in range(2):
                    await npc.speak("The road north is closed.", timeout=30)
    assert [r.connection for r in tts.requests] == [1, 1]
    assert tts.http.connections_accepted == 1


async def test_a_request_goes_out_in_one_socket_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bridge's HTTP client against the fake: each request is one `send_all` on its
    socket, head and JSON body together (httpcore writes them separately: two before)."""
    writes: list[bytes] = []
    send_all = trio.SocketStream.send_all
    server_port: list[int] = []

    async def counted(self: trio.SocketStream, data: Any) -> None:
        if self.socket.getpeername()[1] in server_port:  # the client's writes, not the fake's
            writes.append(bytes(data))
        await send_all(self, data)

    monkeypatch.setattr(trio.SocketStream, "send_all", counted)
    async with fake_openai_speech() as tts:
        server_port.append(tts.http.port)
        client = make_client({}, base_url=tts.url)
        try:
            for _ in range(2):
                response = await client.post("/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "pcm"}, headers={"authorization": f"Bearer {tts.api_key}"})
                assert response.status_code == 200, response.text
        finally:
            await client.aclose()
    requests = [w for w in writes if w.startswith(b"POST ")]
    assert len(requests) == 2 and len(writes) == 2, [w[:40] for w in writes]
    assert all(w.endswith(b'"pcm"}') for w in requests), [w[-40:] for w in requests]


async def test_a_spare_the_server_closed_is_not_used() -> None:
    """A spare whose server hung up while it waited is closed, and the request that would
    have taken it opens a fresh connection (which works)."""
    network = net.SpareNetwork()
    accepted: list[trio.SocketStream] = []

    async def hang_up_first(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        if len(accepted) == 1:
            await stream.aclose()  # the spare: closed by the server at once
            return
        await stream.send_all(b"hello")

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(functools.partial(trio.serve_tcp, hang_up_first, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        key = ("127.0.0.1", port, None, ())
        network.order_spare(key, 5.0)
        assert await _wait_until(lambda: network.spares_opened == 1 and len(accepted) == 1)
        spare = network._spares[key].stream
        assert spare is not None
        assert await _wait_until(lambda: net.socket_readable(spare.socket))  # the server's close arrived
        stream = await network.connect_tcp("127.0.0.1", port, timeout=5.0)
        assert network.spares_used == 0 and len(accepted) == 2
        assert await stream.read(5, timeout=5.0) == b"hello"
        await stream.aclose()
        await network.aclose()
        nursery.cancel_scope.cancel()


def test_httpx_pools_open_connections_through_the_spare_network() -> None:
    """The wiring: every shard's pool of a module's client has its SpareNetwork."""
    client = make_client({})
    transport = client._transport
    assert transport._shards and all(shard._pool._network_backend is transport.network for shard in transport._shards)
