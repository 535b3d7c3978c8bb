"""The bridge's configuration: `bridge.toml`, or a built-in default that needs nothing.

The default runs fully offline on the embedded modules (local LLM, piper voice, local
whisper, silero VAD, emotion tags), so `entity-bridge serve` works on a fresh machine.
A config file replaces the default characters but keeps the built-in modules available,
so a file can say `modules = { llm = "my-gpt" }` and inherit the rest.
See `bridge.example.toml` for every key, documented.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bridge.protocol.limits import Limits
from bridge.providers.base import ConfigError
from bridge.providers.registry import KINDS, ModuleSpec

DEFAULT_PORT = 8765
CHARACTER_MODULE_SLOTS = ("llm", "tts", "stt", "vad", "countenance")
TURN_POLICIES = ("interrupt", "queue")

#: Modules every bridge has, whatever the config file says.
BUILTIN_MODULES: dict[str, ModuleSpec] = {
    "local": ModuleSpec("local", "llm", "local"),
    "echo": ModuleSpec("echo", "llm", "echo"),
    "piper": ModuleSpec("piper", "tts", "piper"),
    "espeak": ModuleSpec("espeak", "tts", "espeak"),
    "whisper": ModuleSpec("whisper", "stt", "local"),
    "silero": ModuleSpec("silero", "vad", "silero"),
    "tags": ModuleSpec("tags", "countenance", "tags"),
}

DEFAULT_CHARACTER_MODULES = {"llm": "local", "tts": "piper", "stt": "whisper", "vad": "silero", "countenance": "tags"}


@dataclass(frozen=True)
class CharacterConfig:
    name: str
    display_name: str
    persona: str = ""
    greeting: str | None = None
    voice: str | None = None
    modules: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CHARACTER_MODULES))
    fallback_llms: tuple[str, ...] = ()
    turn_policy: str = "interrupt"
    expressions: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


DEFAULT_CHARACTERS = {
    "mira": CharacterConfig(
        name="mira",
        display_name="Mira",
        # Written for a 0.5B model: plain facts it can repeat, the rules last and short.
        persona=(
            "You keep the Copper Kettle, a cosy tavern at the crossroads of Millbrook. Tonight's menu: "
            "lamb stew for three coppers, fresh bread, honey cakes and dark ale. A room upstairs costs "
            "ten coppers a night. Rumour says strange lights were seen at the old mill. You are cheerful "
            "and kind and love a bit of gossip, but you stand up to bullies: the town guard drink here "
            "every night. Always answer as Mira, in the first person, in one or two short spoken "
            "sentences. Never say you are an AI."
        ),
        greeting="Welcome to the Copper Kettle, traveller! What can I get you?",
        options={"prompt_style": "compact"},
    ),
}


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    history_path: str = "entity-bridge-history.sqlite3"
    #: ``postgresql://user@host/db``: several bridges share one memory (see docs/deploy.md).
    history_url: str | None = None

    @property
    def history_location(self) -> str:
        """Where the chat history lives: the PostgreSQL URL if set, else the SQLite file."""
        return self.history_url or self.history_path

    @property
    def is_loopback(self) -> bool:
        if self.host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class HarmonyLinkEntity:
    """How one Harmony Link entity id maps onto us: its character and its audio output type."""

    character: str
    output_type: str = "file"  # "file": audio_file (VNGE, VTS); "base64": audio (ProjectP)


@dataclass(frozen=True)
class HarmonyLinkConfig:
    """`[compat.harmony_link]`: the second, off-by-default listener speaking Harmony Link's JSON API."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 28080
    working_dir: str = "harmony-tmp"
    output_type: str = "file"
    sample_rate: int = 22050
    allowed_clients: tuple[str, ...] = ()
    default_character: str | None = None
    entities: dict[str, HarmonyLinkEntity] = field(default_factory=dict)

    def entity(self, entity_id: str, characters: dict[str, "CharacterConfig"]) -> HarmonyLinkEntity | None:
        """The mapping of an entity id: configured, else a character of that name, else the default."""
        if entity_id in self.entities:
            return self.entities[entity_id]
        if entity_id in characters:
            return HarmonyLinkEntity(entity_id, self.output_type)
        if self.default_character:
            return HarmonyLinkEntity(self.default_character, self.output_type)
        return None


