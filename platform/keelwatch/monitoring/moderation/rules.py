"""Keyword and regex blocklists, matched on normalized text so that common obfuscation does not
slip through, and on whole words only so that innocent words containing a keyword do not trip.

What a keyword survives (see :mod:`._normalize` for the canonical form):

- case, accents, fullwidth forms, zero-width characters, Cyrillic/Greek look-alikes;
- leetspeak (``0 1 3 4 5 7 @ $``) inside a word that has at least one real letter, so that
  "sh1t" and "a55" match while the number "455" never reads as a word;
- repeated letters: "fuuuuck" matches "fuck" (every run at least as long as the keyword's, so
  "asss" matches "ass" but "as" does not);
- single characters split by 1-3 spaces or punctuation marks: "f u c k", "f.u.c.k", "f-u-c-k",
  also as a word of a phrase ("just k.i.l.l yourself"). Only runs of single characters are
  joined, never ordinary words.

What it does not do, on purpose: match inside a word. "Scunthorpe", "cocktail", "classic",
"Essex", "therapist" and "grape" contain keywords but are other words. The price is that a
keyword glued to other letters ("fuckface") needs its own entry.

Speed: every text is first screened with C-level steps only: one ``bytes.translate`` (lower
case, leetspeak undone, punctuation to spaces; non-ASCII text first goes through a cached
per-character table to its ASCII canonical form), a split, and a set test against the words
already known not to match; a new word is checked once and remembered (up to 200,000 words).
:meth:`RuleFilter.find_many` screens a whole batch as one byte string, so a text the screen
clears costs no Python of its own; the batch's hot words (those that match a keyword or a
phrase's key) are found in it in one Aho-Corasick pass, which also counts them. A phrase is
screened for by its uncommon words, not its first ("i", "how" are everywhere). Only a text that
could hold a keyword, or has a run of single letters, is normalized with an index map and
looked at word by word, about ten times slower; a text with a ``1`` is read a second time with
``1`` as ``l`` only where that reading changes a word into one a keyword or phrase has.
With a keyword that stays non-ASCII after normalization, non-ASCII texts always take that
slower pass.
"""

from __future__ import annotations

import bisect
import operator
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import ahocorasick  # type: ignore[import-not-found]  # a C extension without type stubs

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation._normalize import (
    ASCII_SCREEN,
    ASCII_SPACED,
    LEET_I,
    LEET_L,
    SPACED,
    WORD,
    ascii_view,
    normalize,
    original_span,
    skeleton,
)
from keelwatch.monitoring.moderation.findings import (
    Category,
    Finding,
    check_batch,
    check_text,
    non_ascii,
    text_starts,
)

