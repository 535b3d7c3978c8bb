"""Load what the configured characters need before the first turn does (issue 15 item 1).

A fresh bridge used to build each module, import its code, make its HTTP client (and TLS
context) and load its model inside the first turn that needed it: the first spoken exchange
took ~7 s against ~1.5 s later. `Warmup` does all of that up front, one module at a time,
in the order the characters name them, and keeps a per-module state for `/health`:

- `entity-bridge serve` runs it before printing `READY` (a progress line per module on
  stderr), so the first turn costs what later turns cost;
- with `--lazy` it runs in the background right after `READY`. A turn that needs a module
  still loading waits only for that module: providers are shared per process and every
  model load takes that model's own lock, so the turn's own load call joins the one in
  progress instead of starting another, and modules it does not use never hold it up.

An LLM that keeps a prompt cache (the embedded `local` one: `prime`) is then given the
first character's prompt that uses it (its system prompt, opening and a stand-in first
line, built as a turn builds it), so the first turn evaluates only its own line: measured
for the default character, 180 prompt tokens evaluated inside the first turn before, 12
after. Off with the character option `prime_prompt = false`.

Besides the modules it compiles the protocol's schema validators (fastjsonschema, lazily
compiled per event type otherwise): measured at ~67 ms each on the loaded 2-core machine
(2.2 s for all 33), so a fresh bridge's first `user.utterance` paid for one inside its turn.
Not with `--lazy` (`compile_schemas=False`): compiling all of them in the background took
the GIL from the turns it should not delay (a first turn at READY measured +3.5 s), while
compiling on first use costs a turn only the one validator it needs.

A module that fails to load is reported (state `failed` with the message) and the bridge
starts anyway: the turn that needs it answers `backend_unavailable` as it always did, while
the characters that do not need it keep working.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from bridge.character.runtime import CharacterRuntime
from bridge.config import BridgeConfig
from bridge.providers.base import ConfigError, ProviderError

log = logging.getLogger(__name__)

#: The provider methods that load a model or open what a module needs, in order of
#: preference; a provider with neither has nothing more to load once constructed.
LOAD_METHODS = ("warm_up", "load")
#: The stand-in first line a character's prompt is primed with; only the prompt before it
#: is reused by the first turn.
PRIME_LINE = "Hello."


def modules_in_use(config: BridgeConfig) -> list[str]:
    """Module names the configured characters use, first use first, each once: their
    slots, their fallback LLMs, and the LLM a countenance module asks (`llm` option)."""
    names: list[str] = []

    def add(name: str | None) -> None:
        if name and name in config.modules and name not in names:
            names.append(name)

    for character in config.characters.values():
        for name in [*character.modules.values(), *character.fallback_llms]:
            add(name)
            llm = config.modules[name].option("llm", None) if name in config.modules else None
            add(llm if isinstance(llm, str) else None)
    return names


@dataclass
class ModuleState:
    kind: str
    provider: str
    state: str = "pending"  # pending -> loading -> loaded | failed
    load_s: float | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "provider": self.provider, "state": self.state}
        if self.load_s is not None:
            out["load_s"] = round(self.load_s, 3)
        if self.error is not None:
            out["error"] = self.error
        return out


class Warmup:
    """Builds and loads every module in use (`run`), recording each one's state."""

    def __init__(self, app: Any, progress: Callable[[str], None] | None = None, *, compile_schemas: bool = True) -> None:
        self.app = app
        self.compile_schemas = compile_schemas
        self.progress = progress or (lambda line: log.info("%s", line))
        self.modules = {
            name: ModuleState(app.config.modules[name].kind, app.config.modules[name].provider)
            for name in modules_in_use(app.config)
        }
        self.done = trio.Event()
        self.seconds: float | None = None

    async def run(self) -> None:
        """Load every module in turn; never raises for a module that fails to load."""
        started = time.perf_counter()
        try:
            for name, state in self.modules.items():
                await self._load(name, state)
            await self._prime_prompts()
            if self.compile_schemas:
                await trio.to_thread.run_sync(self._compile_schemas)
            await self.app.history()  # the SQLite file, opened before the first turn writes to it
        finally:
            self.seconds = time.perf_counter() - started
            self.done.set()
        self.progress(f"warm-up: {len(self.modules)} modules in {self.seconds:.2f} s")

    def _compile_schemas(self) -> None:
        """Worker thread: compile every event type's validator now (the registry is locked)."""
        t0 = time.perf_counter()
        types = sorted(self.app.schemas.types)
        for event_type in types:
            self.app.schemas.binary_fields(event_type)  # compiles and caches the validator
        self.progress(f"compiled {len(types)} event schemas in {time.perf_counter() - t0:.2f} s")

    async def _load(self, name: str, state: ModuleState) -> None:
        state.state = "loading"
        self.progress(f"loading module {name} ({state.kind}: {state.provider})")
        t0 = time.perf_counter()
        try:
            provider = await self.app.provider(name)
            for method in LOAD_METHODS:
                load = getattr(provider, method, None)
                if load is not None:
                    await load()
                    break
        except (ProviderError, ConfigError, OSError) as exc:
            state.state, state.error = "failed", getattr(exc, "message", None) or str(exc)
            self.progress(f"module {name} failed to load: {state.error}")
            return
        state.load_s = time.perf_counter() - t0
        state.state = "loaded"
        self.progress(f"loaded module {name} in {state.load_s:.2f} s")

    async def _prime_prompts(self) -> None:
        """Give each loaded LLM that can `prime` the prompt of the first character using it."""
        primed: set[str] = set()
        for character in self.app.config.characters.values():
            name = character.modules.get("llm")
            state = self.modules.get(name) if name else None
            if name is None or name in primed or state is None or state.state != "loaded" or not character.options.get("prime_prompt", True):
                continue
            provider = await self.app.provider(name)
            prime = getattr(provider, "prime", None)
            if prime is None:
                continue
            primed.add(name)
            runtime = CharacterRuntime(self.app, character, {})
            line = runtime.harmonizer.utterance("verbal", PRIME_LINE) or PRIME_LINE
            messages = runtime.harmonizer.build_messages([], line, runtime.token_budget)
            t0 = time.perf_counter()
            try:
                tokens = await prime(messages)
            except (ProviderError, ConfigError, OSError, ValueError) as exc:
                self.progress(f"module {name}: priming the prompt of {character.name!r} failed: {exc}")
                continue
            self.progress(f"primed module {name} with the prompt of {character.name!r} ({tokens} tokens) in {time.perf_counter() - t0:.2f} s")

    def report(self) -> dict[str, Any]:
        """What `/health` says: each module's state, and whether all have loaded."""
        return {
            "loaded": all(s.state == "loaded" for s in self.modules.values()) and self.done.is_set(),
            "modules": {name: s.as_json() for name, s in self.modules.items()},
        }
