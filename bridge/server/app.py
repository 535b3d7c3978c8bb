"""What all connections of one bridge process share: config, schemas, providers, memory.

Providers are built once per module name and shared by every entity that uses them, so
the embedded models load once per process however many characters talk.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import trio

from bridge import __version__
from bridge.config import BUILTIN_MODULES, BridgeConfig, CharacterConfig
from bridge.protocol.envelope import Event
from bridge.protocol.schema import SchemaRegistry, registry
from bridge.providers.base import ConfigError
from bridge.providers.quota import QuotaLimited, with_quota
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.server.guard import AuthThrottle, PeerCounter
from bridge.world.hearing import SceneSettings
from bridge.world.scenes import SceneHub
from bridge.server.metrics import BridgeMetrics, TimedHistory, metered

log = logging.getLogger(__name__)


def build_module(spec: ModuleSpec) -> Any:
    """`create_provider`, with a wrong option type reported as the config error it is."""
    where = f"{spec.where}: " if spec.where else ""
    try:
        return create_provider(spec)
    except ConfigError as exc:
        if not where or str(exc).startswith(spec.where):
            raise
        raise ConfigError(f"{where}{exc}") from None
    except (TypeError, ValueError, OSError) as exc:
        raise ConfigError(f"{where}module {spec.name!r} ({spec.kind}/{spec.provider}) refused its options: {exc}") from None


class BridgeApp:
    def __init__(self, config: BridgeConfig, schemas: SchemaRegistry | None = None) -> None:
        self.config = config
        self.schemas = schemas or registry()
        self.server_name = f"entity-bridge/{__version__}"
        self.started_at = time.time()
        self.instance = uuid.uuid4().hex[:12]
        self._providers: dict[str, Any] = {}
        self._provider_lock = trio.Lock()
        self.connections = 0
        self.peers = PeerCounter(config.server.max_connections, config.server.max_connections_per_peer)
        self.auth = AuthThrottle()
        self.memory: Any = None  # bridge.memory.HistoryStore once opened
        #: bridge.server.warmup.Warmup once started: what /health says is loaded.
        self.warmup: Any = None
        #: Called with every event any connection sends (the test suite validates them all).
        self.outbound_hook: Callable[[Event], None] | None = None
        #: Every scene of the process, shared by the connections (multiplayer scenes).
        settings = SceneSettings.from_mapping(config.world)
        if settings.reply_llm and (config.modules.get(settings.reply_llm) is None or config.modules[settings.reply_llm].kind != "llm"):
            raise ConfigError(f"[world] reply_llm names {settings.reply_llm!r}, which is not a configured llm module")
        self.scenes = SceneHub(settings, self.provider)
        self.metrics = BridgeMetrics(lambda: self.connections)

    def sent(self, event: Event) -> None:
        """Sees every event any connection sends: metrics, then the test hook."""
        self.metrics.sent(event)
        if self.outbound_hook is not None:
            self.outbound_hook(event)

    def character(self, name: str) -> CharacterConfig | None:
        return self.config.characters.get(name)

    async def provider(self, module_name: str) -> Any:
        """The shared provider instance of a configured module (built on first use)."""
        found = self._providers.get(module_name)
        if found is not None:
            return found
        async with self._provider_lock:
            found = self._providers.get(module_name)
            if found is None:
                spec = self.config.modules.get(module_name)
                if spec is None:
                    raise ConfigError(f"no module named {module_name!r}")
                found = with_quota(metered(build_module(spec), spec.name, spec.kind, self.metrics), spec.name, spec.options, spec.kind)
                if isinstance(found, QuotaLimited):
                    self.metrics.watch_quota(module_name, found.quota)
                self._providers[module_name] = found
        return found

    def modules_in_use(self) -> list[str]:
        """Every module the config file defines or a configured character uses, in order."""
        names: list[str] = [n for n in self.config.modules if n not in BUILTIN_MODULES or self.config.modules[n] != BUILTIN_MODULES[n]]
        for character in self.config.characters.values():
            names += [*character.modules.values(), *character.fallback_llms]
        for name in list(names):
            spec = self.config.modules.get(name)
            llm = spec.option("llm") if spec is not None and spec.kind == "countenance" else None
            if isinstance(llm, str):
                names.append(llm)
        return list(dict.fromkeys(names))

    async def prepare(self) -> None:
        """Construct every module in use and open the history database, before READY.

        A module that refuses its options, a missing model file or an unusable history file
        is a ConfigError at start-up (exit status 2), not a failure in some player's first
        turn. Models still load lazily (construction only checks); `local` warms up later.
        """
        for name in self.modules_in_use():
            await self.provider(name)
        try:
            await self.history()
        except Exception as exc:  # HistoryError, sqlite3, psycopg or OS errors: all mean "fix the setting"
            if self.config.server.history_url:
                # A database that is down is not a mistake in the file: HistoryError (exit 1),
                # whose message names the server, never the password.
                raise
            raise ConfigError(f"[server] history_path {self.config.server.history_path!r}: {exc}") from None

    async def history(self) -> Any:
        """The chat history store (SQLite file or PostgreSQL), opened on first use."""
        if self.memory is None:
            async with self._provider_lock:
                if self.memory is None:
                    from bridge.memory.store import open_history

                    store = await open_history(self.config.server.history_location, writer=self.instance)
                    self.memory = TimedHistory(store, self.metrics)
        return self.memory

    def loaded_provider(self, module_name: str) -> Any | None:
        return self._providers.get(module_name)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "server": self.server_name,
            "protocol": 1,
            "uptime_s": round(time.time() - self.started_at, 1),
            "connections": self.connections,
            "characters": sorted(self.config.characters),
            "config": self.config.source,
            **(self.warmup.report() if self.warmup is not None else {"loaded": None}),
        }

    async def aclose(self) -> None:
        for name, provider in list(self._providers.items()):
            close = getattr(provider, "aclose", None)
            if close is not None:
                with trio.move_on_after(2) as scope:
                    scope.shield = True
                    try:
                        await close()
                    except Exception:  # closing must not hide the real shutdown reason
                        log.exception("closing module %s failed", name)
        self._providers.clear()
        if self.memory is not None:
            await self.memory.aclose()
