"""The warm-up primes the embedded LLM's prompt cache, so the first turn evaluates only its line.

A real bridge (in-process, real WebSocket, the Python SDK) on the tiny embedded SmolLM2
model; `bridge.server.warmup.Warmup` runs as `entity-bridge serve` runs it before READY.
Each test uses its own `n_ctx`, hence its own freshly loaded model (models are shared per
file, n_ctx and threads), so no other test's prompt can sit in the cache.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

pytest.importorskip("llama_cpp")

from bridge.providers.llm import local  # noqa: E402
from bridge.server.warmup import Warmup  # noqa: E402
from tests.conftest import make_config, start_bridge  # noqa: E402

pytestmark = pytest.mark.embedded

PERSONA = (
    "You keep the Lantern Inn at the edge of the marsh. Supper is eel pie and black bread; a bed costs "
    "six coppers. Travellers say the ferryman has not been seen for three nights. Answer in one short sentence."
)


def config(n_ctx: int, **character: Any) -> Any:
    return make_config(
        {
            "server": {"history_path": ":memory:"},
            "modules": {"smol": {"kind": "llm", "provider": "local", "model": "smollm2-135m", "n_threads": 1, "n_ctx": n_ctx, "seed": 7, "max_tokens": 24}},
            "characters": {
                "tam": {
                    "display_name": "Tam",
                    "persona": PERSONA,
                    "greeting": "Come in out of the fog, friend.",
                    "prompt_style": "compact",
                    "modules": {"llm": "smol", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"},
                    **character,
                }
            },
        }
    )


async def first_turn(n_ctx: int, connect: Any, **character: Any) -> tuple[local.GenerationStats, list[str]]:
    """Warm up as serve does, then one turn over the WebSocket: its LLM stats and the progress lines."""
    progress: list[str] = []
    async with start_bridge(config(n_ctx, **character)) as running:
        running.app.warmup = Warmup(running.app, progress=progress.append)
        with trio.fail_after(120):
            await running.app.warmup.run()
        async with connect(running) as client:
            npc = await client.init_entity("tam-1", "tam")
            with trio.fail_after(120):
                result = await npc.say("Is there any pie left tonight?")
        assert result.reply.status == "success"
        llm = await running.app.provider("smol")  # the metrics wrapper passes attributes through
        stats = llm.last_stats
        assert isinstance(stats, local.GenerationStats)
        return stats, progress


async def test_the_first_turn_reuses_the_character_prompt_primed_at_warm_up(connect: Any) -> None:
    stats, progress = await first_turn(1536, connect)
    # The persona, the greeting and the chat template were evaluated before the turn: the
    # first turn found them in the cache (before priming it found nothing: 0).
    assert stats.cached_tokens is not None and stats.cached_tokens > 60, (stats.cached_tokens, progress)
    primed = [line for line in progress if line.startswith("primed module smol with the prompt of 'tam'")]
    assert len(primed) == 1, progress
    tokens = int(primed[0].split("(")[1].split()[0])
    # All of the primed prompt but the stand-in line (a few tokens) was reused.
    assert tokens - 12 <= stats.cached_tokens < tokens, (stats.cached_tokens, tokens)


async def test_prime_prompt_false_leaves_the_first_turn_to_evaluate_everything(connect: Any) -> None:
    stats, progress = await first_turn(1600, connect, prime_prompt=False)
    assert not [line for line in progress if line.startswith("primed")], progress
    assert stats.cached_tokens == 0  # a fresh model: nothing cached before the first turn
