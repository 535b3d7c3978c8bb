"""Session recording: every frame, both directions, with times, one JSON object a line.

    {"t_ms": 12.5, "dir": "out", "event": {...}}

Bytes are written as {"$bin": "<base64>"} so the log stays readable text. `entity-bridge
replay` plays the `out` lines back against a bridge and compares its answers with the `in`
lines (see replay.py).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any, IO


def _to_json(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray)):
        return {"$bin": base64.b64encode(obj).decode("ascii")}
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_json(v) for v in obj]
    return obj


def _from_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"$bin"}:
            return base64.b64decode(obj["$bin"], validate=True)
        return {k: _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj


class Recorder:
    def __init__(self, path: str | Path, framing: str = "msgpack") -> None:
        self.path = Path(path)
        self._file: IO[str] = self.path.open("w", encoding="utf-8")
        self._start = time.monotonic()
        self._file.write(json.dumps({"t_ms": 0, "dir": "meta", "framing": framing}) + "\n")

    def write(self, direction: str, wire: dict[str, Any]) -> None:
        line = {"t_ms": round((time.monotonic() - self._start) * 1000, 3), "dir": direction, "event": _to_json(wire)}
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The lines of a recorded session, bytes restored."""
    records = []
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line: {exc}") from None
            if "event" in record:
                record["event"] = _from_json(record["event"])
            records.append(record)
    return records
