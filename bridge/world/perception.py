"""Perception: a `movement.scene` turned into words for the character's prompt.

LLMs do not reason well over raw coordinates, so the scene is described as a person would
see it: who and what is near, how far (in words, with metres), and in which direction
relative to where the character faces, nearest first, capped. Pure and deterministic: the
same scene and the same character give the same text (tested), so prompts can be cached.

Conventions (those of Unity and Godot, which Movement V1 clients use): positions are metres;
with a `z` anywhere in the scene it is 3D with Y up, the ground plane is x/z and the
character's heading is its yaw `orientation.y` in degrees (0 faces +z, positive turns
towards +x); without any `z` it is 2D, the plane is x/y and the heading is `orientation.z`
(0 faces +y). The character finds itself in `characters` by its entity or display name;
without its own position nothing has a distance, and entries keep the scene's order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_MAX_ITEMS = 8

#: (upper bound in metres, words), first match wins.
DISTANCE_WORDS: tuple[tuple[float, str], ...] = (
    (1.5, "right next to you"),
    (4.0, "close"),
    (10.0, "nearby"),
    (25.0, "a short walk away"),
    (math.inf, "far away"),
)


def distance_words(metres: float) -> str:
    for bound, words in DISTANCE_WORDS:
        if metres < bound:
            return words
    return DISTANCE_WORDS[-1][1]


def direction_words(relative_deg: float) -> str:
    """A bearing relative to the facing direction (degrees, positive = right) in words."""
    angle = (relative_deg + 180.0) % 360.0 - 180.0
    side = "right" if angle > 0 else "left"
    size = abs(angle)
    if size <= 20:
        return "ahead of you"
    if size <= 70:
        return f"ahead to your {side}"
    if size <= 110:
        return f"to your {side}"
    if size <= 160:
        return f"behind you to the {side}"
    return "behind you"


def _point(value: Any) -> dict[str, float] | None:
    if not isinstance(value, Mapping):
        return None
    try:
        return {k: float(value[k]) for k in ("x", "y", "z") if k in value}
    except (TypeError, ValueError):
        return None


def _is_3d(items: Iterable[Mapping[str, Any]]) -> bool:
    return any(isinstance(item.get("position"), Mapping) and "z" in item["position"] for item in items)


def _plane(point: Mapping[str, float], three_d: bool) -> tuple[float, float]:
    """(right, forward) coordinates in the ground plane at heading 0."""
    return (point.get("x", 0.0), point.get("z", 0.0)) if three_d else (point.get("x", 0.0), point.get("y", 0.0))


def describe(scene: Mapping[str, Any], names: Iterable[str], *, max_items: int = DEFAULT_MAX_ITEMS) -> str | None:
    """The perception text of `scene` for the character called any of `names`; None if empty."""
    own_names = {n.casefold() for n in names if n}
    characters = [c for c in scene.get("characters") or () if isinstance(c, Mapping) and c.get("name")]
    objects = [o for o in scene.get("objects") or () if isinstance(o, Mapping) and o.get("name")]
    me = next((c for c in characters if str(c["name"]).casefold() in own_names), None)
    others = [c for c in characters if c is not me]
    if not others and not objects:
        return None
    three_d = _is_3d([*characters, *objects])
    origin = _point(me.get("position")) if me else None
    heading = 0.0
    if me is not None:
        turn = _point(me.get("orientation")) or {}
        heading = turn.get("y" if three_d else "z", 0.0)

    entries: list[tuple[float, int, str]] = []
    for order, (item, is_character) in enumerate([*((c, True) for c in others), *((o, False) for o in objects)]):
        label = str(item["name"])
        if not is_character and item.get("description"):
            label += f" ({item['description']})"
        where = ""
        distance = math.inf
        target = _point(item.get("position"))
        if origin is not None and target is not None:
            ox, oz = _plane(origin, three_d)
            tx, tz = _plane(target, three_d)
            dx, dz = tx - ox, tz - oz
            distance = math.hypot(dx, dz)
            if distance < 0.05:
                where = "right where you are"
            else:
                bearing = math.degrees(math.atan2(dx, dz))
                where = f"{distance_words(distance)} ({distance:.0f} m), {direction_words(bearing - heading)}"
        line = f"- {label}" + (f": {where}" if where else "")
        if is_character and item.get("action"):
            line += f"; {item['action']}"
        entries.append((distance, order, line))
    entries.sort(key=lambda e: (e[0], e[1]))
    shown = entries[:max_items]
    header = "What you perceive around you, nearest first:" if origin is not None else "Who and what is around you:"
    lines = [header, *(line for _, _, line in shown)]
    if len(entries) > len(shown):
        lines.append(f"- and {len(entries) - len(shown)} more further away")
    return "\n".join(lines)
