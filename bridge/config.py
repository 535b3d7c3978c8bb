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

from bridge.config_check import (
    CHARACTER_KEYS,
    INLINE_KEYS,
    MODULE_OPTIONS,
    SERVER_KEYS,
    TOP_KEYS,
    Locator,
    check_character_options,
    check_inline_caps,
    did_you_mean,
    type_name,
)
from bridge.protocol.limits import LIMIT_KEYS, Limits
from bridge.providers.base import EMOTIONS, ConfigError
from bridge.providers.options import MODULE_KEYS, known_options
from bridge.providers.registry import KINDS, ModuleSpec, known_providers

DEFAULT_PORT = 8765
CHARACTER_MODULE_SLOTS = ("llm", "tts", "stt", "vad", "countenance")
TURN_POLICIES = ("interrupt", "queue")
#: Who picks the conversation scope (docs/security.md): the client's hello, or the bridge
#: (a fresh scope per connection that the client cannot choose or read back).
SCOPE_MODES = ("client", "connection")

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
    #: Sent by a client in `entity.init` rather than configured: its history is kept apart
    #: from any configured character's, even one of the same name.
    inline: bool = False


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
    #: Host header values accepted besides the listening address and localhost (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    history_path: str = "entity-bridge-history.sqlite3"
    #: ``postgresql://user@host/db``: several bridges share one memory (see docs/deploy.md).
    history_url: str | None = None

    @property
    def history_location(self) -> str:
        """Where the chat history lives: the PostgreSQL URL if set, else the SQLite file."""
        return self.history_url or self.history_path
    scope_mode: str = "client"
    max_connections: int = 1024
    max_connections_per_peer: int = 256

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
class InlineCharacters:
    """What a client may do with an inline character (a table in `entity.init`).

    By default only the embedded modules: the owner's paid backends are used only by the
    characters the owner configured, unless `[inline_characters] modules` lists them.
    """

    enabled: bool = True
    modules: frozenset[str] = frozenset(BUILTIN_MODULES)


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
    inline: InlineCharacters = field(default_factory=InlineCharacters)

    def with_server(self, **changes: Any) -> "BridgeConfig":
        return replace(self, server=replace(self.server, **changes))

    def check(self) -> None:
        """Refuse settings that would expose the bridge: any non-loopback address needs a token."""
        if not self.server.is_loopback and not self.server.token:
            raise ConfigError(
                f"listening on {self.server.host} (not loopback) needs a token: set [server] token_env "
                "(or token) so only your game can drive the bridge"
            )


def _table(data: dict[str, Any], key: str, loc: Locator, table: tuple[str, ...] = ()) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise loc.error(table, key, f"must be a table, got {type_name(value)}")
    return value


def _history_url(server_t: dict[str, Any], loc: Locator, path: tuple[str, ...]) -> str | None:
    url = _str(server_t, "history_url", loc, path)
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise loc.error(path, "history_url", "must be a postgresql:// URL (for SQLite use history_path)")
    return url or None


def _str(data: dict[str, Any], key: str, loc: Locator, table: tuple[str, ...], default: str | None = None) -> str | None:
    value = data.get(key, default)
    if value is not None and not isinstance(value, str):
        raise loc.error(table, key, f"must be a string, got {type_name(value)}")
    return value


def _str_list(data: dict[str, Any], key: str, loc: Locator, table: tuple[str, ...], example: str) -> tuple[str, ...] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise loc.error(table, key, f"must be a list of strings like {example}")
    return tuple(value)