# Screened words known not to match, kept up to this many (a few MB) so that a stream of
# ever-new tokens (ids, hashes) cannot grow the filter without bound.
_KNOWN_CLEAN_WORDS = 200_000
# A whole run of three or more single characters in a screened text (ASCII_SPACED, but to the
# run's end), without consuming the space after it, which may be the next text's first.
_BATCH_SPACED = re.compile(rb" \w(?: +\w){2,}(?= )")
# Spaced-out runs already judged, kept up to this many ("1 2 3" of a version string recurs).
_KNOWN_RUNS = 20_000
# Screened words known to match a keyword or a phrase's trigger word, kept up to this many.
_KNOWN_HOT_WORDS = 20_000

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
    """Every run of the text word is at least as long as the keyword's run (the two have the
    same letters, so the same number of runs)."""
    return all(map(operator.ge, runs, minimum))


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
        self._phrase_pairs: dict[tuple[str, str], list[tuple[tuple[_Word, ...], int]]] = {}
        # A phrase can only be in a text that has each of its uncommon words (its "keys"; the
        # longest word when all are common): the screen looks for those, far rarer than a
        # first word such as "i" or "how", and needs all of them ("cocktail" alone does not
        # make "molotov cocktail" worth a look).
        self._triggers: dict[str, list[tuple[int, ...]]] = {}
        # Per key, each phrase it belongs to: the letters of its keys, and of all its words (a
        # text is looked at word by word for a phrase only when it has all of them).
        self._trigger_phrases: dict[str, list[tuple[frozenset[str], frozenset[str]]]] = {}
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
                    # Looked up by their first two words: many phrases share a first word
                    # ("i", "you"), few share two.
                    self._phrase_pairs.setdefault((words[0][0], words[1][0]), []).append(
                        (words, index)
                    )
                    keys = [w for w in words if _trigger_rank(w)[0]] or [
                        max(words, key=_trigger_rank)
                    ]
                    needed = (frozenset(k[0] for k in keys), frozenset(w[0] for w in words))
                    for key in keys:
                        self._triggers.setdefault(key[0], []).append(key[1])
                        self._trigger_phrases.setdefault(key[0], []).append(needed)
            for pattern in blocklist.patterns:
                self._patterns.append((re.compile(pattern, re.IGNORECASE), index))
        self._screen = frozenset(self._single) | frozenset(self._phrases)
        # Letters of every word of every phrase, and per screened word the ones it has.
        self._phrase_words = frozenset(
            word[0] for phrases in self._phrases.values() for words, _ in phrases for word in words
        )
        self._phrase_letters_of: dict[bytes, tuple[str, ...]] = {}
        # Every word a hit can be made of: a single keyword, or any word of a phrase.
        self._hit_words = self._screen | self._phrase_words
        # Every prefix of a single keyword's letters: a spaced-out window that is not one
        # cannot grow into a keyword.
        self._prefixes = frozenset(
            letters[:end] for letters in self._single for end in range(1, len(letters) + 1)
        )
        # Spaced-out runs are tried in windows up to this many characters (repeats allowed).
        self._window = 2 * longest + 2
        # Digits that no keyword has and that leetspeak does not read as a letter (the screen
        # keeps "1", read as "i" or "l" word by word): a screened word holding one cannot match
        # (ids, prices, versions).
        digits = "".join(
            d
            for d in "023456789"
            if chr(ASCII_SCREEN[ord(d)]) == d
            and not any(d in word for word in self._screen | self._phrase_words)
        )
        self._foreign_digit = re.compile(f"[{digits}]".encode() if digits else rb"(?!)")
        # Per screened spaced-out run: whether some window of it spells a single keyword or a
        # word of a phrase (of two letters or more), and the prefixes and window that takes.
        self._known_runs: dict[bytes, bool] = {}
        self._run_words = frozenset(self._single) | frozenset(
            word for word in self._phrase_words if len(word) > 1
        )
        self._run_prefixes = frozenset(
            letters[:end] for letters in self._run_words for end in range(1, len(letters) + 1)
        )
        self._run_window = 2 * max(map(len, self._run_words), default=1) + 2
        # ASCII words already screened and found unable to match any keyword: most texts are
        # made of words seen before, so one C-level superset test clears them.
        self._known_clean: set[bytes] = set()
        # Per hot word: whether it matches a single keyword, and the phrase triggers it matches.
        self._known_hot: dict[bytes, tuple[bool, tuple[str, ...]]] = {}
        # The screen sees text as ASCII, so it can clear non-ASCII text only when every keyword
        # is ASCII once normalized (a Cyrillic keyword must be looked for word by word).
        self._ascii_keywords = all(letters.isascii() for letters in self._screen)

    def find(self, text: str) -> list[Finding]:
        """Findings in ``text``, spans of the original text, sorted by start."""
        check_text(text)
        if not text:
            return []
        if self._patterns or (self._screen and self._could_hold_keyword(text)):
            return self._matches(text)
        return []

    def _matches(self, text: str, spaced: bool | None = None) -> list[Finding]:
        """Findings in a text the screen did not clear (or every text, with patterns).
        ``spaced``: whether the text may hold a spaced-out keyword, when the batch screen
        already knows (None: find out)."""
        canonical, starts, ends = normalize(text)
        if spaced is None:
            spaced = self._may_be_spaced(text)
        hits = self._keyword_hits(canonical, spaced) if self._screen else set()
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
        """:meth:`find` for each text, in order (the same findings): the screen runs once over
        the whole batch, so a text it clears costs no Python of its own."""
        if isinstance(texts, str):
            raise InvalidInputError("texts must be a sequence of str, not one str")
        batch = list(texts)
        check_batch(batch)
        if self._patterns or not self._screen or not batch:
            return [self.find(text) for text in batch]
        found: list[list[Finding]] = [[] for _ in batch]
        suspects, spaced = self._screen_batch(batch)
        for i in suspects:
            found[i] = self._matches(batch[i], None if spaced is None else i in spaced)
        return found

    def _screen_batch(self, batch: list[str]) -> tuple[set[int], set[int] | None]:
        """Indexes of the texts that could hold a keyword: :meth:`_could_hold_keyword` for the
        whole batch at once, on its texts' screened forms joined into one byte string. Also the
        texts with a spaced-out run that could spell one (:meth:`_may_be_spaced`), or None when
        the screen could not see some text."""
        suspects: set[int] = set()
        spaced: set[int] | None = set()
        parts = batch
        others = non_ascii(batch)
        if others:
            parts = batch.copy()
            for index in others:
                if self._ascii_keywords:
                    parts[index] = ascii_view(batch[index]).decode("ascii")
                else:
                    parts[index] = ""
                    suspects.add(index)
                    spaced = None
        starts = text_starts(parts)
        last = len(parts) - 1

        def text_at(position: int) -> int:
            return min(max(bisect.bisect_right(starts, position) - 1, 0), last)

        # Texts are separated (and the batch padded) by one space once screened, exactly as
        # each text is padded on its own; a run across two texts only marks both.
        screened = " ".join(("", "\n".join(parts), "")).encode("ascii").translate(ASCII_SCREEN)
        for run in self._spaced_runs(screened):
            if self._run_could_match(run.group()):
                marked = range(text_at(run.start() + 1), text_at(run.end() - 1) + 1)
                suspects.update(marked)
                if spaced is not None:
                    spaced.update(marked)
        unknown = set(screened.split())
        unknown -= self._known_clean
        hot: list[tuple[bytes, bool, tuple[str, ...]]] = []
        for word in unknown:
            known = self._known_hot.get(word)
            if known is None:
                if not word.isalpha() and self._foreign_digit.search(word):
                    # A digit no keyword has and leetspeak does not read as a letter ("ref
                    # 82450164", "$19.99"): clean without a look at its letters.
                    if len(self._known_clean) < _KNOWN_CLEAN_WORDS:
                        self._known_clean.add(word)
                    continue
                known = self._word_class(word.decode("ascii"))
                if not known[0] and not known[1]:
                    if len(self._known_clean) < _KNOWN_CLEAN_WORDS:
                        self._known_clean.add(word)
                    continue
                if len(self._known_hot) < _KNOWN_HOT_WORDS:
                    self._known_hot[word] = known
            hot.append((word, *known))
        phrase_texts: dict[int, set[str]] = {}
        where = _locate(screened, [word for word, _, _ in hot])
        marking = self._marking_keys(where, hot)
        for word, single, triggers in hot:
            useful = tuple(key for key in triggers if key in marking)
            if not single and not useful:
                continue
            for position in where.get(word, ()):
                index = text_at(position)
                if single:
                    suspects.add(index)
                else:
                    phrase_texts.setdefault(index, set()).update(useful)
        for index, phrase_triggers in phrase_texts.items():
            if index not in suspects:
                own = screened[starts[index] : starts[index] + len(parts[index])]
                if self._could_hold_phrase(own, phrase_triggers):
                    suspects.add(index)
        return suspects, spaced

    def _marking_keys(
        self, where: dict[bytes, list[int]], hot: list[tuple[bytes, bool, tuple[str, ...]]]
    ) -> set[str]:
        """The phrase keys whose occurrences mark texts for a closer look: for each phrase
        all of whose keys are somewhere in the batch ("cocktail" without "molotov" marks
        nothing), the key that occurs least often (a text needs every key anyway, so "bitch"
        marks far fewer texts for "son of a bitch" than "son", which "soon" also reads as).
        ``where`` holds each hot word's occurrences in the batch."""
        words_of: dict[str, list[bytes]] = {}
        for word, _, triggers in hot:
            for key in triggers:
                words_of.setdefault(key, []).append(word)

        def occurrences(key: str) -> int:
            return sum(len(where.get(word, ())) for word in words_of[key])

        marking: set[str] = set()
        for key in words_of:
            for keys, _ in self._trigger_phrases[key]:
                if keys <= words_of.keys():
                    marking.add(min(sorted(keys), key=occurrences) if len(keys) > 1 else key)
        return marking

    def _may_be_spaced(self, text: str) -> bool:
        """Whether a text may hold a keyword spelled out in single characters: False only
        when its screened form has no run that could spell one (the common suspect text, which
        is looked at for a whole word, skips the slower search for spaced-out runs)."""
        screened = self._screened(text)
        if screened is None:
            return True
        return any(self._run_could_match(m.group()) for m in self._spaced_runs(screened))

    def _screened(self, text: str) -> bytes | None:
        """The screen's view of one text: ASCII bytes, lower case, leetspeak undone but for
        ``1``, every other character a space, padded with a space at each end; None when the
        screen cannot see the text (a non-ASCII keyword exists and the text is not ASCII)."""
        if text.isascii():
            raw = text.encode("ascii")
        elif self._ascii_keywords:
            raw = ascii_view(text)
        else:
            return None
        # Padding lets ASCII_SPACED see a run at either end of the text.
        return b" ".join((b"", raw, b"")).translate(ASCII_SCREEN)

    def _keyword_hits(self, canonical: str, spaced: bool = True) -> set[_Hit]:
        hits: set[_Hit] = set()
        leet = canonical.translate(LEET_I)
        words = WORD.findall(leet)
        collapsed = list(map(_letters, words))
        if not self._screen.isdisjoint(collapsed):
            self._word_hits(canonical, leet, words, collapsed, hits)
        runs = list(SPACED.finditer(leet)) if spaced else []
        if runs:
            self._spaced_hits(canonical, leet, runs, hits)
            if self._phrases:
                self._joined_run_hits(canonical, leet, runs, hits)
        if "1" not in canonical:
            return hits
        # "1" is "i" or "l": read the text again with "l", rather than guess. That reading has
        # the same words at the same places (both letters are word characters), so only a word
        # it changes into a keyword's or a phrase's word, or a spaced-out run with a "1", can
        # add a hit ("order #88213401" changes nothing worth a second look).
        # The runs found in the first reading are the runs of this one, at the same places.
        leet = canonical.translate(LEET_L)
        words = WORD.findall(leet)
        collapsed_l = list(map(_letters, words))
        changed = any(
            letters != before and letters in self._hit_words
            for letters, before in zip(collapsed_l, collapsed, strict=True)
        )
        if changed:
            self._word_hits(canonical, leet, words, collapsed_l, hits)
        if runs and (changed or any("1" in canonical[run.start() : run.end()] for run in runs)):
            self._spaced_hits(canonical, leet, runs, hits)
            if self._phrases:
                self._joined_run_hits(canonical, leet, runs, hits)
        return hits

    def _joined_run_hits(
        self, canonical: str, leet: str, runs: list[re.Match[str]], hits: set[_Hit]
    ) -> None:
        """Phrases with a word spelled out in single characters ("just k.i.l.l yourself"):
        the words are matched again in the text with each run's separators taken out, and the
        hits mapped back. A run that starts with "a" or "i", English words of one letter, is
        also read with that letter as a word of its own ("a m o l o t o v cocktail")."""
        self._joined_hits(canonical, leet, runs, hits, apart=False)
        if any(leet[run.start()] in _ONE_LETTER_WORDS for run in runs):
            self._joined_hits(canonical, leet, runs, hits, apart=True)

    def _joined_hits(
        self,
        canonical: str,
        leet: str,
        runs: list[re.Match[str]],
        hits: set[_Hit],
        *,
        apart: bool,
    ) -> None:
        """One reading for :meth:`_joined_run_hits`: each run joined into one word, its first
        letter kept apart when ``apart`` and it is a word of one letter."""
        keep: list[int] = []  # the positions of leet (and canonical) the joined text keeps
        previous = 0
        for run in runs:
            keep.extend(range(previous, run.start()))
            chars = [m.span() for m in WORD.finditer(leet, run.start(), run.end())]
            if apart and leet[run.start()] in _ONE_LETTER_WORDS:
                # The letter and the separator after it stay: the joined word starts later.
                keep.extend(range(chars[0][0], chars[1][0]))
                chars = chars[1:]
            keep.extend(start for start, _ in chars)
            previous = run.end()
        keep.extend(range(previous, len(leet)))
        joined_leet = "".join([leet[i] for i in keep])
        joined_canonical = "".join([canonical[i] for i in keep])
        words = WORD.findall(joined_leet)
        collapsed = list(map(_letters, words))
        if self._screen.isdisjoint(collapsed):
            return
        found: set[_Hit] = set()
        self._word_hits(joined_canonical, joined_leet, words, collapsed, found)
        for start, end, index in found:
            hits.add((keep[start], keep[end - 1] + 1, index))

    def _could_hold_keyword(self, text: str) -> bool:
        """Whether a text could hold a keyword, answered with C-level steps (one
        ``bytes.translate``, a split, a set test) for the common text that cannot. It may say
        yes wrongly ("455" reads as "ass"); the word-by-word pass then decides."""
        screened = self._screened(text)
        if screened is None:
            return True
        if any(self._run_could_match(m.group()) for m in self._spaced_runs(screened)):
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

    @staticmethod
    def _spaced_runs(screened: bytes) -> Iterator[re.Match[bytes]]:
        """Each whole run of three or more single characters in a screened text. Found by
        the three-character pattern (a fixed shape the regex engine scans for fast), then
        extended to the run's end only where one starts."""
        position = 0
        while (start := ASCII_SPACED.search(screened, position)) is not None:
            run = _BATCH_SPACED.match(screened, start.start())
            if run is None:  # cannot happen: the run pattern matches wherever ASCII_SPACED does
                return
            yield run
            position = run.end()

    def _run_could_match(self, run: bytes) -> bool:
        """Whether a screened run of single characters ("f u c k", "1 2 3") has a window that
        spells a single keyword or a phrase's word, reading a ``1`` as ``i`` and as ``l`` (the
        screen's side of :meth:`_spaced_hits` and :meth:`_joined_run_hits`, which then decide
        on the exact separators)."""
        known = self._known_runs.get(run)
        if known is None:
            text = run.decode("ascii")
            readings = (text.replace("1", "i"), text.replace("1", "l")) if "1" in text else (text,)
            known = any(self._spells_keyword(reading.split()) for reading in readings)
            if len(self._known_runs) < _KNOWN_RUNS:
                self._known_runs[run] = known
        return known

    def _spells_keyword(self, chars: list[str]) -> bool:
        """Whether consecutive single characters, repeats collapsed, spell a single keyword
        or a word of a phrase."""
        for first in range(len(chars)):
            letters = ""
            for last in range(first, min(len(chars), first + self._run_window)):
                if not letters.endswith(chars[last]):
                    letters += chars[last]
                if letters not in self._run_prefixes:
                    break
                if last > first and letters in self._run_words:
                    return True
        return False

    def _word_class(self, word: str) -> tuple[bool, tuple[str, ...]]:
        """Whether a screened word matches a single keyword, and the phrase triggers it
        matches, reading a ``1`` as ``i`` and as ``l``."""
        single = False
        triggers: list[str] = []
        readings = (word.replace("1", "i"), word.replace("1", "l")) if "1" in word else (word,)
        for reading in readings:
            letters, runs = skeleton(reading)
            if any(_covers(runs, minimum) for minimum, _ in self._single.get(letters, ())):
                single = True
            if any(_covers(runs, minimum) for minimum in self._triggers.get(letters, ())):
                triggers.append(letters)
        return single, tuple(triggers)

    def _could_hold_phrase(self, screened: bytes, triggers: set[str]) -> bool:
        """Whether a screened text, whose words include the phrase keys ``triggers``, has a word
        with the letters of every word (keys included) of a phrase of one of those keys (order
        and repeats aside)."""
        candidates = [
            words for trigger in triggers for _, words in self._trigger_phrases.get(trigger, ())
        ]
        if not candidates:
            return False
        cache = self._phrase_letters_of
        present: set[str] = set()
        for raw in set(screened.split()):
            letters = cache.get(raw)
            if letters is None:
                letters = self._phrase_letters(raw)
                if len(cache) < _KNOWN_CLEAN_WORDS:
                    cache[raw] = letters
            present.update(letters)
        return any(words <= present for words in candidates)

    def _phrase_letters(self, raw: bytes) -> tuple[str, ...]:
        """The letters of a screened word (both readings of ``1``) that some phrase has as
        one of its words; () for the many words no phrase has."""
        word = raw.decode("ascii")
        readings = (word.replace("1", "i"), word.replace("1", "l")) if "1" in word else (word,)
        return tuple({_letters(r) for r in readings} & self._phrase_words)

    def _could_match(self, word: str) -> bool:
        """Whether a screened word matches a keyword or the trigger word of a phrase, reading a
        ``1`` as ``i`` and as ``l``."""
        readings = (word.replace("1", "i"), word.replace("1", "l")) if "1" in word else (word,)
        for reading in readings:
            letters, runs = skeleton(reading)
            if any(_covers(runs, minimum) for minimum, _ in self._single.get(letters, ())):
                return True
            if any(_covers(runs, minimum) for minimum in self._triggers.get(letters, ())):
                return True
        return False

    def _word_hits(
        self,
        canonical: str,
        leet: str,
        words: list[str],
        collapsed: list[str],
        hits: set[_Hit],
    ) -> None:
        """Whole words and phrases. Collapsing repeats never merges or splits words, so
        ``collapsed[i]`` is the skeleton of ``words[i]``, the i-th word of ``leet``; word spans
        are looked up only once a word (and the rest of its phrase) matched."""
        screen = self._screen
        matches: list[re.Match[str]] | None = None
        after_last = len(collapsed) - 1
        # A keyword's or a phrase's first word is rare in a text: find those places in one
        # comprehension, then look at each.
        for position in [i for i, letters in enumerate(collapsed) if letters in screen]:
            letters = collapsed[position]
            pairs = (
                self._phrase_pairs.get((letters, collapsed[position + 1]), ())
                if position < after_last
                else ()
            )
            keyed = self._single.get(letters, ())
            if not pairs and not keyed:
                continue
            runs = skeleton(words[position])[1]
            singles = [i for minimum, i in keyed if _covers(runs, minimum)]
            phrases = [
                (position + len(phrase), index)
                for phrase, index in pairs
                if position + len(phrase) <= len(words)
                and _covers(runs, phrase[0][1])
                and all(
                    _fits(words[position + offset], word)
                    for offset, word in enumerate(phrase[1:], start=1)
                )
            ]
            if not singles and not phrases:
                continue
            if matches is None:
                matches = list(WORD.finditer(leet))
            start, end = matches[position].span()
            if not _has_letter(canonical, start, end):
                continue
            for index in singles:
                hits.add((start, end, index))
            for last, index in phrases:
                inner = range(position + 1, last)
                if all(_has_letter(canonical, *matches[p].span()) for p in inner):
                    hits.add((start, matches[last - 1].end(), index))

    def _spaced_hits(
        self, canonical: str, leet: str, spaced: list[re.Match[str]], hits: set[_Hit]
    ) -> None:
        """Single characters split by spaces or punctuation, joined window by window; a window
        stops growing once its letters are no keyword's prefix."""
        for run in spaced:
            chars = [(m.start(), m.group()) for m in WORD.finditer(leet, run.start(), run.end())]
            for first in range(len(chars)):
                letters = ""
                for last in range(first, min(len(chars), first + self._window)):
                    char = chars[last][1]
                    if not letters.endswith(char):
                        letters += char
                    if letters not in self._prefixes:
                        break
                    if last == first or letters not in self._single:
                        continue
                    window = chars[first : last + 1]
                    runs = skeleton("".join(char for _, char in window))[1]
                    for minimum, index in self._single[letters]:
                        if _covers(runs, minimum) and any(
                            canonical[pos].isalpha() for pos, _ in window
                        ):
                            hits.add((window[0][0], window[-1][0] + 1, index))


