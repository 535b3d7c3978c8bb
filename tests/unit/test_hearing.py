"""The scene rules alone: who hears, who answers, who reacts, and the [world] settings."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bridge.providers.base import ConfigError
from bridge.world.hearing import SceneSettings, addressed, answerers, hearers, reactor


@dataclass
class M:
    entity_name: str
    display_name: str
    position: dict[str, float] | None

    @property
    def key(self) -> tuple[str, str]:
        return ("c", self.entity_name)


GUARD = M("npc-guard", "Captain Rhys", {"x": 0.0, "y": 0.0})
MERCHANT = M("npc-merchant", "Mira", {"x": 4.0, "y": 0.0})
FAR = M("npc-far", "Tom", {"x": 50.0, "y": 0.0})
GHOST = M("npc-ghost", "Ghost", None)
ALL = [GUARD, MERCHANT, FAR, GHOST]


def test_hearing_range_and_unknown_positions() -> None:
    assert hearers(ALL, {"x": 1.0, "y": 0.0}, 10) == [GUARD, MERCHANT, GHOST]
    assert hearers(ALL, None, 10) == ALL
    assert hearers(ALL, {"x": 1.0, "y": 0.0}, 10, exclude=GUARD.key) == [MERCHANT, GHOST]


def test_addressed_by_to_or_by_name_in_the_text() -> None:
    assert addressed(ALL, "hello", to="npc-merchant") is MERCHANT
    assert addressed(ALL, "hello", to="mira") is MERCHANT
    assert addressed(ALL, "Captain Rhys, a word?") is GUARD
    assert addressed(ALL, "Mira's bread is the best") is None  # a word "mira's", not the name alone
    assert addressed(ALL, "mira, bread please") is MERCHANT
    assert addressed(ALL, "anyone?") is None


def test_answerers_policy() -> None:
    settings = SceneSettings()
    near_merchant = {"x": 3.5, "y": 0.0}
    assert answerers([GUARD, MERCHANT, GHOST], settings, "Anyone?", near_merchant) == [MERCHANT]
    assert answerers([GUARD, MERCHANT, GHOST], settings, "Captain Rhys?", near_merchant) == [GUARD]
    assert answerers([GUARD, MERCHANT], settings, "hi", near_merchant, to="npc-far") == []
    recent = SceneSettings(reply_rule="recent")
    assert answerers([GUARD, MERCHANT], recent, "Anyone?", near_merchant, last_partner=GUARD.key) == [GUARD]
    two = SceneSettings(max_replies_per_utterance=2)
    assert answerers([GUARD, MERCHANT, GHOST], two, "Anyone?", near_merchant) == [MERCHANT, GUARD]
    assert answerers([GUARD], SceneSettings(max_replies_per_utterance=0), "Rhys?", None) == []


def test_reactor() -> None:
    assert reactor([MERCHANT, GHOST], SceneSettings(), "Ask Mira.", GUARD.position) is MERCHANT
    assert reactor([MERCHANT, GHOST], SceneSettings(), "Move along.", GUARD.position) is None
    assert reactor([GHOST, MERCHANT], SceneSettings(chain_rule="nearest"), "Move along.", GUARD.position) is MERCHANT


@pytest.mark.parametrize(
    "table, why",
    [({"reply_rule": "loudest"}, "reply_rule"), ({"max_chain": -1}, "max_chain"), ({"hearing_radius_m": "far"}, "hearing_radius_m"), ({"radius": 3}, "unknown key")],
)
def test_bad_settings_are_refused(table: dict, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        SceneSettings.from_mapping(table)


def test_llm_pick_parsing_and_settings() -> None:
    from bridge.world.hearing import parse_pick, pick_prompt

    assert "Captain Rhys, Mira" in pick_prompt([GUARD, MERCHANT], "Hello?", "Player")
    assert parse_pick([GUARD, MERCHANT], "Mira should, not Captain Rhys") is MERCHANT
    assert parse_pick([GUARD, MERCHANT], "captain rhys.") is GUARD
    assert parse_pick([GUARD, MERCHANT], "the baker") is None
    with pytest.raises(ConfigError, match="reply_llm"):
        SceneSettings.from_mapping({"reply_rule": "llm"})
