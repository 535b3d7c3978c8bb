"""The face a game sees: `ai.countenance` over a real WebSocket, on fresh entities.

Issue 15 item 5: the bridge used to decide a segment's emotion on the segment alone (a
clause such as "A dragon?") and to show a fresh face's first emotion at half strength or
not at all. Both are checked here through `tts.say` with the espeak voice.
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge

pytestmark = pytest.mark.embedded

AUDIO_OUT = {"sample_rate": 16000, "chunk_ms": 40, "lead_ms": 0}


def config(countenance: dict[str, Any]) -> Any:
    modules = {"llm": "echo", "tts": "espeak", "stt": "none", "vad": "none", "countenance": "face"}
    return parse_config(
        {
            **ECHO_CONFIG,
            "modules": {**ECHO_CONFIG["modules"], "face": {"kind": "countenance", **countenance}},
            "characters": {"watch": {"display_name": "Watch", "modules": modules, "expressions": {"afraid": "wide_eyes"}}},
        },
        "test",
    )


async def test_a_fresh_face_reads_the_whole_line_not_its_first_clause(connect) -> None:
    # The segmenter sends "A dragon?" alone first; the table finds nothing in it, while the
    # rest of the line ("Run", "danger") reads afraid. The first face must show afraid.
    line = "A dragon? Here, in our village? Run, all of you, we are in danger!"
    async with start_bridge(config({"provider": "tags"})) as running:
        async with connect(running, audio_out=AUDIO_OUT, visemes="none") as client:
            watch = await client.init_entity("watch-1", "watch")
            result = await watch.speak(line)
    starts = result.of_type("ai.speech.start")
    assert starts[0].payload["text"] == "A dragon?"  # the clause the face used to be decided on
    faces = result.of_type("ai.countenance")
    assert faces and faces[0].payload["speech"] == starts[0].payload["speech"]
    assert faces[0].payload["emotion"] == "afraid" and faces[0].payload["expression"] == "wide_eyes"
    # The first emotion is shown at the classifier's strength, not halved by smoothing.
    assert faces[0].payload["intensity"] >= 0.6
    statuses = result.of_type("ai.status")
    assert statuses and statuses[0].payload["mood"] == "afraid"


async def test_each_fresh_entity_shows_its_first_emotion(connect) -> None:
    lines = {
        "neutral": "The ferry leaves at noon from the east pier.",
        "sad": "I miss my brother. He is gone, and the house is quiet.",
        "disgusted": "Ugh, this stew is rotten, the stench is foul.",
    }
    async with start_bridge(config({"provider": "tags"})) as running:
        async with connect(running, audio_out=AUDIO_OUT, visemes="none") as client:
            for n, (emotion, line) in enumerate(lines.items()):
                entity = await client.init_entity(f"watch-{n}", "watch")
                result = await entity.speak(line)
                faces = result.of_type("ai.countenance")
                assert faces[0].payload["emotion"] == emotion, (line, faces[0].payload)
                assert (faces[0].payload["intensity"] == 0) == (emotion == "neutral")
                await entity.remove()


async def test_the_embedding_face_reads_joy_that_the_old_centroids_read_as_anger(connect) -> None:
    # The `embedding` classifier used to take the nearest prototype centroid, and lines
    # exclaiming with relief or joy ("You found my ring!") landed nearest to anger. The trained
    # layer (bench/countenance_train.py, fitted on the prototypes and set C) reads them happy.
    # Checked once against the centroid classifier: both lines came out angry. They are set-A
    # lines (the set that chose the layer's settings, never its training data), and the layer
    # gives happy a clear lead on both (0.75 vs 0.13, 0.58 vs 0.13), so BLAS rounding cannot
    # flip them.
    lines = ("You found my ring! I could hug you right now.", "You came back! I was hoping I'd see you again.")
    async with start_bridge(config({"provider": "embedding"})) as running:
        async with connect(running, audio_out=AUDIO_OUT, visemes="none") as client:
            for n, line in enumerate(lines):
                entity = await client.init_entity(f"glad-{n}", "watch")
                result = await entity.speak(line, timeout=120)
                faces = result.of_type("ai.countenance")
                assert faces, result.events
                assert faces[0].payload["emotion"] == "happy", (line, faces[0].payload)
                assert faces[0].payload["expression"] == "happy" and faces[0].payload["intensity"] > 0.3
                await entity.remove()