# Letters that are English words on their own: a spelled-out run may start with one ("a m o l o
# t o v" is "a molotov"), read both ways.
_ONE_LETTER_WORDS = frozenset("ai")
# Words too common to screen a phrase by (a phrase made only of them still works, screened by
# its longest word).
# Skeletons, as the screen sees words: repeats collapsed ("will" is "wil"), apostrophes split
# ("don't" is "don t"). Words of one or two letters always count as common.
_COMMON_TEXT = (
    "about al and any are been but can dont don for from get going have her him his how its "
    "just like live make must not now one order our out she some that the their them then "
    "there they this want was wil what when who why with would wan wana gona gonna you your "
    "yours did does doing had has know need never only over please really should still tel "
    "think time very wel were where which youre"
)
_COMMON_WORDS = frozenset(_COMMON_TEXT.split())


def _trigger_rank(word: _Word) -> tuple[bool, int]:
    """Rarer-looking words rank higher: longer than two letters and not a common word, then
    longer."""
    return len(word[0]) > 2 and word[0] not in _COMMON_WORDS, len(word[0])


def _fits(text_word: str, word: _Word) -> bool:
    """Whether a word of the text matches one word of a keyword (same letters, runs covered)."""
    letters, runs = skeleton(text_word)
    return letters == word[0] and _covers(runs, word[1])


