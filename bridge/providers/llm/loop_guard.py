"""Ends a small model's reply cleanly when it starts to loop or runs past its length cap.

Small models fall into loops ("a little, a little, a little, ...", a whole sentence said
again). Sampling penalties make that rarer, not impossible, so the `local` module passes its
token stream through this guard. Sans-I/O: feed it text as it comes; it hands back the
text that may go out, and says when to stop generating.

Text is released a clause at a time (up to and including a `,;:.!?` or newline that is
followed by more text), so a clause that repeats is never shown at all, and the reply ends
at the last good clause rather than in the middle of a repeat. A clause is a loop when:
- it ends a word n-gram (default 6 words) that already occurred in the reply, or
- it repeats an earlier clause of three or more words, or
- it is the same as the three clauses before it ("no, no, no" may pass; a fourth may not).
A clause that grows past `max_clause_chars` with a repeated n-gram inside it is a loop too
(models also loop without punctuation). `max_sentences` caps the reply: after that many
sentences (ending in `.!?`) the guard stops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WORD = re.compile(r"[\w']+")
# A clause ends at punctuation (or a newline) followed by whitespace; the whitespace stays
# with the next clause.
_CLAUSE_END = re.compile(r"[,;:.!?…]+[\"')\]*]*(?=\s)|\n")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]*]*\s*$")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


@dataclass
class LoopGuard:
    ngram: int = 6
    max_sentences: int | None = None
    max_clause_chars: int = 240
    stopped: str | None = None  # why generation should stop: "loop" or "length", else None
    _released: list[str] = field(default_factory=list)  # words released so far
    _ngrams: set[tuple[str, ...]] = field(default_factory=set)
    _clauses: list[tuple[str, ...]] = field(default_factory=list)
    _pending: str = ""
    _sentences: int = 0

    def feed(self, text: str) -> str:
        """Take more model text; return what may be sent now (possibly "")."""
        if self.stopped:
            return ""
        self._pending += text
        out: list[str] = []
        while not self.stopped:
            match = _CLAUSE_END.search(self._pending)
            if match is None:
                break
            clause, self._pending = self._pending[: match.end()], self._pending[match.end() :]
            out.append(self._release(clause))
        if not self.stopped and len(self._pending) > self.max_clause_chars and self._repeats(_words(self._pending)):
            self.stopped = "loop"
            self._pending = ""
        return "".join(out)

    def finish(self) -> str:
        """The stream ended: the last clause (unless it loops)."""
        if self.stopped or not self._pending:
            self._pending = ""
            return ""
        clause, self._pending = self._pending, ""
        return self._release(clause)

    # ------------------------------------------------------------------ checks

    def _repeats(self, words: list[str]) -> bool:
        """Does a word n-gram ending inside `words` repeat one seen before (or within)?"""
        seen = set(self._ngrams)
        sequence = self._released[-(self.ngram - 1) :] + words if self.ngram > 1 else list(words)
        for start in range(len(sequence) - self.ngram + 1):
            gram = tuple(sequence[start : start + self.ngram])
            if gram in seen:
                return True
            seen.add(gram)
        return False

    def _is_loop(self, words: list[str]) -> bool:
        if not words:
            return False
        key = tuple(words)
        if len(words) >= 3 and key in self._clauses:
            return True
        if len(self._clauses) >= 3 and self._clauses[-1] == self._clauses[-2] == self._clauses[-3] == key:
            return True
        return self._repeats(words)

    def _release(self, clause: str) -> str:
        words = _words(clause)
        if self._is_loop(words):
            self.stopped = "loop"
            return ""
        sequence = self._released[-(self.ngram - 1) :] + words
        for start in range(len(sequence) - self.ngram + 1):
            self._ngrams.add(tuple(sequence[start : start + self.ngram]))
        self._released.extend(words)
        if words:
            self._clauses.append(tuple(words))
        if _SENTENCE_END.search(clause):
            self._sentences += 1
            if self.max_sentences is not None and self._sentences >= self.max_sentences:
                self.stopped = "length"
        return clause
