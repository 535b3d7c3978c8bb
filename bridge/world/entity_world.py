"""One entity's view of the world: its registered actions (and, later, what it perceives).

This is the `bridge.character.ports.World` a character's turns use. The connection builds
one per entity at `entity.init` and feeds it `movement.actions` (and `movement.scene`).
Options come from the character's config table: `action_timeout_s` (how long to wait for
the engine's answer to each `movement.perform`, default 10) and `react_to_action_result`
(after the actions are answered, ask the LLM for one short follow-up line; default false).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.world.actions import DEFAULT_ACTION_TIMEOUT_S, ActionCatalog, ActionRun
from bridge.world.engine import EngineRequests


class EntityWorld:
    def __init__(self, entity: str, requests: EngineRequests, options: Mapping[str, Any]) -> None:
        self.entity = entity
        self.requests = requests
        self.catalog = ActionCatalog()
        self.action_timeout_s = float(options.get("action_timeout_s", DEFAULT_ACTION_TIMEOUT_S))
        self.react_to_action_result = bool(options.get("react_to_action_result", False))
        self.scene: dict[str, Any] = {}

    # ------------------------------------------------------------ from the engine

    def register_actions(self, items: list[Mapping[str, Any]]) -> None:
        self.catalog.register(items)

    def update_scene(self, scene: dict[str, Any]) -> None:
        self.scene = scene

    # ------------------------------------------------------------ ports.World

    async def prepare_turn(self) -> None:
        return None

    def prompt_sections(self, *, tools: bool) -> list[str]:
        sections: list[str] = []
        if not tools:
            actions = self.catalog.prompt()
            if actions:
                sections.append(actions)
        return sections

    def tools(self) -> list[dict[str, Any]]:
        return self.catalog.tools()

    def start_actions(self, turn_id: str) -> ActionRun | None:
        return ActionRun(self.catalog, self.requests, self.entity, turn_id, self.action_timeout_s)
