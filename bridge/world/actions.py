"""Movement V1 actions: what a character may do, offered to the LLM, checked, and performed.

The engine registers actions with `movement.actions` (name, description, params, examples,
and Harmony Link's `confirmations` / `rejections`). The catalog here turns them into what
the LLM is offered: OpenAI-style function tools for modules that take tools, or a short list
with the inline syntax ``[[name {"arg": "value"}]]`` for modules that only write text. What
the LLM picks comes back either way as a name and arguments; `ActionCatalog.check` refuses
unknown actions and bad arguments (they are logged and dropped: never sent to the engine,
never spoken), and `ActionRun` performs the rest one by one, in order, as soon as each is
known, with `movement.perform` (ref = the turn), waiting a bounded time for each answer.

Parameters (`params`) map a name to either a description (a string: the argument is a
required string) or a JSON Schema of the argument (`type` and `enum` are checked; it is
required unless the schema has `"optional": true` or a `default`). `params` may also be one
JSON Schema object (`{"type": "object", "properties": ..., "required": [...]}`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from bridge.protocol.envelope import Event
from bridge.world.engine import EngineRequests, EngineTimeout

log = logging.getLogger(__name__)

DEFAULT_ACTION_TIMEOUT_S = 10.0
#: Actions shown in the prompt at most (tools are not capped: the API takes them as data).
MAX_PROMPT_ACTIONS = 30

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    required: bool

    @property
    def description(self) -> str:
        return str(self.schema.get("description", ""))


@dataclass(frozen=True)
class ActionSpec:
    """One registered action."""

    name: str
    description: str = ""
    params: tuple[Param, ...] = ()
    examples: tuple[str, ...] = ()
    confirmations: tuple[str, ...] = ()
    rejections: tuple[str, ...] = ()

    @classmethod
    def from_payload(cls, item: Mapping[str, Any]) -> "ActionSpec":
        return cls(
            name=str(item["name"]),
            description=str(item.get("description") or ""),
            params=_params(item.get("params") or {}),
            examples=tuple(str(e) for e in item.get("examples") or ()),
            confirmations=tuple(str(e) for e in item.get("confirmations") or ()),
            rejections=tuple(str(e) for e in item.get("rejections") or ()),
        )

    def check(self, args: Any) -> str | None:
        """None when `args` fit the parameters, else why not (for the log)."""
        if not isinstance(args, dict):
            return "the arguments are not an object"
        known = {p.name: p for p in self.params}
        unknown = sorted(set(args) - set(known))
        if unknown:
            return f"unknown argument(s) {', '.join(unknown)}" + (f"; takes {', '.join(known)}" if known else "; takes none")
        for param in self.params:
            if param.name not in args:
                if param.required:
                    return f"missing argument {param.name!r}"
                continue
            value = args[param.name]
            kind = param.schema.get("type")
            if isinstance(kind, str) and kind in _JSON_TYPES:
                ok = isinstance(value, _JSON_TYPES[kind]) and not (kind in ("number", "integer") and isinstance(value, bool))
                if kind == "number" and isinstance(value, float) and not math.isfinite(value):
                    ok = False
                if not ok:
                    return f"argument {param.name!r} must be a {kind}, got {json.dumps(value)[:40]}"
            choices = param.schema.get("enum")
            if isinstance(choices, list) and value not in choices:
                return f"argument {param.name!r} must be one of {json.dumps(choices)[:80]}, got {json.dumps(value)[:40]}"
        return None

    def tool(self) -> dict[str, Any]:
        """The OpenAI-compatible function tool of this action."""
        properties = {p.name: {k: v for k, v in p.schema.items() if k != "optional"} for p in self.params}
        parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": [p.name for p in self.params if p.required]}
        description = self.description
        if self.examples:
            description = f"{description} Examples: {'; '.join(self.examples[:3])}".strip()
        return {"type": "function", "function": {"name": self.name, "description": description, "parameters": parameters}}

    def prompt_line(self) -> str:
        """One line of the inline-syntax action list."""
        line = f"- {self.name}"
        if self.description:
            line += f": {self.description}"
        if self.params:
            args = ", ".join(
                f"{p.name} ({p.schema.get('type', 'string')}{', optional' if not p.required else ''}"
                f"{': ' + p.description if p.description else ''})"
                for p in self.params
            )
            line += f" Arguments: {args}."
            example_args = {p.name: _example_value(p) for p in self.params if p.required}
            line += f" Write: [[{self.name} {json.dumps(example_args)}]]"
        else:
            line += f" Write: [[{self.name}]]"
        if self.confirmations:
            line += f" When you agree to it you might say: {' / '.join(self.confirmations[:2])}."
        if self.rejections:
            line += f" When you refuse: {' / '.join(self.rejections[:2])}."
        return line


def _example_value(param: Param) -> Any:
    choices = param.schema.get("enum")
    if isinstance(choices, list) and choices:
        return choices[0]
    return {"number": 1, "integer": 1, "boolean": True, "object": {}, "array": []}.get(str(param.schema.get("type")), "...")


def _params(raw: Mapping[str, Any]) -> tuple[Param, ...]:
    if raw.get("type") == "object" and isinstance(raw.get("properties"), Mapping):
        required = set(raw.get("required") or ())
        return tuple(
            Param(str(name), dict(schema) if isinstance(schema, Mapping) else {"type": "string", "description": str(schema)}, name in required)
            for name, schema in raw["properties"].items()
        )
    params = []
    for name, spec in raw.items():
        if isinstance(spec, Mapping):
            schema = dict(spec)
            required = not (schema.get("optional") is True or "default" in schema)
        else:
            schema = {"type": "string", "description": str(spec)}
            required = True
        params.append(Param(str(name), schema, required))
    return tuple(params)


class ActionCatalog:
    """The actions one entity has registered (the latest `movement.actions` wins)."""

    def __init__(self) -> None:
        self.actions: dict[str, ActionSpec] = {}

    def register(self, items: list[Mapping[str, Any]]) -> None:
        self.actions = {spec.name: spec for spec in (ActionSpec.from_payload(item) for item in items)}

    def check(self, name: str, args: Any) -> str | None:
        """None when `name(args)` may be performed, else why not."""
        spec = self.actions.get(name)
        if spec is None:
            known = ", ".join(sorted(self.actions)) or "none are registered"
            return f"unknown action {name!r} (registered: {known})"
        return spec.check(args)

    def tools(self) -> list[dict[str, Any]]:
        return [spec.tool() for spec in self.actions.values()]

    def prompt(self) -> str | None:
        """The action list and the inline syntax, for modules that only write text."""
        if not self.actions:
            return None
        specs = list(self.actions.values())[:MAX_PROMPT_ACTIONS]
        lines = [
            "Actions you can take in the game. To take one, write it where you do it, exactly "
            'like [[name]] or [[name {"argument": "value"}]] (double square brackets, the '
            "action's name, then its arguments as one JSON object). Actions are done, not "
            "spoken; take one only when it fits, and only these:",
            *(spec.prompt_line() for spec in specs),
        ]
        return "\n".join(lines)


@dataclass
class PerformResult:
    name: str
    args: dict[str, Any]
    status: str  # success | error | timeout
    feedback: str | None = None  # the engine's words: feedback on success, the reason on error

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "args": self.args, "status": self.status}
        if self.feedback:
            out["feedback" if self.status == "success" else "message"] = self.feedback
        return out

    def memory_text(self) -> str:
        """How the result is remembered (and shown to the LLM)."""
        if self.status == "success":
            return f"{self.name} done" + (f": {self.feedback}" if self.feedback else ".")
        if self.status == "timeout":
            return f"{self.name} got no answer from the game (it may not have happened)."
        return f"{self.name} failed" + (f": {self.feedback}" if self.feedback else ".")


@dataclass
class ActionRun:
    """The actions of one turn: checked as they are written, performed in order.

    `submit` is called by the turn as each action becomes known (from the reply parser or a
    finished tool call); `run` (a task in the turn's nursery) performs them one by one;
    `close` says no more will come, after which `run` returns once the last is answered.
    """

    catalog: ActionCatalog
    requests: EngineRequests
    entity: str
    turn_id: str
    timeout_s: float = DEFAULT_ACTION_TIMEOUT_S
    results: list[PerformResult] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[tuple[str, dict[str, Any]]](math.inf)

    def submit(self, name: str, args: Any, source: str) -> bool:
        """Queue an action the LLM picked; False (and a log line) when it is refused."""
        why = self.catalog.check(name, args)
        if why is not None:
            self.dropped.append(f"{name}: {why}")
            log.warning("%s: dropped the %s action %r of turn %s: %s", self.entity, source, name, self.turn_id, why)
            return False
        self._send.send_nowait((name, dict(args)))
        return True

    def close(self) -> None:
        self._send.close()

    async def run(self) -> None:
        async with self._receive:
            async for name, args in self._receive:
                self.results.append(await self._perform(name, args))

    async def _perform(self, name: str, args: dict[str, Any]) -> PerformResult:
        payload = {"actions": [{"name": name, "args": args}]}
        try:
            answer: Event = await self.requests.ask("movement.perform", self.entity, payload, ref=self.turn_id, timeout_s=self.timeout_s)
        except EngineTimeout as exc:
            log.warning("%s: %s", self.entity, exc)
            return PerformResult(name, args, "timeout")
        body = answer.payload or {}
        if answer.status == "success":
            feedback = body.get("feedback")
            return PerformResult(name, args, "success", feedback if isinstance(feedback, str) and feedback else None)
        return PerformResult(name, args, "error", str(body.get("message") or body.get("code") or "failed"))
