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

Echoes. Small models also parrot the player: asked "This is the best ale I've ever had.",
the 0.5B default answered with exactly that line, 4 times in 10 (docs/quickstart.md). Two
parts stop it. `opening_bans` names the tokens a reply may not start with (the first word
of the player's line, as the model would spell it), which the `local` module forbids at the
reply's first token: the echo cannot begin. (It can behind a mark: the bench's "— You found
the letter ..." and "— Open the gate." began with a dash the ban does not cover; the bans of a
retry skip such marks, so the dropped echo's own first word is banned.) The ban holds until the
reply's first spoken word (`awaiting_speech`): the default character opens nearly every reply
with "*smiles*", so a ban on the first token only ever met the "*". As a backstop, a guard given `echo_of` (the
player's line) drops opening clauses that `echoes` that line, and the reply goes on from the
next clause; `echo_only` says the whole reply was an echo (the module then tries again).
A later clause of `LATER_ECHO_WORDS` or more that `echoes` the line is dropped too (the
0.5B model answered "Open the gate. We have a wounded man with us." with "The gate is open.
We have a wounded man with us.").
`echoes` is also what the bench and the live test count with. It compares spoken words only:
*actions* and [tags] are not speech, and counted as words they hid the bench's echoes ("*smiles*
We should leave before the guard changes shifts." had 7 of 9 words in the line, under 80%).
A retry after an echo-only try also gets `copy_bans`: tokens that would carry on a run of two
words of the player's line, so the model has to say something of its own.

Restatements. With the verbatim echo stopped, the 0.5B model said the player's line back AT
the player: "I found the missing letter under the old oak tree." -> "You found a missing
piece under that old tree.", "We have a wounded man with us." -> "You have a wounded person
with you.", "Follow me and stay close." -> "You should follow me and keep close." (the bench's
voice conversation, 4 of 9 replies). `echoes` counts those too (`restates`): a clause or
sentence of the line is compared under the changes a restatement makes, which are:
- the speaker's and the listener's pronouns swap (I/me/we/us <-> you, my/our <-> your), and
  articles and possessives trade places ("the guard" -> "your guard"); a plural or a verb's
  -s comes and goes ("guards change" -> "guard changes");
- a command comes back with the player as its subject ("Open the gate." -> "You'll open the
  gate.").
A question restated as a statement is an answer ("Do you have a room?" -> "I have a room
upstairs."), and a command restated in the first person is a yes ("Follow me." -> "I'll
follow you."): neither is a restatement. `copy_bans` also forbids carrying on a run of the
line as a restatement would word it (`restated_lines`), so the model does not start down
"You found the missing ..." at all.

The first clause, word by word (`stream_first`). Holding the first clause until its
punctuation made the first audio wait for it (a whole sentence when it has no comma: 12-15
tokens of the 0.5B model). With `stream_first`, the first spoken clause goes out a whole
word at a time as soon as no ending can make it an echo (`cannot_echo`: it is no run of the
line's words, and more of its words miss the line than a quarter of the line's length, so
`echoes` is false however it goes on); the TTS segmenter then cuts the first segment when
it has enough words. After an echo was dropped, and for the clauses after the first, text
goes out a clause at a time as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

_WORD = re.compile(r"[\w']+")
_ACTION = re.compile(r"\*[^*]*\*")
#: What the turn's reply parser never speaks: *actions* and [tags] (an unclosed one runs to the end).
#: An inline [[call]] is kept: the turn acts on it, so a reply of only a call is an answer.
_UNSPOKEN = re.compile(r"\*[^*]*(?:\*|\Z)|(?<!\[)\[(?!\[)[^\]]*(?:\]|\Z)")
#: An action clause the model ended with a colon, as if naming a speaker: "*smiles*:".
_ACTION_COLON = re.compile(r"(\*[^*]*\*)\s*:(\s*)$")
# A clause ends at punctuation (or a newline) followed by whitespace; the whitespace stays
# with the next clause.
_CLAUSE_END = re.compile(r"[,;:.!?…]+[\"')\]*]*(?=\s)|\n")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]*]*\s*$")
#: What may come before a reply's first word without being speech (not `*`: actions are kept).
_NOISE = re.compile(r"^[^\w*]+")
#: A clause after the reply's speech began is dropped as an echo only from this many spoken
#: words: "the old mill," may be said again in an answer, "We have a wounded man with us." not.
LATER_ECHO_WORDS = 4
#: The longest run of the player's line's words a reply may say on its first try (`copy_bans`).
COPY_RUN = 3
#: What may come before a reply's first spoken word: marks, *actions* and [tags].
_BEFORE_SPEECH = re.compile(r"^(?:[^\w*\[]+|\*[^*]*\*|\[[^\]]*\])+")
#: Marks a dropped echo loses before it is sent as the last resort ("— Open the gate.");
#: quotes stay, as they have a closing twin.
_LEADING_MARKS = "-–—―:;,.…"


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _spoken_words(text: str) -> list[str]:
    """The words of `text` that would be spoken: not those of *actions* or [tags]."""
    return _words(_UNSPOKEN.sub(" ", text))


def _common(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two word lists (both are short)."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def _is_run(part: list[str], whole: list[str]) -> bool:
    n = len(part)
    return any(whole[i : i + n] == part for i in range(len(whole) - n + 1))


#: Words a restatement changes, folded to one spelling so the line and the reply compare
#: (`_folded`): pronouns of the two speakers (with `persons`), articles and possessives,
#: and a pronoun's contraction split into its two words.
_PERSON = frozenset({"i", "me", "we", "us", "you", "myself", "ourselves", "yourself", "yourselves"})
_SUBJECTS = frozenset({"i", "we", "you"})
_POSSESSIVE = frozenset({"my", "mine", "our", "ours", "your", "yours"})
_ARTICLE = frozenset({"the", "a", "an", "this", "that", "these", "those"})
#: Auxiliaries and modals, left out: "I found" comes back as "You've found", "We should
#: leave" as "I'll leave".
_AUXILIARY = frozenset({"am", "are", "is", "be", "have", "has", "had", "will", "would", "shall", "should", "can", "could", "may", "might", "must", "do", "does", "did"})
_CONTRACTED = {"m": "am", "re": "are", "ll": "will", "ve": "have", "d": "would"}
#: What a command said back to the player puts before it: "You (should|'ll|must|need to) ...".
_MODALS = frozenset({"will", "shall", "should", "must", "can", "could", "would", "may", "might", "need", "have", "had", "ought"})
_SWAPS = {
    "i": "you", "me": "you", "we": "you", "us": "you", "my": "your", "mine": "yours", "our": "your", "ours": "yours",
    "myself": "yourself", "ourselves": "yourselves", "am": "are", "you": "I", "your": "my", "yours": "mine", "yourself": "myself",
}  # fmt: skip


def _split_contraction(word: str) -> list[str]:
    """ "i'll" -> ["i", "will"], "you're" -> ["you", "be"]; other words as they are."""
    head, _, tail = word.partition("'")
    if head in _PERSON and tail in _CONTRACTED:
        return [head, _CONTRACTED[tail]]
    return [word]


def _folded(words: list[str], persons: bool) -> list[str]:
    """`words` as a restatement compares them: see `_PERSON` and `_AUXILIARY`; plurals and a
    verb's -s dropped."""
    out: list[str] = []
    for word in (part for w in words for part in _split_contraction(w)):
        if persons and word in _PERSON:
            out.append("<person>")
        elif word in _ARTICLE or (persons and word in _POSSESSIVE):
            out.append("<the>")
        elif word in _AUXILIARY:
            continue
        elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            out.append(word[:-1])
        else:
            out.append(word)
    return out


def _without_addressee(words: list[str]) -> list[str]:
    """`words` (contractions split) less a leading "you [modal] [to|better]": a command
    said back with the player as its subject ("You should follow me" -> "follow me")."""
    if not words or words[0] != "you":
        return words
    rest = words[1:]
    if rest and rest[0] in _MODALS:
        rest = rest[1:]
        if rest and rest[0] in ("to", "better"):
            rest = rest[1:]
    return rest


def _statements(line: str) -> list[tuple[list[str], bool]]:
    """The parts of `line` a restatement can say back, each as (words, has a speaker's pronoun):
    every sentence that is not a question, and each clause of it when it has several."""
    parts: list[tuple[list[str], bool]] = []
    for sentence in re.findall(r"[^.!?…]+[.!?…]*", line):
        if sentence.rstrip().endswith("?"):
            continue  # "Do you have a room?" -> "I have a room upstairs." answers it
        clauses = [c for c in re.split(r"[,;:]", sentence) if _words(c)]
        for part in [sentence] + (clauses if len(clauses) > 1 else []):
            words = _words(part)
            if len(words) >= 2:
                parts.append((words, any(p in _SUBJECTS for w in words for p in _split_contraction(w))))
    return parts


def _restated_forms(said: list[str], heard: list[str], personal: bool) -> tuple[list[str], list[str]] | None:
    """(reply, line part) as a restatement of that part is compared, or None while the reply
    is nothing but a "you should" that may still become one."""
    if personal:  # a statement about the speakers: "I found ..." -> "You found ..."
        return _folded(said, True), _folded(heard, True)
    # A command or a statement about others: its pronouns stay ("follow me" said back as
    # "you should follow me"), as "I'll follow you" is a yes, not a restatement.
    split = [part for word in said for part in _split_contraction(word)]
    rest = _without_addressee(split)
    if not rest and split:
        return None
    return _folded(rest, False), _folded(heard, False)


def _restated_pairs(said: list[str], line: str) -> Iterator[tuple[list[str], list[str]] | None]:
    """`_restated_forms` of the reply's words against each part of `line` (`_statements`):
    what `restates` and `cannot_echo` both judge."""
    return (_restated_forms(said, heard, personal) for heard, personal in _statements(line))


def _similar(said: list[str], heard: list[str]) -> bool:
    """The echo test on two word lists: a run of three or more, or most of both in order."""
    if len(said) < 2 or len(heard) < 2:
        return False
    if len(said) >= 3 and _is_run(said, heard):
        return True
    common = _common(heard, said)
    return common >= 2 and common >= 0.6 * len(heard) and common >= 0.8 * len(said)


def _cannot_become_similar(said: list[str], heard: list[str]) -> bool:
    """No continuation of `said` makes `_similar(said + more, heard)` true (see `cannot_echo`)."""
    if len(heard) < 2:
        return True
    if len(said) < 2 or _is_run(said, heard):
        return False
    return 4 * (len(said) - _common(heard, said)) > len(heard)


def restates(line: str, text: str) -> bool:
    """Does `text` say the player's `line` (a statement or a command in it) back at them?

    "You found a missing piece under that old tree." restates "I found the missing letter
    under the old oak tree."; "You'll open the gate." restates "Open the gate."; "I'll
    follow you and stay close." (a yes) and "I have a room upstairs." (an answer to "Do
    you have a room?") do not. See the module's doc for the changes compared under.
    """
    return any(forms is not None and _similar(*forms) for forms in _restated_pairs(_spoken_words(text), line))


def _swapped(word: str) -> str:
    """One word as the listener says it back: "i" -> "you", "we're" -> "you're", "your" -> "my"."""
    head, apostrophe, tail = word.partition("'")
    if not apostrophe:
        return _SWAPS.get(word, word)
    if head in ("i", "we") and tail in ("m", "re"):
        return "you're"
    if head == "you" and tail == "re":
        return "I'm"
    return _SWAPS.get(head, head) + apostrophe + tail if head in _PERSON and tail in _CONTRACTED else word


@lru_cache(maxsize=64)  # asked at every token of a reply (`copy_bans`)
def restated_lines(line: str) -> tuple[str, ...]:
    """The line's statements about the speakers worded as said back ("I found the letter" ->
    "you found the letter"), for `copy_bans`: the same words in a row are a restatement."""
    return tuple(" ".join(_swapped(w) for w in heard) for heard, personal in _statements(line) if personal)


def echoes(line: str, text: str) -> bool:
    """Does `text` (a clause or sentence of a reply) repeat the player's `line`?

    Yes when it is made of the line's words: three or more of them in an unbroken run
    ("I'll burn this place down" to "Hand over your coin or I'll burn this place down!"), or,
    in order with small changes, at least 60% of the line and 80% of the text ("This was
    the best ale I've ever had."). A two-word line counts when repeated whole ("Hello
    there!"). One word in common ("Farewell!" to "I must be going. Farewell!") is not an
    echo: that is how people answer. Only `text`'s spoken words count: "*smiles* Follow me
    and stay close." echoes "Follow me and stay close. The bridge is not safe." A
    restatement at the player counts too (`restates`): "You found a missing piece under that
    old tree." to "I found the missing letter under the old oak tree."
    """
    return _similar(_spoken_words(text), _words(line)) or restates(line, text)


def cannot_echo(line: str, text: str) -> bool:
    """True when no continuation of `text` (a clause's start) can make `echoes(line, ...)` true.

    `echoes` needs the clause to be a run of the line's words, or to share (in order) at
    least 80% of its words and 60% of the line's. A start that is not a run stays none
    whatever follows; and with `u` of its words outside the longest common subsequence,
    any ending long enough to reach 80% makes the clause longer than 1.25 times the line
    once `u` exceeds a quarter of the line's words, more than the line could share.
    The same holds for each way `restates` compares (each part of the line, under its
    changes), and a start that is only "You should" may still turn into a restated command.
    """
    said = _spoken_words(text)
    if not _cannot_become_similar(said, _words(line)):
        return False
    return all(forms is not None and _cannot_become_similar(*forms) for forms in _restated_pairs(said, line))


def first_sentence(text: str) -> str:
    """The reply up to its first `.!?` (all of it when there is none)."""
    match = re.search(r"[.!?…]+[\"')\]*]*(?=\s|$)", text.strip())
    return text.strip()[: match.end()] if match else text.strip()


def _without_noise(text: str) -> str:
    """`text` from its first word or *action* on: dashes, quotes, colons before it are noise."""
    return _NOISE.sub("", text, count=1)


def _from_first_spoken_word(text: str) -> str:
    """`text` from its first spoken word on: marks, *actions* and [tags] before it skipped."""
    return _BEFORE_SPEECH.sub("", text, count=1)


def opening_bans(line: str, tokenize: Callable[[str], list[int]]) -> set[int]:
    """Tokens a reply to `line` may not begin its speech with: the line's first spoken word,
    as the first token of the word alone and with a leading space (BPE spells both).

    Dashes, quotes, *actions* and other marks before the first word are skipped: a dropped
    echo "*smiles* — You found the letter." bans "You" on the next try (the `local` module
    applies the ban at the reply's first spoken word, see `awaiting_speech`, so the `*` of
    an action is never banned). Nothing is banned for a one-word line (answering "Hello!"
    with "Hello!" is fine).
    """
    stripped = _from_first_spoken_word(line.strip())
    first = _WORD.match(stripped)
    if first is None or len(_words(stripped)) < 2:
        return set()
    bans: set[int] = set()
    for variant in (stripped, " " + first.group(0)):
        tokens = tokenize(variant)
        if tokens:
            bans.add(tokens[0])
    return bans


def speech_began(reply: str) -> bool:
    """Has the reply so far a spoken word (one outside *actions* and [tags])?"""
    return bool(_spoken_words(reply))


def awaiting_speech(reply: str) -> bool:
    """Has the reply so far no spoken word yet, and is it not inside an *action* or [tag]?

    While it is true, the next token starts the reply's speech (or more marks, or an
    action): that is where `opening_bans` apply. Inside an action any word may come.
    """
    return not speech_began(reply) and not _inside_unspoken(reply)


def _inside_unspoken(reply: str) -> bool:
    """Does the reply so far end inside an open *action* or [tag]?"""
    return reply.count("*") % 2 == 1 or reply.rfind("[") > reply.rfind("]")


def copy_bans(line: str, reply: str, tokenize: Callable[[str], list[int]], longest: int = 1) -> set[int]:
    """Tokens that would make the reply so far say more than `longest` words of the player's
    `line` in an unbroken run.

    When the reply's last `longest` spoken words are a run of the line, the first token of
    the word that follows that run in the line (with a leading space, capitalised or not,
    and without the space after a mark or a space) may not come next. With `longest = 1`
    (retries after an echo-only try) the reply shares no two adjacent words with the line,
    so it can be neither a run of it nor most of it in order (`echoes`); that also forbids
    fair phrases ("the guard"). A first try gets `COPY_RUN`: seen from the 0.5B model, with
    the line's first word banned it said "You should leave before the guard changes
    shifts." and "You can follow me and stay close." (an opening the echo check lets pass).
    The same holds for the line as a restatement words it (`restated_lines`): on a first try
    "You found the missing" may not go on with "letter", on a retry "You" not with "found".
    """
    if _inside_unspoken(reply):
        return set()  # inside an action or a tag: not speech
    said = _spoken_words(reply)
    if len(said) < longest:
        return set()
    after_word = bool(reply) and (reply[-1].isalnum() or reply[-1] in "'_")
    tail = [_split_contraction(w)[0] for w in said[-longest:]]  # "You've" goes on as "You" would
    bans: set[int] = set()
    for words in (line, *restated_lines(line)):
        originals = _WORD.findall(words)
        heard = [_split_contraction(w.lower())[0] for w in originals]
        for i in range(longest - 1, len(heard) - 1):
            if heard[i - longest + 1 : i + 1] != tail:
                continue
            following = originals[i + 1]
            spellings = {following, following.lower(), following[:1].upper() + following[1:]}
            variants = {" " + w for w in spellings} | (set() if after_word else spellings)
            for variant in variants:
                tokens = tokenize(variant)
                if tokens:
                    bans.add(tokens[0])
    return bans


@dataclass
class LoopGuard:
    ngram: int = 6
    max_sentences: int | None = None
    max_clause_chars: int = 240
    echo_of: str | None = None  # the player's line: opening clauses that echo it are dropped
    stream_first: bool = False  # release the first spoken clause a word at a time once it cannot echo
    stopped: str | None = None  # why generation should stop: "loop" or "length", else None
    later_echoes: int = 0  # clauses after the reply's speech began that echoed the line (dropped)
    _released: list[str] = field(default_factory=list)  # words released so far
    _ngrams: set[tuple[str, ...]] = field(default_factory=set)
    _clauses: list[tuple[str, ...]] = field(default_factory=list)
    _pending: str = ""
    _sentences: int = 0
    _dropped: list[str] = field(default_factory=list)  # opening clauses dropped as echoes
    _noise: bool = False  # an opening without words was dropped
    _spoke: bool = False  # words outside *actions* and [tags] were released
    _out: str = ""  # all text released so far (a tag may span clauses: "[emotion:" " sad]")
    _streaming: bool = False  # the first spoken clause is going out word by word
    _streamed: list[str] = field(default_factory=list)  # its words sent so far (one clause for the loop checks)

    @property
    def dropped(self) -> str:
        """The echoed opening that was not released (without marks before its first word)."""
        return "".join(self._dropped).strip().lstrip(_LEADING_MARKS + " \n\t")

    @property
    def released_any(self) -> bool:
        """Some words went out."""
        return bool(self._released)

    @property
    def spoke_any(self) -> bool:
        """Some words meant to be spoken (or an inline [[call]]) went out, not only *actions* or [tags]."""
        return self._spoke

    @property
    def echo_only(self) -> bool:
        """Nothing but actions went out, and the model's speech so far was an echo of the player's line."""
        return bool(self._dropped) and not self._spoke

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
            self._streaming = False
        if not self.stopped and self._may_stream():
            out.append(self._stream_words())
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

    # ------------------------------------------------------------------ first clause

    def _may_stream(self) -> bool:
        """May the pending start of the first spoken clause go out before its end?"""
        if not self.stream_first or " " not in self._pending.strip() or self._pending.count("*") % 2:
            return False  # nothing whole to send yet, or inside an *action*
        if self._streaming:
            return True
        if self._spoke or self._dropped or not _words(_ACTION.sub(" ", self._pending)):
            return False
        return self.echo_of is None or cannot_echo(self.echo_of, self._pending)

    def _stream_words(self) -> str:
        """Release the pending text up to its last space (the last word may still grow)."""
        cut = self._pending.rstrip().rfind(" ")
        if cut <= 0:
            return ""
        text, self._pending = self._pending[:cut], self._pending[cut:]
        words = _words(text)
        if self._repeats(words):
            self.stopped = "loop"
            self._pending = ""
            return ""
        if self._noise and not self._released:
            text = text.lstrip()
        sequence = self._released[-(self.ngram - 1) :] + words
        for start in range(len(sequence) - self.ngram + 1):
            self._ngrams.add(tuple(sequence[start : start + self.ngram]))
        self._released.extend(words)
        self._streamed.extend(words)
        self._note_released(text)
        self._streaming = True
        return text

    def _note_released(self, text: str) -> None:
        """Speech counts once the released text has words the reply parser would speak.

        A reply that was only "[neutral]" had a word, but the turn's parser drops the tag and
        was left with nothing to say: counted as spoken, it was not retried and the turn
        failed with an empty reply.
        """
        self._out += text
        self._spoke = self._spoke or bool(_words(_UNSPOKEN.sub(" ", self._out)))

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
        if not words and not self._released:
            # An opening without words is noise, never speech: seen as a lone ":" when the
            # player's first word was banned as the first token, and it reached the player as
            # ": I'm sorry, ..." (or stayed in front of an echo the next try replaced).
            self._noise = True
            return ""
        if self._noise and not self._released:
            clause = clause.lstrip()
        spoken = _words(_ACTION.sub(" ", clause))
        if not spoken:
            clause = _ACTION_COLON.sub(r"\1\2", clause)  # "*smiles*: We ..." is no speaker's name
        # Until the character has said something, an opening *action* does not end the echo
        # check: "*smiles*: We should leave ..." echoed the player after its action.
        if self.echo_of and not self._spoke and spoken:
            if echoes(self.echo_of, clause) or (self._dropped and echoes(self.echo_of, self.dropped + " " + clause)):
                self._dropped.append(clause)
                return ""
            if self._dropped:  # the reply starts after the echo: start it like a sentence
                clause = clause.lstrip()
                clause = clause[:1].upper() + clause[1:]
        elif self.echo_of and len(spoken) >= LATER_ECHO_WORDS and echoes(self.echo_of, clause):
            self.later_echoes += 1  # "*smiles* The gate is open. We have a wounded man with us."
            return ""
        if self._is_loop(words):
            self.stopped = "loop"
            return ""
        sequence = self._released[-(self.ngram - 1) :] + words
        for start in range(len(sequence) - self.ngram + 1):
            self._ngrams.add(tuple(sequence[start : start + self.ngram]))
        self._released.extend(words)
        self._note_released(clause)
        if words or self._streamed:
            self._clauses.append(tuple(self._streamed + words))
            self._streamed = []
        if _SENTENCE_END.search(clause):
            self._sentences += 1
            if self.max_sentences is not None and self._sentences >= self.max_sentences:
                self.stopped = "length"
        return clause
