"""The config file: the documented example parses, and mistakes are named clearly."""

from pathlib import Path

import pytest

from bridge.config import load_config, parse_config
from bridge.providers.base import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_parses() -> None:
    config = load_config(ROOT / "bridge.example.toml")
    assert set(config.characters) == {"mira", "tester"}
    assert config.modules["gpt"].provider == "openai"
    assert config.characters["tester"].modules == {"llm": "scripted"}
    assert config.limits.max_entities == 64


def test_default_config_has_a_ready_character_on_embedded_modules() -> None:
    config = load_config(None)
    mira = config.characters["mira"]
    assert mira.modules["llm"] == "local" and config.modules["local"].provider == "local"
    assert mira.modules["tts"] == "piper"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"modules": {"x": {"kind": "brain", "provider": "openai"}}}, "`kind` must be one of"),
        ({"characters": {"a": {"modules": {"llm": "missing"}}}}, "not a configured module"),
        ({"characters": {"a": {"modules": {"llm": "piper"}}}}, "is a tts module"),
        ({"characters": {"a": {"turn_policy": "sometimes"}}}, "turn_policy"),
        ({"limits": {"max_entities": -1}}, "positive integer"),
        ({"limits": {"max_entitees": 3}}, "unknown key"),
        ({"server": {"port": 70000}}, "port"),
    ],
)
def test_config_mistakes_are_named(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data, "bridge.toml")
    assert needle in str(err.value)


def test_non_loopback_needs_a_token() -> None:
    config = parse_config({"server": {"host": "0.0.0.0"}}, "t")
    with pytest.raises(ConfigError, match="needs a token"):
        config.check()
    parse_config({"server": {"host": "0.0.0.0", "token": "x"}}, "t").check()


def test_harmony_link_is_off_by_default_and_checked() -> None:
    from bridge.config import HarmonyLinkEntity

    assert parse_config({}, "t").harmony_link.enabled is False
    example = load_config(ROOT / "bridge.example.toml").harmony_link
    assert example.enabled is False and example.entities["char0"] == HarmonyLinkEntity("mira", "base64")
    for bad in (
        {"enabled": "yes"},
        {"port": 70000},
        {"output_type": "mp3"},
        {"entities": {"kaji": {"character": "nobody"}}},
        {"default_character": "nobody"},
        {"enabled": True, "host": "0.0.0.0"},  # off loopback without allowed_clients
    ):
        with pytest.raises(ConfigError):
            parse_config({"compat": {"harmony_link": bad}}, "t")
    listed = parse_config({"compat": {"harmony_link": {"enabled": True, "host": "0.0.0.0", "allowed_clients": ["192.168.1.20"]}}}, "t")
    assert listed.harmony_link.allowed_clients == ("192.168.1.20",)
