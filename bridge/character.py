"""A character's runtime for one entity: its config, its providers, and its kinds of turn.

The connection layer knows only "this request starts a turn with this handler"; what a
turn does (ask the LLM, speak, listen) lives in the handlers built here.
"""

from __future__ import annotations

from typing import Any

from bridge.app import BridgeApp
from bridge.config import CharacterConfig
from bridge.conversation import ConversationTurn
from bridge.entity import TurnHandler
from bridge.protocol.envelope import Event
from bridge.protocol.errors import ErrorCode, ProtocolError


class CharacterRuntime:
    def __init__(self, app: BridgeApp, config: CharacterConfig, hello: dict[str, Any]) -> None:
        self.app = app
        self.config = config
        self.hello = hello
        self.scope = str(hello.get("scope") or "default")
        self.text_deltas = bool(hello.get("text_deltas", False))
        self.world_events: list[str] = []
        self.scene: dict[str, Any] = {}

    @property
    def modules(self) -> dict[str, str]:
        return dict(self.config.modules)

    async def llm(self) -> Any:
        return await self.app.provider(self.config.modules["llm"])

    def handler_for(self, request: Event) -> TurnHandler:
        if request.type == "user.utterance":
            return ConversationTurn(self)
        raise ProtocolError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"{request.type} is not available for this character yet",
            event_type=request.type,
            event_id=request.id,
            entity=request.entity,
        )
