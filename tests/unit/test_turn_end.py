"""The end-of-turn judgement on the words so far (bridge/speech/turn_end.py)."""

from __future__ import annotations

import pytest

from bridge.speech.turn_end import TurnEndPolicy, classify


@pytest.mark.parametrize(
    "text",
    ["Do you have a room for the night?", "Open the gate.", "Thank you.", "I think so.", "Where are you from?", "I want to!", '"Halt."', "Yes!"],
)
def test_finished_sentences_are_complete(text: str) -> None:
    assert classify(text) == "complete"


@pytest.mark.parametrize(
    "text",
    ["I would like a room and", "I would like a room and.", "So, um,", "Um.", "I was thinking...", "I was thinking\u2026", "Give me the", "Well, if", "My name is -", "Two things:"],
)
def test_words_that_promise_more_are_trailing(text: str) -> None:
    assert classify(text) == "trailing"


@pytest.mark.parametrize("text", ["", "   ", "Open the gate", "hello there"])
def test_no_punctuation_no_judgement(text: str) -> None:
    assert classify(text) == "unknown"


def test_policy_windows_and_the_off_switch() -> None:
    policy = TurnEndPolicy(complete_ms=200, trailing_ms=1200)
    assert policy.silence_ms("Open the gate.") == 200
    assert policy.silence_ms("Open the gate and") == 1200
    assert policy.silence_ms("Open the gate") is None  # the VAD's own min_silence_ms
    assert TurnEndPolicy(enabled=False).silence_ms("Open the gate.") is None
