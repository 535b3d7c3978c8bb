"""`entity-bridge init`: write a commented `bridge.toml` for the stack you pick.

Choices come from flags, or from questions when stdin is a terminal and a flag is missing.
Secrets are never written: a module that needs a key gets `api_key_env = "NAME"`, the name
of the environment variable to set, and the file says so. The file is checked by loading
it back with the real config loader before it is written, and an existing file is only
replaced with `--force`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bridge.config import load_config
from bridge.providers.base import ConfigError
from bridge.providers.detect import KINDS as SERVERS


@dataclass(frozen=True)
class Brain:
    title: str
    provider: str
    base_url: str | None
    default_model: str
    key_env: str | None = None


BRAINS: dict[str, Brain] = {
    "local": Brain("the embedded model (offline, no server)", "local", None, ""),
    "openai": Brain("OpenAI", "openai", None, "gpt-4o-mini", "OPENAI_API_KEY"),
    **{
        kind: Brain(
            server.title,
            server.provider,
            f"http://127.0.0.1:{server.port}" + ("" if server.provider == "textgen" else "/v1"),
            {"ollama": "llama3.2", "textgen": ""}.get(kind, "MODEL-NAME"),
        )
        for kind, server in SERVERS.items()
    },
}

VOICES: dict[str, tuple[str, str | None]] = {
    "piper": ("the embedded piper voice (offline)", None),
    "espeak": ("eSpeak NG (offline, robotic, tiny)", None),
    "openai": ("OpenAI speech", "OPENAI_API_KEY"),
    "elevenlabs": ("ElevenLabs", "ELEVENLABS_API_KEY"),
}


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(llm: str, model: str | None, tts: str, voice: str | None, character: str) -> str:
    brain = BRAINS[llm]
    lines = [
        f"# Entity Bridge configuration written by `entity-bridge init` ({brain.title} + {VOICES[tts][0]}).",
        "# Every key is documented in bridge.example.toml; check it with `entity-bridge check`.",
        "# Secrets are never written here: set the environment variables named by `*_env` keys.",
        "",
        "[server]",
        'host = "127.0.0.1"            # any other address needs a token (token_env)',
        "port = 8765",
        "",
    ]
    llm_module = "local"
    if llm != "local":
        llm_module = "brain"
        chosen_model = model or brain.default_model
        lines += ["[modules.brain]", 'kind = "llm"', f"provider = {_q(brain.provider)}"]
        if brain.base_url:
            lines.append(f"base_url = {_q(brain.base_url)}   # {brain.title}'s default address")
        if chosen_model:
            note = "   # one of the server's models (e.g. `ollama list`)" if brain.base_url else ""
            lines.append(f"model = {_q(chosen_model)}{note}")
        if brain.key_env:
            lines.append(f"api_key_env = {_q(brain.key_env)}   # export {brain.key_env}=... before starting")
        lines += ["timeout = 30", ""]
    elif model:
        lines += ["[modules.local]", 'kind = "llm"', 'provider = "local"', f"model = {_q(model)}   # smollm2-135m: the tiny one", ""]
    tts_module = tts
    if tts in ("openai", "elevenlabs"):
        tts_module = "voice"
        lines += ["[modules.voice]", 'kind = "tts"', f"provider = {_q(tts)}"]
        if voice:
            lines.append(f"voice = {_q(voice)}")
        lines += [f"api_key_env = {_q(VOICES[tts][1] or '')}   # export it before starting", ""]
    lines += [
        f"[characters.{character}]",
        f"display_name = {_q(character.capitalize())}",
        'persona = "Describe the character here: who they are, where, how they speak. Short answers suit games."',
        f"modules = {{ llm = {_q(llm_module)}, tts = {_q(tts_module)} }}",
    ]
    if voice and tts not in ("openai", "elevenlabs"):
        lines.append(f"voice = {_q(voice)}")
    if llm != "local":
        lines.append('fallback_llms = ["local"]      # the embedded model answers if the server is down')
    return "\n".join(lines) + "\n"


def _ask(question: str, options: list[str], default: str, stdin: TextIO, stdout: TextIO) -> str:
    stdout.write(f"{question} [{'/'.join(options)}] (default {default}): ")
    stdout.flush()
    answer = stdin.readline().strip()
    while answer and answer not in options:
        stdout.write(f"  one of {', '.join(options)}: ")
        stdout.flush()
        answer = stdin.readline().strip()
    return answer or default


def run_init(
    out: Path, llm: str | None, model: str | None, tts: str | None, voice: str | None, character: str, force: bool,
    stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
) -> str:
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to replace it")
    interactive = stdin.isatty()
    if llm is None:
        llm = _ask("LLM", list(BRAINS), "local", stdin, stdout) if interactive else "local"
    if tts is None:
        tts = _ask("voice", list(VOICES), "piper", stdin, stdout) if interactive else "piper"
    if llm not in BRAINS:
        raise ConfigError(f"unknown LLM choice {llm!r}; one of {', '.join(BRAINS)}")
    if tts not in VOICES:
        raise ConfigError(f"unknown voice choice {tts!r}; one of {', '.join(VOICES)}")
    text = render(llm, model, tts, voice, character)
    tmp = out.with_name(out.name + ".new")
    tmp.write_text(text, encoding="utf-8")
    try:
        load_config(tmp)  # the real loader: a file we write must load
    finally:
        tmp.unlink()
    out.write_text(text, encoding="utf-8")
    keys = sorted({k for k in (BRAINS[llm].key_env, VOICES[tts][1]) if k})
    then = f"; set {', '.join(keys)} in the environment" if keys else ""
    return f"wrote {out} ({BRAINS[llm].title} + {VOICES[tts][0]}){then}; next: entity-bridge check --config {out}"
