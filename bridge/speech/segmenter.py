"""Cuts streaming speech text into segments for the TTS.

A TTS voice sounds best given whole sentences, but waiting for a whole first sentence
delays the first audio. So the segmenter emits each sentence as soon as its end is certain,
lets the *first* segment of an utterance end early at a clause boundary (comma, semicolon,
colon, dash, mid-sentence ellipsis) once ``first_min_words`` words have arrived, forces it
to end after ``first_max_words`` words at the latest, and splits any sentence longer than
``max_chars`` at its last clause (or, failing that, word) boundary. Line breaks always
separate segments (lists, verses).

A period is not always a sentence end. These do not split:

- abbreviations that precede a name or example: ``Mr.``, ``Dr.``, ``St.``, ``e.g.``, ``i.e.``, ``vs.``;
- initials and dotted acronyms: ``J. R. R. Tolkien``, ``the U.S. Navy``;
- numbers: ``3.5``, ``$29.99`` (no space after the point), ``No. 5``;
- any terminator followed by a lower-case word (``etc. and``, ``$29. for``,
  ``Wait... what?``, ``"Stop!" he said``);
- an ellipsis, which is a pause, not an end (it is a clause boundary).

Whether a ``.`` ends a sentence depends on what follows it, so a decision waits until the
next visible character has arrived ("$29." might be followed by "99"). Every decision
depends only on the text before that point plus that lookahead, never on how the text was
cut into ``feed`` calls: streaming character by character gives the same segments as
feeding everything at once.

Segments come out with whitespace collapsed and trimmed; text with no letter or digit
(a lone "..." or "!") is not a segment, as a TTS would only stumble on it.
"""

from __future__ import annotations

import re
from typing import Final

_TERMINATORS: Final = frozenset(".!?…")
_CLOSERS: Final = frozenset("\"')]}»”’")
_CLAUSE_MARKS: Final = frozenset(",;:")
_DASHES: Final = frozenset("—–")  # em and en dash; a spaced hyphen " - " is handled apart

#: Abbreviations (lower case, without the final point) that are followed by a name or an
#: example, so the point after them never ends a sentence.
NEVER_FINAL: Final = frozenset(
    {
        "mr", "mrs", "ms", "mx", "dr", "prof", "st", "mt", "ft", "sr", "jr", "rev", "fr",
        "gen", "col", "capt", "cpt", "lt", "sgt", "cmdr", "adm", "maj", "gov", "sen", "rep",
        "pres", "hon", "supt", "insp", "e.g", "i.e", "cf", "vs", "viz", "approx", "ca",
    }
)
#: Abbreviations that never end a sentence when a number follows (``No. 5``, ``p. 12``).
BEFORE_NUMBER: Final = frozenset({"no", "nos", "vol", "p", "pp", "fig", "ch", "sec", "art", "op", "ref"})
_DOTTED_ACRONYM: Final = re.compile(r"(?:[A-Z]\.)+[A-Z]")


def _word_count(text: str) -> int:
    return sum(1 for token in text.split() if any(ch.isalnum() for ch in token))


def _word_before(buf: str, end: int) -> str:
    """The token that ends at ``end`` (the index of its final point), without quotes or $."""
    start = end
    while start > 0 and not buf[start - 1].isspace():
        start -= 1
    return buf[start:end].lstrip("\"'([{«“‘$€£")


def _is_sentence_end(run: str, word: str, next_char: str) -> bool:
    """Whether a terminator run after ``word``, followed by ``next_char``, ends a sentence."""
    if next_char.islower():
        return False
    if "!" in run or "?" in run:
        return True
    if "…" in run or ".." in run:
        return False  # an ellipsis is a pause: a clause boundary, not a sentence end
    bare = word.lower()
    if bare in NEVER_FINAL:
        return False
    if bare in BEFORE_NUMBER and next_char.isdigit():
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. R. R. Tolkien", "George W. Bush"
    if _DOTTED_ACRONYM.fullmatch(word):
        return False  # "U.S." (its last point is the run): "the U.S. Navy"
    return True


