"""Maps a configured module (`[modules.NAME]` with `kind` and `provider`) to its implementation.

Implementations are imported lazily, by dotted path, so a bridge that only uses OpenAI
never imports llama.cpp or onnxruntime, and a missing optional dependency surfaces as a
clear ConfigError naming the extra to install.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.providers.base import ConfigError

KINDS = ("llm", "tts", "stt", "vad", "countenance")

# (kind, provider) -> "module:function"; the function takes a ModuleSpec and returns the provider.
_FACTORIES: dict[tuple[str, str], str] = {
    ("llm", "openai"): "bridge.providers.llm.openai_chat:create",
    ("llm", "textgen"): "bridge.providers.llm.textgen:create",
    ("llm", "kindroid"): "bridge.providers.llm.kindroid:create",
    ("llm", "kajiwoto"): "bridge.providers.llm.kajiwoto:create",
    ("llm", "characterai"): "bridge.providers.llm.characterai:create",
    ("llm", "local"): "bridge.providers.llm.local:create",
    ("llm", "echo"): "bridge.providers.llm.echo:create",
    ("tts", "elevenlabs"): "bridge.providers.tts.elevenlabs:create",
    ("tts", "elevenlabs_realtime"): "bridge.providers.tts.elevenlabs_realtime:create",
    ("tts", "openai"): "bridge.providers.tts.openai_speech:create",
    ("tts", "harmonyspeech"): "bridge.providers.tts.harmonyspeech:create",
    ("tts", "piper"): "bridge.providers.tts.piper:create",
    ("tts", "espeak"): "bridge.providers.tts.espeak:create",
    ("stt", "openai"): "bridge.providers.stt.openai_transcribe:create",
    ("stt", "harmonyspeech"): "bridge.providers.stt.harmonyspeech:create",
    ("stt", "local"): "bridge.providers.stt.local:create",
    ("vad", "silero"): "bridge.providers.stt.silero:create",
    ("countenance", "tags"): "bridge.providers.countenance.tags:create",
    ("countenance", "embedding"): "bridge.providers.countenance.embedding:create",
    ("countenance", "llm"): "bridge.providers.countenance.llm_mood:create",
}


@dataclass(frozen=True)
class ModuleSpec:
    """One `[modules.NAME]` table of the config, already split into its parts."""

    name: str
    kind: str
    provider: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Where the table is in the config file (`bridge.toml:4: [modules.brain]`), so an option
    #: the provider refuses when it is built is reported with its place too; "" when built in.
    where: str = field(default="", compare=False)

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def secret(self, key: str = "api_key", *, required: bool = True) -> str | None:
        """Read a secret from `KEY` in the config or from the env var named by `KEY_env`.

        The value is never put into an error message; only where it was looked for is.
        """
        value = self.options.get(key)
        env_name = self.options.get(f"{key}_env")
        if not value and env_name:
            value = os.environ.get(str(env_name))
        if not value and required:
            where = f"environment variable {env_name}" if env_name else f"`{key}` or `{key}_env`"
            raise ConfigError(f"module {self.name!r} ({self.provider}) needs a {key}: set {where}")
        return value or None


def known_providers(kind: str) -> list[str]:
    return sorted(p for k, p in _FACTORIES if k == kind)


def create_provider(spec: ModuleSpec) -> Any:
    """Build the provider a module spec describes, or raise ConfigError saying what is wrong."""
    target = _FACTORIES.get((spec.kind, spec.provider))
    if target is None:
        if spec.kind not in KINDS:
            raise ConfigError(f"module {spec.name!r}: unknown kind {spec.kind!r}; one of {', '.join(KINDS)}")
        raise ConfigError(
            f"module {spec.name!r}: no {spec.kind} provider {spec.provider!r}; "
            f"known: {', '.join(known_providers(spec.kind))}"
        )
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"module {spec.name!r} ({spec.kind}/{spec.provider}) cannot load: {exc}. "
            "Install the embedded extra: `make install` or `pip install -e '.[embedded]'`"
        ) from exc
    return getattr(module, func_name)(spec)
