"""Perception text from a movement.scene: same scene, same text; distances and directions in words."""

from __future__ import annotations

import copy

from bridge.world.perception import describe, direction_words

SCENE = {
    "characters": [
        {"name": "player", "position": {"x": 4.0, "y": 0.0, "z": -2.5}, "action": "running"},
        {"name": "npc-guard", "position": {"x": 0.0, "y": 0.0, "z": 0.0}, "orientation": {"x": 0, "y": 90, "z": 0}},
        {"name": "Mira", "position": {"x": 0.2, "y": 0.0, "z": 1.0}},
    ],
    "objects": [{"name": "gate", "position": {"x": 30.0, "y": 0.0, "z": 0.0}, "description": "the north gate, closed"}],
}


def test_same_scene_same_text() -> None:
    first = describe(SCENE, ["npc-guard"])
    assert first == describe(copy.deepcopy(SCENE), ["npc-guard"])
    assert first == (
        "What you perceive around you, nearest first:\n"
        "- Mira: right next to you (1 m), to your left\n"
        "- player: nearby (5 m), ahead to your right; running\n"
        "- gate (the north gate, closed): far away (30 m), ahead of you"
    )


def test_orientation_turns_the_directions() -> None:
    facing_north = copy.deepcopy(SCENE)
    facing_north["characters"][1]["orientation"] = {"x": 0, "y": 0, "z": 0}
    text = describe(facing_north, ["npc-guard"]) or ""
    assert "gate (the north gate, closed): far away (30 m), to your right" in text
    assert "Mira: right next to you (1 m), ahead of you" in text


def test_cap_and_display_name_and_2d() -> None:
    crowd = {"characters": [{"name": "Rhys", "position": {"x": 0, "y": 0}}] + [{"name": f"c{i}", "position": {"x": float(i + 1), "y": 0}} for i in range(12)]}
    text = describe(crowd, ["npc-guard", "Rhys"], max_items=3) or ""
    lines = text.splitlines()
    assert lines[1:] == ["- c0: right next to you (1 m), to your right", "- c1: close (2 m), to your right", "- c2: close (3 m), to your right", "- and 9 more further away"]


def test_without_own_position_names_only_and_empty_scene() -> None:
    assert describe({"characters": [{"name": "player"}]}, ["guard"]) == "Who and what is around you:\n- player"
    assert describe({}, ["guard"]) is None
    assert describe({"characters": [{"name": "guard"}]}, ["guard"]) is None


def test_direction_words() -> None:
    assert [direction_words(a) for a in (0, 45, -90, 135, 180, -170, 370)] == [
        "ahead of you", "ahead to your right", "to your left", "behind you to the right", "behind you", "behind you", "ahead of you"
    ]
