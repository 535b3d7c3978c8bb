"""Scenes with several characters: who is in them, who hears a line, who answers, chains.

A scene is named by the game and lives in the bridge process, keyed by (memory scope, name):
two clients of one multiplayer session that say hello with the same `scope` and join the
same scene name share it, and each client still gets the events of its own entities only
(every entity's events go through its own connection's writer).

A line said in a scene (`scene.utterance` from the player, or a character's reply) is heard
by the members in range (`bridge.world.hearing`), who remember it with the speaker's name
and get a `scene.heard` event; the policy picks who answers, and that member's reply is a
normal turn of its entity (speech, audio, memory) run without its own replies, its outputs
carrying the scene request's id as `ref`. A character's line may prompt another to react,
up to `max_chain` times per player line with `chain_cooldown_s` between them. A scene runs
one such exchange at a time: a new player line interrupts the running one (its speaker is
interrupted and the chain stops). `scene.converse` runs an NPC-to-NPC conversation the same
way. Every request ends with exactly one final reply, listing the lines said.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from bridge.character.entity import Entity, Turn
from bridge.character.ports import ClientGone
from bridge.character.turns import handler_for
from bridge.protocol.envelope import Event
from bridge.protocol.errors import ProtocolError
from bridge.providers.base import ChatMessage, LLMRequest, ProviderError
from bridge.world.hearing import SceneSettings, addressed, answerers, hearers, parse_pick, pick_prompt, reactor

log = logging.getLogger(__name__)

#: Bound on waiting for an interrupted exchange to wind down before the next starts.
TAKE_FLOOR_TIMEOUT_S = 5.0


@dataclass(eq=False)
class SceneMember:
    key: tuple[str, str]  # (connection id, entity name): entity names are per connection
    entity: Entity
    position: dict[str, float] | None = None

    @property
    def entity_name(self) -> str:
        return self.entity.name

    @property
    def display_name(self) -> str:
        return str(self.entity.runtime.config.display_name)


@dataclass(eq=False)
class _Exchange:
    scope: trio.CancelScope
    done: trio.Event = field(default_factory=trio.Event)
    speaking: tuple[SceneMember, Turn] | None = None


@dataclass(eq=False)
class Scene:
    name: str
    scope: str
    members: dict[tuple[str, str], SceneMember] = field(default_factory=dict)
    exchange: _Exchange | None = None
    last_partner: dict[str, tuple[str, str]] = field(default_factory=dict)  # speaker -> member who answered

    def member(self, name: str, connection: str | None = None) -> SceneMember | None:
        """A member by entity name (preferring `connection`'s entity) or display name."""
        wanted = name.casefold()
        found = [m for m in self.members.values() if m.entity_name.casefold() == wanted or m.display_name.casefold() == wanted]
        found.sort(key=lambda m: m.key[0] != connection)
        return found[0] if found else None

    async def take_floor(self) -> None:
        """Stop the running exchange (a new player line interrupts it) and wait for it to end."""
        running = self.exchange
        if running is None:
            return
        running.scope.cancel()
        if running.speaking is not None:
            running.speaking[0].entity.interrupt()
        with trio.move_on_after(TAKE_FLOOR_TIMEOUT_S):
            await running.done.wait()


class SceneHub:
    """Every scene of the bridge process."""

    def __init__(self, settings: SceneSettings, provider: Any = None) -> None:
        self.settings = settings
        self.scenes: dict[tuple[str, str], Scene] = {}
        self.provider = provider  # async (module name) -> provider, for reply_rule = "llm"

    async def pick(self, members: list[SceneMember], text: str, speaker: str) -> SceneMember | None:
        """Ask the `reply_llm` module who answers; None (the nearest answers) if it names nobody."""
        if self.provider is None or not members:
            return None
        prompt = pick_prompt(members, text, speaker)
        request = LLMRequest(messages=[ChatMessage("user", prompt)], new_message=prompt, character="scene", scope="scene")
        reply: list[str] = []
        with trio.move_on_after(self.settings.reply_llm_timeout_s):
            try:
                llm = await self.provider(self.settings.reply_llm)
                async with llm.stream(request) as deltas:
                    async for delta in deltas:
                        if isinstance(delta, str):
                            reply.append(delta)
            except ProviderError as exc:
                log.warning("reply_llm %s failed (%s); the nearest answers", self.settings.reply_llm, exc.message)
                return None
        choice = parse_pick(members, "".join(reply))
        if choice is None:
            log.info("reply_llm named none of %s in %r; the nearest answers", [m.display_name for m in members], "".join(reply)[:80])
        return choice

    def join(self, scope: str, name: str, member: SceneMember) -> Scene:
        scene = self.scenes.setdefault((scope, name), Scene(name, scope))
        existing = scene.members.get(member.key)
        if existing is not None and existing.entity is member.entity:
            existing.position = member.position if member.position is not None else existing.position
        else:
            scene.members[member.key] = member
        return scene

    def get(self, scope: str, name: str) -> Scene | None:
        return self.scenes.get((scope, name))

    def leave(self, key: tuple[str, str], name: str | None = None) -> list[str]:
        """Take an entity out of one scene (or all); returns the scenes it left."""
        left = []
        for scene_key, scene in list(self.scenes.items()):
            if (name is None or scene.name == name) and scene.members.pop(key, None) is not None:
                left.append(scene.name)
                if not scene.members:
                    if scene.exchange is not None:
                        scene.exchange.scope.cancel()
                    del self.scenes[scene_key]
        return left


# ------------------------------------------------------------------ running lines


@dataclass
class _Run:
    """One scene request being carried out: its scene, request and the lines said so far."""

    scene: Scene
    request: Event
    settings: SceneSettings
    lines: list[dict[str, Any]] = field(default_factory=list)
    exchange: _Exchange | None = None

    async def remember(self, listeners: list[SceneMember], speaker: str, text: str, kind: str) -> None:
        """Listeners who do not answer still hear: memory with the speaker's name, and an event.

        Memory is kept per character and scope, so entities playing the same character share
        one history: the line is written once for them.
        """
        if not listeners:
            return
        conversations = {(m.entity.runtime.name, m.entity.runtime.scope): None for m in listeners}
        memory = await listeners[0].entity.runtime.memory()
        await memory.add_many([(name, scope, speaker, text, kind, "user") for name, scope in conversations])
        if not self.settings.heard_events:
            return
        heard = {"scene": self.scene.name, "speaker": speaker, "text": text, "kind": kind}
        for member in listeners:
            try:
                await member.entity.outbox.put(Event("scene.heard", member.entity.outbox.next_id(), heard, entity=member.entity_name, ref=self.request.id))
            except ClientGone:
                pass  # that member's client is gone; its memory is what matters here

    async def line(self, member: SceneMember, request: Event) -> str:
        """Run one turn of `member` for `request` and record it; returns what it said."""
        assert self.exchange is not None
        entry: dict[str, Any] = {"entity": member.entity_name, "speaker": member.display_name}
        try:
            turn = member.entity.submit(request, handler_for(member.entity.runtime, request), announce=False)
        except ProtocolError as exc:
            entry.update(status="error", code=str(exc.code), message=exc.message)
            self.lines.append(entry)
            return ""
        self.exchange.speaking = (member, turn)
        try:
            await _finished(member.entity, turn)
        except trio.Cancelled:
            # A newer line took the floor and interrupted this speaker: record what it said.
            with trio.move_on_after(TAKE_FLOOR_TIMEOUT_S) as wait:
                wait.shield = True
                await _finished(member.entity, turn)
            self._record(entry, turn)
            raise
        finally:
            self.exchange.speaking = None
        return self._record(entry, turn)

    def _record(self, entry: dict[str, Any], turn: Turn) -> str:
        final = turn.final
        payload = (final.payload if final is not None else None) or {}
        if final is not None and final.status == "success":
            entry.update(status="success", reply=str(payload.get("reply", "")), spoken=str(payload.get("spoken", "")))
        else:
            entry.update(status="error", code=str(payload.get("code", "cancelled")), message=str(payload.get("message", "cancelled")))
            if payload.get("heard_text"):
                entry["spoken"] = str(payload["heard_text"])
        self.lines.append(entry)
        return str(entry.get("spoken", ""))

    def utterance_for(self, member: SceneMember, speaker: str | None, text: str, kind: str) -> Event:
        payload: dict[str, Any] = {"kind": kind, "text": text}
        if speaker:
            payload["speaker"] = speaker
        return Event("user.utterance", self.request.id, payload, entity=member.entity_name)

    async def chain(self, speaker: SceneMember, spoken: str) -> None:
        """Characters reacting to each other, from `speaker`'s line, up to `max_chain` reactions."""
        reactions = 0
        members = list(self.scene.members.values())
        while spoken:
            heard = hearers(members, speaker.position, self.settings.hearing_radius_m, exclude=speaker.key)
            nxt = reactor(heard, self.settings, spoken, speaker.position) if reactions < self.settings.max_chain else None
            await self.remember([m for m in heard if m is not nxt], speaker.display_name, spoken, "verbal")
            if nxt is None:
                return
            if self.settings.chain_cooldown_s:
                await trio.sleep(self.settings.chain_cooldown_s)
            spoken = await self.line(nxt, self.utterance_for(nxt, speaker.display_name, spoken, "verbal"))
            reactions += 1
            speaker = nxt


async def _finished(entity: Entity, turn: Turn) -> None:
    """Wait for a turn to end; also returns when its entity was removed before it started."""
    while not turn.done.is_set():
        with trio.move_on_after(1.0):
            await turn.done.wait()
        if entity.closed and entity.current is not turn:
            return


async def _exclusive(run: _Run, body: Any) -> bool:
    """Run `body` as the scene's one exchange; True if a newer line interrupted it."""
    for _ in range(3):  # two lines at once: each stops whatever runs, the last one wins
        if run.scene.exchange is None:
            break
        await run.scene.take_floor()
    exchange = _Exchange(trio.CancelScope())
    run.exchange = exchange
    run.scene.exchange = exchange
    try:
        with exchange.scope:
            await body()
    finally:
        if run.scene.exchange is exchange:
            run.scene.exchange = None
        exchange.done.set()
    return exchange.scope.cancelled_caught


async def say(hub: SceneHub, scene: Scene, request: Event, connection: str) -> dict[str, Any]:
    """`scene.utterance`: a player's line in the scene; returns the success payload."""
    payload = request.payload or {}
    text = str(payload.get("text", ""))
    kind = str(payload.get("kind") or "verbal")
    speaker = payload.get("speaker")
    position = payload.get("position")
    run = _Run(scene, request, hub.settings)
    heard_by: list[str] = []

    async def body() -> None:
        members = list(scene.members.values())
        heard = hearers(members, position, hub.settings.hearing_radius_m)
        heard_by.extend(m.entity_name for m in heard)
        partner_key = scene.last_partner.get(str(speaker or ""))
        picked = answerers(heard, hub.settings, text, position, to=payload.get("to"), last_partner=partner_key)
        if hub.settings.reply_rule == "llm" and picked and not payload.get("to") and addressed(heard, text) is None:
            choice = await hub.pick(heard, text, str(speaker or "the player"))
            if choice is not None:
                picked = [choice, *[m for m in picked if m is not choice]][: len(picked)]
        await run.remember([m for m in heard if m not in picked], str(speaker or "Player"), text, kind)
        last: tuple[SceneMember, str] | None = None
        for member in picked:
            spoken = await run.line(member, run.utterance_for(member, speaker, text, kind))
            scene.last_partner[str(speaker or "")] = member.key
            last = (member, spoken)
        if last is not None:
            await run.chain(*last)

    interrupted = await _exclusive(run, body)
    return {"heard_by": heard_by, "replies": run.lines, "interrupted": interrupted}


async def converse(hub: SceneHub, scene: Scene, request: Event, connection: str) -> dict[str, Any]:
    """`scene.converse`: members talk with each other for `turns` lines (radiant dialogue)."""
    payload = request.payload or {}
    names = [str(n) for n in payload.get("participants") or ()]
    members = [scene.member(n, connection) for n in names]
    missing = [n for n, m in zip(names, members) if m is None]
    if missing:
        raise ValueError(f"not in scene {scene.name!r}: {', '.join(missing)}")
    cast = [m for m in members if m is not None]
    turns = min(int(payload.get("turns") or 4), hub.settings.max_converse_turns)
    topic = str(payload.get("topic") or "whatever is on their mind")
    run = _Run(scene, request, hub.settings)

    async def body() -> None:
        first, second = cast[0], cast[1]
        opener = Event(
            "world.event",
            request.id,
            {"text": f"{second.display_name} is here. You start a conversation with {second.display_name} about {topic}.", "respond": True},
            entity=first.entity_name,
        )
        spoken = await run.line(first, opener)
        speaker = first
        for index in range(1, turns):
            nxt = cast[index % len(cast)]
            if spoken:
                text, kind = spoken, "verbal"
                heard = hearers(list(scene.members.values()), speaker.position, hub.settings.hearing_radius_m, exclude=speaker.key)
                await run.remember([m for m in heard if m is not nxt], speaker.display_name, spoken, "verbal")
            else:  # the speaker was cut off before saying anything: the next one goes on
                text, kind = "falls silent", "nonverbal"
            if hub.settings.chain_cooldown_s:
                await trio.sleep(hub.settings.chain_cooldown_s)
            spoken = await run.line(nxt, run.utterance_for(nxt, speaker.display_name, text, kind))
            speaker = nxt
        if spoken:
            heard = hearers(list(scene.members.values()), speaker.position, hub.settings.hearing_radius_m, exclude=speaker.key)
            await run.remember(heard, speaker.display_name, spoken, "verbal")

    interrupted = await _exclusive(run, body)
    return {"lines": run.lines, "interrupted": interrupted}


def position_of(value: Any) -> dict[str, float] | None:
    if not isinstance(value, Mapping):
        return None
    return {k: float(value[k]) for k in ("x", "y", "z") if isinstance(value.get(k), (int, float))}
