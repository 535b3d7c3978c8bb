"""`serve` with no config file finds a local LLM server: the real CLI against fakes of each server.

The probe is pointed at the fakes with `ENTITY_BRIDGE_DETECT` (the real default ports may be
taken on a shared machine); every kind is listed in each run, the absent ones on ports that
refuse connections, so the probe's choice among them is exercised too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from entity_bridge_sdk import BridgeClient
from tests.serve_in_directory import serve_in_directory
from tests.fakes.local_llm_servers import KINDS, FakeLocalServer, fake_local_server, reply_for

REPO = Path(__file__).resolve().parents[1]
TITLES = {"ollama": "Ollama", "lmstudio": "LM Studio", "llamacpp": "llama.cpp server", "vllm": "vLLM", "textgen": "text-generation-webui"}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def bridge(tmp_path: Path, targets: dict[str, int], *args: str) -> AsyncIterator[tuple[str, Path]]:
    """`serve --port 0` in an empty directory (no bridge.toml); yields its URL and its stderr file."""
    env = {**os.environ, "ENTITY_BRIDGE_DETECT": ",".join(f"{k}=127.0.0.1:{p}" for k, p in targets.items()), "PYTHONPATH": f"{REPO}:{REPO / 'engine_sdk' / 'python'}"}
    err = tmp_path / "stderr.log"
    async with serve_in_directory(tmp_path, args, env=env, stderr_log=err, ready_timeout_s=60) as url:
        yield url, err


@asynccontextmanager
async def servers(present: dict[str, list[str]]) -> AsyncIterator[tuple[dict[str, FakeLocalServer], dict[str, int]]]:
    async with AsyncExitStack() as stack:
        fakes = {kind: await stack.enter_async_context(fake_local_server(kind, models)) for kind, models in present.items()}
        ports = {kind: fakes[kind].port if kind in fakes else closed_port() for kind in KINDS}
        yield fakes, ports


@pytest.mark.embedded
@pytest.mark.parametrize("kind", KINDS)
async def test_the_default_character_talks_to_the_server_found(tmp_path: Path, kind: str) -> None:
    model = {"ollama": "llama3.2:latest", "lmstudio": "qwen2.5-7b-instruct", "llamacpp": "gemma-3-4b-it-Q4_K_M.gguf", "vllm": "Qwen/Qwen2.5-1.5B-Instruct", "textgen": "Llama-3.2-3B-Instruct-Q4_K_M.gguf"}[kind]
    async with servers({kind: [model]}) as (fakes, ports), bridge(tmp_path, ports) as (url, err):
        log = err.read_text()
        assert f"found {TITLES[kind]} at http://127.0.0.1:{ports[kind]} with models: {model}" in log
        assert f"using {TITLES[kind]} model {model}" in log
        async with BridgeClient.connect(url, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}) as client:
            mira = await client.init_entity("npc-1", "mira")
            assert mira.info["modules"]["llm"] == "detected"
            result = await mira.say("Hello!", timeout=120)
        assert result.payload["reply"] == reply_for(kind, model)
        chat = fakes[kind].chats[-1].json()
        assert chat["model"] == model and chat["stream"] is True
        assert chat["messages"][-1] == {"role": "user", "content": "Hello!"}


async def test_first_server_with_a_chat_model_wins_and_embedding_models_are_skipped(tmp_path: Path) -> None:
    present = {"ollama": ["nomic-embed-text:latest"], "llamacpp": ["phi-4-mini.gguf"], "vllm": ["meta-llama/Llama-3.1-8B-Instruct"]}
    async with servers(present) as (_, ports), bridge(tmp_path, ports) as (url, err):
        log = err.read_text()
        assert "found Ollama" not in log  # it only has an embedding model
        assert "found vLLM" in log
        assert "using llama.cpp server model phi-4-mini.gguf" in log


async def test_nothing_found_keeps_the_embedded_model(tmp_path: Path) -> None:
    async with servers({}) as (_, ports), bridge(tmp_path, ports) as (url, err):
        assert "no local LLM server found" in err.read_text()
        async with BridgeClient.connect(url) as client:
            mira = await client.init_entity("npc-1", "mira")
            assert mira.info["modules"]["llm"] == "local"


async def test_no_detect_and_a_config_file_turn_the_probe_off(tmp_path: Path) -> None:
    async with servers({"ollama": ["llama3.2:latest"]}) as (fakes, ports):
        async with bridge(tmp_path, ports, "--no-detect") as (url, err):
            async with BridgeClient.connect(url) as client:
                assert (await client.init_entity("npc-1", "mira")).info["modules"]["llm"] == "local"
        (tmp_path / "bridge.toml").write_text('[server]\nhistory_path = ":memory:"\n')
        async with bridge(tmp_path, ports) as (url, err):
            pass
        assert fakes["ollama"].http.requests == []


def test_bad_probe_list_is_reported_not_fatal(tmp_path: Path) -> None:
    env = {**os.environ, "ENTITY_BRIDGE_DETECT": "ollama=10.0.0.5:11434", "PYTHONPATH": f"{REPO}:{REPO / 'engine_sdk' / 'python'}"}
    run = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--port", "0", "--exit-on-stdin-eof"], input="", capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert "only this machine (127.0.0.1) is probed" in run.stderr
    assert run.stdout.startswith("READY ")
