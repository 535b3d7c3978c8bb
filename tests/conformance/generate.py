"""Generate the shared conformance corpus: golden EEP/1 frames every SDK's codec checks against.

Why generated: the corpus must hold every event example of docs/protocol.md (the examples
`tests/test_schemas.py` proves valid against schemas/) plus codec edge cases that are tedious
and error-prone to write by hand (int widths at their boundaries, 64 KiB strings, 100 000-deep
nesting). Why an encoder of its own: the bytes here come from the MessagePack spec as written
below, not from the library the bridge uses, so `tests/test_conformance.py` comparing the
bridge's codec against them is a real check and not msgpack-python compared with itself (the
generator also refuses to write anything msgpack-python would encode differently).

Run from the repository root after changing it (or docs/protocol.md, or the schemas):

    .venv/bin/python tests/conformance/generate.py          # rewrite the corpus
    .venv/bin/python tests/conformance/generate.py --check  # exit 1 if the committed files are stale

Output is deterministic: no timestamps, no randomness; the PCM is a computed sine.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import struct
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402

from bridge.protocol import codec  # noqa: E402
from bridge.protocol.schema import SchemaRegistry  # noqa: E402

DOCS = ROOT / "docs" / "protocol.md"
VERSION = 1
MAX_DEPTH = 64  # containers nested in one frame, the top-level map counted as 1

# --------------------------------------------------------------------------- canonical encoder


def pack(value: Any) -> bytes:
    """The canonical MessagePack encoding (README: smallest forms, float64, insertion order)."""
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        return _pack_int(value)
    if isinstance(value, float):
        return b"\xcb" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _header(len(raw), 0xA0, 31, b"\xd9", b"\xda", b"\xdb") + raw
    if isinstance(value, (bytes, bytearray)):
        return _header(len(value), None, 0, b"\xc4", b"\xc5", b"\xc6") + bytes(value)
    if isinstance(value, list):
        return _header(len(value), 0x90, 15, None, b"\xdc", b"\xdd") + b"".join(pack(v) for v in value)
    if isinstance(value, dict):
        body = b"".join(pack(k) + pack(v) for k, v in value.items())
        return _header(len(value), 0x80, 15, None, b"\xde", b"\xdf") + body
    raise TypeError(f"cannot encode {type(value).__name__}")


def _pack_int(n: int) -> bytes:
    if 0 <= n <= 0x7F:
        return bytes([n])
    if -32 <= n < 0:
        return struct.pack(">b", n)
    if n >= 0:
        for tag, fmt, top in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF), (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 2**64 - 1)):
            if n <= top:
                return bytes([tag]) + struct.pack(fmt, n)
    else:
        for tag, fmt, low in ((0xD0, ">b", -(2**7)), (0xD1, ">h", -(2**15)), (0xD2, ">i", -(2**31)), (0xD3, ">q", -(2**63))):
            if n >= low:
                return bytes([tag]) + struct.pack(fmt, n)
    raise OverflowError(f"{n} does not fit MessagePack's 64-bit integers")


def _header(length: int, fix: int | None, fix_max: int, b8: bytes | None, b16: bytes, b32: bytes) -> bytes:
    if fix is not None and length <= fix_max:
        return bytes([fix | length])
    if b8 is not None and length <= 0xFF:
        return b8 + struct.pack(">B", length)
    if length <= 0xFFFF:
        return b16 + struct.pack(">H", length)
    return b32 + struct.pack(">I", length)


# --------------------------------------------------------------------------- typed trees


def tree(value: Any) -> list[Any]:
    """The README's typed tree: what JSON would lose (int vs float, bytes, big ints) kept."""
    if value is None:
        return ["nil"]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", value]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, (bytes, bytearray)):
        return ["bin", bytes(value).hex()]
    if isinstance(value, list):
        return ["array", [tree(v) for v in value]]
    if isinstance(value, dict):
        return ["map", [[tree(k), tree(v)] for k, v in value.items()]]
    raise TypeError(f"no typed tree for {type(value).__name__}")


