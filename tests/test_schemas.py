"""The protocol as data: `schemas/` and the examples in `docs/protocol.md`.

These tests hold the schemas to what the bridge and plugin authors rely on: one
self-contained file per event type of the draft, compilable by fastjsonschema (what the
bridge uses), valid draft 2020-12, in step with `schemas/generate.py`; every example in the
docs valid; and invalid events (wrong types, missing fields) refused while unknown fields pass.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
import yaml

from bridge.protocol import codec
from bridge.protocol.errors import ErrorCode, ProtocolError
from bridge.protocol.events import CLIENT_REQUESTS
from bridge.protocol.schema import SCHEMA_DIR_ENV, SchemaRegistry

ROOT = Path(__file__).resolve().parents[1]
# The bridge's own override (see bridge.protocol.schema); also lets a copy be tested.
SCHEMAS = Path(os.environ.get(SCHEMA_DIR_ENV) or ROOT / "schemas")
EVENTS_DIR = SCHEMAS / "events"
DOCS = ROOT / "docs" / "protocol.md"
DRAFT = Path("/work/shared/PROTOCOL-DRAFT.md")

# Every event type the draft names, by direction. Kept here rather than only parsed from
# the draft, which lives outside the repository.
DRAFT_CLIENT_TYPES = frozenset(
    {
        "session.hello",
        "entity.init",
        "entity.remove",
        "scene.loaded",
        "user.utterance",
        "world.event",
        "tts.say",
        "entity.interrupt",
        "playback.progress",
        "playback.done",
        "chat.history",
        "chat.clear",
        "stt.audio",
        "stt.listen.start",
        "stt.listen.stop",
        "stt.transcribe",
        "movement.actions",
        "movement.scene",
    }
)
DRAFT_BRIDGE_TYPES = frozenset(
    {
        "ai.text",
        "ai.speech.start",
        "ai.speech.audio",
        "ai.speech.end",
        "ai.speech.interrupted",
        "ai.action",
        "ai.countenance",
        "ai.status",
        "stt.speech.started",
        "stt.speech.stopped",
        "stt.transcript",
        "movement.perform",
        "movement.scene.request",
        "movement.actions.request",
        "error",
    }
)
DRAFT_TYPES = DRAFT_CLIENT_TYPES | DRAFT_BRIDGE_TYPES
# Types added after the draft (multi-character scenes, issue 14).
ADDED_CLIENT_TYPES = frozenset({"scene.join", "scene.leave", "scene.utterance", "scene.converse"})
ADDED_BRIDGE_TYPES = frozenset({"scene.heard"})
CLIENT_TYPES = DRAFT_CLIENT_TYPES | ADDED_CLIENT_TYPES
BRIDGE_TYPES = DRAFT_BRIDGE_TYPES | ADDED_BRIDGE_TYPES
ALL_TYPES = CLIENT_TYPES | BRIDGE_TYPES
NOT_ENTITY_SCOPED = frozenset({"session.hello", "scene.loaded", "scene.utterance", "scene.converse", "error"})
BINARY_FIELDS = {"stt.audio": {"audio"}, "stt.transcribe": {"audio"}, "ai.speech.audio": {"audio"}}


# --------------------------------------------------------------------------- helpers


def load_schema(event_type: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{event_type}.json").read_text())


@cache
def validator(event_type: str) -> Callable[[Any], Any]:
    """The file compiled as is, as a JSON-framing validator (base64 strings for bytes)."""
    return fastjsonschema.compile(load_schema(event_type))


def is_valid(event: dict[str, Any], schema_type: str | None = None) -> bool:
    """Whether the schema of `schema_type` (default: the event's own type) accepts `event`."""
    try:
        validator(schema_type or event["type"])(copy.deepcopy(event))
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def doc_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every event in ```json blocks (one event each) and ```jsonl blocks (one a line)."""
    text = DOCS.read_text()
    found: list[tuple[str, dict[str, Any]]] = []
    for match in re.finditer(r"^```(json|jsonl)\n(.*?)^```", text, re.S | re.M):
        kind, body = match.group(1), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        if kind == "json":
            found.append((f"protocol.md:{line}", json.loads(body)))
        else:
            for offset, row in enumerate(body.splitlines(), start=1):
                if row.strip():
                    found.append((f"protocol.md:{line + offset}", json.loads(row)))
    return found


EXAMPLES = doc_examples()


def status_of(event: dict[str, Any]) -> str:
    return event.get("status") or "new"


def payload_schema(event_type: str, status: str) -> dict[str, Any]:
    """The payload schema that applies to `status`, read from the file's if/then rules."""
    for rule in load_schema(event_type)["allOf"]:
        cond = rule["if"]["properties"].get("status", {})
        if cond.get("const") == status:
            return rule["then"]["properties"]["payload"]
    raise AssertionError(f"{event_type} has no payload rule for status {status}")


def wrong_value(value: Any) -> Any:
    """A value of another JSON type than `value` (strings are never objects, etc.)."""
    return 12345 if isinstance(value, dict) else {"wrong": True}


def walk_schemas(node: Any, path: str = "#") -> Iterator[tuple[str, Any]]:
    """Every subschema, following only the keywords whose values are schemas."""
    yield path, node
    if not isinstance(node, dict):
        return
    for key in ("not", "if", "then", "else", "items", "contains", "additionalProperties", "propertyNames"):
        if key in node:
            yield from walk_schemas(node[key], f"{path}/{key}")
    for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
        for index, sub in enumerate(node.get(key, [])):
            yield from walk_schemas(sub, f"{path}/{key}/{index}")
    for key in ("properties", "$defs", "patternProperties"):
        for name, sub in node.get(key, {}).items():
            yield from walk_schemas(sub, f"{path}/{key}/{name}")


# Keywords of the 2020-12 vocabularies this project may use (core, applicator, validation,
# meta-data, content). Anything else is a typo or a draft-7 habit; `x-` annotations are ours.
KEYWORDS_2020_12 = {
    "$schema", "$id", "$defs", "$comment", "$anchor",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
    "properties", "patternProperties", "additionalProperties", "propertyNames",
    "prefixItems", "items", "contains",
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
    "maxProperties", "minProperties", "required", "dependentRequired",
    "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
    "contentEncoding", "contentMediaType",
}  # fmt: skip
JSON_TYPES = {"null", "boolean", "object", "array", "number", "string", "integer"}


# --------------------------------------------------------------------------- the files


def test_every_type_has_a_schema_and_nothing_else_does() -> None:
    files = {p.name[: -len(".json")] for p in EVENTS_DIR.glob("*.json")}
    assert files == ALL_TYPES, f"missing: {sorted(ALL_TYPES - files)}; extra: {sorted(files - ALL_TYPES)}"


def test_type_list_matches_the_draft_when_it_is_available() -> None:
    if not DRAFT.is_file():
        pytest.skip(f"{DRAFT} is not on this machine")
    events = DRAFT.read_text().split("## Events", 1)[1].split("\n## ", 1)[0]
    named: set[str] = set()
    for row in events.splitlines():
        if row.startswith("| `"):
            named.update(re.findall(r"`([a-z][a-z.]*)`", row.split("|")[1]))
    assert named == DRAFT_TYPES


def test_directions_agree_with_the_bridge() -> None:
    """`x-direction` must match the bridge's own list of client requests."""
    client = {t for t in ALL_TYPES if load_schema(t)["x-direction"] == "client"}
    assert client == CLIENT_TYPES == set(CLIENT_REQUESTS)


@pytest.mark.parametrize("event_type", sorted(ALL_TYPES))
def test_file_is_self_contained_and_compiles(event_type: str) -> None:
    raw = (EVENTS_DIR / f"{event_type}.json").read_text()
    schema = json.loads(raw)
    assert "$ref" not in raw and "$dynamicRef" not in raw, "schemas must not reference other files"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == event_type
    assert schema["properties"]["type"] == {"const": event_type}
    fastjsonschema.compile(schema)  # raises on anything it cannot compile


@pytest.mark.parametrize("event_type", sorted(ALL_TYPES))
def test_file_uses_only_2020_12_keywords(event_type: str) -> None:
    """A keyword check that runs without `jsonschema`: catches typos and draft-7 forms."""
    for path, node in walk_schemas(load_schema(event_type)):
        assert isinstance(node, (dict, bool)), path
        if isinstance(node, bool):
            continue
        unknown = {k for k in node if k not in KEYWORDS_2020_12 and not k.startswith("x-")}
        assert not unknown, f"{path}: unknown keywords {unknown}"
        assert not isinstance(node.get("items"), list), f"{path}: array `items` is draft 7; use prefixItems"
        assert "additionalProperties" not in node or node["additionalProperties"] is not False, (
            f"{path}: unknown fields must be tolerated"
        )
        types = node.get("type", [])
        assert set(types if isinstance(types, list) else [types]) <= JSON_TYPES, path
        if "required" in node:
            assert len(set(node["required"])) == len(node["required"]), path
        if "enum" in node:
            assert node["enum"] and len({json.dumps(v) for v in node["enum"]}) == len(node["enum"]), path


@pytest.mark.parametrize("event_type", sorted(ALL_TYPES))
def test_file_passes_the_2020_12_metaschema(event_type: str) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed in .venv")
    jsonschema.Draft202012Validator.check_schema(load_schema(event_type))


def test_content_encoding_marks_exactly_the_binary_fields() -> None:
    found: dict[str, set[str]] = {}
    for event_type in ALL_TYPES:
        for path, node in walk_schemas(load_schema(event_type)):
            if isinstance(node, dict) and "contentEncoding" in node:
                assert {k: node[k] for k in ("type", "contentEncoding")} == {"type": "string", "contentEncoding": "base64"}
                found.setdefault(event_type, set()).add(path.rsplit("/", 1)[1])
    assert found == BINARY_FIELDS
    registry = SchemaRegistry(SCHEMAS)
    assert {t: set(registry.binary_fields(t)) for t in ALL_TYPES if registry.binary_fields(t)} == BINARY_FIELDS


def test_committed_files_match_the_generator() -> None:
    spec = importlib.util.spec_from_file_location("schemas_generate", SCHEMAS / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generate  # dataclasses look their module up there
    try:
        spec.loader.exec_module(generate)
    finally:
        del sys.modules[spec.name]
    assert generate.stale_files(SCHEMAS) == [], "run: .venv/bin/python schemas/generate.py"
    assert generate.ERROR_CODES == [code.value for code in ErrorCode]


# --------------------------------------------------------------------------- AsyncAPI


def test_asyncapi_document_is_valid_yaml_and_covers_every_event() -> None:
    doc = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    assert doc["asyncapi"] == "3.0.0"
    (channel_name, channel), = doc["channels"].items()
    messages = channel["messages"]
    assert set(messages) == ALL_TYPES
    for event_type, message in messages.items():
        target = SCHEMAS / message["payload"]["schema"]["$ref"]
        assert target.resolve() == (EVENTS_DIR / f"{event_type}.json").resolve() and target.is_file()

    def resolve(ref: str) -> Any:
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    receive, send = set(), set()
    for name, op in doc["operations"].items():
        assert resolve(op["channel"]["$ref"]) is channel, name
        targets = [resolve(m["$ref"]) for m in op["messages"]]
        if "reply" in op:
            targets += [resolve(m["$ref"]) for m in op["reply"]["messages"]]
        types = {t["name"] for t in targets}
        assert len(types) == 1, name
        (receive if op["action"] == "receive" else send).update(types)
    # From the bridge's point of view: it receives the client requests and sends the rest.
    assert receive == CLIENT_TYPES and send == BRIDGE_TYPES
    assert channel_name == "events" and doc["servers"]["local"]["protocol"] == "ws"


# --------------------------------------------------------------------------- docs examples


def test_docs_cover_every_type_and_every_error_code() -> None:
    text = DOCS.read_text()
    seen_new = {event["type"] for _, event in EXAMPLES if status_of(event) == "new"}
    assert seen_new == ALL_TYPES, f"no example for: {sorted(ALL_TYPES - seen_new)}"
    for event_type in ALL_TYPES:
        assert f"### `{event_type}`" in text, f"no section for {event_type}"
    for code in ErrorCode:
        assert f"| `{code.value}` |" in text, f"error code {code.value} is not explained"
    statuses = {status_of(e) for _, e in EXAMPLES}
    assert statuses == {"new", "pending", "success", "error"}


@pytest.mark.parametrize(("where", "event"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_docs_example_is_valid(where: str, event: dict[str, Any]) -> None:
    validator(event["type"])(copy.deepcopy(event))


@pytest.mark.parametrize(("where", "event"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_docs_example_passes_the_bridge_validator(where: str, event: dict[str, Any]) -> None:
    """As the bridge reads a JSON text frame: base64 fields decoded to bytes, then validated."""
    registry = SchemaRegistry(SCHEMAS)
    wire = copy.deepcopy(event)
    codec.decode_base64_fields(wire, registry.binary_fields(wire["type"]))
    registry.validate(wire)


def test_bridge_validator_wants_bytes_in_binary_fields() -> None:
    registry = SchemaRegistry(SCHEMAS)
    chunk = {"type": "stt.audio", "id": "m1", "entity": "npc", "payload": {"seq": 0, "audio": b"\x00\x01"}}
    registry.validate(chunk)
    chunk["payload"]["audio"] = "AAE="  # undecoded base64 text: a framing bug in the caller
    with pytest.raises(ProtocolError) as caught:
        registry.validate(chunk)
    assert caught.value.code is ErrorCode.BAD_EVENT and "audio" in caught.value.message


# --------------------------------------------------------------------------- tolerance


def _with_extras(node: Any) -> Any:
    """A copy with an unknown field added to every map (envelope, payload, nested items)."""
    if isinstance(node, dict):
        out = {k: _with_extras(v) for k, v in node.items()}
        out["x_future_field"] = {"anything": [1, "two", None]}
        return out
    if isinstance(node, list):
        return [_with_extras(v) for v in node]
    return node


@pytest.mark.parametrize(("where", "event"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_unknown_fields_are_tolerated_everywhere(where: str, event: dict[str, Any]) -> None:
    extended = _with_extras(event)
    if isinstance(extended.get("payload"), dict):
        # `limits` and `modules` are maps of integers / strings: an extra entry keeps its kind.
        for name, value in (("limits", 1), ("modules", "none")):
            if isinstance(extended["payload"].get(name), dict):
                extended["payload"][name]["x_future_field"] = value
        character = extended["payload"].get("character")
        if isinstance(character, dict) and isinstance(character.get("modules"), dict):
            character["modules"]["x_future_field"] = "none"
    assert is_valid(extended), f"{where}: an unknown field was refused"


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("where", "event"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_missing_required_payload_fields_are_refused(where: str, event: dict[str, Any]) -> None:
    schema = payload_schema(event["type"], status_of(event))
    for name in schema.get("required", []):
        broken = copy.deepcopy(event)
        del broken["payload"][name]
        assert not is_valid(broken), f"{where}: accepted without payload.{name}"
    if schema.get("type") == "object":
        for broken_payload in (None, [], "text"):
            assert not is_valid({**event, "payload": broken_payload}), f"{where}: payload {broken_payload!r}"


@pytest.mark.parametrize(("where", "event"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_wrongly_typed_payload_fields_are_refused(where: str, event: dict[str, Any]) -> None:
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return
    declared = payload_schema(event["type"], status_of(event)).get("properties", {})
    for name, value in payload.items():
        if name in declared:
            broken = copy.deepcopy(event)
            broken["payload"][name] = wrong_value(value)
            assert not is_valid(broken), f"{where}: accepted payload.{name} = {broken['payload'][name]!r}"


@pytest.mark.parametrize(("where", "event"), EXAMPLES[:12], ids=[w for w, _ in EXAMPLES[:12]])
def test_envelope_is_checked(where: str, event: dict[str, Any]) -> None:
    for key, bad in (
        ("id", ""),
        ("id", "x" * 129),
        ("id", 7),
        ("type", "other.type"),
        ("status", "done"),
        ("status", None),
        ("entity", ""),
        ("entity", ["npc"]),
        ("ref", 3),
        ("payload", [1, 2]),
    ):
        assert not is_valid({**event, key: bad}, event["type"]), f"{where}: accepted {key} = {bad!r}"
    for key in ("type", "id"):
        assert not is_valid({k: v for k, v in event.items() if k != key}, event["type"])


@pytest.mark.parametrize("event_type", sorted(ALL_TYPES))
def test_entity_is_required_except_on_error_replies(event_type: str) -> None:
    event = next(e for _, e in EXAMPLES if e["type"] == event_type and status_of(e) == "new")
    bare = {k: v for k, v in event.items() if k != "entity"}
    assert is_valid(bare) == (event_type in NOT_ENTITY_SCOPED)
    assert is_valid({**bare, "status": "pending", "payload": None}) == (event_type in NOT_ENTITY_SCOPED)
    refused = {**bare, "status": "error", "payload": {"code": "bad_event", "message": f"{event_type} needs an `entity`"}}
    assert is_valid(refused)


# Required payload fields per type, written out from the protocol brief (not read from the
# schemas, so that a schema which loses a requirement fails here). None: payload optional.
REQUIRED_NEW: dict[str, set[str] | None] = {
    "session.hello": {"protocol"},
    "entity.init": {"character"},
    "entity.remove": None,
    "scene.loaded": None,
    "user.utterance": {"kind", "text"},
    "world.event": {"text"},
    "tts.say": {"text"},
    "entity.interrupt": None,
    "playback.progress": {"speech", "played_ms"},
    "playback.done": {"speech"},
    "chat.history": None,
    "chat.clear": None,
    "stt.audio": {"audio", "seq"},
    "stt.listen.start": None,
    "stt.listen.stop": None,
    "stt.transcribe": {"audio", "format"},
    "movement.actions": {"actions"},
    "movement.scene": set(),
    "scene.join": {"scene"},
    "scene.leave": None,
    "scene.utterance": {"scene", "text"},
    "scene.converse": {"scene", "participants"},
    "scene.heard": {"scene", "speaker", "text"},
    "ai.text": {"delta"},
    "ai.speech.start": {"speech", "text", "sample_rate", "encoding"},
    "ai.speech.audio": {"speech", "seq", "t", "audio"},
    "ai.speech.end": {"speech", "duration_ms"},
    "ai.speech.interrupted": {"speech", "played_ms", "heard_text"},
    "ai.action": {"text"},
    "ai.countenance": {"emotion", "intensity", "expression"},
    "ai.status": set(),
    "stt.speech.started": {"t"},
    "stt.speech.stopped": {"t"},
    "stt.transcript": {"text", "final"},
    "movement.perform": {"actions"},
    "movement.scene.request": None,
    "movement.actions.request": None,
    "error": {"code", "message"},
}
REQUIRED_SUCCESS: dict[str, set[str] | None] = {
    **{t: None for t in ALL_TYPES},
    "session.hello": {"session", "server", "protocol", "characters", "limits", "audio_out", "audio_in"},
    "entity.init": {"character", "display_name", "modules"},
    "user.utterance": {"reply", "spoken"},
    "tts.say": {"duration_ms"},
    "entity.interrupt": {"interrupted"},
    "chat.history": {"messages"},
    "chat.clear": {"cleared"},
    "stt.transcribe": {"text"},
    "movement.actions.request": {"actions"},
    "scene.join": {"scene", "members"},
    "scene.leave": {"left"},
    "scene.utterance": {"replies", "interrupted"},
    "scene.converse": {"lines", "interrupted"},
}


@pytest.mark.parametrize("event_type", sorted(ALL_TYPES))
def test_required_payload_fields_are_as_specified(event_type: str) -> None:
    for status, table in (("new", REQUIRED_NEW), ("success", REQUIRED_SUCCESS)):
        schema = payload_schema(event_type, status)
        expected = table[event_type]
        if expected is None:
            assert schema["type"] == ["object", "null"] and not schema.get("required"), (event_type, status)
            base = {"type": event_type, "id": "x", "entity": "npc", "status": status}
            assert is_valid({**base, "payload": None}) and is_valid(base), (event_type, status)
        else:
            assert schema["type"] == "object" and set(schema.get("required", [])) == expected, (event_type, status)


@pytest.mark.parametrize("event_type", sorted(ALL_TYPES))
def test_error_replies_carry_a_listed_code_and_a_message(event_type: str) -> None:
    base = {"type": event_type, "id": "x", "entity": "npc", "status": "error"}
    for code in ErrorCode:
        assert is_valid({**base, "payload": {"code": code.value, "message": "what went wrong"}}), code
    for payload in ({"code": "oops", "message": "m"}, {"code": "timeout"}, {"message": "m"}, {"code": 5, "message": "m"}, None):
        assert not is_valid({**base, "payload": payload}), payload


HELLO = {"type": "session.hello", "id": "h"}
UTTER = {"type": "user.utterance", "id": "u", "entity": "npc"}
AUDIO = {"type": "ai.speech.audio", "id": "a", "entity": "npc", "ref": "u"}
GOOD_AUDIO = {"speech": "sp", "seq": 0, "t": 0, "audio": "AAE="}

# Hand-picked refusals: each would be accepted by a schema that is too loose in that spot.
INVALID = [
    ({**HELLO, "payload": {"client": "x"}}, "hello without protocol"),
    ({**HELLO, "payload": {"protocol": "1"}}, "protocol as a string"),
    ({**HELLO, "payload": {"protocol": 1, "audio_out": {"sample_rate": 12345}}}, "sample rate not offered"),
    ({**HELLO, "payload": {"protocol": 1, "audio_out": {"chunk_ms": 5}}}, "chunk_ms below 10"),
    ({**HELLO, "payload": {"protocol": 1, "audio_out": {"lead_ms": 10001}}}, "lead_ms above 10000"),
    ({**HELLO, "payload": {"protocol": 1, "audio_in": {"encoding": "mp3"}}}, "encoding not pcm_s16le"),
    ({**HELLO, "payload": {"protocol": 1, "visemes": "arkit"}}, "unknown viseme set"),
    ({**HELLO, "payload": {"protocol": 1, "text_deltas": 1}}, "text_deltas as an integer"),
    ({**HELLO, "status": "success", "payload": {"session": "s"}}, "hello success without its fields"),
    (
        {
            **HELLO,
            "status": "success",
            "payload": {
                "session": "s", "server": "b", "protocol": 1, "characters": ["a"],
                "limits": {"max_frame_bytes": 1, "max_text_chars": 1, "max_entities": 1, "events_per_second": 1, "burst": "x"},
                "audio_out": {"encoding": "pcm_s16le", "sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0},
                "audio_in": {"encoding": "pcm_s16le", "sample_rate": 16000},
            },
        },
        "a limit that is not an integer",
    ),  # fmt: skip
    ({"type": "entity.init", "id": "e", "entity": "n", "payload": {"character": {"persona": "x"}}}, "inline character without name"),
    ({"type": "entity.init", "id": "e", "entity": "n", "payload": {"character": ""}}, "empty character name"),
    ({"type": "entity.init", "id": "e", "entity": "n", "payload": {"character": {"name": "g", "modules": {"llm": 1}}}}, "module not a string"),
    ({"type": "entity.init", "id": "e", "entity": "n", "status": "success", "payload": {"character": "g", "display_name": "G", "modules": {"tts": None}}}, "module null"),
    ({**UTTER, "payload": {"kind": "shouting", "text": "hi"}}, "unknown utterance kind"),
    ({**UTTER, "payload": {"kind": "verbal", "text": 5}}, "text as a number"),
    ({**UTTER, "payload": {"text": "hi"}}, "utterance without kind"),
    ({**UTTER, "status": "success", "payload": {"reply": "hi", "spoken": "hi", "actions": "waves"}}, "actions not a list"),
    ({**UTTER, "status": "success", "payload": {"reply": "hi", "spoken": "hi", "emotion": "bored"}}, "unknown emotion"),
    ({**UTTER, "status": "error", "payload": {"code": "oops", "message": "x"}}, "error code not in the list"),
    ({**UTTER, "status": "error", "payload": {"code": "timeout", "message": ""}}, "empty error message"),
    ({**UTTER, "status": "error", "payload": {"message": "x"}}, "error without code"),
    ({**UTTER, "status": "error"}, "error reply without payload"),
    ({**UTTER, "status": "pending", "payload": "working"}, "pending payload a string"),
    ({"type": "tts.say", "id": "t", "entity": "n", "status": "success", "payload": {"duration_ms": -1}}, "negative duration"),
    ({"type": "tts.say", "id": "t", "entity": "n", "status": "success", "payload": {"duration_ms": 1.5}}, "fractional ms"),
    ({"type": "entity.interrupt", "id": "i", "entity": "n", "payload": {"played_ms": True}}, "played_ms a boolean"),
    ({"type": "chat.history", "id": "c", "entity": "n", "payload": {"limit": 0}}, "limit 0"),
    ({"type": "chat.history", "id": "c", "entity": "n", "status": "success", "payload": {"messages": [{"speaker": "p", "text": "t"}]}}, "message without at"),
    ({"type": "stt.audio", "id": "m", "entity": "n", "payload": {"seq": -1, "audio": "AAE="}}, "negative seq"),
    ({"type": "stt.audio", "id": "m", "entity": "n", "payload": {"seq": 0, "audio": "AAE"}}, "audio not base64"),
    ({"type": "stt.audio", "id": "m", "entity": "n", "payload": {"seq": 0, "audio": [0, 1]}}, "audio as a list"),
    ({"type": "stt.listen.start", "id": "l", "entity": "n", "payload": {"mode": "always"}}, "unknown listen mode"),
    ({"type": "stt.transcribe", "id": "x", "entity": "n", "payload": {"audio": "AAE=", "format": "mp3"}}, "format not offered"),
    ({"type": "stt.transcribe", "id": "x", "entity": "n", "status": "success", "payload": {"text": "hi", "words": [{"word": "hi"}]}}, "word without times"),
    ({**AUDIO, "payload": {**GOOD_AUDIO, "visemes": [[0, "XX", 0.5]]}}, "viseme name not in the 15"),
    ({**AUDIO, "payload": {**GOOD_AUDIO, "visemes": [[0, "aa", 1.5]]}}, "viseme weight above 1"),
    ({**AUDIO, "payload": {**GOOD_AUDIO, "visemes": [[-4, "aa", 0.5]]}}, "viseme time negative"),
    ({**AUDIO, "payload": {**GOOD_AUDIO, "visemes": [[0, "aa"]]}}, "viseme without weight"),
    ({**AUDIO, "payload": {**GOOD_AUDIO, "visemes": [[0, "aa", 0.5, 1]]}}, "viseme with four parts"),
    ({**AUDIO, "payload": {**GOOD_AUDIO, "volume": [0.2, 1.2]}}, "volume above 1"),
    ({**AUDIO, "payload": {"speech": "sp", "seq": 0, "t": 0}}, "audio chunk without audio"),
    ({"type": "ai.speech.start", "id": "s", "entity": "n", "payload": {"speech": "sp", "text": "t", "sample_rate": 24000, "encoding": "opus"}}, "speech encoding"),
    ({"type": "ai.countenance", "id": "c", "entity": "n", "payload": {"emotion": "happy", "intensity": -0.1, "expression": "smile"}}, "negative intensity"),
    ({"type": "ai.countenance", "id": "c", "entity": "n", "payload": {"emotion": "happy", "intensity": 0.5}}, "countenance without expression"),
    ({"type": "ai.action", "id": "a", "entity": "n", "payload": {"text": "waves", "kind": "verbal"}}, "action kind not nonverbal"),
    ({"type": "stt.transcript", "id": "s", "entity": "n", "payload": {"text": "hi", "final": "yes"}}, "final not a boolean"),
    ({"type": "movement.perform", "id": "p", "entity": "n", "payload": {"actions": []}}, "perform nothing"),
    ({"type": "movement.perform", "id": "p", "entity": "n", "payload": {"actions": [{"args": {}}]}}, "action without name"),
    ({"type": "movement.scene", "id": "m", "entity": "n", "payload": {"characters": [{"name": "p", "position": {"x": "1", "y": 0}}]}}, "coordinate a string"),
    ({"type": "movement.scene", "id": "m", "entity": "n", "payload": {"characters": [{"name": "p", "position": [1, 2, 3]}]}}, "position as a list"),
    ({"type": "error", "id": "e", "payload": {"code": "bad_frame", "message": "x", "ref": ""}}, "empty ref"),
    ({"type": "error", "id": "e", "payload": None}, "error event without payload"),
]  # fmt: skip


@pytest.mark.parametrize(("event", "why"), INVALID, ids=[why for _, why in INVALID])
def test_invalid_event_is_refused(event: dict[str, Any], why: str) -> None:
    assert not is_valid(event), why


def test_viseme_positions_are_checked_by_a_2020_12_validator() -> None:
    """fastjsonschema does not know `prefixItems`; a 2020-12 validator checks positions."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed in .venv")
    swapped = {**AUDIO, "payload": {**GOOD_AUDIO, "visemes": [["aa", 0, 0.5]]}}
    check = jsonschema.Draft202012Validator(load_schema("ai.speech.audio"))
    assert not check.is_valid(swapped)
    assert check.is_valid({**AUDIO, "payload": {**GOOD_AUDIO, "visemes": [[0, "aa", 0.5]]}})


def test_base64_examples_decode_to_whole_samples() -> None:
    """Audio in the examples is real pcm_s16le: an even number of bytes."""
    for where, event in EXAMPLES:
        for name in BINARY_FIELDS.get(event["type"], ()):
            value = (event.get("payload") or {}).get(name)
            if value is not None:
                assert len(base64.b64decode(value, validate=True)) % 2 == 0, where
