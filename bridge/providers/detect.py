"""Finds the LLM servers a developer already runs on this machine, at the bridge's start.

Most developers who try the bridge already run Ollama, LM Studio, llama.cpp's server, vLLM or
text-generation-webui. With no config file, `serve` asks each one's documented default port
on 127.0.0.1 for its model list (one short request each, all at once, only at start), and the
default character talks to the first that lists a chat model; the embedded model stays the
fallback. Nothing here talks to anything but 127.0.0.1.

| server | default port | model list | chat, as we call it |
|---|---|---|---|
| Ollama | 11434 | `GET /api/tags` -> `{"models": [{"name"}]}` | `openai` at `/v1` |
| LM Studio | 1234 | `GET /v1/models` -> `{"data": [{"id"}]}` | `openai` at `/v1` |
| llama.cpp server | 8080 | `GET /v1/models` | `openai` at `/v1` |
| vLLM | 8000 | `GET /v1/models` | `openai` at `/v1` |
| text-generation-webui | 5000 | `GET /v1/models` | `textgen` |

`ENTITY_BRIDGE_DETECT` replaces the list of targets (`kind=host:port,...`, or `off`), so
tests can point the probe at fakes when the real default ports are taken, and a developer
whose server listens elsewhere can name it without writing a config file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import trio

DETECT_ENV = "ENTITY_BRIDGE_DETECT"
PROBE_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class ServerKind:
    kind: str
    title: str
    port: int
    list_path: str
    provider: str  # the LLM provider that talks to it


KINDS: dict[str, ServerKind] = {
    k.kind: k
    for k in (
        ServerKind("ollama", "Ollama", 11434, "/api/tags", "openai"),
        ServerKind("lmstudio", "LM Studio", 1234, "/v1/models", "openai"),
        ServerKind("llamacpp", "llama.cpp server", 8080, "/v1/models", "openai"),
        ServerKind("vllm", "vLLM", 8000, "/v1/models", "openai"),
        ServerKind("textgen", "text-generation-webui", 5000, "/v1/models", "textgen"),
    )
}


@dataclass(frozen=True)
class Target:
    kind: ServerKind
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class Found:
    target: Target
    models: tuple[str, ...]

    @property
    def model(self) -> str:
        return self.models[0]

    def module_options(self) -> dict[str, Any]:
        """Options for an LLM module that talks to this server with its first chat model."""
        if self.target.kind.provider == "textgen":
            return {"base_url": self.target.url, "model": self.model}
        return {"base_url": self.target.url + "/v1", "model": self.model}


def default_targets() -> list[Target]:
    return [Target(kind, "127.0.0.1", kind.port) for kind in KINDS.values()]


def targets_from_env(value: str | None) -> list[Target] | None:
    """Parse `ENTITY_BRIDGE_DETECT`; None when unset. Raises ValueError when malformed."""
    if value is None:
        return None
    value = value.strip()
    if value in ("", "off", "none"):
        return []
    targets = []
    for item in value.split(","):
        kind_name, _, address = item.strip().partition("=")
        host, _, port = address.rpartition(":")
        if kind_name not in KINDS or not host or not port.isdigit():
            raise ValueError(f"{DETECT_ENV}: {item!r} is not KIND=HOST:PORT with KIND one of {', '.join(KINDS)}")
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise ValueError(f"{DETECT_ENV}: {item!r}: only this machine (127.0.0.1) is probed")
        targets.append(Target(KINDS[kind_name], host, int(port)))
    return targets


def _is_chat_model(name: str) -> bool:
    """Leave out embedding models, which cannot chat (Ollama lists them beside chat models)."""
    lowered = name.lower()
    return not any(word in lowered for word in ("embed", "minilm", "bge-", "rerank"))


def parse_models(kind: ServerKind, body: Any) -> tuple[str, ...]:
    """The chat models a listing names, in its order (sans-I/O: the decoded JSON body)."""
    names: list[str] = []
    if not isinstance(body, dict):
        return ()
    if kind.kind == "ollama":
        for item in body.get("models") or []:
            if isinstance(item, dict) and isinstance(item.get("name") or item.get("model"), str):
                names.append(item.get("name") or item["model"])
    else:
        for item in body.get("data") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                names.append(item["id"])
    return tuple(n for n in names if n and _is_chat_model(n))


async def _probe(client: httpx.AsyncClient, target: Target) -> Found | None:
    try:
        response = await client.get(target.url + target.kind.list_path)
        if response.status_code != 200:
            return None
        models = parse_models(target.kind, response.json())
    except (httpx.HTTPError, ValueError):
        return None
    return Found(target, models) if models else None


async def probe(targets: Sequence[Target], timeout_s: float = PROBE_TIMEOUT_S) -> list[Found]:
    """Ask every target for its models at once; those that answered with a chat model, in order."""
    results: list[Found | None] = [None] * len(targets)
    async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:

        async def one(index: int, target: Target) -> None:
            with trio.move_on_after(timeout_s * 2):
                results[index] = await _probe(client, target)

        async with trio.open_nursery() as nursery:
            for index, target in enumerate(targets):
                nursery.start_soon(one, index, target)
    return [found for found in results if found is not None]


def targets() -> list[Target]:
    """The targets to probe: the environment's list, else every server's default port."""
    explicit = targets_from_env(os.environ.get(DETECT_ENV))
    return default_targets() if explicit is None else explicit
