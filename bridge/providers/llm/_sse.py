"""An incremental decoder for server-sent events (the `text/event-stream` format).

Written for the bridge rather than taken from an SDK because the servers we talk to bend
the format: text-generation-webui's harmony fork separates events with ``\\r\\n`` and never
sends ``data: [DONE]``; proxies re-chunk bytes anywhere, even between ``\\r`` and ``\\n`` or
inside a UTF-8 character. The decoder is sans-I/O: feed it bytes as they arrive, get back
the events they complete, and call :meth:`SSEDecoder.close` at the end of the body.

It follows the WHATWG rules (line ends ``\\r\\n``, ``\\r`` or ``\\n``; ``:`` starts a
comment; one optional space after the field's colon; multi-line ``data`` joined with
``\\n``; a blank line dispatches) with one deliberate leniency: at end of stream an event
that is missing its final blank line is still dispatched, since a server that forgot the
terminator did mean to send it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` objects, chunk boundaries anywhere."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # text after the last complete line
        self._skip_lf = False  # the previous chunk ended in "\r": a leading "\n" belongs to it
        self._started = False  # the byte-order mark may only appear first
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode `chunk`; return the events it completed, in order."""
        return self._feed_text(self._utf8.decode(chunk))

    def close(self) -> list[ServerSentEvent]:
        """End of stream: flush a trailing unterminated line and event, if any."""
        events = self._feed_text(self._utf8.decode(b"", final=True))
        if self._pending:
            line, self._pending = self._pending, ""
            self._line(line)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    # ------------------------------------------------------------------ internals

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        buffer = self._pending + text
        events: list[ServerSentEvent] = []
        start = 0
        length = len(buffer)
        while True:
            cr = buffer.find("\r", start)
            lf = buffer.find("\n", start)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, next_start = lf, lf + 1
            elif cr + 1 < length:
                end = cr
                next_start = cr + 2 if buffer[cr + 1] == "\n" else cr + 1
            else:  # "\r" is the last character: its "\n" may come in the next chunk
                end, next_start = cr, cr + 1
                self._skip_lf = True
            line = buffer[start:end]
            start = next_start
            if line:
                self._line(line)
            else:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
        self._pending = buffer[start:]
        return events

    def _line(self, line: str) -> None:
        if line.startswith(":"):
            return  # a comment, often a keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        # any other field is ignored, as the format requires

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._id,
            retry=self._retry,
        )
        self._data = []
        self._event = ""
        return event
