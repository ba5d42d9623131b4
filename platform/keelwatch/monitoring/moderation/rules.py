"""Keyword and regex blocklists, matched on normalized text so that common obfuscation does not
slip through, and on whole words only so that innocent words containing a keyword do not trip.

What a keyword survives (see :mod:`._normalize` for the canonical form):

- case, accents, fullwidth forms, zero-width characters, Cyrillic/Greek look-alikes;
- leetspeak (``0 1 3 4 5 7 @ $``) inside a word that has at least one real letter, so that
  "sh1t" and "a55" match while the number "455" never reads as a word;
- repeated letters: "fuuuuck" matches "fuck" (every run at least as long as the keyword's, so
  "asss" matches "ass" but "as" does not);
- single characters split by 1-3 spaces or punctuation marks: "f u c k", "f.u.c.k", "f-u-c-k".
  Only runs of single characters are joined, never ordinary words.

What it does not do, on purpose: match inside a word. "Scunthorpe", "cocktail", "classic",
"Essex", "therapist" and "grape" contain keywords but are other words. The price is that a
keyword glued to other letters ("fuckface") needs its own entry.

Speed: every text is first screened with C-level steps only: one ``bytes.translate`` (lower
case, leetspeak undone, punctuation to spaces; non-ASCII text first goes through a cached
per-character table to its ASCII canonical form), a split, and a set test against the words
already known not to match; a new word is checked once and remembered (up to 200,000 words).
Only a text that could hold a keyword, or has a run of single letters, is normalized with an
index map and looked at word by word, about ten times slower. With a keyword that stays
non-ASCII after normalization, non-ASCII texts always take that slower pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation._normalize import (
    ASCII_SCREEN,
    ASCII_SPACED,
    ASCII_VIEW,
    LEET_I,
    LEET_L,
    REPEAT,
    SPACED,
    WORD,
    normalize,
    original_span,
    skeleton,
)
from keelwatch.monitoring.moderation.findings import Category, Finding

MAX_TEXT_CHARS = 100_000
# Screened words known not to match, kept up to this many (a few MB) so that a stream of
# ever-new tokens (ids, hashes) cannot grow the filter without bound.
_KNOWN_CLEAN_WORDS = 200_000

# One word of a keyword: its skeleton and the minimum length of each run of letters.
_Word = tuple[str, tuple[int, ...]]
# A hit in normalized coordinates: start, end, index of the blocklist.
_Hit = tuple[int, int, int]


@dataclass(frozen=True)
class Blocklist:
    """A named list of keywords (whole words or phrases, matched after normalization) and regex
    patterns (searched case-insensitively in the normalized text, before leetspeak is undone,
    so ``\\d`` still sees digits). Its findings carry ``category`` and source
    ``rules:<name>`` (the category's name when ``name`` is empty)."""

    category: Category
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.category, Category):
            raise InvalidInputError("blocklist category must be a Category")
        # Accept lists from configuration files, store tuples so the list stays hashable.
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "patterns", tuple(self.patterns))
        label = self.label
        for index, keyword in enumerate(self.keywords):
            if not isinstance(keyword, str) or not _keyword_words(keyword):
                raise InvalidInputError(
                    f"blocklist {label!r} keyword {index} must be a string with letters or digits"
                )
        for index, pattern in enumerate(self.patterns):
            if not isinstance(pattern, str):
                raise InvalidInputError(f"blocklist {label!r} pattern {index} must be a string")
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as err:
                # err.msg describes the problem without repeating the pattern itself.
                raise InvalidInputError(
                    f"blocklist {label!r} pattern {index} is not a valid regular expression: "
                    f"{err.msg}"
                ) from None

    @property
    def label(self) -> str:
        """The name findings are attributed to: ``name``, or the category's name."""
        return self.name[:60] or self.category.value


def _keyword_words(keyword: str) -> tuple[_Word, ...]:
    """A keyword in the same form as the text it is matched against, word by word."""
    canonical = normalize(keyword)[0].translate(LEET_I)
    return tuple(skeleton(word) for word in WORD.findall(canonical))


def _covers(runs: tuple[int, ...], minimum: tuple[int, ...]) -> bool:
    """Every run of the text word is at least as long as the keyword's run."""
    return all(have >= need for have, need in zip(runs, minimum, strict=True))