class Segmenter:
    """Streaming sentence/clause splitter; one instance per utterance (``flush`` resets it).

    ``clause_split`` enables the early first segment (``first_min_words`` at a clause,
    ``first_max_words`` at most) and clause cuts of long sentences; with it off, only
    sentence ends, line breaks and ``max_chars`` (at a word boundary) cut.
    """

    def __init__(
        self,
        first_min_words: int = 4,
        first_max_words: int = 12,
        clause_split: bool = True,
        max_chars: int = 300,
    ) -> None:
        if first_min_words < 1 or first_max_words < first_min_words:
            raise ValueError("need 1 <= first_min_words <= first_max_words")
        if max_chars < 20:
            raise ValueError("max_chars must be at least 20")
        self.first_min_words = first_min_words
        self.first_max_words = first_max_words
        self.clause_split = clause_split
        self.max_chars = max_chars
        self._buf = ""
        self._scan = 0  # index in _buf up to which every position has been decided
        self._clauses: list[int] = []  # ends of clause boundaries seen in the current segment
        self._first = True  # no segment of this utterance emitted yet

    def feed(self, text: str) -> list[str]:
        """Add text; return the segments that are now certain."""
        self._buf += text
        return self._run(final=False)

    def flush(self) -> list[str]:
        """End of the utterance: return the rest, and get ready for a new utterance."""
        out = self._run(final=True)
        self._emit_to(len(self._buf), len(self._buf), out)
        self._first = True
        return out

    @property
    def pending(self) -> str:
        """Text received but not yet emitted (for "what was never spoken" on interrupt)."""
        return self._buf

    # ------------------------------------------------------------------ internals

    @property
    def _early_first(self) -> bool:
        """Whether the segment being read may end early (the first one, clause_split on)."""
        return self.clause_split and self._first

    def _run(self, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            if self._scan == 0:
                # A segment never starts with whitespace, even when the space after a cut
                # arrives in a later feed: positions must not depend on where feeds split.
                self._buf = self._buf.lstrip()
            cut = self._next_cut(final)
            if cut is None:
                return out
            self._emit_to(*cut, out)

    def _next_cut(self, final: bool) -> tuple[int, int] | None:
        """The next cut (segment end, rest start), or None until more text arrives."""
        cut = self._scan_for_cut(final)
        if cut is not None and cut[0] > self.max_chars:
            # A terminator run ("...", '?!"') can carry a cut past the limit by a few chars.
            return self._long_cut()
        return cut

    def _scan_for_cut(self, final: bool) -> tuple[int, int] | None:
        """Scan on from ``_scan``; return (segment end, rest start) of the first cut found.

        Returns None when the buffer is exhausted or a decision needs text not yet received.
        """
        buf = self._buf
        i = self._scan
        while i < len(buf):
            if i >= self.max_chars:
                return self._long_cut()
            char = buf[i]
            if char in _TERMINATORS:
                j = i
                while j < len(buf) and buf[j] in _TERMINATORS:
                    j += 1
                while j < len(buf) and buf[j] in _CLOSERS:
                    j += 1
                k = j
                while k < len(buf) and buf[k].isspace():
                    k += 1
                if k == len(buf) and not final:
                    self._scan = i
                    return None  # the run, the space after it or the next word is not here yet
                if j == k or k == len(buf):
                    # No space after the run ("3.5", "U.S.A"), or the end of all text
                    # (flush emits it). The run is still a pause if the text goes on.
                    i = j
                    continue
                run = buf[i:j]
                if _is_sentence_end(run, _word_before(buf, i), buf[k]):
                    return j, k
                if run.strip(".") or len(run) > 1:
                    # An ellipsis, or "!"/"?" inside a sentence ("'Stop!' he said"), is a
                    # pause; a point after an abbreviation or initial is not.
                    self._clauses.append(j)
                    if (cut := self._first_cut(j, k)) is not None:
                        return cut
                i = j
                continue
            if char == "\n" and buf[:i].strip():
                # Line breaks separate list items and verses: speak them apart.
                k = i
                while k < len(buf) and buf[k].isspace():
                    k += 1
                return i, k
            boundary = self._clause_boundary(i, final)
            if boundary == "wait":
                self._scan = i
                return None
            if boundary is not None:
                self._clauses.append(boundary[0])
                if (cut := self._first_cut(*boundary)) is not None:
                    return cut
            elif char.isspace() and self._early_first and _word_count(buf[:i]) >= self.first_max_words:
                k = i
                while k < len(buf) and buf[k].isspace():
                    k += 1
                if k < len(buf):
                    return i, k
                if not final:
                    self._scan = i
                    return None
            i += 1
        self._scan = i
        if final and len(buf) > self.max_chars:
            return self._long_cut()  # a terminator run carried the scan past the limit
        return None

    def _clause_boundary(self, i: int, final: bool) -> tuple[int, int] | str | None:
        """A clause boundary at ``i``: (end, rest start), "wait" for lookahead, or None."""
        buf = self._buf
        char = buf[i]
        if char in _CLAUSE_MARKS or char == "-":
            if char == "-" and (i == 0 or not buf[i - 1].isspace()):
                return None  # a hyphenated word, not a dash
            if i + 1 == len(buf):
                return None if final else "wait"
            if not buf[i + 1].isspace():
                return None  # "1,000", "3:30", "well-known"
            return i + 1, i + 1
        if char in _DASHES:
            return i + 1, i + 1
        return None

    def _first_cut(self, end: int, rest: int) -> tuple[int, int] | None:
        """Cut the first segment at this clause boundary if it holds enough words."""
        if self._early_first and _word_count(self._buf[:end]) >= self.first_min_words:
            return end, rest
        return None

    def _long_cut(self) -> tuple[int, int]:
        """The segment reached ``max_chars``: cut at its last clause, else word, boundary."""
        buf = self._buf
        limit = self.max_chars
        if self.clause_split:
            # Only a boundary past a third of the limit: no tiny piece before a long one.
            for end in reversed(self._clauses):
                if limit // 3 <= end <= limit:
                    return end, end
        space = buf.rfind(" ", 0, limit + 1)
        if space <= 0:
            return limit, limit  # one enormous "word": cut it hard
        return space, space

    def _emit_to(self, end: int, rest: int, out: list[str]) -> None:
        segment = " ".join(self._buf[:end].split())
        self._buf = self._buf[rest:].lstrip()
        self._scan = 0
        self._clauses.clear()
        if any(ch.isalnum() for ch in segment):
            out.append(segment)
            self._first = False
