"""The sans-I/O protocol core, without sockets: codec, limits, validation, and fuzzing."""

from __future__ import annotations

import json
import os

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.protocol import codec
from bridge.protocol.codec import Framing
from bridge.protocol.envelope import Event
from bridge.protocol.errors import ErrorCode, ProtocolError
from bridge.protocol.limits import Limits
from bridge.protocol.schema import registry
from bridge.protocol.session import ProtocolSession

FUZZ_EXAMPLES = int(os.environ.get("ENTITY_BRIDGE_FUZZ_EXAMPLES", "10000"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def new_session(**limits: int) -> tuple[ProtocolSession, Clock]:
    clock = Clock()
    return ProtocolSession(registry(), Limits(**limits), clock), clock


HELLO = msgpack.packb({"type": "session.hello", "id": "h", "payload": {"protocol": 1}})


def test_hello_sets_framing_and_binary_fields_roundtrip_in_json() -> None:
    session, _ = new_session()
    hello = session.receive(json.dumps({"type": "session.hello", "id": "h", "payload": {"protocol": 1}}))
    assert hello.type == "session.hello" and session.framing is Framing.JSON
    event = session.receive(json.dumps({"type": "stt.audio", "id": "a1", "entity": "e", "payload": {"audio": "AAEC", "seq": 3}}))
    assert event.payload == {"audio": b"\x00\x01\x02", "seq": 3}
    out = session.encode(Event("ai.speech.audio", "b1", {"audio": b"\x00\x01\x02"}, entity="e", ref="x"))
    assert isinstance(out, str) and json.loads(out)["payload"]["audio"] == "AAEC"


def test_base64_that_is_not_base64_is_a_bad_event() -> None:
    session, _ = new_session()
    session.receive(json.dumps({"type": "session.hello", "id": "h", "payload": {"protocol": 1}}))
    with pytest.raises(ProtocolError) as err:
        session.receive(json.dumps({"type": "stt.audio", "id": "a1", "entity": "e", "payload": {"audio": "!!not base64!!", "seq": 1}}))
    assert err.value.code is ErrorCode.BAD_EVENT and err.value.event_id == "a1"


def test_text_in_a_binary_field_is_refused_in_msgpack() -> None:
    session, _ = new_session()
    session.receive(HELLO)
    with pytest.raises(ProtocolError) as err:
        session.receive(msgpack.packb({"type": "stt.audio", "id": "a1", "entity": "e", "payload": {"audio": "AAEC", "seq": 1}}))
    assert err.value.code is ErrorCode.BAD_EVENT and "binary" in err.value.message


def test_rate_limit_refills_with_time() -> None:
    session, clock = new_session(events_per_second=10, event_burst=5)
    session.receive(HELLO)
    frame = msgpack.packb({"type": "scene.loaded", "id": "s", "payload": {}})
    for _ in range(4):
        session.receive(frame)
    with pytest.raises(ProtocolError) as err:
        session.receive(frame)
    assert err.value.code is ErrorCode.RATE_LIMITED and err.value.event_id == "s"
    clock.now += 0.5
    session.receive(frame)


def test_repeated_garbage_closes_with_1008() -> None:
    session, _ = new_session(max_bad_frames=3)
    closes = []
    for _ in range(3):
        with pytest.raises(ProtocolError) as err:
            session.receive(b"\xc1")
        closes.append(err.value.close)
    assert closes == [None, None, 1008]


def test_error_event_addresses_the_request_when_it_can() -> None:
    session, _ = new_session()
    in_kind = session.error_event(ProtocolError(ErrorCode.BUSY, "full", event_type="tts.say", event_id="t1", entity="e"), 1)
    assert in_kind.to_wire() == {"type": "tts.say", "id": "t1", "entity": "e", "status": "error", "payload": {"code": "busy", "message": "full"}}
    standalone = session.error_event(ProtocolError(ErrorCode.BAD_FRAME, "junk"), 7)
    assert standalone.type == "error" and standalone.payload == {"code": "bad_frame", "message": "junk"}


# ----------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
event_types = st.sampled_from(sorted(registry().types) + ["bogus", ""])
maps = st.fixed_dictionaries(
    {},
    optional={
        "type": event_types | json_values,
        "id": st.text(min_size=0, max_size=130) | json_values,
        "entity": st.text(max_size=5) | json_values,
        "status": st.sampled_from(["new", "pending", "success", "error", "odd"]) | json_values,
        "ref": json_values,
        "payload": st.dictionaries(
            st.sampled_from(["text", "kind", "character", "audio", "seq", "protocol", "played_ms", "limit", "mode", "respond"]),
            json_values | st.sampled_from(["verbal", "nonverbal", "vad", "ava"]),
            max_size=4,
        )
        | json_values,
    },
)


def _only_protocol_errors(session: ProtocolSession, frame: bytes | str) -> None:
    try:
        event = session.receive(frame)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.message
        session.error_event(exc, 1)  # answering it must not raise either
        return
    assert isinstance(event, Event) and event.id


@settings(max_examples=FUZZ_EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=256) | st.text(max_size=128))
def test_fuzz_random_frames_raise_only_protocol_errors(frame: bytes | str) -> None:
    session, _ = new_session(max_bad_frames=1_000_000)
    session.receive(HELLO)
    _only_protocol_errors(session, frame)


@settings(max_examples=FUZZ_EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maps, st.booleans(), st.booleans())
def test_fuzz_random_maps_raise_only_protocol_errors(wire: dict, as_json: bool, greeted: bool) -> None:
    session, _ = new_session(max_bad_frames=1_000_000)
    if greeted:
        session.receive(HELLO)
    try:
        frame = codec.encode(wire, Framing.JSON if as_json else Framing.MSGPACK)
    except (TypeError, ValueError, OverflowError):
        return  # not representable in that framing (huge ints, bytes keys)
    _only_protocol_errors(session, frame)