@dataclass(frozen=True)
class BridgeConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    harmony_link: HarmonyLinkConfig = field(default_factory=HarmonyLinkConfig)
    limits: Limits = field(default_factory=Limits)
    modules: dict[str, ModuleSpec] = field(default_factory=lambda: dict(BUILTIN_MODULES))
    characters: dict[str, CharacterConfig] = field(default_factory=lambda: dict(DEFAULT_CHARACTERS))
    source: str = "built-in default"
    #: The `[world]` table (scenes, hearing, reply policy); checked by `bridge.world.scenes`.
    world: dict[str, Any] = field(default_factory=dict)

    def with_server(self, **changes: Any) -> "BridgeConfig":
        return replace(self, server=replace(self.server, **changes))

    def check(self) -> None:
        """Refuse settings that would expose the bridge: any non-loopback address needs a token."""
        if not self.server.is_loopback and not self.server.token:
            raise ConfigError(
                f"listening on {self.server.host} (not loopback) needs a token: set [server] token_env "
                "(or token) so only your game can drive the bridge"
            )


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: `{key}` must be a table")
    return value


def _history_url(server_t: dict[str, Any], where: str) -> str | None:
    url = _str(server_t, "history_url", where)
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{where}: history_url must be a postgresql:// URL (for SQLite use history_path)")
    return url or None


def _str(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    value = table.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: `{key}` must be a string, got {type(value).__name__}")
    return value


def parse_character(name: str, table: dict[str, Any], modules: dict[str, ModuleSpec], where: str) -> CharacterConfig:
    """One `[characters.NAME]` table (or an inline character from `entity.init`)."""
    slots = table.get("modules", {})
    if not isinstance(slots, dict):
        raise ConfigError(f"{where}: `modules` must be a table like {{ llm = \"local\" }}")
    merged = dict(DEFAULT_CHARACTER_MODULES)
    for slot, module_name in slots.items():
        if slot not in CHARACTER_MODULE_SLOTS:
            raise ConfigError(f"{where}: unknown module slot {slot!r}; slots: {', '.join(CHARACTER_MODULE_SLOTS)}")
        if module_name in ("", "none", None):
            merged.pop(slot, None)
            continue
        if not isinstance(module_name, str):
            raise ConfigError(f"{where}: modules.{slot} must be a module name")
        spec = modules.get(module_name)
        if spec is None:
            raise ConfigError(f"{where}: modules.{slot} names {module_name!r}, which is not a configured module; known: {', '.join(sorted(modules))}")
        if spec.kind != slot:
            raise ConfigError(f"{where}: modules.{slot} names {module_name!r}, which is a {spec.kind} module")
        merged[slot] = module_name
    fallbacks = table.get("fallback_llms", [])
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) and f in modules and modules[f].kind == "llm" for f in fallbacks):
        raise ConfigError(f"{where}: `fallback_llms` must list configured llm modules")
    policy = table.get("turn_policy", "interrupt")
    if policy not in TURN_POLICIES:
        raise ConfigError(f"{where}: `turn_policy` must be one of {', '.join(TURN_POLICIES)}")
    expressions = table.get("expressions", {})
    if not isinstance(expressions, dict) or not all(isinstance(v, str) for v in expressions.values()):
        raise ConfigError(f"{where}: `expressions` maps emotions to preset names (strings)")
    known = {"display_name", "persona", "greeting", "voice", "modules", "fallback_llms", "turn_policy", "expressions", "name"}
    return CharacterConfig(
        name=name,
        display_name=_str(table, "display_name", where) or name,
        persona=_str(table, "persona", where, "") or "",
        greeting=_str(table, "greeting", where),
        voice=_str(table, "voice", where),
        modules=merged,
        fallback_llms=tuple(fallbacks),
        turn_policy=policy,
        expressions=dict(expressions),
        options={k: v for k, v in table.items() if k not in known},
    )


