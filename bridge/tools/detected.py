"""The built-in default config with a detected local LLM server put in front of the embedded model.

`serve` without a config file calls `detect_and_apply`: the first server that answered gets a
module named `detected`, and every character on the embedded `local` LLM uses it, with
`local` as its fallback, so a server that goes away later still leaves a working character.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bridge.config import BridgeConfig
from bridge.providers import detect
from bridge.providers.registry import ModuleSpec

log = logging.getLogger("entity_bridge")
MODULE = "detected"


def with_detected(config: BridgeConfig, found: detect.Found) -> BridgeConfig:
    modules = dict(config.modules)
    modules[MODULE] = ModuleSpec(MODULE, "llm", found.target.kind.provider, found.module_options())
    characters = {}
    for name, character in config.characters.items():
        if character.modules.get("llm") == "local":
            slots = {**character.modules, "llm": MODULE}
            fallbacks = ("local", *(f for f in character.fallback_llms if f != "local"))
            character = replace(character, modules=slots, fallback_llms=fallbacks)
        characters[name] = character
    return replace(config, modules=modules, characters=characters, source=f"{config.source} + {found.target.kind.title}")


async def detect_and_apply(config: BridgeConfig) -> BridgeConfig:
    """Probe, say what was found and chosen (on the log), and return the config to serve."""
    try:
        targets = detect.targets()
    except ValueError as exc:
        log.warning("local LLM detection skipped: %s", exc)
        return config
    if not targets:
        log.info("local LLM detection is off (%s)", detect.DETECT_ENV)
        return config
    found = await detect.probe(targets)
    for server in found:
        log.info("found %s at %s with models: %s", server.target.kind.title, server.target.url, ", ".join(server.models))
    if not found:
        probed = ", ".join(f"{t.kind.title} ({t.url})" for t in targets)
        log.info("no local LLM server found (probed %s); using the embedded model", probed)
        return config
    chosen = found[0]
    log.info(
        "using %s model %s at %s for the default characters (embedded model as fallback; --no-detect turns this off)",
        chosen.target.kind.title, chosen.model, chosen.target.url,
    )
    return with_detected(config, chosen)
