"""Word error rate, with the normalization that makes it measure hearing, not spelling.

A recognizer that writes "50 gold coins." for "fifty gold coins" heard every word right, so
both sides are normalized before they are compared: case, punctuation, digits spelled out
as words ("12th" -> "twelfth", "$5" -> "five dollars"), hyphens split, and a few British
and American spellings folded together (Whisper's English models write American).

WER = (substitutions + deletions + insertions) / words in the reference, from a word-level
edit distance. Over a corpus, edits and reference words are summed before dividing, so long
sentences weigh more than short ones (the usual convention).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_SCALE_WORDS = frozenset(name for _, name in _SCALES)
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip

# Spelling variants folded to one form. Only words whose variants sound the same.
_SPELLINGS = {
    "traveller": "traveler", "travellers": "travelers", "travelling": "traveling",
    "armour": "armor", "armoured": "armored", "colour": "color", "colours": "colors",
    "honour": "honor", "honourable": "honorable", "favour": "favor", "harbour": "harbor",
    "neighbour": "neighbor", "neighbours": "neighbors", "valour": "valor", "grey": "gray",
    "centre": "center", "theatre": "theater", "metre": "meter", "metres": "meters",
    "defence": "defense", "offence": "offense", "jewellery": "jewelry", "axe": "ax",
    "ok": "okay", "mr": "mister", "mrs": "missus", "dr": "doctor", "&": "and",
}  # fmt: skip


def number_to_words(n: int) -> str:
    """Cardinal English words for a non-negative integer ("one hundred five")."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (" " + _ONES[ones] if ones else "")
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            words = f"{number_to_words(head)} {name}"
            return words + (" " + number_to_words(rest) if rest else "")
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    """Ordinal English words ("twenty first")."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _spell_numbers(text: str) -> str:
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"\$(\d+(?:\.\d+)?)", r"\1 dollars", text)
    text = re.sub(r"(\d)\s*%", r"\1 percent", text)
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal_to_words(int(m.group(1))), text)

    def decimal(match: re.Match[str]) -> str:
        whole, frac = match.group(1), match.group(2)
        return f"{number_to_words(int(whole))} point {' '.join(_ONES[int(d)] for d in frac)}"

    text = re.sub(r"\b(\d+)\.(\d+)\b", decimal, text)
    return re.sub(r"\d+", lambda m: f" {number_to_words(int(m.group(0)))} ", text)


def normalize(text: str) -> list[str]:
    """The words of `text` in comparable form: lower case, no punctuation, numbers spelled."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = _spell_numbers(text)
    text = re.sub(r"[-\u2010-\u2015/]", " ", text)  # hyphens, dashes and slashes split words
    text = re.sub(r"[^\w\s'&]", " ", text)  # other punctuation goes
    words: list[str] = []
    for raw in text.split():
        word = raw.strip("'")
        if not word:
            continue
        if word.endswith("'s") and word[:-2] in _SPELLINGS:
            word = _SPELLINGS[word[:-2]] + "'s"
        words.append(_SPELLINGS.get(word, word))
    # "a hundred" and "100" are the same words once spoken.
    for i in range(len(words) - 1):
        if words[i] == "a" and words[i + 1] in _SCALE_WORDS:
            words[i] = "one"
    return words


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (substitution, deletion, insertion: 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,  # deletion
                    current[j - 1] + 1,  # insertion
                    previous[j - 1] + (ref_word != hyp_word),  # substitution or match
                )
            )
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference word count) after normalization."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of one hypothesis; 0.0 for two empty texts, 1.0 for a guess at silence."""
    edits, words = word_errors(reference, hypothesis)
    if words == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / words


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Summed edits over summed reference words, for (reference, hypothesis) pairs."""
    total_edits = total_words = 0
    for reference, hypothesis in pairs:
        edits, words = word_errors(reference, hypothesis)
        total_edits += edits
        total_words += words
    if total_words == 0:
        return 0.0 if total_edits == 0 else 1.0
    return total_edits / total_words
