"""The event envelope: one dataclass for every message in either direction.

Kept as plain data so the codec, the validator and the session can pass it around without
caring about framing. `to_wire()` leaves out absent keys so MessagePack frames stay small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("new", "pending", "success", "error")


@dataclass(slots=True)
class Event:
    type: str
    id: str
    payload: dict[str, Any] | None = field(default=None)
    entity: str | None = None
    status: str = "new"
    ref: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": self.type, "id": self.id}
        if self.entity is not None:
            wire["entity"] = self.entity
        if self.status != "new":
            wire["status"] = self.status
        if self.ref is not None:
            wire["ref"] = self.ref
        wire["payload"] = self.payload
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> "Event":
        """Build from an already validated map (see `schema.SchemaRegistry.validate`)."""
        payload = wire.get("payload")
        return cls(
            type=wire["type"],
            id=wire["id"],
            payload=payload if payload is not None else {},
            entity=wire.get("entity"),
            status=wire.get("status") or "new",
            ref=wire.get("ref"),
        )

    def reply(self, status: str, payload: dict[str, Any] | None = None) -> "Event":
        """A reply to this request: same type, id and entity."""
        return Event(self.type, self.id, payload, entity=self.entity, status=status)

    def error_reply(self, code: str, message: str) -> "Event":
        return self.reply("error", {"code": str(code), "message": message})