def untree(node: list[Any]) -> Any:
    """The Python value of a typed tree (the inverse of `tree`)."""
    kind = node[0]
    if kind == "nil":
        return None
    if kind in ("bool", "float", "str"):
        return node[1]
    if kind == "int":
        return int(node[1])
    if kind == "bin":
        return bytes.fromhex(node[1])
    if kind == "array":
        return [untree(n) for n in node[1]]
    if kind == "map":
        return {untree(k): untree(v) for k, v in node[1]}
    raise ValueError(f"unknown typed-tree tag {kind!r}")


# --------------------------------------------------------------------------- event frames


def doc_examples() -> list[dict[str, Any]]:
    """Every event in docs/protocol.md's ```json and ```jsonl blocks, in document order."""
    text = DOCS.read_text()
    found: list[dict[str, Any]] = []
    for match in re.finditer(r"^```(json|jsonl)\n(.*?)^```", text, re.S | re.M):
        kind, body = match.group(1), match.group(2)
        rows = [body] if kind == "json" else [r for r in body.splitlines() if r.strip()]
        found.extend(json.loads(r) for r in rows)
    return found


def to_wire(event: dict[str, Any], schemas: SchemaRegistry) -> dict[str, Any]:
    """The in-memory event of a JSON example: base64 fields the schema marks binary as bytes."""
    wire = json.loads(json.dumps(event))
    codec.decode_base64_fields(wire, schemas.binary_fields(wire["type"]))
    schemas.validate(wire)  # the corpus holds valid events only
    return wire


def pcm_sine(ms: int, rate: int = 24000, hz: float = 220.0, amplitude: int = 8000) -> bytes:
    """Real pcm_s16le speech-format audio, computed (deterministic on every platform)."""
    n = rate * ms // 1000
    return b"".join(struct.pack("<h", round(amplitude * math.sin(2 * math.pi * hz * i / rate))) for i in range(n))


def pcm_audio_event() -> dict[str, Any]:
    return {
        "type": "ai.speech.audio",
        "id": "a-pcm-0",
        "entity": "npc-innkeeper",
        "ref": "u1",
        "payload": {
            "speech": "sp1",
            "seq": 0,
            "t": 0,
            "audio": pcm_sine(40),
            "visemes": [[0, "sil", 1.0], [12, "aa", 0.75], [31, "E", 0.5]],
            "volume": [0.25, 0.5, 0.375, 0.125],
        },
    }


def event_frames(schemas: SchemaRegistry) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    wires = [to_wire(e, schemas) for e in doc_examples()]
    names = []
    for wire in wires:
        stem = f"{wire['type']}/{wire.get('status') or 'new'}"
        counts[stem] = counts.get(stem, 0) + 1
        names.append(f"{stem}-{counts[stem]}")
    wires.append(to_wire(json.loads(codec.encode(pcm_audio_event(), codec.Framing.JSON)), schemas))
    names.append("ai.speech.audio/new-pcm-40ms")
    for name, wire in zip(names, wires):
        frames.append(
            {
                "name": name,
                "msgpack": pack(wire).hex(),
                "value": tree(wire),
                "canonical": True,
                "json": codec.encode(wire, codec.Framing.JSON),
            }
        )
    return frames


# --------------------------------------------------------------------------- codec edge cases


def wrap(inner: bytes) -> bytes:
    """A codec case as a frame: the one-pair map {"v": <value>} (a frame always holds a map)."""
    return b"\x81\xa1v" + inner


def utf8_of_length(n: int) -> str:
    """A string of exactly n UTF-8 bytes mixing 1-, 2-, 3- and 4-byte characters."""
    out: list[str] = []
    size = 0
    cycle = "aé€😀"
    i = 0
    while size < n:
        ch = cycle[i % len(cycle)]
        if size + len(ch.encode()) > n:
            ch = "a"
        out.append(ch)
        size += len(ch.encode())
        i += 1
    return "".join(out)