def parse_character(
    name: str,
    table: dict[str, Any],
    modules: dict[str, ModuleSpec],
    where: str,
    *,
    locator: Locator | None = None,
    path: tuple[str, ...] = (),
    inline: InlineCharacters | None = None,
) -> CharacterConfig:
    """One `[characters.NAME]` table, or with `inline` an inline character from `entity.init`.

    An inline character may use only the modules `inline` allows and may not raise a
    runtime option above its default (INLINE_CAPS): a client must not spend more of the
    owner's backends than the owner's own characters do.
    """
    loc = locator or Locator(where)
    if inline is not None:
        modules = {name: spec for name, spec in modules.items() if name in inline.modules}
    slots = table.get("modules", {})
    if not isinstance(slots, dict):
        raise loc.error(path, "modules", 'must be a table like { llm = "local" }')
    merged = dict(DEFAULT_CHARACTER_MODULES)
    for slot, module_name in slots.items():
        if slot not in CHARACTER_MODULE_SLOTS:
            raise loc.error(
                path, "modules", f"unknown module slot `{slot}`{did_you_mean(slot, CHARACTER_MODULE_SLOTS)} (slots: {', '.join(CHARACTER_MODULE_SLOTS)})"
            )
        if module_name in ("", "none", None):
            merged.pop(slot, None)
            continue
        if not isinstance(module_name, str):
            raise loc.error(path, "modules", f"modules.{slot} must be a module name, got {type_name(module_name)}")
        spec = modules.get(module_name)
        if spec is None:
            of_kind = sorted(n for n, m in modules.items() if m.kind == slot)
            raise loc.error(
                path,
                "modules",
                f"modules.{slot} names `{module_name}`, which is not a configured module{did_you_mean(module_name, of_kind)} "
                f"(defined {slot} modules: {', '.join(of_kind)}; define it under [modules.{module_name}])",
            )
        if spec.kind != slot:
            raise loc.error(path, "modules", f"modules.{slot} names `{module_name}`, which is a {spec.kind} module")
        merged[slot] = module_name
    if inline is not None:  # the defaults too must be modules inline characters may use
        merged = {slot: name for slot, name in merged.items() if name in modules}
        if "llm" not in merged:
            raise loc.error(path, "modules", f"needs modules.llm: one of {', '.join(sorted(n for n, m in modules.items() if m.kind == 'llm'))}")
    fallbacks = table.get("fallback_llms", [])
    llms = sorted(n for n, m in modules.items() if m.kind == "llm")
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) for f in fallbacks):
        raise loc.error(path, "fallback_llms", "must be a list of llm module names")
    for fallback in fallbacks:
        if fallback not in llms:
            raise loc.error(path, "fallback_llms", f"`{fallback}` is not a defined llm module{did_you_mean(fallback, llms)} (llm modules: {', '.join(llms)})")
    policy = table.get("turn_policy", "interrupt")
    if policy not in TURN_POLICIES:
        raise loc.error(path, "turn_policy", f"must be one of {', '.join(TURN_POLICIES)}, got {policy!r}")
    expressions = table.get("expressions", {})
    if not isinstance(expressions, dict) or not all(isinstance(v, str) for v in expressions.values()):
        raise loc.error(path, "expressions", "maps emotions to preset names (strings)")
    # A misspelt emotion would never be shown: its preset is looked up by the emotion's name.
    loc.reject_unknown(expressions, EMOTIONS, path + ("expressions",), what="emotion")
    options = {k: v for k, v in table.items() if k not in CHARACTER_KEYS and k != "name"}
    check_character_options(options, loc, path)
    if inline is not None:
        check_inline_caps(options, loc, path)
    return CharacterConfig(
        name=name,
        display_name=_str(table, "display_name", loc, path) or name,
        persona=_str(table, "persona", loc, path, "") or "",
        greeting=_str(table, "greeting", loc, path),
        voice=_str(table, "voice", loc, path),
        modules=merged,
        fallback_llms=tuple(fallbacks),
        turn_policy=policy,
        expressions=dict(expressions),
        options=options,
        inline=inline is not None,
    )


def _parse_module(name: str, table: Any, loc: Locator) -> ModuleSpec:
    path = ("modules", name)
    if not isinstance(table, dict):
        raise loc.error(("modules",), name, f"must be a table with `kind` and `provider`, got {type_name(table)}")
    kind, provider = table.get("kind"), table.get("provider")
    for missing in sorted(MODULE_KEYS - table.keys()):  # `knd = "llm"`: point at the typo itself
        for key in table:
            if key not in MODULE_KEYS and did_you_mean(key, [missing]):
                raise loc.error(path, key, f"unknown key `{key}`{did_you_mean(key, [missing])} (every module needs `kind` and `provider`)")
    if kind not in KINDS:
        raise loc.error(path, None, f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}")
    providers = known_providers(kind)
    if not isinstance(provider, str):
        raise loc.error(path, "provider", f"must name a {kind} provider: one of {', '.join(providers)}")
    known = known_options(kind, provider)
    if provider not in providers or known is None:
        raise loc.error(
            path, "provider", f"there is no {kind} provider `{provider}`{did_you_mean(provider, providers)} ({kind} providers: {', '.join(providers)})"
        )
    options = {k: v for k, v in table.items() if k not in MODULE_KEYS}
    loc.reject_unknown(options, known, path, what=f"option of {kind}/{provider}")
    loc.check_options(options, MODULE_OPTIONS, path)
    return ModuleSpec(name, kind, provider, options, where=loc.where(path))


def _parse_server(data: dict[str, Any], loc: Locator) -> ServerConfig:
    path = ("server",)
    table = _table(data, "server", loc)
    loc.reject_unknown(table, SERVER_KEYS, path)
    token = _str(table, "token", loc, path)
    token_env = _str(table, "token_env", loc, path)
    if not token and token_env:
        token = os.environ.get(token_env) or None
    origins = _str_list(table, "allowed_origins", loc, path, '["http://localhost:3000"]') or ()
    hosts = _str_list(table, "allowed_hosts", loc, path, '["mybox.local"]') or ()
    ints = {}
    for key, low, high in (("port", 0, 65535), ("max_connections", 1, 1_000_000), ("max_connections_per_peer", 1, 1_000_000)):
        value = table.get(key, getattr(ServerConfig, key))
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise loc.error(path, key, f"must be an integer in {low}..{high}, got {value!r}")
        ints[key] = value
    scope_mode = table.get("scope_mode", "client")
    if scope_mode not in SCOPE_MODES:
        raise loc.error(path, "scope_mode", f"must be one of {', '.join(SCOPE_MODES)}, got {scope_mode!r}")
    return ServerConfig(
        host=_str(table, "host", loc, path, "127.0.0.1") or "127.0.0.1",
        token=token,
        allowed_origins=origins,
        allowed_hosts=hosts,
        history_path=_str(table, "history_path", loc, path, ServerConfig.history_path) or ServerConfig.history_path,
        history_url=_history_url(table, loc, path),
        scope_mode=scope_mode,
        **ints,
    )


