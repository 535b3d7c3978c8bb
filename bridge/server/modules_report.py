"""`GET /modules`: the configured modules and whether each can be reached, without secrets.

For the console's health panel and for scripts checking a config before a play session.
Each module reports its name, kind and provider, and a reachability state:

- in-process modules (the embedded models, echo, espeak, tags) are reachable by
  definition; `detail` says whether the model is loaded yet;
- a module with an explicit endpoint (`base_url`, `url`, `ws_url`, ... in its table) is
  probed with a TCP connect to that host and port (at most PROBE_TIMEOUT_S, all at once);
- a module using its provider's default cloud endpoint is reported as not checked
  (`reachable: null`): the report does not call out to the internet on its own.

Only the kind, the provider, the model/voice names and the endpoint's scheme://host:port
(no path, query or credentials) leave the bridge; keys and other options never do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import trio

from bridge.config import BridgeConfig
from bridge.providers.registry import ModuleSpec

PROBE_TIMEOUT_S = 1.0
#: (kind, provider) pairs that run inside the bridge process.
IN_PROCESS = {("llm", "local"), ("llm", "echo"), ("tts", "piper"), ("tts", "espeak"), ("stt", "local"), ("vad", "silero"), ("countenance", "tags"), ("countenance", "embedding"), ("countenance", "llm")}
ENDPOINT_OPTIONS = ("base_url", "url", "ws_url", "rest_url", "socket_url", "graphql_url")
SHOWN_OPTIONS = ("model", "voice", "voice_id")


def _endpoint(spec: ModuleSpec) -> tuple[str, str, int] | None:
    for key in ENDPOINT_OPTIONS:
        value = spec.options.get(key)
        if isinstance(value, str) and value:
            parts = urlsplit(value)
            if not parts.hostname:
                continue
            default = 443 if parts.scheme in ("https", "wss") else 80
            try:
                port = parts.port or default
            except ValueError:
                continue
            return parts.scheme, parts.hostname, port
    return None


async def _probe(host: str, port: int) -> str | None:
    """None when a TCP connection opens, else why not."""
    with trio.move_on_after(PROBE_TIMEOUT_S):
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            return exc.strerror or type(exc).__name__
        await stream.aclose()
        return None
    return f"no answer within {PROBE_TIMEOUT_S:g} s"


async def modules_report(config: BridgeConfig, loaded: set[str]) -> dict[str, Any]:
    used: dict[str, list[str]] = {}
    for character in config.characters.values():
        for module in character.modules.values():
            used.setdefault(module, []).append(character.name)
    rows: dict[str, dict[str, Any]] = {}

    async def check(spec: ModuleSpec) -> None:
        row: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "provider": spec.provider, "characters": sorted(used.get(spec.name, []))}
        for key in SHOWN_OPTIONS:
            value = spec.options.get(key)
            if isinstance(value, str):
                row[key] = value
        endpoint = _endpoint(spec)
        if endpoint is not None:
            scheme, host, port = endpoint
            row["endpoint"] = f"{scheme}://{host}:{port}"
            failure = await _probe(host, port)
            row["reachable"] = failure is None
            row["detail"] = "TCP connect succeeded" if failure is None else f"cannot connect: {failure}"
        elif (spec.kind, spec.provider) in IN_PROCESS:
            row["reachable"] = True
            row["detail"] = "in process, " + ("loaded" if spec.name in loaded else "loads on first use")
        else:
            row["reachable"] = None
            row["detail"] = "the provider's default endpoint; not probed"
        rows[spec.name] = row

    async with trio.open_nursery() as nursery:
        for spec in config.modules.values():
            nursery.start_soon(check, spec)
    characters = {
        name: dict(sorted(character.modules.items())) for name, character in sorted(config.characters.items())
    }
    return {
        "modules": [rows[name] for name in sorted(rows)],
        "characters": characters,
        "token_required": bool(config.server.token),
    }
