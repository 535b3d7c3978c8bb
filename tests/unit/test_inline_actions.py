"""The inline action syntax `[[name {json}]]` in the reply parser, and the action catalog's checks."""

from __future__ import annotations

import pytest

from bridge.character.reply_parser import ActionCall, ReplyParser, SpeechText, coalesce, parse_reply
from bridge.world.actions import ActionCatalog

REPLY = 'Right away. [[open_gate {"gate": "north", "note": "a ]] b"}]] Done [[wave]].'


def test_inline_calls_are_parsed_and_not_spoken() -> None:
    assert parse_reply(REPLY) == [
        SpeechText("Right away."),
        ActionCall("open_gate", {"gate": "north", "note": "a ]] b"}, '[[open_gate {"gate": "north", "note": "a ]] b"}]]'[2:-2]),
        SpeechText(" Done"),
        ActionCall("wave", {}, "wave"),
        SpeechText("."),
    ]


@pytest.mark.parametrize("cut", range(len(REPLY) + 1))
def test_any_split_gives_the_same_pieces(cut: int) -> None:
    parser = ReplyParser()
    assert coalesce([*parser.feed(REPLY[:cut]), *parser.feed(REPLY[cut:]), *parser.finish()]) == parse_reply(REPLY)


@pytest.mark.parametrize(
    "text, error",
    [
        ("[[open_gate [1]]]", "one JSON object"),
        ("[[open_gate {bad}]]", "not valid JSON"),
        ("[[ {}]]", "start with the action's name"),
        ("Hi [[open_gate", "ended inside"),
    ],
)
def test_malformed_calls_carry_an_error(text: str, error: str) -> None:
    calls = [p for p in parse_reply(text) if isinstance(p, ActionCall)]
    assert len(calls) == 1 and calls[0].error is not None and error in calls[0].error


def test_a_single_bracket_tag_is_still_a_tag() -> None:
    assert parse_reply("[happy] Hello [pause] there.") == [parse_reply("[happy]")[0], SpeechText("Hello there.")]


def test_catalog_checks_names_and_arguments() -> None:
    catalog = ActionCatalog()
    catalog.register(
        [
            {"name": "walk_to", "params": {"target": "a name from the scene"}},
            {"name": "wait", "params": {"seconds": {"type": "integer", "optional": True}}},
            {"name": "say_to", "params": {"type": "object", "properties": {"who": {"type": "string"}, "loud": {"type": "boolean"}}, "required": ["who"]}},
        ]
    )
    assert catalog.check("walk_to", {"target": "gate"}) is None
    assert "missing" in (catalog.check("walk_to", {}) or "")
    assert "unknown action" in (catalog.check("fly", {}) or "")
    assert catalog.check("wait", {}) is None
    assert "integer" in (catalog.check("wait", {"seconds": True}) or "")
    assert "integer" in (catalog.check("wait", {"seconds": 1.5}) or "")
    assert catalog.check("say_to", {"who": "Mira"}) is None
    assert "boolean" in (catalog.check("say_to", {"who": "Mira", "loud": "yes"}) or "")
    tools = catalog.tools()
    assert tools[0] == {
        "type": "function",
        "function": {"name": "walk_to", "description": "", "parameters": {"type": "object", "properties": {"target": {"type": "string", "description": "a name from the scene"}}, "required": ["target"]}},
    }
    assert tools[1]["function"]["parameters"]["required"] == []
    prompt = catalog.prompt() or ""
    assert '[[walk_to {"target": "..."}]]' in prompt and "[[wait {}]]" in prompt
