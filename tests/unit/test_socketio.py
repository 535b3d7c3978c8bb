"""Socket.IO v4 / Engine.IO v4 framing, and Kajiwoto's per-event secret: no sockets."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

from bridge.providers.llm import socketio
from bridge.providers.llm.kajiwoto import local_user_time, message_secret, socket_endpoint, split_words
from bridge.providers.llm.socketio import EngineType, FramingError, SocketType

# ----------------------------------------------------------------------------- decoding


def test_open_packet_carries_the_handshake() -> None:
    p = socketio.decode('0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}')
    assert p.engine is EngineType.OPEN
    assert p.socket is None
    assert p.data["sid"] == "abc" and p.data["pingInterval"] == 25000


@pytest.mark.parametrize(
    ("frame", "engine", "data"),
    [("2", EngineType.PING, None), ("3", EngineType.PONG, None), ("2probe", EngineType.PING, "probe"),
     ("1", EngineType.CLOSE, None), ("6", EngineType.NOOP, None)],
)
def test_engine_control_packets(frame: str, engine: EngineType, data: str | None) -> None:
    p = socketio.decode(frame)
    assert (p.engine, p.socket, p.data) == (engine, None, data)


def test_connect_accept_and_refusal() -> None:
    ok = socketio.decode('40{"sid":"emCCdEmKKsm2aPLCABAN"}')
    assert (ok.engine, ok.socket, ok.namespace) == (EngineType.MESSAGE, SocketType.CONNECT, "/")
    assert ok.data == {"sid": "emCCdEmKKsm2aPLCABAN"}
    refused = socketio.decode('44{"message":"Not authorized"}')
    assert refused.socket is SocketType.CONNECT_ERROR
    assert socketio.connect_error_message(refused) == "Not authorized"
    # Socket.IO v3 servers send a bare string.
    assert socketio.connect_error_message(socketio.decode('44"nope"')) == "nope"
    assert socketio.connect_error_message(socketio.decode("44")) == "(no reason given)"


def test_event_name_and_args() -> None:
    p = socketio.decode('42["chatActivity",{"data":{"action":"petMessage"}},3]')
    assert p.is_event
    assert p.event_name == "chatActivity"
    assert p.event_args == [{"data": {"action": "petMessage"}}, 3]
    assert p.ack_id is None and p.namespace == "/"


def test_namespace_and_ack_id() -> None:
    p = socketio.decode('42/chat,17["hello","x"]')
    assert (p.namespace, p.ack_id, p.event_name, p.event_args) == ("/chat", 17, "hello", ["x"])
    bare = socketio.decode("41/admin,")
    assert (bare.socket, bare.namespace, bare.data) == (SocketType.DISCONNECT, "/admin", None)
    ack = socketio.decode("4312[true]")
    assert (ack.socket, ack.ack_id, ack.data) == (SocketType.ACK, 12, [True])
    connect_ns = socketio.decode("40/admin")
    assert (connect_ns.socket, connect_ns.namespace, connect_ns.data) == (SocketType.CONNECT, "/admin", None)


def test_binary_event_attachment_count() -> None:
    p = socketio.decode('452-["upload",{"_placeholder":true,"num":0}]')
    assert (p.socket, p.attachments, p.event_name) == (SocketType.BINARY_EVENT, 2, "upload")


def test_non_event_packets_have_no_event_name() -> None:
    assert socketio.decode('40{"sid":"x"}').event_name is None
    assert socketio.decode('40{"sid":"x"}').event_args == []


@pytest.mark.parametrize(
    "frame",
    ["", "x", "9", "0[1]", "0{bad", "4", "49", "42", "42{}", "42[]", "42[1,2]", "42[\"a\"", "43{}",
     "45[\"a\"]", "44[1]"],
)
def test_malformed_frames_raise(frame: str) -> None:
    with pytest.raises(FramingError):
        socketio.decode(frame)


# ----------------------------------------------------------------------------- encoding


def test_encoders_produce_the_documented_frames() -> None:
    assert socketio.encode_connect({"api_key": "k"}) == '40{"api_key":"k"}'
    assert socketio.encode_connect() == "40"
    assert socketio.encode_pong() == "3"
    assert socketio.encode_pong("probe") == "3probe"
    assert socketio.encode_ping() == "2"
    assert socketio.encode_close() == "1"
    assert socketio.encode_event("login", [{"a": 1}, None]) == '42["login",{"a":1},null]'
    assert socketio.encode_event("x", ["é"]) == '42["x","é"]'
    assert socketio.encode_event("x", namespace="/chat", ack_id=5) == '42/chat,5["x"]'
    assert socketio.encode_connect_error("Not authorized") == '44{"message":"Not authorized"}'


@pytest.mark.parametrize(
    "frame",
    ['42["a",1,{"b":[true,null]}]', '42/ns,3["a"]', '40{"sid":"s"}', "40/ns,", '44{"message":"m"}', "4399[1]"],
)
def test_round_trip(frame: str) -> None:
    p = socketio.decode(frame)
    again = socketio.encode_socket(p.socket, p.data, namespace=p.namespace, ack_id=p.ack_id)  # type: ignore[arg-type]
    assert socketio.decode(again) == p


def test_encoder_rejects_bad_namespaces_and_acks() -> None:
    with pytest.raises(ValueError):
        socketio.encode_event("x", namespace="chat")
    with pytest.raises(ValueError):
        socketio.encode_event("x", namespace="/a,b")
    with pytest.raises(ValueError):
        socketio.encode_event("x", ack_id=-1)


# ----------------------------------------------------------------------------- Kajiwoto secret

# (timestamp, secret) pairs as the Kajiwoto web app sent them, recorded in the public Go SDK's
# tests (RuntimeRacer/kajiwoto-clientsdk-golang). They cover both branches of the rule.
RECORDED = [
    (1675538167859, "MTAyMjA3ODI4MjM5Mzk5"),  # digit[8]=6, even -> x61
    (1675538262207, "MTAyMjA3ODMzOTk0NjI3"),  # x61
    (1675538264513, "MTAyMjA3ODM0MTM1Mjkz"),  # x61
    (1675538034488, "MTY3NTUzODAzNDQ4OA=="),  # digit[8]=3, odd -> digit[7]=0 -> x01
    (1675538039386, "MTY3NTUzODAzOTM4Ng=="),  # odd -> x01
    (1675618709051, "MTY3NTYxODcwOTA1MQ=="),  # digit[8]=0, even -> x01
]


@pytest.mark.parametrize(("ms", "secret"), RECORDED)
def test_secret_matches_recorded_traffic(ms: int, secret: str) -> None:
    assert message_secret(ms) == {"timestamp": str(ms), "secret": secret}


def test_secret_rule_on_constructed_timestamps() -> None:
    # digit[8] odd (7): multiplier is digit[7] (4) then "1" -> 41
    ms = 1700000_4_7_1234
    assert int(base64.b64decode(message_secret(ms)["secret"])) == ms * 41
    # digit[8] even (8): multiplier is digit[8] then "1" -> 81
    ms = 1700000_4_8_1234
    assert int(base64.b64decode(message_secret(ms)["secret"])) == ms * 81
    with pytest.raises(ValueError):
        message_secret(12345)


def test_user_time_floors_to_the_half_hour() -> None:
    assert local_user_time(datetime(2024, 1, 1, 20, 47)) == 2030
    assert local_user_time(datetime(2024, 1, 1, 20, 29)) == 2000
    assert local_user_time(datetime(2024, 1, 1, 0, 5)) == 0
    assert local_user_time(datetime(2024, 1, 1, 23, 30)) == 2330


def test_socket_endpoint_adds_the_engine_io_query() -> None:
    assert socket_endpoint("wss://socket.example/socket.io/") == "wss://socket.example/socket.io/?EIO=4&transport=websocket"
    assert socket_endpoint("ws://127.0.0.1:9/") == "ws://127.0.0.1:9/?EIO=4&transport=websocket"
    assert socket_endpoint("ws://h/socket.io/?x=1&EIO=3") == "ws://h/socket.io/?x=1&EIO=4&transport=websocket"


@pytest.mark.parametrize("text", ["Hello there, friend!", "  lead\nand\ttabs  ", "one", "", "*smiles* ok"])
def test_split_words_joins_back_exactly(text: str) -> None:
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert all(piece.strip() for piece in pieces) or text.strip() == ""
