"""Segmenter: sentence and clause cuts for TTS, streamed or whole."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.speech.segmenter import Segmenter


def whole(text: str, **kwargs: object) -> list[str]:
    seg = Segmenter(**kwargs)  # type: ignore[arg-type]
    return seg.feed(text) + seg.flush()


def streamed(deltas: list[str], **kwargs: object) -> list[str]:
    seg = Segmenter(**kwargs)  # type: ignore[arg-type]
    out: list[str] = []
    for delta in deltas:
        out.extend(seg.feed(delta))
    return out + seg.flush()


RUN_ON = (
    "So the caravan rolled on through the valley, past the old mill where the miller's daughter "
    "used to sing, past the bridge that the river took two winters ago, past the shrine of the "
    "nameless saint and the orchard whose apples nobody dares to pick, and on into the hills where "
    "the road narrows and the wind bites, until at last, long after the moon had set and the "
    "lanterns had burned down to nothing, we reached the gate of the monastery and knocked, and "
    "knocked again, and waited there in the cold for an answer that never came"
)

CASES: list[tuple[str, list[str]]] = [
    ("Dr. Smith paid $29.99 for 3.5 kg. Then he left!", ["Dr. Smith paid $29.99 for 3.5 kg.", "Then he left!"]),
    ("Wait... what?", ["Wait... what?"]),
    ("I said no. No!", ["I said no.", "No!"]),
    ("The U.S. Army met the U.K. Navy. It rained.", ["The U.S. Army met the U.K. Navy.", "It rained."]),
    ("I read J. R. R. Tolkien. Did you?", ["I read J. R. R. Tolkien.", "Did you?"]),
    ("Take apples, e.g. red ones. Or pears, i.e. the best.", ["Take apples, e.g. red ones.", "Or pears, i.e. the best."]),
    ("Mr. and Mrs. Green met St. Clair vs. Dr. Who.", ["Mr. and Mrs. Green met St. Clair vs. Dr. Who."]),
    ("It costs $29. Cheap!", ["It costs $29.", "Cheap!"]),
    ("I paid $29. for two. Fair?", ["I paid $29. for two.", "Fair?"]),
    ("Turn to No. 5 now. Go.", ["Turn to No. 5 now.", "Go."]),
    ('He said "Stop!" and ran. "Why?" she asked.', ['He said "Stop!" and ran.', '"Why?" she asked.']),
    ("Really?! Yes. Wow!!! Ok.", ["Really?!", "Yes.", "Wow!!!", "Ok."]),
    ("Hmm… well, fine.", ["Hmm… well, fine."]),
    ("We met at 3:30, then 1,000 people came.", ["We met at 3:30,", "then 1,000 people came."]),
    # First segment: cut at the first clause boundary with >= 4 words before it.
    (
        "Well, I suppose that is true, but I am not sure about the rest of it.",
        ["Well, I suppose that is true,", "but I am not sure about the rest of it."],
    ),
    ("Ah well - you came back at last, my friend.", ["Ah well - you came back at last,", "my friend."]),
    ("Oh — you came back at last; my old friend.", ["Oh — you came back at last;", "my old friend."]),
    # Only the first segment is cut early; later sentences keep their commas.
    (
        "Yes. Later, when the sun is down, we shall talk again.",
        ["Yes.", "Later, when the sun is down, we shall talk again."],
    ),
    # No clause boundary: the first segment ends after 12 words at the latest.
    (
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen.",
        ["one two three four five six seven eight nine ten eleven twelve", "thirteen fourteen."],
    ),
    ("A list:\nfirst\nsecond", ["A list:", "first", "second"]),
    ("...", []),
    ("  spaced    out   words  ", ["spaced out words"]),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_whole_text(text: str, expected: list[str]) -> None:
    assert whole(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_streamed_char_by_char_and_every_single_cut(text: str, expected: list[str]) -> None:
    assert streamed(list(text)) == expected
    for i in range(len(text) + 1):
        assert streamed([text[:i], text[i:]]) == expected, (text[:i], text[i:])


def test_two_cuts_everywhere_on_the_tricky_one() -> None:
    text = "Dr. Smith paid $29.99 for 3.5 kg. Then he left!"
    expected = whole(text)
    for i, j in itertools.combinations(range(1, len(text)), 2):
        assert streamed([text[:i], text[i:j], text[j:]]) == expected


def test_segments_are_released_as_soon_as_they_are_certain() -> None:
    seg = Segmenter()
    assert seg.feed("It costs $29.") == []  # "99" may follow
    assert seg.feed(" ") == []  # a lower-case word may follow ("$29. for two")
    assert seg.feed("T") == ["It costs $29."]
    # Only the first segment of an utterance is cut early at a clause.
    assert seg.feed("hat is quite fair, isn't it") == []
    assert seg.pending == "That is quite fair, isn't it"
    assert seg.flush() == ["That is quite fair, isn't it"]
    # flush() starts a new utterance: its first segment may be cut early again.
    assert seg.feed("Right then, off you go now, friend") == ["Right then, off you go now,"]


def test_long_run_on_sentence_is_cut_at_clauses_under_max_chars() -> None:
    segments = whole(RUN_ON, max_chars=120)
    assert " ".join(segments) == RUN_ON
    assert len(segments) >= 4
    assert all(len(s) <= 120 for s in segments)
    # Every cut but the first-segment one falls after a comma: no mid-phrase cuts.
    assert all(s.endswith(",") for s in segments[:-1])
    assert streamed(list(RUN_ON), max_chars=120) == segments


def test_long_sentence_without_clauses_is_cut_at_words() -> None:
    text = " ".join(["word"] * 100) + "."
    segments = whole(text, max_chars=60, clause_split=False)
    assert " ".join(segments) == text
    assert all(len(s) <= 60 for s in segments)
    assert len(segments) == 9  # 11 words per 59-char piece, 100 words
    assert streamed(list(text), max_chars=60, clause_split=False) == segments


def test_one_enormous_word_is_cut_hard() -> None:
    text = "x" * 130
    assert whole(text, max_chars=50) == ["x" * 50, "x" * 50, "x" * 30]


def test_clause_split_off_keeps_sentences_whole() -> None:
    text = "Well, I suppose that is true, but I am not sure about the rest of it, friend. Yes."
    assert whole(text, clause_split=False) == [
        "Well, I suppose that is true, but I am not sure about the rest of it, friend.",
        "Yes.",
    ]


def test_first_min_words_is_respected() -> None:
    text = "Yes, yes, of course, I will come with you, right now."
    assert whole(text, first_min_words=4) == ["Yes, yes, of course,", "I will come with you, right now."]
    assert whole(text, first_min_words=5) == ["Yes, yes, of course, I will come with you,", "right now."]
    assert whole(text, first_min_words=2) == ["Yes, yes,", "of course, I will come with you, right now."]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Segmenter(first_min_words=5, first_max_words=3)
    with pytest.raises(ValueError):
        Segmenter(max_chars=5)


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["Dr.", "U.S.", "J.", "$29.", "99", "3.5", "no.", "No!", "Wait...", "what?", "Then", "and",
                         ",", " ", " ", " ", "—", "-", ":", "\n", "Yes.", "ok", "word"]),
        max_size=40,
    ).map("".join),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=10),
    max_chars=st.sampled_from([20, 40, 300]),
)
def test_random_streams_match_whole_text(text: str, cuts: list[int], max_chars: int) -> None:
    points = sorted({c % (len(text) + 1) for c in cuts})
    deltas = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    expected = whole(text, max_chars=max_chars)
    assert streamed(deltas, max_chars=max_chars) == expected
    # No letter or digit is lost or reordered (only punctuation-only scraps may be dropped).
    assert [ch for ch in "".join(expected) if ch.isalnum()] == [ch for ch in text if ch.isalnum()]
    assert all(len(s) <= max_chars for s in expected)
    assert all(s == " ".join(s.split()) and s for s in expected)
