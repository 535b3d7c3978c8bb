"""`entity-bridge init`, `check`, `say` and `chat` through the real CLI, in fresh temporary directories.

Backends are the echo LLM, eSpeak NG (a real, tiny voice) and, for `check`, fakes of the
OpenAI chat server on 127.0.0.1 (one that answers, one that rejects the key and quotes it
back, as some servers do), and a port nobody listens on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import tomllib
import wave
from pathlib import Path

import trio

from tests.fakes.openai_chat import fake_openai_chat

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'engine_sdk' / 'python'}", "ENTITY_BRIDGE_DETECT": "off"}
SECRET = "sk-test-0123456789-do-not-print"

SPEAKING = textwrap.dedent(
    """
    [server]
    history_path = ":memory:"

    [modules.scripted]
    kind = "llm"
    provider = "echo"
    replies = ["Welcome to the Copper Kettle, traveller!"]

    [characters.tester]
    modules = { llm = "scripted", tts = "espeak", stt = "none", vad = "none", countenance = "tags" }
    """
)


def cli(tmp_path: Path, *args: str, stdin: str = "", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], input=stdin, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=ENV)


async def acli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a subprocess while this test's fakes keep serving."""
    return await trio.run_process(
        [sys.executable, "-m", "bridge.cli", *args], cwd=tmp_path, env=env or ENV, capture_stdout=True, capture_stderr=True, check=False, stdin=b""
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- init


def test_init_writes_a_loadable_commented_config_without_secrets(tmp_path: Path) -> None:
    env_key = {"OPENAI_API_KEY": SECRET, "ELEVENLABS_API_KEY": SECRET}
    run = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "init", "--llm", "openai", "--tts", "elevenlabs", "--voice", "Rachel"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env={**ENV, **env_key}, stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "bridge.toml").read_text()
    assert SECRET not in text and SECRET not in run.stdout
    data = tomllib.loads(text)
    assert data["modules"]["brain"] == {"kind": "llm", "provider": "openai", "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY", "timeout": 30}
    assert data["modules"]["voice"]["api_key_env"] == "ELEVENLABS_API_KEY" and data["modules"]["voice"]["voice"] == "Rachel"
    assert data["characters"]["mira"]["modules"] == {"llm": "brain", "tts": "voice"}
    assert text.startswith("# Entity Bridge configuration written by `entity-bridge init`")
    assert "OPENAI_API_KEY" in run.stdout  # says which variables to set
    again = cli(tmp_path, "init", "--llm", "local")
    assert again.returncode == 2 and "--force" in again.stderr
    assert cli(tmp_path, "init", "--llm", "ollama", "--model", "llama3.2", "--force").returncode == 0
    ollama = tomllib.loads((tmp_path / "bridge.toml").read_text())
    assert ollama["modules"]["brain"]["base_url"] == "http://127.0.0.1:11434/v1" and ollama["modules"]["brain"]["model"] == "llama3.2"
    assert ollama["characters"]["mira"]["fallback_llms"] == ["local"]


def test_init_without_a_terminal_takes_the_offline_defaults(tmp_path: Path) -> None:
    run = cli(tmp_path, "init", "--out", "offline.toml")
    assert run.returncode == 0, run.stderr
    data = tomllib.loads((tmp_path / "offline.toml").read_text())
    assert data["characters"]["mira"]["modules"] == {"llm": "local", "tts": "piper"}
    bad = cli(tmp_path, "init", "--llm", "gpt5", "--out", "x.toml")
    assert bad.returncode == 2 and "ollama" in bad.stderr and not (tmp_path / "x.toml").exists()


# --------------------------------------------------------------------------- check


