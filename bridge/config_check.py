"""How the configuration is checked, and how its errors say what and where.

`bridge/config.py` turns TOML into config objects; this module holds what it checks them
against (the known keys of every table, the types of character options) and builds the
messages: each names the file, the line when it can be found, the table and key, what is
wrong, and, for a misspelt key, the nearest known one ("did you mean `token`?"). Keeping it
in one place lets `entity-bridge serve` and `entity-bridge check` report the same errors.

Why unknown keys are errors: a silently ignored `tokne = "..."` leaves a bridge without its
token; a misspelt option leaves a module on its default. Both look like working configs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.providers.base import ConfigError

TOP_KEYS = frozenset({"server", "limits", "modules", "characters", "inline_characters", "world", "compat"})
SERVER_KEYS = frozenset(
    {
        "host", "port", "token", "token_env", "allowed_origins", "allowed_hosts", "history_path", "history_url", "scope_mode",
        "max_connections", "max_connections_per_peer",
    }
)  # fmt: skip
INLINE_KEYS = frozenset({"enabled", "modules"})
#: Keys of a character table that the config reads itself; every other key is an option.
CHARACTER_KEYS = frozenset(
    {"display_name", "persona", "greeting", "voice", "modules", "fallback_llms", "turn_policy", "expressions"}
)
SEGMENTER_KEYS = frozenset({"first_min_words", "first_max_words", "clause_split", "max_chars"})


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive_int(value: Any) -> bool:
    return _non_negative_int(value) and value > 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class OptionRule:
    """One character option: its test and how to describe a good value."""

    check: Callable[[Any], bool]
    expected: str


#: Character options (see docs/modules.md "Character options beyond modules").
CHARACTER_OPTIONS: dict[str, OptionRule] = {
    "player_name": OptionRule(lambda v: isinstance(v, str) and 0 < len(v) <= 200, "a name (a string of 1 to 200 characters)"),
    "token_budget": OptionRule(_positive_int, "a positive integer (prompt tokens)"),
    "history_limit": OptionRule(_non_negative_int, "a non-negative integer (messages; 0: no history)"),
    "world_event_cap": OptionRule(_non_negative_int, "an integer >= 0"),
    "segmenter": OptionRule(lambda v: isinstance(v, dict), "a table like { first_min_words = 4, max_chars = 300 }"),
    "barge_in": OptionRule(lambda v: v in ("interrupt", "ignore"), '"interrupt" or "ignore"'),
    "barge_in_min_ms": OptionRule(_non_negative_int, "an integer >= 0 (milliseconds)"),
    "stt_responds": OptionRule(lambda v: isinstance(v, bool), "true or false"),
    "threshold": OptionRule(lambda v: _number(v) and 0 < v < 1, "a number between 0 and 1"),
    "min_speech_ms": OptionRule(lambda v: _number(v) and v >= 0, "a number >= 0 (milliseconds)"),
    "min_silence_ms": OptionRule(lambda v: _number(v) and v >= 0, "a number >= 0 (milliseconds)"),
    "pad_ms": OptionRule(lambda v: _number(v) and v >= 0, "a number >= 0 (milliseconds)"),
    # partial transcripts and the end-of-turn decision (bridge/character/partials.py, bridge/speech/turn_end.py)
    "partial_interval_ms": OptionRule(lambda v: _non_negative_int(v) and (v == 0 or v >= 100), "an integer of milliseconds >= 100, or 0 (no partial transcripts)"),
    "end_of_turn": OptionRule(lambda v: v in ("adaptive", "fixed"), '"adaptive" or "fixed"'),
    "end_of_turn_complete_ms": OptionRule(lambda v: _number(v) and v >= 0, "a number >= 0 (milliseconds)"),
    "end_of_turn_trailing_ms": OptionRule(lambda v: _number(v) and v >= 0, "a number >= 0 (milliseconds)"),
    "prime_prompt": OptionRule(lambda v: isinstance(v, bool), "true or false"),
    # the world stage (bridge/world/entity_world.py): engine requests such as movement.perform
    "action_timeout_s": OptionRule(lambda v: _number(v) and v > 0, "a number of seconds > 0"),
    "react_to_action_result": OptionRule(lambda v: isinstance(v, bool), "true or false"),
    "perception_max_items": OptionRule(_non_negative_int, "an integer >= 0"),
    "scene_max_age_s": OptionRule(lambda v: _number(v) and v >= 0, "a number of seconds >= 0"),
    "scene_request_timeout_s": OptionRule(lambda v: _number(v) and v > 0, "a number of seconds > 0"),
    # the prompt (bridge/character/harmonize.py): "compact" suits small local models
    "prompt_style": OptionRule(lambda v: v in ("full", "compact"), '"full" or "compact"'),
    # Harmony Link compatibility (bridge/compat/harmony_link.py): reported in AI_STATUS
    "gender": OptionRule(lambda v: isinstance(v, str) and len(v) <= 200, "a string"),
}
SEGMENTER_OPTIONS: dict[str, OptionRule] = {
    "first_min_words": OptionRule(_positive_int, "a positive integer"),
    "first_max_words": OptionRule(_positive_int, "a positive integer"),
    "clause_split": OptionRule(lambda v: isinstance(v, bool), "true or false"),
    "max_chars": OptionRule(lambda v: _positive_int(v) and v >= 20, "an integer >= 20"),
}


#: Types of the module options many providers share (HTTP and sampling); each provider checks
#: its own further options when it is constructed, which happens before READY too.
MODULE_OPTIONS: dict[str, OptionRule] = {
    "timeout": OptionRule(lambda v: _number(v) and v > 0, "a number of seconds > 0"),
    "connect_timeout": OptionRule(lambda v: _number(v) and v > 0, "a number of seconds > 0"),
    "max_retry_after": OptionRule(lambda v: _number(v) and v >= 0, "a number of seconds >= 0"),
    "max_retries": OptionRule(_non_negative_int, "an integer >= 0"),
    "max_connections": OptionRule(_positive_int, "a positive integer"),
    "temperature": OptionRule(lambda v: _number(v) and v >= 0, "a number >= 0"),
    "top_p": OptionRule(lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "max_tokens": OptionRule(_positive_int, "a positive integer"),
    "stop": OptionRule(lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)), "a string or a list of strings"),
    "base_url": OptionRule(lambda v: isinstance(v, str) and "://" in v, 'a URL such as "http://127.0.0.1:11434/v1"'),
}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` did you mean `x`?` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    )


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


@dataclass
class Locator:
    """Finds the line of a table or key in the TOML text, so errors can say `file:line`.

    A light scan, not a second TOML parser: it knows `[table]` headers and `key =` lines
    (dotted keys included). Keys inside inline tables or multi-line values are found at the
    line of the key that holds them. Without the text (a config built from a dict), errors
    name the table and key only.
    """

    source: str
    text: str | None = None
    _lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.text is None:
            return
        table: tuple[str, ...] = ()
        for number, line in enumerate(self.text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                table = _split_dotted(header.group(1))
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                self._lines.setdefault(table + _split_dotted(key.group(1)), number)

    def line(self, path: tuple[str, ...]) -> int | None:
        while path:
            found = self._lines.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return None

    def where(self, table: tuple[str, ...], key: str | None = None) -> str:
        """`bridge.toml:7: [server] tokne` (line only when known; key only when given)."""
        path = table + ((key,) if key else ())
        number = self.line(path)
        head = f"{self.source}:{number}" if number else self.source
        name = " [" + ".".join(table) + "]" if table else ""
        return f"{head}:{name}" + (f" `{key}`" if key else "")

    def error(self, table: tuple[str, ...], key: str | None, message: str) -> ConfigError:
        return ConfigError(f"{self.where(table, key)}: {message}")

    def reject_unknown(self, data: Mapping[str, Any], known: Iterable[str], table: tuple[str, ...], what: str = "key") -> None:
        """Refuse keys outside `known`, naming the nearest known key."""
        known = frozenset(known)
        for key in data:
            if key not in known:
                raise self.error(
                    table, key, f"unknown {what} `{key}`{did_you_mean(key, known)} (known: {', '.join(sorted(known))})"
                )

    def check_options(self, data: Mapping[str, Any], rules: Mapping[str, OptionRule], table: tuple[str, ...]) -> None:
        for key, value in data.items():
            rule = rules.get(key)
            if rule is not None and not rule.check(value):
                raise self.error(table, key, f"must be {rule.expected}, got {type_name(value)} {value!r}"[:300])


def check_character_options(options: Mapping[str, Any], locator: Locator, table: tuple[str, ...]) -> None:
    """Unknown keys and wrong types among a character's options (the keys beyond CHARACTER_KEYS)."""
    locator.reject_unknown(options, CHARACTER_KEYS | {"name"} | set(CHARACTER_OPTIONS), table)
    locator.check_options(options, CHARACTER_OPTIONS, table)
    segmenter = options.get("segmenter")
    if isinstance(segmenter, dict):
        locator.reject_unknown(segmenter, SEGMENTER_KEYS, table + ("segmenter",))
        locator.check_options(segmenter, SEGMENTER_OPTIONS, table + ("segmenter",))
        low, high = segmenter.get("first_min_words", 4), segmenter.get("first_max_words", 12)
        if low > high:
            raise locator.error(table, "segmenter", f"first_min_words ({low}) is more than first_max_words ({high})")


#: What an inline character may ask for at most: the defaults the owner's characters run with
#: (bridge/character/runtime.py, bridge/speech/segmenter.py). Each bounds what one turn costs.
INLINE_CAPS: dict[str, int] = {"token_budget": 1500, "history_limit": 60, "world_event_cap": 20}
INLINE_SEGMENTER_CAPS: dict[str, int] = {"first_max_words": 12, "max_chars": 300}


def check_inline_caps(options: Mapping[str, Any], locator: Locator, table: tuple[str, ...]) -> None:
    """Refuse inline options above the caps (the client may lower them, never raise them)."""
    for key, cap in INLINE_CAPS.items():
        if key in options and options[key] > cap:
            raise locator.error(table, key, f"{options[key]} is over what an inline character may use ({cap})")
    segmenter = options.get("segmenter") or {}
    for key, cap in INLINE_SEGMENTER_CAPS.items():
        if key in segmenter and segmenter[key] > cap:
            raise locator.error(table, "segmenter", f"{key} = {segmenter[key]} is over what an inline character may use ({cap})")
