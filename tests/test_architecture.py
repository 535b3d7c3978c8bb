"""The layout rule of docs/architecture.md, checked on the source: no stage imports a stage above it.

Each folder of `bridge/` is one stage; a module may import its own stage and the stages
listed after it, never one before it. `bridge/providers/base.py` holds the interfaces every
stage codes against and imports nothing of the bridge, so any stage may import it; the
speech and media stages may import nothing else of the providers. Every import is checked,
including those inside functions and `if TYPE_CHECKING:` blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BRIDGE = Path(__file__).resolve().parents[1] / "bridge"

#: Outermost first. A stage may import itself and any stage after it.
STAGES = ["cli", "tools", "server", "compat", "world", "character", "config", "config_check", "memory", "speech", "providers", "media", "protocol"]
INTERFACES = "bridge.providers.base"
#: Stages that may use the providers only through their interfaces.
INTERFACES_ONLY = {"speech", "media"}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "bridge":
        return None
    if len(parts) == 1:
        return "package"  # bridge/__init__.py: the version, importable by every stage
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(BRIDGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from bridge.media import phonemize` imports the submodule bridge.media.phonemize
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names if (BRIDGE.parent / node.module.replace(".", "/") / f"{alias.name}.py").exists()]
    return found


def violations() -> list[str]:
    problems = []
    for path in sorted(BRIDGE.rglob("*.py")):
        here = module_name(path)
        here_stage = stage_of(here)
        for line, target in imports_of(path):
            there = stage_of(target)
            if there is None or there == "package" or here_stage == "package":
                continue
            where = f"{path.relative_to(BRIDGE.parent)}:{line} ({here} imports {target})"
            if here == INTERFACES:
                problems.append(f"{where}: the interfaces module must import nothing of the bridge")
                continue
            if target == INTERFACES or target.startswith(INTERFACES + "."):
                continue
            if there not in STAGES or here_stage not in STAGES:
                problems.append(f"{where}: stage {there if there not in STAGES else here_stage!r} is not in docs/architecture.md")
            elif STAGES.index(there) < STAGES.index(here_stage):
                problems.append(f"{where}: {here_stage} may not import {there}, a stage before it")
            elif here_stage in INTERFACES_ONLY and there == "providers":
                problems.append(f"{where}: {here_stage} may use the providers only through {INTERFACES}")
    return problems


def test_no_stage_imports_an_earlier_stage() -> None:
    assert violations() == []


def test_the_check_sees_a_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule is not vacuous: an upward import planted in a copy of the tree is reported."""
    import shutil

    copy = tmp_path / "bridge"
    shutil.copytree(BRIDGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "speech" / "segmenter.py").open("a") as f:
        f.write("\nfrom bridge.character.entity import Turn  # planted\n")
    with (copy / "speech" / "vad.py").open("a") as f:
        f.write("\nfrom bridge.providers.registry import ModuleSpec  # planted\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["BRIDGE"]), "BRIDGE", copy)
    found = violations()
    assert any("speech may not import character" in p for p in found), found
    assert any("only through bridge.providers.base" in p for p in found), found


def test_every_folder_is_a_known_stage() -> None:
    folders = {p.name for p in BRIDGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    modules = {p.stem for p in BRIDGE.glob("*.py") if p.stem != "__init__"}
    assert folders | modules <= set(STAGES), (folders | modules) - set(STAGES)
