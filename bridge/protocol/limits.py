"""Limits that protect the bridge from a runaway or hostile client.

Each has a default sized for a game on the same machine, a config key under `[limits]`,
and a clear error when hit (see docs/protocol.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = 1_048_576  # larger frames close the connection with 1009
    max_text_chars: int = 4000  # any text field of a request (utterance, persona, action description, ...)
    max_name_chars: int = 200  # names: speaker, actor, display_name, name, voice, and map keys
    max_request_text_chars: int = 32768  # all the text of one request together
    max_entities: int = 64  # per connection
    events_per_second: int = 200  # sustained inbound rate (token bucket)
    event_burst: int = 400  # bucket size
    max_bad_frames: int = 20  # undecodable frames in a row before the bridge gives up (1008)
    outbound_queue: int = 512  # events waiting for a slow client...
    client_stall_ms: int = 5000  # ...and how long a full queue may stay full before the client is dropped
    max_audio_buffer_s: int = 30  # seconds of microphone audio one utterance may hold
    hello_timeout_s: int = 10  # a connection that never says hello is closed

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "Limits":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown key(s) in [limits]: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for key, value in data.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"[limits] {key} must be a positive integer, got {value!r}")
        return cls(**data)

    def public(self) -> dict[str, int]:
        """The limits a client is told in the hello reply."""
        d = asdict(self)
        keys = ("max_frame_bytes", "max_text_chars", "max_name_chars", "max_request_text_chars", "max_entities", "events_per_second")
        return {k: d[k] for k in keys}


#: The keys `[limits]` accepts.
LIMIT_KEYS = frozenset(f.name for f in fields(Limits))