def _parse_inline(data: dict[str, Any], modules: dict[str, ModuleSpec], loc: Locator) -> InlineCharacters:
    path = ("inline_characters",)
    table = _table(data, "inline_characters", loc)
    loc.reject_unknown(table, INLINE_KEYS, path)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise loc.error(path, "enabled", f"must be true or false, got {enabled!r}")
    names = _str_list(table, "modules", loc, path, '["local", "piper", "my-gpt"]')
    if names is None:
        return InlineCharacters(enabled=enabled)
    for module_name in names:
        if module_name not in modules:
            raise loc.error(path, "modules", f"`{module_name}` is not a defined module{did_you_mean(module_name, modules)}")
    return InlineCharacters(enabled=enabled, modules=frozenset(names))


def parse_config(data: dict[str, Any], source: str, text: str | None = None) -> BridgeConfig:
    """Check and convert a parsed TOML document; `text` (the file's) lets errors give lines."""
    loc = Locator(source, text)
    loc.reject_unknown(data, TOP_KEYS, ())
    server = _parse_server(data, loc)
    limits_t = _table(data, "limits", loc)
    loc.reject_unknown(limits_t, LIMIT_KEYS, ("limits",))
    try:
        limits = Limits.from_mapping(limits_t)
    except ValueError as exc:
        raise loc.error(("limits",), None, str(exc)) from None

    modules = dict(BUILTIN_MODULES)
    for name, table in _table(data, "modules", loc).items():
        modules[name] = _parse_module(name, table, loc)

    characters_t = _table(data, "characters", loc)
    characters = {}
    for name, table in characters_t.items():
        if not isinstance(table, dict):
            raise loc.error(("characters",), name, f"must be a table, got {type_name(table)}")
        characters[name] = parse_character(name, table, modules, source, locator=loc, path=("characters", name))
    inline = _parse_inline(data, modules, loc)
    world = _table(data, "world", loc)  # its keys are checked by bridge.world.hearing.SceneSettings
    return BridgeConfig(
        server=server,
        limits=limits,
        modules=modules,
        characters=characters or dict(DEFAULT_CHARACTERS),
        source=source,
        inline=inline,
        world=dict(world),
        harmony_link=_parse_harmony_link(data, characters or dict(DEFAULT_CHARACTERS), loc),
    )


def _parse_harmony_link(data: dict[str, Any], characters: dict[str, CharacterConfig], loc: Locator) -> HarmonyLinkConfig:
    path = ("compat", "harmony_link")
    compat = _table(data, "compat", loc)
    loc.reject_unknown(compat, ("harmony_link",), ("compat",))
    table = _table(compat, "harmony_link", loc, ("compat",))
    loc.reject_unknown(table, set(HarmonyLinkConfig.__dataclass_fields__), path)
    where = loc.where(path)
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
    output_type = _str(table, "output_type", loc, path, "file")
    if output_type not in output_types:
        raise ConfigError(f"{where}: output_type must be one of {', '.join(output_types)}")
    default = _str(table, "default_character", loc, path)
    if default is not None and default not in characters:
        raise ConfigError(f"{where}: default_character {default!r} is not a configured character")
    entities: dict[str, HarmonyLinkEntity] = {}
    for entity_id, t in _table(table, "entities", loc, path).items():
        ewhere = f"{where} entities.{entity_id}"
        if isinstance(t, str):
            t = {"character": t}
        if not isinstance(t, dict) or t.get("character") not in characters:
            raise ConfigError(f"{ewhere}: `character` must name a configured character")
        etype = _str(t, "output_type", loc, path + ("entities", entity_id), output_type)
        if etype not in output_types:
            raise ConfigError(f"{ewhere}: output_type must be one of {', '.join(output_types)}")
        entities[entity_id] = HarmonyLinkEntity(str(t["character"]), str(etype))
    config = HarmonyLinkConfig(
        enabled=enabled,
        host=_str(table, "host", loc, path, "127.0.0.1") or "127.0.0.1",
        port=port,
        working_dir=_str(table, "working_dir", loc, path, "harmony-tmp") or "harmony-tmp",
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
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); save the file as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(data, str(path), text)