INT_CASES = {
    "posfixint-0": 0,
    "posfixint-max": 127,
    "uint8-min": 128,
    "uint8-max": 255,
    "uint16-min": 256,
    "uint16-max": 65535,
    "uint32-min": 65536,
    "uint32-max": 2**32 - 1,
    "uint64-min": 2**32,
    "uint64-int64-max": 2**63 - 1,
    "uint64-above-int64-max": 2**63,
    "uint64-max": 2**64 - 1,
    "negfixint-max": -1,
    "negfixint-min": -32,
    "int8-max": -33,
    "int8-min": -128,
    "int16-max": -129,
    "int16-min": -(2**15),
    "int32-max": -(2**15) - 1,
    "int32-min": -(2**31),
    "int64-max": -(2**31) - 1,
    "int64-min": -(2**63),
}

FLOAT_CASES = {
    "float64-zero": 0.0,
    "float64-negative-zero": -0.0,
    "float64-one": 1.0,
    "float64-integral-2": 2.0,
    "float64-1.5": 1.5,
    "float64-minus-1.5": -1.5,
    "float64-0.1": 0.1,
    "float64-pi": math.pi,
    "float64-max": sys.float_info.max,
    "float64-lowest": -sys.float_info.max,
    "float64-min-normal": sys.float_info.min,
    "float64-min-subnormal": 5e-324,
    "float64-1e300": 1e300,
    "float64-minus-1e-300": -1e-300,
    "float64-2pow53-plus-2": 9007199254740994.0,
}

# Decode-only: not the canonical form of their value. (hex of the inner value, value)
NON_CANONICAL: dict[str, tuple[str, Any]] = {
    "noncanonical/uint8-5": ("cc05", 5),
    "noncanonical/uint16-5": ("cd0005", 5),
    "noncanonical/uint32-5": ("ce00000005", 5),
    "noncanonical/uint64-5": ("cf0000000000000005", 5),
    "noncanonical/uint64-255": ("cf00000000000000ff", 255),
    "noncanonical/int8-5": ("d005", 5),
    "noncanonical/int8-minus-32": ("d0e0", -32),
    "noncanonical/int16-minus-1": ("d1ffff", -1),
    "noncanonical/int16-minus-128": ("d1ff80", -128),
    "noncanonical/int32-minus-1": ("d2ffffffff", -1),
    "noncanonical/int32-1000": ("d2000003e8", 1000),
    "noncanonical/int64-minus-1": ("d3ffffffffffffffff", -1),
    "noncanonical/int64-5": ("d30000000000000005", 5),
    "noncanonical/int64-uint32-max": ("d300000000ffffffff", 2**32 - 1),
    "float32/1.5": ("ca3fc00000", 1.5),
    "float32/negative-zero": ("ca80000000", -0.0),
    "float32/0.1": ("ca3dcccccd", struct.unpack(">f", bytes.fromhex("3dcccccd"))[0]),
    "float32/max": ("ca7f7fffff", struct.unpack(">f", bytes.fromhex("7f7fffff"))[0]),
    "float32/min-subnormal": ("ca00000001", struct.unpack(">f", bytes.fromhex("00000001"))[0]),
    "float32/minus-2": ("cac0000000", -2.0),
    "noncanonical/str8-abc": ("d903616263", "abc"),
    "noncanonical/str16-abc": ("da0003616263", "abc"),
    "noncanonical/str32-abc": ("db00000003616263", "abc"),
    "noncanonical/str8-empty": ("d900", ""),
    "noncanonical/bin16-3": ("c50003010203", b"\x01\x02\x03"),
    "noncanonical/bin32-3": ("c600000003010203", b"\x01\x02\x03"),
    "noncanonical/array16-1": ("dc000101", [1]),
    "noncanonical/array32-2": ("dd00000002c3c2", [True, False]),
    "noncanonical/map16-1": ("de0001a16b01", {"k": 1}),
    "noncanonical/map32-1": ("df00000001a16bc0", {"k": None}),
}


