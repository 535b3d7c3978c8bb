"""One entity's view of the world: its registered actions and what it perceives.

This is the `bridge.character.ports.World` a character's turns use. The connection builds
one per entity at `entity.init` and feeds it `movement.actions` (and `movement.scene`).
Options come from the character's config table: `action_timeout_s` (how long to wait for
the engine's answer to each `movement.perform`, default 10) and `react_to_action_result`
(after the actions are answered, ask the LLM for one short follow-up line; default false),
`perception_max_items` (entries of the perception text, default 8), `scene_max_age_s` (before
a turn, ask the engine for a fresh scene with `movement.scene.request` when the one held is
older than this, or there is none; default 0: never ask) and `scene_request_timeout_s` (how
long to wait for that answer, default 2; without one the turn goes on with what it has).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio

from bridge.world.actions import DEFAULT_ACTION_TIMEOUT_S, ActionCatalog, ActionRun
from bridge.world.engine import EngineRequests, EngineTimeout
from bridge.world.perception import DEFAULT_MAX_ITEMS, describe

log = logging.getLogger(__name__)


class EntityWorld:
    def __init__(self, entity: str, requests: EngineRequests, options: Mapping[str, Any], display_name: str = "") -> None:
        self.entity = entity
        self.display_name = display_name
        self.requests = requests
        self.catalog = ActionCatalog()
        self.action_timeout_s = float(options.get("action_timeout_s", DEFAULT_ACTION_TIMEOUT_S))
        self.react_to_action_result = bool(options.get("react_to_action_result", False))
        self.scene: dict[str, Any] = {}
        self.scene_at: float | None = None  # trio time of the last scene update
        self.perception_max_items = int(options.get("perception_max_items", DEFAULT_MAX_ITEMS))
        self.scene_max_age_s = float(options.get("scene_max_age_s", 0))
        self.scene_request_timeout_s = float(options.get("scene_request_timeout_s", 2.0))
        self.scene_requests = 0

    # ------------------------------------------------------------ from the engine

    def register_actions(self, items: list[Mapping[str, Any]]) -> None:
        self.catalog.register(items)

    def update_scene(self, scene: dict[str, Any]) -> None:
        self.scene = scene
        self.scene_at = trio.current_time()

    def own_position(self) -> Any:
        """The entity's own position in the scene it was given, if it is listed there."""
        names = {self.entity.casefold(), self.display_name.casefold()}
        for item in self.scene.get("characters") or ():
            if isinstance(item, Mapping) and str(item.get("name", "")).casefold() in names:
                return item.get("position")
        return None

    def perception(self) -> str | None:
        return describe(self.scene, [self.entity, self.display_name], max_items=self.perception_max_items)

    # ------------------------------------------------------------ ports.World

    async def prepare_turn(self) -> None:
        """Refresh a stale scene from the engine, when configured to (`scene_max_age_s`)."""
        if self.scene_max_age_s <= 0:
            return
        if self.scene_at is not None and trio.current_time() - self.scene_at <= self.scene_max_age_s:
            return
        self.scene_requests += 1
        try:
            answer = await self.requests.ask("movement.scene.request", self.entity, None, ref=None, timeout_s=self.scene_request_timeout_s)
        except EngineTimeout as exc:
            log.warning("%s: %s; the turn uses the scene it has", self.entity, exc)
            return
        if answer.status == "success":
            self.update_scene(answer.payload or {})
        else:
            log.warning("%s: the engine could not give a scene: %s", self.entity, (answer.payload or {}).get("message"))

    def prompt_sections(self, *, tools: bool) -> list[str]:
        sections: list[str] = []
        seen = self.perception()
        if seen:
            sections.append(seen)
        if not tools:
            actions = self.catalog.prompt()
            if actions:
                sections.append(actions)
        return sections

    def tools(self) -> list[dict[str, Any]]:
        return self.catalog.tools()

    def start_actions(self, turn_id: str) -> ActionRun | None:
        return ActionRun(self.catalog, self.requests, self.entity, turn_id, self.action_timeout_s)
