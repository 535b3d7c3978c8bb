"""The shared conformance corpus (tests/conformance/) holds for the Python side.

Every SDK checks its codec against these files, so they must be right: committed exactly as
`generate.py` makes them; every golden frame decoded by the bridge's codec and by the Python
SDK to its typed tree and re-encoded to the canonical bytes; every bad frame refused by the
bridge with a ProtocolError (never another exception, never accepted); and every scenario
replayed over a real WebSocket against a real `bridge.cli serve` gives exactly the replies
it lists, and nothing more.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
from websockets.trio.client import connect as ws_connect

from bridge.protocol import codec
from bridge.protocol.errors import ErrorCode, ProtocolError
from bridge.protocol.schema import registry
from entity_bridge_sdk.client import decode_frame, encode_frame

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "conformance"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_generate", CORPUS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generate = _load_generator()
FRAMES: list[dict[str, Any]] = json.loads((CORPUS / "frames.json").read_text(encoding="utf-8"))["frames"]
BAD: list[dict[str, Any]] = json.loads((CORPUS / "frames_bad.json").read_text(encoding="utf-8"))["frames"]
SCENARIOS = sorted((CORPUS / "scenarios").glob("*.json"))

# Bad frames the bridge's decoder accepts although the protocol refuses them (reported, not
# fixed here: bridge code is not this test's to change). strict: the day the bridge refuses
# one, this list must shrink.
KNOWN_ACCEPTED: dict[str, str] = {}  # bad frames the bridge still accepts (none since issue 11)


def typed(value: Any) -> str:
    """A decoded value as the corpus's typed tree, as exact text (-0.0 differs from 0.0)."""
    return json.dumps(generate.tree(value), ensure_ascii=False)


def golden(frame: dict[str, Any]) -> str:
    return json.dumps(frame["value"], ensure_ascii=False)


def canonical_hex(frame: dict[str, Any]) -> str:
    return frame["msgpack"] if frame["canonical"] else frame["canonical_msgpack"]


def params(frames: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(f, id=f["name"]) for f in frames]


# --------------------------------------------------------------------------- the files


def test_committed_corpus_is_what_generate_makes() -> None:
    stale = generate.stale_files()
    assert not stale, f"run `.venv/bin/python tests/conformance/generate.py`; stale: {stale}"


def test_corpus_covers_what_the_sdks_rely_on() -> None:
    names = {f["name"] for f in FRAMES}
    event_types = {f["name"].split("/")[0] for f in FRAMES if "json" in f}
    assert event_types == registry().types, "every event type needs at least one golden frame"
    for required in ("codec/uint64-max", "codec/int64-min", "codec/float64-negative-zero", "codec/str-utf8-65536-bytes",
                     "codec/bin-65536", "codec/map16-16", "codec/array16-16", "ai.speech.audio/new-pcm-40ms"):
        assert required in names
    assert any(not f["canonical"] for f in FRAMES) and all(f["msgpack"] == f["msgpack"].lower() for f in FRAMES)
    assert (CORPUS / "frames.json").stat().st_size < 2_000_000
    categories = {b["error"] for b in BAD}
    assert categories == {"truncated", "length", "reserved", "ext", "depth", "utf8", "key", "trailing", "not_map"}


def test_known_bytes_from_the_messagepack_spec() -> None:
    """A few frames checked against bytes written out by hand, so the generator's encoder is
    not only compared with the library it cross-checks."""
    by_name = {f["name"]: f["msgpack"] for f in FRAMES}
    wrap = "81a176"
    assert by_name["codec/uint64-max"] == wrap + "cf" + "ff" * 8
    assert by_name["codec/int64-min"] == wrap + "d3" + "80" + "00" * 7
    assert by_name["codec/negfixint-min"] == wrap + "e0"
    assert by_name["codec/int8-max"] == wrap + "d0df"
    assert by_name["codec/uint8-min"] == wrap + "cc80"
    assert by_name["codec/float64-negative-zero"] == wrap + "cb8000000000000000"
    assert by_name["codec/str-ascii-32"].startswith(wrap + "d920")
    assert by_name["codec/str-utf8-65536-bytes"].startswith(wrap + "db00010000")
    assert by_name["codec/bin-256"].startswith(wrap + "c50100")
    assert by_name["codec/map16-16"].startswith(wrap + "de0010")
    assert by_name["entity.remove/new-1"] == b"\x84\xa4type\xadentity.remove\xa2id\xa2r1\xa6entity\xa9npc-guard\xa7payload\xc0".hex()


# --------------------------------------------------------------------------- golden frames


@pytest.mark.parametrize("frame", params(FRAMES))
def test_bridge_codec_decodes_and_reencodes(frame: dict[str, Any]) -> None:
    data = bytes.fromhex(frame["msgpack"])
    decoded = codec.decode(data)
    assert typed(decoded) == golden(frame)
    assert codec.encode(decoded, codec.Framing.MSGPACK).hex() == canonical_hex(frame)


