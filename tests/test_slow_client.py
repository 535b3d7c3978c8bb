"""A client that stops reading is dropped; other connections never notice."""

from __future__ import annotations

import socket

import msgpack
import trio
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from bridge.config import parse_config
from entity_bridge_sdk import BridgeClient
from tests.conftest import ECHO_CONFIG, live_tasks, start_bridge

LONG_REPLY = " ".join(f"word{i}" for i in range(3000))


async def open_non_reader(url: str) -> tuple[trio.SocketStream, ClientProtocol]:
    """A WebSocket client that completes the handshake and then never reads again.

    Built on websockets' sans-I/O client over a socket with a tiny receive buffer, so the
    bridge's writes back up quickly, as with a game frozen in a breakpoint.
    """
    protocol = ClientProtocol(parse_uri(url))
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.removeprefix("ws://").split(":")
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    protocol.send_request(protocol.connect())
    for data in protocol.data_to_send():
        await stream.send_all(data)
    while protocol.handshake_exc is None and protocol.state.name == "CONNECTING":
        protocol.receive_data(await stream.receive_some(4096))
    assert protocol.state.name == "OPEN"
    return stream, protocol


async def send_events(stream: trio.SocketStream, protocol: ClientProtocol, *events: dict) -> None:
    for event in events:
        protocol.send_binary(msgpack.packb(event))
    for data in protocol.data_to_send():
        await stream.send_all(data)


async def test_non_reading_client_is_dropped_while_another_keeps_working() -> None:
    data = {
        **ECHO_CONFIG,
        "modules": {**ECHO_CONFIG["modules"], "chatty": {"kind": "llm", "provider": "echo", "replies": [LONG_REPLY]}},
        "characters": {
            **ECHO_CONFIG["characters"],
            "chatty": {"turn_policy": "queue", "modules": {"llm": "chatty", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}},
        },
        "limits": {"outbound_queue": 16, "client_stall_ms": 300},
    }
    async with start_bridge(parse_config(data, "test")) as running:
        stream, protocol = await open_non_reader(running.url)
        await send_events(
            stream,
            protocol,
            {"type": "session.hello", "id": "h", "payload": {"protocol": 1, "text_deltas": True}},
            {"type": "entity.init", "id": "i", "entity": "spam", "payload": {"character": "chatty"}},
            *({"type": "user.utterance", "id": f"u{n}", "entity": "spam", "payload": {"kind": "verbal", "text": "go"}} for n in range(6)),
        )
        async with BridgeClient.connect(running.url) as good:
            ava = await good.init_entity("npc", "ava")
            with trio.fail_after(5):
                # The well-behaved client is answered promptly the whole time...
                for n in range(10):
                    assert (await ava.say(f"hi {n}")).payload["reply"] == f"You said: hi {n}"
                    await trio.sleep(0.05)
                # ...and the stalled one is dropped, its entity and turns gone.
                while live_tasks("entity:spam") or live_tasks("turn:spam"):
                    await trio.sleep(0.05)
            assert running.app.connections == 1
        await stream.aclose()
