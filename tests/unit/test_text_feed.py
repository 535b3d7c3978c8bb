"""Routing a reply's words to per-segment TTS text streams as they are written (issue 15
item 4): each stream gets exactly its segment's words, in order, whatever way the LLM cut
its text; no word reaches a stream before the segmenter has read its lookahead."""

from __future__ import annotations

import re

import pytest

from bridge.speech.segmenter import Segmenter
from bridge.speech.text_feed import TextRouter, word_count

REPLY = (
    "Well now, traveller, the road north is closed tonight. The ferryman... he will not cross "
    "until morning — not for gold! Ask Mr. Hale at No. 5 instead."
)


def run(pieces: list[str], segmenter: Segmenter, router: TextRouter) -> tuple[list[str], dict[int, list[str | None]], list[list[tuple[int, str | None]]]]:
    said: list[str] = []
    streams: dict[int, list[str | None]] = {}
    batches: list[list[tuple[int, str | None]]] = []

    def take(routes: list[tuple[int, str | None]]) -> None:
        batches.append(routes)
        for k, text in routes:
            streams.setdefault(k, []).append(text)

    for piece in pieces:
        for segment in segmenter.feed(piece):
            said.append(segment)
            take(router.said(segment))
        take(router.wrote(piece))
    for segment in segmenter.flush():
        said.append(segment)
        take(router.said(segment))
    take(router.end_text())
    take(router.finish())
    return said, streams, batches


def cuts(text: str, how: str) -> list[str]:
    if how == "words":
        return re.findall(r"\s*\S+|\s+", text)
    if how == "chars":
        return list(text)
    if how == "chunks":
        return [text[i : i + 13] for i in range(0, len(text), 13)]
    return [text]


@pytest.mark.parametrize("how", ["words", "chars", "chunks", "whole"])
@pytest.mark.parametrize("first_words", [4, 12])
def test_every_stream_gets_exactly_its_segment(how: str, first_words: int) -> None:
    segmenter = Segmenter(first_min_words=min(4, first_words), first_max_words=first_words)
    said, streams, _ = run(cuts(REPLY, how), segmenter, TextRouter())
    assert len(said) >= 3 and sorted(streams) == list(range(len(said)))
    for k, segment in enumerate(said):
        pieces = streams[k]
        assert pieces[-1] is None and None not in pieces[:-1], "one end, last"
        assert "".join(p for p in pieces[:-1] if p) == segment + " "


def test_words_go_out_as_they_are_complete_before_their_segment_is_released() -> None:
    router = TextRouter()
    assert router.wrote("The ferry") == [(0, "The ")]  # "ferry" may go on ("ferryman")
    assert router.wrote("man will") == [(0, "ferryman ")]
    assert router.said("The ferryman will not") == []  # "not" not written yet
    assert router.wrote(" not cross") == [(0, "will "), (0, "not "), (0, None)]
    assert router.stream == 1
    assert router.end_text() == [(1, "cross ")]
    assert router.finish() == []


def test_words_past_a_third_of_max_chars_wait_for_the_segment() -> None:
    # The segmenter's long-sentence cut may move a boundary back within max_chars: only
    # words in the first third go out before the segment is released.
    router = TextRouter(max_chars=60)
    sent = router.wrote("one two three four five six seven eight nine ")
    assert "".join(t for _, t in sent if t) == "one two three four "
    assert router.said("one two three four five six") == [
        (0, "five "), (0, "six "), (0, None), (1, "seven "), (1, "eight "), (1, "nine "),
    ]  # fmt: skip
    assert router.wrote("ten ") == []  # stream 1 holds 17 characters: "ten" would pass 60 // 3


def test_marks_without_letters_travel_with_the_words() -> None:
    assert word_count("Stop — now ...") == 2
    router = TextRouter()
    router.wrote("Stop — now ... ")
    assert router.said("Stop — now") == [(0, None)]  # the routed marks came along
    assert router.finish() == []