@pytest.mark.parametrize("frame", params(FRAMES))
def test_python_sdk_decodes_and_reencodes(frame: dict[str, Any]) -> None:
    decoded = decode_frame(bytes.fromhex(frame["msgpack"]))
    assert typed(decoded) == golden(frame)
    assert encode_frame(decoded, "msgpack").hex() == canonical_hex(frame)


@pytest.mark.parametrize("frame", params([f for f in FRAMES if "json" in f]))
def test_json_framing_means_the_same_event(frame: dict[str, Any]) -> None:
    schemas = registry()
    wire = codec.decode(frame["json"])
    codec.decode_base64_fields(wire, schemas.binary_fields(wire["type"]))
    assert typed(wire) == golden(frame)
    schemas.validate(wire)
    assert typed(decode_frame(frame["json"])) == golden(frame)
    assert codec.encode(wire, codec.Framing.JSON) == frame["json"]


# --------------------------------------------------------------------------- bad frames


def _refusal(data: bytes) -> ProtocolError | None:
    """The bridge's refusal of a frame: at decoding, or at validating the decoded event."""
    try:
        wire = codec.decode(data)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.BAD_FRAME
        return exc
    try:
        registry().validate(wire)
    except ProtocolError as exc:
        return exc
    return None


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(f, id=f["name"], marks=pytest.mark.xfail(strict=True, reason=KNOWN_ACCEPTED[f["name"]]))
        if f["name"] in KNOWN_ACCEPTED
        else pytest.param(f, id=f["name"])
        for f in BAD
    ],
)
def test_bridge_refuses_bad_frame(frame: dict[str, Any]) -> None:
    started = time.perf_counter()
    refusal = _refusal(bytes.fromhex(frame["msgpack"]))
    assert refusal is not None, f"accepted a {frame['error']} frame"
    assert refusal.message
    assert time.perf_counter() - started < 1.0, "a hostile frame must not cost the bridge real time"


def test_known_accepted_names_exist() -> None:
    assert set(KNOWN_ACCEPTED) <= {b["name"] for b in BAD}


# --------------------------------------------------------------------------- scenarios


@pytest.fixture(scope="module")
def bridge_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real bridge process with the corpus's config, started as every SDK harness does."""
    port_file = tmp_path_factory.mktemp("conformance") / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "--config", str(CORPUS / "bridge.toml"), "--port", "0",
         "--port-file", str(port_file), "--exit-on-stdin-eof"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # the bridge prints READY first, or exits
        assert line.startswith("READY ws://127.0.0.1:"), f"bridge did not start: {line!r}"
        yield line.split(" ", 1)[1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _matches(want: dict[str, Any], got: dict[str, Any]) -> bool:
    payload = got.get("payload") if isinstance(got.get("payload"), dict) else {}
    ref = payload.get("ref") if got.get("type") == "error" else got.get("ref")  # an error event's ref is in its payload
    seen = {"type": got.get("type"), "status": got.get("status") or "new", "code": payload.get("code"),
            "id": got.get("id"), "ref": ref}  # fmt: skip
    return all(seen[key] == value for key, value in want.items())


async def replay(url: str, scenario: dict[str, Any]) -> list[str]:
    """Play one scenario; return a line per mismatch (empty when the bridge did exactly that)."""
    framing = scenario["framing"]
    problems: list[str] = []
    async with ws_connect(url, compression=None) as ws:
        for index, step in enumerate(scenario["steps"]):
            if "send" in step:
                wire = json.loads(json.dumps(step["send"]))
                await ws.send(encode_frame(wire, framing))
                continue
            with trio.move_on_after(10) as timer:
                data = await ws.recv()
            if timer.cancelled_caught:
                problems.append(f"step {index}: no reply within 10 s, wanted {step['expect']}")
                return problems
            assert isinstance(data, bytes) == (framing == "msgpack"), f"reply in the wrong framing: {data!r:.80}"
            got = decode_frame(data)
            if not _matches(step["expect"], got):
                problems.append(f"step {index}: wanted {step['expect']}, got {json.dumps(got, default=repr)[:300]}")
        with trio.move_on_after(0.5):
            extra = await ws.recv()
            problems.append(f"after the last step: unexpected {decode_frame(extra)}")
    return problems


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
async def test_scenario_replays_against_a_real_bridge(path: Path, bridge_url: str) -> None:
    scenario = json.loads(path.read_text(encoding="utf-8"))
    assert scenario["version"] == 1 and scenario["name"] == path.stem and scenario["steps"]
    with trio.fail_after(60):
        problems = await replay(bridge_url, scenario)
    assert not problems, "\n".join(problems)


def test_there_are_scenarios() -> None:
    assert {p.stem for p in SCENARIOS} >= {"hello-msgpack", "hello-json", "turn", "errors"}
