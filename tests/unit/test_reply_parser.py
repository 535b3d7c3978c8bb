"""ReplyParser: actions, emotion tags and speech out of a streamed LLM reply."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.character.reply_parser import (
    MAX_TAG_CHARS,
    Action,
    EmotionTag,
    Piece,
    ReplyParser,
    SpeechText,
    coalesce,
    emotion_from_tag,
    parse_reply,
)
from bridge.providers.base import EMOTIONS

CASES: list[tuple[str, list[Piece]]] = [
    ("*waves* Hello there!", [Action("waves"), SpeechText("Hello there!")]),
    ("Hello there!", [SpeechText("Hello there!")]),
    (
        "[happy] Hi *smiles warmly*. How  are\nyou?",
        [EmotionTag("happy"), SpeechText("Hi"), Action("smiles warmly"), SpeechText(". How are you?")],
    ),
    ("[emotion: sad] Oh. *sighs* I see.", [EmotionTag("sad"), SpeechText("Oh."), Action("sighs"), SpeechText(" I see.")]),
    ("[Emotion: JOY]Yes!", [EmotionTag("happy"), SpeechText("Yes!")]),
    ("You fool! [mad]", [SpeechText("You fool!"), EmotionTag("angry")]),
    ("[pause] Well [looks around] then.", [SpeechText("Well then.")]),
    ("That is **very** good.", [SpeechText("That is very good.")]),
    ("Hello *waves* there", [SpeechText("Hello"), Action("waves"), SpeechText(" there")]),
    ("*nods*", [Action("nods")]),
    ("   \n  ", []),
    ("I was about to *reach for", [SpeechText("I was about to"), Action("reach for")]),
    ("Let me check [happ", [SpeechText("Let me check")]),
    ("*  lots   of\n space  * ok", [Action("lots of space"), SpeechText("ok")]),
    ("Wait, *gasps*, what?", [SpeechText("Wait,"), Action("gasps"), SpeechText(", what?")]),
    ("[surprised][afraid] No!", [EmotionTag("surprised"), EmotionTag("afraid"), SpeechText("No!")]),
]


def run(deltas: list[str]) -> list[Piece]:
    parser = ReplyParser()
    pieces: list[Piece] = []
    for delta in deltas:
        pieces.extend(parser.feed(delta))
    pieces.extend(parser.finish())
    return pieces


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_one_shot(text: str, expected: list[Piece]) -> None:
    assert parse_reply(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_every_split_point_gives_the_same_result(text: str, expected: list[Piece]) -> None:
    """All one- and two-cut splits, and char by char: equal to the one-shot parse."""
    n = len(text)
    splits: list[list[str]] = [list(text)]
    for i in range(n + 1):
        splits.append([text[:i], text[i:]])
    for i, j in itertools.combinations(range(1, n), 2):
        splits.append([text[:i], text[i:j], text[j:]])
    for deltas in splits:
        assert coalesce(run(deltas)) == expected, deltas


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(st.sampled_from([*"ab ,.!*[]:\n", "happy", "joy", "emotion", "xyz"]), max_size=30).map("".join),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_random_texts_random_splits(text: str, cuts: list[int]) -> None:
    points = sorted({c % (len(text) + 1) for c in cuts})
    deltas = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    assert coalesce(run(deltas)) == parse_reply(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_speech_never_contains_markup_or_doubled_spaces(text: str) -> None:
    speech = "".join(p.text for p in parse_reply(text) if isinstance(p, SpeechText))
    assert "*" not in speech
    assert "  " not in speech
    assert speech == speech.strip()
    assert not any(ch.isspace() and ch != " " for ch in speech)
    for piece in parse_reply(text):
        if isinstance(piece, EmotionTag):
            assert piece.emotion in EMOTIONS


def test_speech_is_streamed_before_the_reply_ends() -> None:
    parser = ReplyParser()
    assert parser.feed("[hap") == []
    assert parser.feed("py] Hello") == [EmotionTag("happy"), SpeechText("Hello")]
    # The space is held until the next visible character decides whether it is needed.
    assert parser.feed(" ") == []
    assert parser.feed("*wav") == []
    assert parser.feed("es*") == [Action("waves")]
    assert parser.feed("!") == [SpeechText("!")]
    assert parser.finish() == []


def test_feed_after_finish_is_an_error() -> None:
    parser = ReplyParser()
    parser.finish()
    with pytest.raises(RuntimeError, match="new parser"):
        parser.feed("x")
    assert parser.finish() == []


def test_a_stray_bracket_does_not_silence_the_reply() -> None:
    tail = "and then I kept talking for quite a while about the weather, the harvest, the roads, the king and his court"
    text = "I have [ " + tail + " and more."
    assert len(tail) > MAX_TAG_CHARS
    assert parse_reply(text) == [SpeechText("I have " + tail + " and more.")]
    # Streamed char by char too.
    assert coalesce(run(list(text))) == parse_reply(text)


@pytest.mark.parametrize(
    ("tag", "emotion"),
    [
        ("happy", "happy"),
        ("joy", "happy"),
        ("emotion: sad", "sad"),
        ("Emotion=Angry", "angry"),
        ("mood: furious", "angry"),
        ("mad", "angry"),
        ("scared", "afraid"),
        ("shocked", "surprised"),
        ("disgust", "disgusted"),
        ("calm", "neutral"),
        ("pause", None),
        ("laughs softly", None),
        ("", None),
    ],
)
def test_emotion_mapping(tag: str, emotion: str | None) -> None:
    assert emotion_from_tag(tag) == emotion


def test_every_emotion_maps_to_itself() -> None:
    for emotion in EMOTIONS:
        assert parse_reply(f"[{emotion}] ok") == [EmotionTag(emotion), SpeechText("ok")]