def parse_config(data: dict[str, Any], source: str) -> BridgeConfig:
    where = source
    server_t = _table(data, "server", where)
    token = _str(server_t, "token", f"{where} [server]")
    token_env = _str(server_t, "token_env", f"{where} [server]")
    if not token and token_env:
        token = os.environ.get(token_env) or None
    origins = server_t.get("allowed_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError(f"{where} [server]: allowed_origins must be a list of origins like \"http://localhost:3000\"")
    port = server_t.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"{where} [server]: port must be 0..65535")
    server = ServerConfig(
        host=_str(server_t, "host", f"{where} [server]", "127.0.0.1") or "127.0.0.1",
        port=port,
        token=token,
        allowed_origins=tuple(origins),
        history_path=_str(server_t, "history_path", f"{where} [server]", ServerConfig.history_path) or ServerConfig.history_path,
        history_url=_history_url(server_t, f"{where} [server]"),
    )
    try:
        limits = Limits.from_mapping(_table(data, "limits", where))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None

    modules = dict(BUILTIN_MODULES)
    for name, table in _table(data, "modules", where).items():
        mwhere = f"{where} [modules.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{mwhere} must be a table")
        kind, provider = table.get("kind"), table.get("provider")
        if kind not in KINDS:
            raise ConfigError(f"{mwhere}: `kind` must be one of {', '.join(KINDS)}")
        if not isinstance(provider, str):
            raise ConfigError(f"{mwhere}: `provider` must name a {kind} provider")
        options = {k: v for k, v in table.items() if k not in ("kind", "provider")}
        modules[name] = ModuleSpec(name, kind, provider, options)

    characters_t = _table(data, "characters", where)
    characters = (
        {name: parse_character(name, t, modules, f"{where} [characters.{name}]") for name, t in characters_t.items()}
        if characters_t
        else dict(DEFAULT_CHARACTERS)
    )
    world = _table(data, "world", where)
    harmony_link = _parse_harmony_link(_table(_table(data, "compat", where), "harmony_link", f"{where} [compat]"), characters, where)
    config = BridgeConfig(server=server, harmony_link=harmony_link, limits=limits, modules=modules, characters=characters, source=source, world=dict(world))
    return config


def _parse_harmony_link(table: dict[str, Any], characters: dict[str, CharacterConfig], where: str) -> HarmonyLinkConfig:
    where = f"{where} [compat.harmony_link]"
    output_types = ("file", "base64")
    enabled = table.get("enabled", False)
    port = table.get("port", HarmonyLinkConfig.port)
    rate = table.get("sample_rate", HarmonyLinkConfig.sample_rate)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: `enabled` must be true or false")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port must be 0..65535")
    if not isinstance(rate, int) or not 8000 <= rate <= 48000:
        raise ConfigError(f"{where}: sample_rate must be 8000..48000")
    clients = table.get("allowed_clients", [])
    if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
        raise ConfigError(f"{where}: allowed_clients must be a list of IP addresses")
    output_type = _str(table, "output_type", where, "file")
    if output_type not in output_types:
        raise ConfigError(f"{where}: output_type must be one of {', '.join(output_types)}")
    default = _str(table, "default_character", where)
    if default is not None and default not in characters:
        raise ConfigError(f"{where}: default_character {default!r} is not a configured character")
    entities: dict[str, HarmonyLinkEntity] = {}
    for entity_id, t in _table(table, "entities", where).items():
        ewhere = f"{where} entities.{entity_id}"
        if isinstance(t, str):
            t = {"character": t}
        if not isinstance(t, dict) or t.get("character") not in characters:
            raise ConfigError(f"{ewhere}: `character` must name a configured character")
        etype = _str(t, "output_type", ewhere, output_type)
        if etype not in output_types:
            raise ConfigError(f"{ewhere}: output_type must be one of {', '.join(output_types)}")
        entities[entity_id] = HarmonyLinkEntity(str(t["character"]), str(etype))
    config = HarmonyLinkConfig(
        enabled=enabled,
        host=_str(table, "host", where, "127.0.0.1") or "127.0.0.1",
        port=port,
        working_dir=_str(table, "working_dir", where, "harmony-tmp") or "harmony-tmp",
        output_type=str(output_type),
        sample_rate=rate,
        allowed_clients=tuple(clients),
        default_character=default,
        entities=entities,
    )
    # Harmony Link plugins cannot send a token: off loopback, only listed clients may connect.
    if enabled and not ServerConfig(host=config.host).is_loopback and not config.allowed_clients:
        raise ConfigError(f"{where}: listening on {config.host} (not loopback) needs allowed_clients (the plugins cannot send a token)")
    return config


def load_config(path: str | Path | None) -> BridgeConfig:
    """Read a TOML file, or return the built-in default when `path` is None."""
    if path is None:
        return BridgeConfig()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(data, str(path))