class _LettersOf(dict[str, str]):
    """A word's letters without repeats (the first half of :func:`skeleton`), cached: looked up
    as ``map(_LETTERS.__getitem__, words)``, a known word costs a C-level dict lookup."""

    def __missing__(self, word: str) -> str:
        letters = skeleton(word)[0]
        if len(self) < 65_536:  # bounded: a stream of new words cannot grow it for ever
            self[word] = letters
        return letters


_LETTERS = _LettersOf()
_letters = _LETTERS.__getitem__


def _locate(screened: bytes, words: list[bytes]) -> dict[bytes, list[int]]:
    """Where each of ``words`` occurs as a whole word in a screened batch (the position of its
    first byte), in one Aho-Corasick pass in C for all of them: a ``bytes.find`` pass per word
    scanned the whole batch once for each of the thirty-odd hot words a batch has."""
    if not words:
        return {}
    automaton = ahocorasick.Automaton()
    for word in words:
        # Spaces on both sides: whole words only (the screen made every separator a space).
        automaton.add_word(f" {word.decode('ascii')} ", word)
    automaton.make_automaton()
    where: dict[bytes, list[int]] = {}
    # Each match is reported at its last character, the space after the word.
    for end, word in automaton.iter(screened.decode("ascii")):
        where.setdefault(word, []).append(end - len(word))
    return where


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
