"""The incremental SSE decoder: the format's rules, and chunk boundaries anywhere."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.providers.llm._sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def test_basic_events_and_field_rules() -> None:
    stream = (
        b": keep-alive comment\n"
        b"data: one\n\n"
        b"event: update\nid: 7\nretry: 1500\ndata:two\ndata:  three\n\n"
        b"unknown: ignored\ndata\n\n"
        b"\n\n"  # blank lines with no data dispatch nothing
    )
    assert decode(stream) == [
        ServerSentEvent("one"),
        ServerSentEvent("two\n three", event="update", id="7", retry=1500),
        ServerSentEvent("", id="7", retry=1500),  # a bare `data` field is an empty data line
    ]


def test_all_three_line_endings() -> None:
    assert decode(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n") == [
        ServerSentEvent("a"),
        ServerSentEvent("b"),
        ServerSentEvent("c"),
    ]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    # "\r" ends one chunk, "\n" starts the next: that is one line end, not a blank line.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [ServerSentEvent("a\nb")]


def test_utf8_split_inside_a_character() -> None:
    raw = 'data: {"content": "☕ café"}\n\n'.encode()
    cut = raw.index("☕".encode()) + 1
    assert decode(raw[:cut], raw[cut:]) == [ServerSentEvent('{"content": "☕ café"}')]


def test_leading_bom_is_dropped_once() -> None:
    assert decode(b"\xef\xbb", b"\xbfdata: x\n\n") == [ServerSentEvent("x")]


def test_missing_final_blank_line_still_dispatches_at_close() -> None:
    assert decode(b"data: first\n\ndata: last\n") == [ServerSentEvent("first"), ServerSentEvent("last")]
    assert decode(b"data: unterminated") == [ServerSentEvent("unterminated")]
    assert decode(b"data: [DONE]\r\n") == [ServerSentEvent("[DONE]")]


def test_event_type_resets_after_dispatch_and_on_empty_event() -> None:
    assert decode(b"event: a\n\ndata: x\n\n") == [ServerSentEvent("x")]


def test_nothing_in_nothing_out() -> None:
    assert decode() == []
    assert decode(b"", b"", b": only a comment\r\n\r\n") == []


_event = st.builds(
    ServerSentEvent,
    data=st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30).map(
        lambda s: s.lstrip(" ")
    ),
    event=st.sampled_from(["message", "update", "ping"]),
)


def _encode(events: list[ServerSentEvent], sep: str) -> bytes:
    out = []
    for e in events:
        lines = [f": comment{sep}"] if e.event == "ping" else []
        if e.event != "message":
            lines.append(f"event: {e.event}{sep}")
        lines.append(f"data: {e.data}{sep}")
        out.append("".join(lines) + sep)
    return "".join(out).encode()


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_event, max_size=8),
    sep=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_chunking_gives_the_same_events(events: list[ServerSentEvent], sep: str, cuts: list[int]) -> None:
    raw = _encode(events, sep)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert decode(*pieces) == events
    assert decode(raw) == events
