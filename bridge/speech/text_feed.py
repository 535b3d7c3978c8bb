"""Which words of a reply go to which segment's TTS text stream, as the LLM writes them.

A TTS that takes text while it speaks (ElevenLabs' stream-input socket) gets one stream per
segment, opened before the segment's first word is written, so the speaker can send each
word the moment it is complete instead of the whole segment when the segmenter releases it.
The segments themselves still come from `bridge.speech.segmenter` (their text is what
`ai.speech.start` carries and what heard text is cut from); this router only decides, for
every complete word, the segment it belongs to:

- a word goes to the open segment (the one not yet released) as soon as it is complete
  (followed by whitespace), because the segmenter's only undecided point is at the end of
  what it has read: a boundary before an already complete word has been decided;
- except past a third of the segmenter's `max_chars`, where its long-sentence cut may move
  a boundary back: those words wait until the segment is released;
- when the segmenter releases a segment of n words, its stream gets whatever of its first n
  words it has not had yet, then its end.

Words are counted only if they hold a letter or digit, as the segmenter drops segments
without one; such marks ("...", "—") travel with the words around them.
Callers give `wrote()` the text after they gave the segmenter the same text (and `said()`
what it released): the segmenter must have seen a word's lookahead before it is routed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

#: A routed piece: (stream index, text), or (stream index, None) for "end of its text".
Route = tuple[int, str | None]


def _counts(word: str) -> bool:
    return any(c.isalnum() for c in word)


def word_count(text: str) -> int:
    """The words of a segment as the router counts them."""
    return sum(1 for w in text.split() if _counts(w))


@dataclass
class TextRouter:
    max_chars: int = 300
    _tail: str = ""  # text after the last whitespace: a word still being written
    _words: deque[str] = field(default_factory=deque)  # complete words not routed yet
    _released: deque[int] = field(default_factory=deque)  # word counts of released segments not yet ended
    stream: int = 0  # the stream words go to now
    _sent_words: int = 0  # counted words routed to it
    _sent_chars: int = 0

    def wrote(self, text: str) -> list[Route]:
        """The LLM wrote `text` (after the segmenter read it)."""
        data = self._tail + text
        parts = data.split()
        if data and not data[-1].isspace():
            self._tail = parts.pop() if parts else data
        else:
            self._tail = ""
        self._words.extend(parts)
        return self._route()

    def said(self, segment: str) -> list[Route]:
        """The segmenter released `segment` (the next one, in order)."""
        self._released.append(word_count(segment))
        return self._route()

    def end_text(self) -> list[Route]:
        """A reply's text is complete (after the segmenter's flush was `said`): its last
        word is whole even with no whitespace after it."""
        if self._tail.strip():
            self._words.append(self._tail.strip())
        self._tail = ""
        return self._route()

    def finish(self) -> list[Route]:
        """No more text at all."""
        out = self.end_text()
        if self._words and not self._released:
            # Marks after the last word (a closing "..."): the last stream has ended.
            self._words.clear()
        return out

    def _route(self) -> list[Route]:
        out: list[Route] = []
        while True:
            if self._released:
                needed = self._released[0]
                while self._words and self._sent_words < needed:
                    self._send(out, self._words.popleft())
                if self._sent_words >= needed:
                    out.append((self.stream, None))
                    self._released.popleft()
                    self.stream += 1
                    self._sent_words = self._sent_chars = 0
                    continue
                return out
            while self._words and self._sent_chars + len(self._words[0]) + 1 <= self.max_chars // 3:
                self._send(out, self._words.popleft())
            return out

    def _send(self, out: list[Route], word: str) -> None:
        out.append((self.stream, word + " "))
        self._sent_chars += len(word) + 1
        if _counts(word):
            self._sent_words += 1