def nested(depth: int) -> Any:
    """`depth` containers in a frame {"v": [[...]]}: the map plus depth-1 arrays."""
    value: Any = []
    for _ in range(depth - 2):
        value = [value]
    return value


def codec_values() -> list[tuple[str, Any]]:
    cases: list[tuple[str, Any]] = [("codec/nil", None), ("codec/true", True), ("codec/false", False)]
    cases += [(f"codec/{name}", n) for name, n in INT_CASES.items()]
    cases += [(f"codec/{name}", x) for name, x in FLOAT_CASES.items()]
    for n in (0, 31, 32, 255, 256, 65535, 65536):
        cases.append((f"codec/str-ascii-{n}", "".join(chr(0x61 + i % 26) for i in range(n))))
    for n in (31, 32, 255, 256, 65535, 65536):
        cases.append((f"codec/str-utf8-{n}-bytes", utf8_of_length(n)))
    cases.append(("codec/str-utf8-mixed", "Grüße, 世界! 😀 \u0000 end"))
    for n in (0, 1, 255, 256, 65535, 65536):
        cases.append((f"codec/bin-{n}", bytes(i * 7 % 256 for i in range(n))))
    cases += [
        ("codec/array-empty", []),
        ("codec/map-empty", {}),
        ("codec/array-nested-empty", [[], [[]], {}]),
        ("codec/array-mixed", [1, -1, 1.5, "s", b"\x00\xff", None, True, {"k": [2]}]),
        ("codec/map-nested", {"a": {"b": {"c": []}}, "list": [{"x": 1}, {"y": [None]}]}),
        ("codec/map-keys-in-wire-order", {"z": 1, "a": 2, "m": 3}),
        ("codec/fixarray-15", list(range(15))),
        ("codec/array16-16", list(range(16))),
        ("codec/array16-1000", [i % 3 == 0 for i in range(1000)]),
        ("codec/fixmap-15", {f"k{i:02}": i for i in range(15)}),
        ("codec/map16-16", {f"k{i:02}": i for i in range(16)}),
        ("codec/map16-300", {f"k{i:03}": None for i in range(300)}),
        (f"codec/depth-{MAX_DEPTH}", nested(MAX_DEPTH)),
    ]
    return cases


def codec_frames() -> list[dict[str, Any]]:
    frames = []
    for name, value in codec_values():
        frames.append({"name": name, "msgpack": pack({"v": value}).hex(), "value": tree({"v": value}), "canonical": True})
    for name, (inner, value) in NON_CANONICAL.items():
        frames.append(
            {
                "name": f"codec/{name}",
                "msgpack": wrap(bytes.fromhex(inner)).hex(),
                "value": tree({"v": value}),
                "canonical": False,
                "canonical_msgpack": pack({"v": value}).hex(),
            }
        )
    return frames


# --------------------------------------------------------------------------- bad frames


#: A valid chat.history event up to its `payload` key, whose value follows: a bad frame built on
#: it is refused for its one defect, not for failing the schema.
EVENT_HEAD = b"\x84\xa4type\xacchat.history\xa2id\xa1x\xa6entity\xa1e\xa7payload"


def in_event(inner: bytes) -> bytes:
    """A chat.history event whose payload is {"v": <inner>}."""
    return EVENT_HEAD + b"\x81\xa1v" + inner


