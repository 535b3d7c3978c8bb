"""The default character on the embedded model, as a new user meets it: no loops, short, in turn.

`serve` in a fresh directory, the real model, a few player lines in one conversation. The
only config is a sampling seed for the built-in `local` module, so the run is repeatable;
the default character is the built-in one. Replies are checked for shape, not wording:
every reply is there, at most three sentences, does not repeat a sentence or a six-word run,
shows none of the prompt's machinery, and does not open by repeating the player's line
(`loop_guard.echoes`; before the fix the 0.5B model parroted the threat, the compliment and
the goodbye back word for word, see docs/quickstart.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.providers.llm.loop_guard import echoes, first_sentence
from entity_bridge_sdk import BridgeClient
from tests.serve_in_directory import serve_in_directory

pytestmark = [pytest.mark.embedded, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
LINES = [
    "Hello there!",
    "What's on the menu tonight?",
    "Heard any rumours lately?",
    "Hand over your coin or I'll burn this place down!",
    "This is the best ale I've ever had.",
    "I must be going. Farewell!",
]
SEEDED = '[modules.local]\nkind = "llm"\nprovider = "local"\nseed = 7\n'



def repeated_ngram(text: str, n: int = 6) -> tuple[str, ...] | None:
    words = re.findall(r"[\w']+", text.lower())
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            return gram
        seen.add(gram)
    return None


def test_repeated_ngram_finds_the_old_loops() -> None:
    """The check itself can fail: the old default's reply from issue 13 trips it."""
    old = "I'm a friendly, warm, curious, and sassy, just like you! I'm Mira, the Copper Kettle, ... I'm a friendly, warm, curious, and sassy, just like you!"
    assert repeated_ngram(old) == ("i'm", "a", "friendly", "warm", "curious", "and")
    assert repeated_ngram("Welcome to the Copper Kettle! The stew is hot tonight.") is None


async def test_default_character_replies_without_loops_or_echoes(tmp_path: Path) -> None:
    (tmp_path / "bridge.toml").write_text(SEEDED)
    async with serve_in_directory(tmp_path) as url:  # reads the seeded bridge.toml there
        replies = []
        async with BridgeClient.connect(url, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 10000}) as client:
            mira = await client.init_entity("npc-1", "mira")
            for line in LINES:
                result = await mira.say(line, timeout=300)
                replies.append((line, result.payload["reply"]))
        print("\n" + "\n".join(f"  {line!r} -> {reply!r}" for line, reply in replies))
        for line, reply in replies:
            assert reply.strip(), (line, reply)
            assert not echoes(line, first_sentence(reply)), ("the reply repeats the player's line", line, reply)
            assert repeated_ngram(reply) is None, (line, reply)
            sentences = [s for s in re.split(r"(?<=[.!?])\s+", reply.strip()) if s]
            assert len(sentences) <= 3, (line, reply)
            assert len(set(sentences)) == len(sentences), (line, reply)
            assert not re.search(r"\[(neutral|happy|sad|angry|surprised|afraid|disgusted)\]|<\|im_|Player:", reply), (line, reply)