def _has_letter(canonical: str, start: int, end: int) -> bool:
    """Whether the word had a real letter before leetspeak was undone ("455" is a number)."""
    return any(char.isalpha() for char in canonical[start:end])


class RuleFilter:
    """Blocklists compiled once; :meth:`find` returns their findings in one text.

    >>> rules = RuleFilter([DEFAULT_PROFANITY])
    >>> [(f.start, f.end, f.source) for f in rules.find("what the f.u.c.k")]
    [(9, 16, 'rules:profanity')]
    """

    def __init__(self, blocklists: Sequence[Blocklist]) -> None:
        if isinstance(blocklists, Blocklist) or not all(
            isinstance(item, Blocklist) for item in blocklists
        ):
            raise InvalidInputError("blocklists must be a sequence of Blocklist")
        self._categories = [item.category for item in blocklists]
        self._sources = [f"rules:{item.label}" for item in blocklists]
        # Single words by skeleton; phrases by the skeleton of their first word.
        self._single: dict[str, list[tuple[tuple[int, ...], int]]] = {}
        self._phrases: dict[str, list[tuple[tuple[_Word, ...], int]]] = {}
        self._patterns: list[tuple[re.Pattern[str], int]] = []
        longest = 1
        for index, blocklist in enumerate(blocklists):
            for keyword in blocklist.keywords:
                words = _keyword_words(keyword)
                if len(words) == 1:
                    letters, runs = words[0]
                    self._single.setdefault(letters, []).append((runs, index))
                    longest = max(longest, sum(runs))
                else:
                    self._phrases.setdefault(words[0][0], []).append((words, index))
            for pattern in blocklist.patterns:
                self._patterns.append((re.compile(pattern, re.IGNORECASE), index))
        self._screen = frozenset(self._single) | frozenset(self._phrases)
        # Spaced-out runs are tried in windows up to this many characters (repeats allowed).
        self._window = 2 * longest + 2
        # ASCII words already screened and found unable to match any keyword: most texts are
        # made of words seen before, so one C-level superset test clears them.
        self._known_clean: set[bytes] = set()
        # The screen sees text as ASCII, so it can clear non-ASCII text only when every keyword
        # is ASCII once normalized (a Cyrillic keyword must be looked for word by word).
        self._ascii_keywords = all(letters.isascii() for letters in self._screen)

    def find(self, text: str) -> list[Finding]:
        """Findings in ``text``, spans of the original text, sorted by start."""
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a str, not {type(text).__name__}")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(
                f"text of {len(text)} characters exceeds the {MAX_TEXT_CHARS}-character limit"
            )
        if not text:
            return []
        hits: set[_Hit] = set()
        if self._screen and self._could_hold_keyword(text):
            canonical, starts, ends = normalize(text)
            hits = self._keyword_hits(canonical)
        elif self._patterns:
            canonical, starts, ends = normalize(text)
        else:
            return []
        for pattern, index in self._patterns:
            for match in pattern.finditer(canonical):
                if match.end() > match.start():  # an empty match marks no text
                    hits.add((match.start(), match.end(), index))
        findings = []
        seen: set[tuple[int, int, int]] = set()
        for start, end, index in sorted(hits):
            span = original_span(start, end, starts, ends)
            if (*span, index) in seen:  # two normalized spans can share one original span
                continue
            seen.add((*span, index))
            findings.append(
                Finding(self._categories[index], span[0], span[1], 1.0, self._sources[index])
            )
        findings.sort(key=lambda f: (f.start, f.end, f.source))
        return findings

    def find_many(self, texts: Iterable[str]) -> list[list[Finding]]:
        """:meth:`find` for each text, in order."""
        if isinstance(texts, str):
            raise InvalidInputError("texts must be a sequence of str, not one str")
        return [self.find(text) for text in texts]

    def _keyword_hits(self, canonical: str) -> set[_Hit]:
        hits: set[_Hit] = set()
        # "1" is "i" or "l": try both readings rather than guess.
        tables = (LEET_I, LEET_L) if "1" in canonical else (LEET_I,)
        for table in tables:
            leet = canonical.translate(table)
            collapsed = WORD.findall(REPEAT.sub(r"\1", leet))
            if not self._screen.isdisjoint(collapsed):
                self._word_hits(canonical, leet, collapsed, hits)
            if SPACED.search(leet):
                self._spaced_hits(canonical, leet, hits)
        return hits

    def _could_hold_keyword(self, text: str) -> bool:
        """Whether a text could hold a keyword, answered with C-level steps (one
        ``bytes.translate``, a split, a set test) for the common text that cannot. It may say
        yes wrongly ("455" reads as "ass"); the word-by-word pass then decides."""
        if text.isascii():
            raw = text.encode("ascii")
        elif self._ascii_keywords:
            raw = text.translate(ASCII_VIEW).encode("ascii")
        else:
            return True
        # Padding lets ASCII_SPACED see a run at either end of the text.
        screened = b" ".join((b"", raw, b"")).translate(ASCII_SCREEN)
        if ASCII_SPACED.search(screened):
            return True
        words = screened.split()
        if self._known_clean.issuperset(words):
            return False
        for word in set(words).difference(self._known_clean):
            if self._could_match(word.decode("ascii")):
                return True
            if len(self._known_clean) < _KNOWN_CLEAN_WORDS:
                self._known_clean.add(word)
        return False

    def _could_match(self, word: str) -> bool:
        """Whether a screened word matches a keyword or the first word of a phrase, reading a
        ``1`` as ``i`` and as ``l``."""
        readings = (word.replace("1", "i"), word.replace("1", "l")) if "1" in word else (word,)
        for reading in readings:
            letters, runs = skeleton(reading)
            if any(_covers(runs, minimum) for minimum, _ in self._single.get(letters, ())):
                return True
            if any(_covers(runs, ws[0][1]) for ws, _ in self._phrases.get(letters, ())):
                return True
        return False

    def _word_hits(self, canonical: str, leet: str, collapsed: list[str], hits: set[_Hit]) -> None:
        """Whole words and phrases. Collapsing repeats never merges or splits words, so
        ``collapsed[i]`` is the skeleton of the i-th word of ``leet``."""
        spans = [match.span() for match in WORD.finditer(leet)]
        for position, letters in enumerate(collapsed):
            if letters not in self._screen:
                continue
            start, end = spans[position]
            if not _has_letter(canonical, start, end):
                continue
            runs = skeleton(leet[start:end])[1]
            for minimum, index in self._single.get(letters, ()):
                if _covers(runs, minimum):
                    hits.add((start, end, index))
            for words, index in self._phrases.get(letters, ()):
                last = position + len(words)
                if last > len(spans) or not _covers(runs, words[0][1]):
                    continue
                if all(
                    self._word_matches(canonical, leet, spans[position + offset], word)
                    for offset, word in enumerate(words[1:], start=1)
                ):
                    hits.add((start, spans[last - 1][1], index))

    @staticmethod
    def _word_matches(canonical: str, leet: str, span: tuple[int, int], word: _Word) -> bool:
        start, end = span
        letters, runs = skeleton(leet[start:end])
        return letters == word[0] and _covers(runs, word[1]) and _has_letter(canonical, start, end)

    def _spaced_hits(self, canonical: str, leet: str, hits: set[_Hit]) -> None:
        """Single characters split by spaces or punctuation, joined window by window."""
        for run in SPACED.finditer(leet):
            chars = [(m.start(), m.group()) for m in WORD.finditer(leet, run.start(), run.end())]
            for first in range(len(chars)):
                stop = min(len(chars), first + self._window)
                for last in range(first + 2, stop + 1):
                    window = chars[first:last]
                    letters, runs = skeleton("".join(char for _, char in window))
                    for minimum, index in self._single.get(letters, ()):
                        if _covers(runs, minimum) and any(
                            canonical[pos].isalpha() for pos, _ in window
                        ):
                            hits.add((window[0][0], window[-1][0] + 1, index))


DEFAULT_PROFANITY = Blocklist(
    category=Category.PROFANITY,
    name="profanity",
    keywords=(
        "fuck",
        "fucks",
        "fucked",
        "fucker",
        "fucking",
        "motherfucker",
        "shit",
        "shits",
        "shitty",
        "bullshit",
        "ass",
        "asshole",
        "arsehole",
        "jackass",
        "bitch",
        "bitches",
        "bastard",
        "cunt",
        "cock",
        "dick",
        "dickhead",
        "pussy",
        "piss",
        "prick",
        "slut",
        "whore",
        "wanker",
        "twat",
        "bollocks",
        "douchebag",
        "son of a bitch",
    ),
)
