"""`entity-bridge check`: load the config, then try every module for real, and say what to do.

The config is read exactly as `serve` reads it, so every problem with the file is reported
the same way (file and line where the loader knows them), with exit status 2. Then each
module that a character uses, and each module the file defines, gets one small real job
with a timeout: a one-token completion (llm), a one-word synthesis (tts), half a second of
audio to transcribe (stt), one frame (vad), one line to read the mood of (countenance).
The table says module / kind and provider / status / latency / what to do; the exit status
is 1 when any module failed.

Secrets never reach the output: every value of a `*key*`, `*token*` or `*password*` option,
and of the environment variables such options name, is masked in every message we print.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import trio

from bridge.config import BUILTIN_MODULES, BridgeConfig
from bridge.providers.base import ChatMessage, ConfigError, LLMRequest, ProviderError, TTSRequest
from bridge.providers.registry import ModuleSpec, create_provider

DEFAULT_TIMEOUT_S = 60.0
SECRET_WORDS = ("key", "token", "password", "secret")


@dataclass
class Row:
    module: str
    what: str
    status: str  # "ok" or "FAIL"
    latency_ms: float | None
    advice: str


def secrets_of(config: BridgeConfig) -> list[str]:
    """Every secret value the config holds or points to (to mask them in output)."""
    found: list[str] = []
    if config.server.token:
        found.append(config.server.token)
    for spec in config.modules.values():
        for key, value in spec.options.items():
            if not any(word in key.lower() for word in SECRET_WORDS) or not isinstance(value, str):
                continue
            found.append(value)
            if key.endswith("_env") and os.environ.get(value):
                found.append(os.environ[value])
    return [s for s in found if len(s) >= 4]


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def modules_to_check(config: BridgeConfig) -> list[str]:
    """Modules a character uses (with fallbacks), then those the file defines, each once."""
    names: list[str] = []
    for character in config.characters.values():
        names += list(character.modules.values()) + list(character.fallback_llms)
    names += [name for name in config.modules if name not in BUILTIN_MODULES]
    return list(dict.fromkeys(n for n in names if n in config.modules))


async def _llm(provider: Any) -> str:
    request = LLMRequest(
        messages=[ChatMessage("user", "Say OK.")], new_message="Say OK.", character="check", options={"max_tokens": 1}
    )
    async with provider.stream(request) as deltas:
        async for delta in deltas:
            if delta:
                return f"answered {delta.strip()[:20]!r}"
    return "answered"


async def _tts(provider: Any) -> str:
    samples = 0
    rate = 0
    async with provider.synthesize(TTSRequest(text="Hello.")) as pieces:
        async for piece in pieces:
            samples += len(piece.samples)
            rate = piece.sample_rate
    if not samples:
        raise ProviderError("backend_error", "the voice returned no audio")
    return f"{samples / rate:.2f} s of audio"


async def _stt(provider: Any) -> str:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(8000) * 0.001).astype(np.float32)  # 0.5 s of near silence
    transcript = await provider.transcribe(audio, 16000)
    return f"transcribed {transcript.text.strip()[:20]!r}"


async def _vad(provider: Any) -> str:
    frame = np.zeros(provider.frame_samples, dtype=np.float32)
    probability = await trio.to_thread.run_sync(provider.probability, frame)
    return f"speech probability {probability:.2f} on silence"


async def _countenance(provider: Any) -> str:
    mood = await provider.assess("What a wonderful day!")
    return f"mood {mood.emotion}"


TRIALS: dict[str, Callable[[Any], Awaitable[str]]] = {"llm": _llm, "tts": _tts, "stt": _stt, "vad": _vad, "countenance": _countenance}


def advice_for(spec: ModuleSpec, exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return f"fix [modules.{spec.name}]: {exc}"
    if isinstance(exc, ProviderError):
        hint = {
            "auth_failed": "check the API key (the environment variable the config names)",
            "backend_unavailable": "is the server running and reachable? check base_url",
            "rate_limited": "wait, or raise your plan's limits",
        }.get(exc.code, "see the message")
        if any(f"HTTP {status}" in exc.message for status in (401, 403)):
            hint = "check the API key (the environment variable `api_key_env` names)"
        return f"{exc.code}: {exc.message} ({hint})"
    if isinstance(exc, trio.TooSlowError):
        return "no answer in time: is the server up? (or raise --timeout on a slow machine)"
    return f"{type(exc).__name__}: {exc}"


async def check_module(spec: ModuleSpec, timeout_s: float) -> Row:
    what = f"{spec.kind}/{spec.provider}"
    start = time.perf_counter()
    provider = None
    try:
        with trio.fail_after(timeout_s):
            provider = await trio.to_thread.run_sync(create_provider, spec)
            detail = await TRIALS[spec.kind](provider)
        return Row(spec.name, what, "ok", (time.perf_counter() - start) * 1000, detail)
    except Exception as exc:  # a diagnostic: whatever went wrong is reported, not raised
        return Row(spec.name, what, "FAIL", None, advice_for(spec, exc))
    finally:
        if provider is not None and hasattr(provider, "aclose"):
            with trio.move_on_after(5) as scope:
                scope.shield = True
                await provider.aclose()


def table(rows: list[Row], secrets: list[str]) -> str:
    head = ("module", "kind/provider", "status", "latency", "what to do / what it did")
    cells = [head] + [(r.module, r.what, r.status, "-" if r.latency_ms is None else f"{r.latency_ms:.0f} ms", r.advice) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  " + c[4] for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(head[4]))
    return mask("\n".join(lines), secrets)


async def run_check(config: BridgeConfig, timeout_s: float = DEFAULT_TIMEOUT_S, only: list[str] | None = None) -> tuple[int, str]:
    """Try the modules one after another (they share the CPU); the exit status and the table."""
    names = only or modules_to_check(config)
    unknown = [n for n in names if n not in config.modules]
    if unknown:
        raise ConfigError(f"no module named {', '.join(map(repr, unknown))}; configured: {', '.join(sorted(config.modules))}")
    rows = [await check_module(config.modules[name], timeout_s) for name in names]
    status = 1 if any(r.status != "ok" for r in rows) else 0
    summary = f"{sum(r.status == 'ok' for r in rows)} of {len(rows)} modules ok ({config.source})"
    return status, table(rows, secrets_of(config)) + "\n" + summary