async def test_check_tries_every_module_and_says_what_to_do(tmp_path: Path) -> None:
    async with fake_openai_chat(reply="OK", api_key=None) as good, fake_openai_chat(fault="error", error_status=401, error_message=f"Incorrect API key provided: {SECRET}.") as bad:
        config = SPEAKING + textwrap.dedent(
            f"""
            [modules.good]
            kind = "llm"
            provider = "openai"
            base_url = "{good.url}"
            model = "gpt-4o-mini"

            [modules.rejected]
            kind = "llm"
            provider = "openai"
            base_url = "{bad.url}"
            model = "gpt-4o-mini"
            api_key_env = "FH_TEST_KEY"

            [modules.gone]
            kind = "llm"
            provider = "openai"
            base_url = "http://127.0.0.1:{closed_port()}/v1"
            model = "m"
            """
        )
        (tmp_path / "bridge.toml").write_text(config)
        run = await acli(tmp_path, "check", "--timeout", "120", env={**ENV, "FH_TEST_KEY": SECRET})
        out = run.stdout.decode()
        assert run.returncode == 1, out + run.stderr.decode()
        rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip() and not line.startswith(("-", " "))}
        assert set(rows) >= {"scripted", "espeak", "tags", "good", "rejected", "gone"}
        for ok in ("scripted", "espeak", "tags", "good"):
            assert " ok " in rows[ok], rows[ok]
            assert " ms " in rows[ok]
        assert "FAIL" in rows["rejected"] and "check the api key" in rows["rejected"].lower()
        assert "FAIL" in rows["gone"] and "base_url" in rows["gone"]
        assert SECRET not in out and SECRET not in run.stderr.decode()
        assert good.requests and json.loads(good.requests[-1].body)["max_tokens"] == 1  # a one-token completion
        assert "4 of 6 modules ok" in out


async def test_check_passes_when_everything_answers(tmp_path: Path) -> None:
    (tmp_path / "bridge.toml").write_text(SPEAKING)
    run = await acli(tmp_path, "check")
    assert run.returncode == 0, run.stdout.decode() + run.stderr.decode()
    assert "3 of 3 modules ok" in run.stdout.decode()


def test_check_reports_a_bad_file_with_exit_status_2(tmp_path: Path) -> None:
    (tmp_path / "bridge.toml").write_text('[characters.x]\nmodules = { llm = "nope" }\n')
    run = cli(tmp_path, "check")
    assert run.returncode == 2
    assert "config error" in run.stderr and "nope" in run.stderr
    assert "Traceback" not in run.stderr


# --------------------------------------------------------------------------- say and chat


def test_say_writes_the_wav_and_its_face(tmp_path: Path) -> None:
    (tmp_path / "bridge.toml").write_text(SPEAKING)
    run = cli(tmp_path, "say", "Hello there, traveller. Welcome!", "--character", "tester", "--wav", "line.wav")
    assert run.returncode == 0, run.stderr
    with wave.open(str(tmp_path / "line.wav")) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        seconds = wav.getnframes() / 24000
        pcm = wav.readframes(wav.getnframes())
    assert 0.8 < seconds < 10
    assert max(abs(int.from_bytes(pcm[i : i + 2], "little", signed=True)) for i in range(0, len(pcm), 2)) > 1000  # not silence
    face = json.loads((tmp_path / "line.json").read_text())
    assert face["text"] == "Hello there, traveller. Welcome!"
    assert abs(face["duration_ms"] - seconds * 1000) < 1
    assert " ".join(s["text"] for s in face["segments"]).replace("  ", " ").strip() == "Hello there, traveller. Welcome!"
    times = [v[0] for v in face["visemes"]]
    assert times == sorted(times) and times[-1] <= face["duration_ms"]
    assert {v[1] for v in face["visemes"]} - {"sil"}  # the mouth moves
    assert face["emotions"] and face["emotions"][0]["emotion"] in ("neutral", "happy", "sad", "angry", "surprised", "afraid", "disgusted")
    missing = cli(tmp_path, "say", "Hi", "--character", "ghost")
    assert missing.returncode == 2 and "tester" in missing.stderr


def test_chat_streams_replies_in_the_terminal(tmp_path: Path) -> None:
    (tmp_path / "bridge.toml").write_text(SPEAKING)
    run = cli(tmp_path, "chat", stdin="Hello!\nWhat is on the menu?\n\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("tester> Welcome to the Copper Kettle, traveller!") == 2
    assert run.stdout.count("s to first text") == 2
