"""Validation of events against `schemas/events/<type>.json`.

The schema files describe the JSON framing, where binary fields are base64 strings with
`contentEncoding: base64`. In memory those fields hold bytes (MessagePack `bin`, or base64
decoded by the codec), so each schema is compiled with those properties relaxed and the
registry checks them for bytes itself. Validators are compiled lazily, once per process.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import fastjsonschema

from bridge.protocol.errors import ErrorCode, ProtocolError

SCHEMA_DIR_ENV = "ENTITY_BRIDGE_SCHEMAS"


def default_schema_dir() -> Path:
    env = os.environ.get(SCHEMA_DIR_ENV)
    if env:
        return Path(env)
    source = Path(__file__).resolve().parents[2] / "schemas"  # a checkout: schemas/ beside bridge/
    if source.is_dir():
        return source
    return Path(__file__).resolve().parent / "schemas"  # installed from the wheel (see pyproject.toml)


def _strip_binary(node: Any, found: set[str]) -> Any:
    """Copy of a schema where base64 properties accept anything; their names go to `found`."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                props: dict[str, Any] = {}
                for name, sub in value.items():
                    if isinstance(sub, dict) and sub.get("contentEncoding") == "base64":
                        found.add(name)
                        props[name] = {}
                    else:
                        props[name] = _strip_binary(sub, found)
                out[key] = props
            else:
                out[key] = _strip_binary(value, found)
        return out
    if isinstance(node, list):
        return [_strip_binary(item, found) for item in node]
    return node


def _draft7_tuples(node: Any) -> Any:
    """fastjsonschema predates 2020-12 `prefixItems`; give it draft 7's positional `items`."""
    if isinstance(node, dict):
        out = {k: _draft7_tuples(v) for k, v in node.items()}
        if "prefixItems" in out:
            out["items"] = out.pop("prefixItems")
        return out
    if isinstance(node, list):
        return [_draft7_tuples(v) for v in node]
    return node


class SchemaRegistry:
    """All event schemas of one directory; `validate()` raises ProtocolError on a bad event."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_schema_dir()
        events_dir = self.directory / "events"
        if not events_dir.is_dir():
            raise FileNotFoundError(f"no event schemas in {events_dir} (set {SCHEMA_DIR_ENV})")
        self._files = {p.name[: -len(".json")]: p for p in sorted(events_dir.glob("*.json"))}
        self._compiled: dict[str, tuple[Callable[[Any], Any], frozenset[str]]] = {}
        self._lock = threading.Lock()

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self._files)

    def _load(self, event_type: str) -> tuple[Callable[[Any], Any], frozenset[str]]:
        entry = self._compiled.get(event_type)
        if entry is None:
            with self._lock:
                entry = self._compiled.get(event_type)
                if entry is None:
                    raw = json.loads(self._files[event_type].read_text())
                    binary: set[str] = set()
                    relaxed = _strip_binary(copy.deepcopy(raw), binary)
                    relaxed.pop("$schema", None)
                    entry = (fastjsonschema.compile(_draft7_tuples(relaxed)), frozenset(binary))
                    self._compiled[event_type] = entry
        return entry

    def binary_fields(self, event_type: str) -> frozenset[str]:
        if event_type not in self._files:
            return frozenset()
        return self._load(event_type)[1]

    def validate(self, wire: dict[str, Any]) -> None:
        """Check one decoded event; the error names the offending field."""
        event_type = wire.get("type")
        event_id = wire.get("id") if isinstance(wire.get("id"), str) else None
        if not isinstance(event_type, str):
            raise ProtocolError(ErrorCode.BAD_EVENT, "an event needs a string `type`", event_id=event_id)
        if event_type not in self._files:
            raise ProtocolError(
                ErrorCode.UNKNOWN_TYPE, f"unknown event type {event_type!r}", event_type=event_type, event_id=event_id
            )
        validator, binary = self._load(event_type)
        try:
            validator(wire)
        except fastjsonschema.JsonSchemaValueException as exc:
            where = (exc.name or "data").replace("data.", "", 1).replace("data", "event")
            raise ProtocolError(
                ErrorCode.BAD_EVENT,
                f"{event_type}: {exc.message.replace(exc.name or 'data', where, 1)}",
                event_type=event_type,
                event_id=event_id,
            ) from None
        payload = wire.get("payload")
        if binary and isinstance(payload, dict):
            for name in binary:
                value = payload.get(name)
                if value is not None and not isinstance(value, (bytes, bytearray)):
                    raise ProtocolError(
                        ErrorCode.BAD_EVENT,
                        f"{event_type}: payload.{name} must be binary (MessagePack bin, or base64 text in JSON)",
                        event_type=event_type,
                        event_id=event_id,
                    )


@lru_cache(maxsize=4)
def registry(directory: Path | None = None) -> SchemaRegistry:
    """The process-wide registry for a directory (compiled validators are shared)."""
    return SchemaRegistry(directory)