def bad_frames(good: dict[str, bytes]) -> list[dict[str, str]]:
    bad: list[tuple[str, bytes, str]] = [("truncated/empty", b"", "truncated")]

    def cuts(name: str, points: list[int] | None = None) -> None:
        data = good[name]
        for n in points if points is not None else range(1, len(data)):
            bad.append((f"truncated/{name}/{n}-of-{len(data)}", data[:n], "truncated"))

    cuts("entity.init/new-1")
    cuts("session.hello/new-1", [1, 2, 3, 8, 20, 40, 80, len(good["session.hello/new-1"]) - 1])
    cuts("codec/uint64-max")
    cuts("codec/int64-min")
    cuts("codec/float64-pi")
    cuts("codec/str-utf8-256-bytes", [4, 5, 6, 7, 8, 100, 260])  # in the str16 header, mid-way, mid-character
    cuts("codec/bin-65536", [4, 5, 6, 7, 8, 9, 1000, 65540])
    cuts("codec/map16-16", [1, 2, 3, 4, 5, 6, 50])
    pcm = good["ai.speech.audio/new-pcm-40ms"]
    cuts("ai.speech.audio/new-pcm-40ms", [1, 10, 60, 80, 100, len(pcm) // 2, len(pcm) - 2, len(pcm) - 1])

    ev = EVENT_HEAD
    h4 = b"\xff\xff\xff\xff"
    bad += [
        ("length/str32-4GiB-top", b"\xdb" + h4 + b"abc", "length"),
        ("length/str32-4GiB-value", in_event(b"\xdb" + h4 + b"abc"), "length"),
        ("length/str32-4GiB-type", b"\x82\xa4type\xdb\xff\xff\xff\xfe" + b"chat", "length"),
        ("length/bin32-4GiB", in_event(b"\xc6" + h4 + b"\x00\x01"), "length"),
        ("length/bin32-4GiB-audio", ev + b"\x81\xa5audio\xc6" + h4 + b"\x00" * 16, "length"),
        ("length/array32-4GiB", in_event(b"\xdd" + h4 + b"\xc0"), "length"),
        ("length/map32-4GiB-top", b"\xdf" + h4 + b"\xa1k\xc0", "length"),
        ("length/map32-4GiB-payload", ev + b"\xdf" + h4, "length"),
        ("length/str16-65535-short", in_event(b"\xda\xff\xff" + b"a" * 10), "length"),
        ("length/bin16-65535-short", in_event(b"\xc5\xff\xff" + b"\x00" * 10), "length"),
        ("length/map16-65535-short", b"\xde\xff\xff\xa1k\xc0", "length"),
        ("length/array16-65535-short", in_event(b"\xdc\xff\xff\xc0\xc0"), "length"),
        ("length/str8-past-end", in_event(b"\xd9\xff" + b"a" * 3), "length"),
        ("length/fixstr-past-end", in_event(b"\xbfabc"), "length"),
        ("length/ext32-4GiB", in_event(b"\xc9" + h4 + b"\x01\x00"), "length"),
        ("reserved/c1-top", b"\xc1", "reserved"),
        ("reserved/c1-value", in_event(b"\xc1"), "reserved"),
        ("reserved/c1-key", b"\x81\xc1\xc0", "reserved"),
        ("reserved/c1-in-payload", ev + b"\x81\xa1k\xc1", "reserved"),
        ("ext/fixext1", in_event(b"\xd4\x01\x00"), "ext"),
        ("ext/fixext2", in_event(b"\xd5\x02\x00\x01"), "ext"),
        ("ext/fixext4", in_event(b"\xd6\x03\x00\x01\x02\x03"), "ext"),
        ("ext/fixext8", in_event(b"\xd7\x04" + bytes(8)), "ext"),
        ("ext/fixext16", in_event(b"\xd8\x05" + bytes(16)), "ext"),
        ("ext/ext8", in_event(b"\xc7\x03\x06abc"), "ext"),
        ("ext/ext16", in_event(b"\xc8\x00\x03\x07abc"), "ext"),
        ("ext/ext32", in_event(b"\xc9\x00\x00\x00\x03\x08abc"), "ext"),
        ("ext/ext8-empty", in_event(b"\xc7\x00\x09"), "ext"),
        ("ext/in-payload", ev + b"\x81\xa1k\xd4\x01\x00", "ext"),
        ("ext/timestamp32", in_event(b"\xd6\xff\x00\x00\x00\x00"), "ext"),
        ("ext/timestamp64", in_event(b"\xd7\xff" + bytes(8)), "ext"),
        ("ext/timestamp96", in_event(b"\xc7\x0c\xff" + bytes(12)), "ext"),
        ("ext/timestamp32-in-payload", ev + b"\x81\xa4when\xd6\xff\x5f\x00\x00\x00", "ext"),
        ("ext/timestamp-top", b"\xd6\xff\x00\x00\x00\x00", "ext"),
    ]
    for depth in (MAX_DEPTH + 1, 100, 1025, 100_000):
        bad.append((f"depth/{depth}", EVENT_HEAD + b"\x81\xa1v" + b"\x91" * (depth - 3) + b"\x90", "depth"))
    bad.append(("depth/maps-65", EVENT_HEAD + b"\x81\xa1v" * (MAX_DEPTH - 1) + b"\x80", "depth"))
    for label, raw in (
        ("lone-continuation", b"\x80"),
        ("bad-continuation", b"\xc3\x28"),
        ("overlong-nul", b"\xc0\x80"),
        ("overlong-slash", b"\xe0\x80\xaf"),
        ("surrogate", b"\xed\xa0\x80"),
        ("above-10ffff", b"\xf4\x90\x80\x80"),
        ("ff-byte", b"\xff"),
        ("cut-multibyte", b"\xe2\x82"),
    ):
        s = b"ok" + raw
        bad.append((f"utf8/{label}", in_event(bytes([0xA0 | len(s)]) + s), "utf8"))
    bad += [
        ("utf8/in-key", b"\x81\xa2\xc3\x28\xc0", "utf8"),
        ("utf8/in-type", b"\x83\xa4type\xa3\xff\xfe\xfd\xa2id\xa1x\xa7payload\xc0", "utf8"),
        ("utf8/in-payload-text", ev + b"\x81\xa4text\xa2\xc3\x28", "utf8"),
        ("key/int-top", b"\x81\x01\xa1x", "key"),
        ("key/negative-int-top", b"\x81\xff\xa1x", "key"),
        ("key/nil-top", b"\x81\xc0\xa1x", "key"),
        ("key/bool-top", b"\x81\xc3\xa1x", "key"),
        ("key/float-top", b"\x81\xcb" + struct.pack(">d", 1.5) + b"\xa1x", "key"),
        ("key/array-top", b"\x81\x91\x01\xa1x", "key"),
        ("key/map-top", b"\x81\x81\xa1k\x01\xa1x", "key"),
        ("key/bin-type", b"\x83\xc4\x04type\xacchat.history\xa2id\xa1x\xa6entity\xa1e", "key"),
        ("key/int-in-payload", ev + b"\x81\x01\xa1x", "key"),
        ("key/bin-in-payload", ev + b"\x81\xc4\x01k\xa1x", "key"),
        ("key/bin-in-hello-payload", b"\x83\xa4type\xadsession.hello\xa2id\xa2h1\xa7payload\x81\xc4\x08protocol\x01", "key"),
        ("trailing/extra-nil", good["entity.remove/new-1"] + b"\xc0", "trailing"),
        ("trailing/two-frames", good["entity.remove/new-1"] * 2, "trailing"),
        ("not_map/array", pack([1, 2]), "not_map"),
        ("not_map/str", pack("session.hello"), "not_map"),
        ("not_map/int", b"\x01", "not_map"),
        ("not_map/nil", b"\xc0", "not_map"),
        ("not_map/bin", pack(b"\x81\xa1v\xc0"), "not_map"),
    ]
    names = [b[0] for b in bad]
    assert len(names) == len(set(names)), "bad frame names must be unique"
    return [{"name": name, "msgpack": data.hex(), "error": error} for name, data, error in bad]


# --------------------------------------------------------------------------- scenarios

HELLO = {"type": "session.hello", "id": "h1", "payload": {"protocol": 1, "client": "conformance"}}


def _send(event: dict[str, Any]) -> dict[str, Any]:
    return {"send": event}


def _expect(type_: str, status: str, code: str | None = None, *, id: str | None = None, ref: str | None = None) -> dict[str, Any]:
    want: dict[str, Any] = {"type": type_, "status": status}
    if code is not None:
        want["code"] = code
    if id is not None:
        want["id"] = id
    if ref is not None:
        want["ref"] = ref
    return {"expect": want}


def _init(event_id: str, entity: str, character: str) -> dict[str, Any]:
    return _send({"type": "entity.init", "id": event_id, "entity": entity, "payload": {"character": character}})


def scenarios() -> dict[str, dict[str, Any]]:
    """Scripted exchanges against tests/conformance/bridge.toml, written from docs/protocol.md."""
    utterance = {"type": "user.utterance", "id": "u1", "entity": "npc-1", "payload": {"text": "Hello?", "kind": "verbal"}}
    return {
        "hello-msgpack": {
            "description": "MessagePack session: hello, entity.init by name and of an unknown character, remove, then the removed entity is unknown.",
            "framing": "msgpack",
            "steps": [
                _send(HELLO),
                _expect("session.hello", "success", id="h1"),
                _init("e1", "npc-1", "echo"),
                _expect("entity.init", "success", id="e1"),
                _init("e2", "npc-2", "nobody"),
                _expect("entity.init", "error", "unknown_character", id="e2"),
                _send({"type": "entity.remove", "id": "r1", "entity": "npc-1", "payload": None}),
                _expect("entity.remove", "success", id="r1"),
                _send({**utterance, "id": "u2"}),
                _expect("user.utterance", "error", "unknown_entity", id="u2"),
            ],
        },
        "hello-json": {
            "description": "JSON session: a request before hello, hello, a second hello, init, chat.history, chat.clear, remove.",
            "framing": "json",
            "steps": [
                _init("e0", "npc-1", "echo"),
                _expect("entity.init", "error", "hello_required", id="e0"),
                _send(HELLO),
                _expect("session.hello", "success", id="h1"),
                _send({**HELLO, "id": "h2"}),
                _expect("session.hello", "error", "bad_event", id="h2"),
                _init("e1", "npc-1", "echo"),
                _expect("entity.init", "success", id="e1"),
                _send({"type": "chat.history", "id": "c1", "entity": "npc-1", "payload": None}),
                _expect("chat.history", "success", id="c1"),
                _send({"type": "chat.clear", "id": "c2", "entity": "npc-1", "payload": None}),
                _expect("chat.clear", "success", id="c2"),
                _send({"type": "entity.remove", "id": "r1", "entity": "npc-1", "payload": None}),
                _expect("entity.remove", "success", id="r1"),
            ],
        },
        "turn": {
            "description": "One user.utterance turn with text deltas: pending, one ai.text per word of the scripted reply, success; then chat.history and remove.",
            "framing": "msgpack",
            "steps": [
                _send({**HELLO, "payload": {**HELLO["payload"], "text_deltas": True}}),
                _expect("session.hello", "success", id="h1"),
                _init("e1", "npc-1", "echo"),
                _expect("entity.init", "success", id="e1"),
                _send(utterance),
                _expect("user.utterance", "pending", id="u1"),
                _expect("ai.text", "new", ref="u1"),
                _expect("ai.text", "new", ref="u1"),
                _expect("ai.text", "new", ref="u1"),
                _expect("user.utterance", "success", id="u1"),
                _send({"type": "chat.history", "id": "c1", "entity": "npc-1", "payload": None}),
                _expect("chat.history", "success", id="c1"),
                _send({"type": "entity.remove", "id": "r1", "entity": "npc-1", "payload": None}),
                _expect("entity.remove", "success", id="r1"),
            ],
        },
        "errors": {
            "description": "Refusals that keep the session open: bad_event (replied in kind), unknown_type (an error event: the type cannot be answered in kind), unknown_entity, entity_exists; then a turn still works.",
            "framing": "json",
            "steps": [
                _send(HELLO),
                _expect("session.hello", "success", id="h1"),
                _init("e1", "npc-1", "echo"),
                _expect("entity.init", "success", id="e1"),
                _send({**utterance, "id": "b1", "payload": {"text": 42}}),
                _expect("user.utterance", "error", "bad_event", id="b1"),
                _send({"type": "entity.init", "id": "b2", "payload": {"character": "echo"}}),
                _expect("entity.init", "error", "bad_event", id="b2"),
                _send({"type": "no.such.type", "id": "b3", "entity": "npc-1", "payload": None}),
                _expect("error", "new", "unknown_type", ref="b3"),
                _send({"type": "ai.text", "id": "b4", "entity": "npc-1", "payload": {"text": "hi"}}),
                _expect("error", "new", "unknown_type", ref="b4"),
                _send({**utterance, "id": "b5", "entity": "ghost"}),
                _expect("user.utterance", "error", "unknown_entity", id="b5"),
                _send({"type": "entity.remove", "id": "b6", "entity": "ghost", "payload": None}),
                _expect("entity.remove", "error", "unknown_entity", id="b6"),
                _init("b7", "npc-1", "echo"),
                _expect("entity.init", "error", "entity_exists", id="b7"),
                _send(utterance),
                _expect("user.utterance", "pending", id="u1"),
                _expect("user.utterance", "success", id="u1"),
            ],
        },
    }


def _dump_scenario(name: str, scenario: dict[str, Any]) -> str:
    head = {"version": VERSION, "name": name, "description": scenario["description"], "framing": scenario["framing"]}
    rows = ",\n".join(json.dumps(step, ensure_ascii=False) for step in scenario["steps"])
    return json.dumps(head, ensure_ascii=False)[:-1] + f', "steps": [\n{rows}\n]}}\n'


# --------------------------------------------------------------------------- output


def render() -> dict[Path, str]:
    """Every generated file (path relative to this folder) and its exact text."""
    schemas = SchemaRegistry()
    frames = event_frames(schemas) + codec_frames()
    names = [f["name"] for f in frames]
    assert len(names) == len(set(names)), "frame names must be unique"
    for frame in frames:  # the encoder above agrees with the bridge's library, or nothing is written
        value = untree(frame["value"])
        expected = frame.get("canonical_msgpack", frame["msgpack"])
        assert msgpack.packb(value, use_bin_type=True).hex() == expected, frame["name"]
    good = {f["name"]: bytes.fromhex(f["msgpack"]) for f in frames}
    return {
        Path("frames.json"): _dump_list(frames),
        Path("frames_bad.json"): _dump_list(bad_frames(good)),
        **{Path("scenarios") / f"{name}.json": _dump_scenario(name, sc) for name, sc in scenarios().items()},
    }


def _dump_list(frames: list[dict[str, Any]]) -> str:
    """One frame a line: small diffs, and any JSON parser reads it."""
    rows = ",\n".join(json.dumps(f, ensure_ascii=False, allow_nan=False) for f in frames)
    return f'{{"version": {VERSION}, "frames": [\n{rows}\n]}}\n'


def stale_files(root: Path = HERE) -> list[str]:
    """Generated files that are missing or differ, plus scenario files nothing generates."""
    expected = render()
    problems = [str(p) for p, text in expected.items() if not (root / p).is_file() or (root / p).read_text(encoding="utf-8") != text]
    problems += [f"{p.relative_to(root)} (not generated)" for p in sorted((root / "scenarios").glob("*")) if p.relative_to(root) not in expected]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if stale else 0
    files = render()
    (HERE / "scenarios").mkdir(exist_ok=True)
    for path, text in files.items():
        (HERE / path).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
