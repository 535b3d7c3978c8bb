"""One `chat.history` reply: a page of the conversation that fits in one frame.

A history can hold more than a client will accept in one frame (long lines from before
text limits existed, or simply many lines), and a reply over the client's frame limit gets
the client disconnected (1009) with its entities lost. So a reply holds at most `limit`
messages, each text cut to `max_text_chars`, and drops its oldest messages until the encoded
frame fits in `max_frame_bytes` (the limit the hello announces, which the SDKs accept);
`more` and `before` tell the client how to ask for the older part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bridge.memory.history import HistoryMessage
from bridge.protocol.envelope import Event

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000  # the schema's maximum for `limit`
#: Room kept under the frame limit for the envelope's growth in either framing.
FRAME_MARGIN = 1024


def page_payload(messages: Sequence[HistoryMessage], more: bool, max_text_chars: int) -> dict[str, Any]:
    out = []
    for message in messages:
        item = message.to_payload()
        if len(item["text"]) > max_text_chars:
            item["text"] = item["text"][: max_text_chars - 1] + "…"
        if len(item["speaker"]) > 200:
            item["speaker"] = item["speaker"][:199] + "…"
        out.append(item)
    payload: dict[str, Any] = {"messages": out}
    if more and messages:
        payload["more"] = True
        payload["before"] = messages[0].id
    return payload


def fit_page(
    request: Event,
    newest_first_plus_one: Sequence[HistoryMessage],
    limit: int,
    max_text_chars: int,
    max_frame_bytes: int,
    encoded_size: Callable[[Event], int],
) -> Event:
    """The success reply to `request`: `newest_first_plus_one` is up to `limit + 1` messages,
    oldest first (one more than asked shows whether older ones exist)."""
    messages = list(newest_first_plus_one)
    more = len(messages) > limit
    if more:
        messages = messages[len(messages) - limit :]
    budget = max_frame_bytes - FRAME_MARGIN
    reply = request.reply("success", page_payload(messages, more, max_text_chars))
    size = encoded_size(reply)
    while size > budget and messages:
        # Drop a share proportional to the excess (at least one): a few encodes, not one per message.
        drop = max(1, int(len(messages) * (size - budget) / size) + 1)
        messages = messages[drop:]
        more = True
        reply = request.reply("success", page_payload(messages, more, max_text_chars))
        size = encoded_size(reply)
    return reply
