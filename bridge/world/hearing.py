"""Who hears an utterance in a scene, and who answers it: pure rules, no I/O.

Kept apart from the scene machinery (`bridge.world.scenes`) so the policy can be read,
tested and changed on its own, and so the 20-character bench can time the routing alone.

- **Hearing.** A line is heard by every other member of the scene within `hearing_radius_m`
  of the speaker (ground-plane distance, as in perception). When the speaker's or the
  listener's position is unknown, the listener hears it.
- **Who answers a player's line.** The addressed member answers: the one named in `to`
  (entity or display name), else the first member whose display name appears as a word in
  the text. Otherwise the rule `reply_rule` picks among the hearers: `nearest` (to the
  speaker; members without a position come last, then in joining order) or `recent` (the
  member who last talked with this speaker, else nearest) or `llm` (the LLM module `reply_llm`
  is asked which hearer answers, from their names and the line; if it names none of them, or
  fails, the nearest answers). At most
  `max_replies_per_utterance` members answer (default 1: a crowd does not talk at once).
- **Reactions (chains).** After a character speaks, another member answers it only when the
  line addresses them by name (`chain_rule = "addressed"`, the default), or the nearest hearer
  does (`chain_rule = "nearest"`), up to `max_chain` reactions per player line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.providers.base import ConfigError

REPLY_RULES = ("nearest", "recent", "llm")
CHAIN_RULES = ("addressed", "nearest")


@dataclass(frozen=True)
class SceneSettings:
    """The `[world]` table of the bridge config."""

    hearing_radius_m: float = 15.0
    reply_rule: str = "nearest"
    max_replies_per_utterance: int = 1
    chain_rule: str = "addressed"
    max_chain: int = 2
    chain_cooldown_s: float = 1.0
    max_converse_turns: int = 20
    #: Send `scene.heard` to members who hear a line (their memory gets it either way).
    heard_events: bool = True
    #: The LLM module that picks who answers under `reply_rule = "llm"`.
    reply_llm: str = ""
    #: How long the pick may take before the nearest answers instead.
    reply_llm_timeout_s: float = 3.0

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "[world]") -> "SceneSettings":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        settings = cls(**{k: table[k] for k in table})
        if settings.reply_rule not in REPLY_RULES:
            raise ConfigError(f"{where}: reply_rule must be one of {', '.join(REPLY_RULES)}")
        if settings.reply_rule == "llm" and not (isinstance(settings.reply_llm, str) and settings.reply_llm):
            raise ConfigError(f"{where}: reply_rule = \"llm\" needs reply_llm, the name of an llm module")
        if settings.chain_rule not in CHAIN_RULES:
            raise ConfigError(f"{where}: chain_rule must be one of {', '.join(CHAIN_RULES)}")
        for name in ("hearing_radius_m", "chain_cooldown_s", "reply_llm_timeout_s"):
            value = getattr(settings, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{where}: {name} must be a number >= 0")
        if not isinstance(settings.heard_events, bool):
            raise ConfigError(f"{where}: heard_events must be true or false")
        for name in ("max_replies_per_utterance", "max_chain", "max_converse_turns"):
            value = getattr(settings, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{where}: {name} must be an integer >= 0")
        return settings


class Listener(Protocol):
    """What the rules need of a scene member."""

    key: tuple[str, str]
    entity_name: str
    display_name: str
    position: Mapping[str, float] | None


def distance(a: Mapping[str, float] | None, b: Mapping[str, float] | None) -> float | None:
    """Ground-plane distance (x/z when either has z, else x/y); None when a position is unknown."""
    if a is None or b is None:
        return None
    if "z" in a or "z" in b:
        return math.hypot(a.get("x", 0.0) - b.get("x", 0.0), a.get("z", 0.0) - b.get("z", 0.0))
    return math.hypot(a.get("x", 0.0) - b.get("x", 0.0), a.get("y", 0.0) - b.get("y", 0.0))


def hearers(members: Sequence[Listener], speaker_position: Mapping[str, float] | None, radius: float, exclude: tuple[str, str] | None = None) -> list[Listener]:
    """The members that hear a line spoken at `speaker_position` (in joining order)."""
    out = []
    for member in members:
        if member.key == exclude:
            continue
        d = distance(speaker_position, member.position)
        if d is None or d <= radius:
            out.append(member)
    return out


def _names_in(text: str) -> set[str]:
    return {w.casefold() for w in re.findall(r"[\w'-]+", text)}


def addressed(members: Sequence[Listener], text: str, to: str | None = None) -> Listener | None:
    """The member the line is addressed to: `to` (entity or display name), else named in the text."""
    if to:
        wanted = to.casefold()
        for member in members:
            if wanted in (member.entity_name.casefold(), member.display_name.casefold()):
                return member
        return None
    words = _names_in(text)
    lowered = text.casefold()
    for member in members:
        name = member.display_name.casefold()
        if name and (name in words or (" " in name and re.search(rf"\b{re.escape(name)}\b", lowered))):
            return member
    return None


def by_distance(members: Sequence[Listener], position: Mapping[str, float] | None) -> list[Listener]:
    """Nearest first; members without a known distance after, in joining order."""
    indexed = list(enumerate(members))
    indexed.sort(key=lambda im: (distance(position, im[1].position) is None, distance(position, im[1].position) or 0.0, im[0]))
    return [m for _, m in indexed]


def answerers(
    members: Sequence[Listener],
    settings: SceneSettings,
    text: str,
    speaker_position: Mapping[str, float] | None,
    *,
    to: str | None = None,
    last_partner: tuple[str, str] | None = None,
) -> list[Listener]:
    """Who answers a player's line, best first, at most `max_replies_per_utterance`."""
    if settings.max_replies_per_utterance == 0 or not members:
        return []
    target = addressed(members, text, to)
    ranked = by_distance(members, speaker_position)
    if settings.reply_rule == "recent" and last_partner is not None:
        ranked.sort(key=lambda m: m.key != last_partner)  # stable: the partner first, then nearest
    if target is not None:
        ranked.remove(target)
        ranked.insert(0, target)
    elif to:
        return []  # addressed to someone who does not hear it: nobody else butts in
    return ranked[: settings.max_replies_per_utterance]


def reactor(members: Sequence[Listener], settings: SceneSettings, text: str, speaker_position: Mapping[str, float] | None) -> Listener | None:
    """Who reacts to a character's line (members = its hearers), or None: the chain ends."""
    if not members:
        return None
    target = addressed(members, text)
    if target is not None:
        return target
    if settings.chain_rule == "nearest":
        return by_distance(members, speaker_position)[0]
    return None


def pick_prompt(members: Sequence[Listener], text: str, speaker: str) -> str:
    """The question put to the `reply_llm` module: who of these answers this line?"""
    names = ", ".join(m.display_name for m in members)
    return (
        f"In a game scene, {speaker} says: \"{text}\"\nThe characters who heard it: {names}.\n"
        "Which one of them answers? Reply with the name only."
    )


def parse_pick(members: Sequence[Listener], reply: str) -> Listener | None:
    """The member the LLM named in `reply` (the first name that appears), or None."""
    lowered = reply.casefold()
    found = []
    for member in members:
        match = re.search(rf"\b{re.escape(member.display_name.casefold())}\b", lowered)
        if match:
            found.append((match.start(), member))
    return min(found, key=lambda f: f[0])[1] if found else None
