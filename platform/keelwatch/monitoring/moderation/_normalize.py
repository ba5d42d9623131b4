"""Text normalization for the rule filter: one canonical form for matching, and a map from each
normalized character back to the span of the original text it came from.

The canonical form is: compatibility-decomposed (NFKD, which also folds fullwidth and other
compatibility forms exactly as NFKC would), case-folded, stripped of combining marks and
invisible format characters (zero-width spaces, joiners), with a small map of Cyrillic and Greek
look-alikes replaced by the Latin letter they imitate. Lone surrogates become spaces, so they
separate words instead of crashing the normalizer.

Leetspeak is a separate, later step (:data:`LEET_I` / :data:`LEET_L`) because regex patterns
run on the canonical form without it: an operator's ``\\d{4}`` must still see digits.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from functools import lru_cache

# Look-alikes that survive NFKD and case folding (they are distinct letters, not compatibility
# forms). Keys are lower case because folding runs first. Deliberately small: the common
# homoglyphs used to dodge English blocklists, not Unicode's full confusables table.
CONFUSABLES = {
    # Cyrillic
    "\u0430": "a",  # cyrillic small letter a
    "\u0432": "b",  # cyrillic small letter ve
    "\u0435": "e",  # cyrillic small letter ie
    "\u0451": "e",  # cyrillic small letter io
    "\u043a": "k",  # cyrillic small letter ka
    "\u043c": "m",  # cyrillic small letter em
    "\u043d": "h",  # cyrillic small letter en
    "\u043e": "o",  # cyrillic small letter o
    "\u0440": "p",  # cyrillic small letter er
    "\u0441": "c",  # cyrillic small letter es
    "\u0442": "t",  # cyrillic small letter te
    "\u0443": "y",  # cyrillic small letter u
    "\u0445": "x",  # cyrillic small letter ha
    "\u0456": "i",  # cyrillic small letter byelorussian-ukrainian i
    "\u0457": "i",  # cyrillic small letter yi
    "\u0458": "j",  # cyrillic small letter je
    "\u0455": "s",  # cyrillic small letter dze
    "\u0501": "d",  # cyrillic small letter komi de
    "\u04bb": "h",  # cyrillic small letter shha
    "\u051b": "q",  # cyrillic small letter qa
    "\u051d": "w",  # cyrillic small letter we
    # Greek
    "\u03b1": "a",  # greek small letter alpha
    "\u03b2": "b",  # greek small letter beta
    "\u03b5": "e",  # greek small letter epsilon
    "\u03b7": "n",  # greek small letter eta
    "\u03b9": "i",  # greek small letter iota
    "\u03ba": "k",  # greek small letter kappa
    "\u03bd": "v",  # greek small letter nu
    "\u03bf": "o",  # greek small letter omicron
    "\u03c1": "p",  # greek small letter rho
    "\u03c4": "t",  # greek small letter tau
    "\u03c5": "u",  # greek small letter upsilon
    "\u03c7": "x",  # greek small letter chi
    # Latin letters that fold to something unlike ASCII
    "\u0131": "i",  # latin small letter dotless i
    "\u0142": "l",  # latin small letter l with stroke
    "\u00f8": "o",  # latin small letter o with stroke
}

# Leetspeak digits and symbols. ``1`` reads as ``i`` or ``l``; callers try both tables when a
# ``1`` is present rather than guessing.
_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
LEET_I = str.maketrans({**_LEET, "1": "i"})
LEET_L = str.maketrans({**_LEET, "1": "l"})


def _ascii_screen_table() -> bytes:
    """A ``bytes.translate`` table doing in one C pass what the screen of an ASCII text needs:
    lower case, leetspeak undone, every non-word byte made a space. ``1`` stays ``1``: the screen
    reads it both ways, word by word, only for words it has not seen."""
    table = bytearray(b" " * 256)
    for code in range(128):
        char = chr(code)
        if char.isalnum():
            table[code] = ord(char.lower())
    for char, letter in _LEET.items():
        table[ord(char)] = ord(letter)
    return bytes(table)


ASCII_SCREEN = _ascii_screen_table()
# Three single characters in a row in a screened ASCII text padded with spaces (a looser
# SPACED, see below: any number of separators). A literal first byte keeps the search fast.
ASCII_SPACED = re.compile(rb" \w +\w +\w ")


class _AsciiView(dict[int, str]):
    """A ``str.translate`` table giving each character its canonical form when that form is
    ASCII, and a space otherwise (a non-ASCII letter cannot be part of an ASCII keyword, and a
    space keeps the words around it apart). Filled lazily, one entry per character seen."""

    def __missing__(self, code: int) -> str:
        canonical = _canonical_char(chr(code))
        value = canonical if canonical.isascii() else " "
        if len(self) < 65_536:  # bounded: one entry per distinct character ever seen
            self[code] = value
        return value


ASCII_VIEW = _AsciiView()
_ASCII_VIEW_ERRORS = "keelwatch.moderation.ascii_view"


def _ascii_view_errors(error: UnicodeError) -> tuple[str, int]:
    """The codec error handler behind :func:`ascii_view`: each run of non-ASCII characters
    becomes its :data:`ASCII_VIEW` form."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    run = error.object[error.start : error.end]
    return run.translate(ASCII_VIEW), error.end


codecs.register_error(_ASCII_VIEW_ERRORS, _ascii_view_errors)


def ascii_view(text: str) -> bytes:
    """``text.translate(ASCII_VIEW)`` as ASCII bytes, faster: the ASCII characters are copied
    in C and only each run of other characters goes through the table (one call per run, not a
    lookup per character)."""
    return text.encode("ascii", _ASCII_VIEW_ERRORS)


# A word character of the canonical form: a letter or digit of any script (``\w`` minus ``_``).
WORD = re.compile(r"[^\W_]+")
# Runs of one repeated character ("uuuu"), collapsed to find "fuuuuck".
REPEAT = re.compile(r"(.)\1+", re.DOTALL)
# Three or more single characters separated by 1-3 non-word characters: "f u c k", "f.u.c.k",
# "f-u-c-k". Each character must stand alone, so that ordinary words are never glued together.
SPACED = re.compile(r"(?<![^\W_])[^\W_](?:[\W_]{1,3}[^\W_](?![^\W_])){2,}")

Normalized = tuple[str, list[int] | None, list[int] | None]
# A run of characters outside ASCII: the only ones :func:`normalize` looks at one by one.
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


@lru_cache(maxsize=4096)
def _canonical_char(char: str) -> str:
    """The canonical form of one character (often empty or several characters)."""
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return " "  # a lone surrogate: not a letter, but a separator rather than an error
    out = []
    for part in unicodedata.normalize("NFKD", char).casefold():
        if unicodedata.combining(part) or unicodedata.category(part) == "Cf":
            continue  # accents and zero-width characters carry no letter of their own
        out.append(CONFUSABLES.get(part, part))
    return "".join(out)


def normalize(text: str) -> Normalized:
    """``(canonical, starts, ends)``: ``canonical[i]`` came from ``text[starts[i]:ends[i]]``.

    ASCII text (the common case) is only lower-cased and returns ``None`` maps, meaning the
    identity; otherwise the ASCII stretches are lower-cased whole and only the other characters
    go one by one (a text with one emoji costs little more than an ASCII one).
    """
    if text.isascii():
        return text.lower(), None, None
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    previous = 0
    for run in _NON_ASCII_RUN.finditer(text):
        begin, stop = run.span()
        if begin > previous:
            chars.append(text[previous:begin].lower())
            starts.extend(range(previous, begin))
            ends.extend(range(previous + 1, begin + 1))
        for index in range(begin, stop):
            canonical = _canonical_char(text[index])
            if not canonical:
                # A dropped mark belongs to the letter before it: a span ending on that
                # letter should cover its accent too.
                if ends and ends[-1] == index:
                    ends[-1] = index + 1
                continue
            chars.append(canonical)
            starts.extend([index] * len(canonical))
            ends.extend([index + 1] * len(canonical))
        previous = stop
    if previous < len(text):
        chars.append(text[previous:].lower())
        starts.extend(range(previous, len(text)))
        ends.extend(range(previous + 1, len(text) + 1))
    return "".join(chars), starts, ends


def original_span(
    start: int, end: int, starts: list[int] | None, ends: list[int] | None
) -> tuple[int, int]:
    """The span of the original text that normalized ``[start, end)`` came from."""
    if starts is None or ends is None:
        return start, end
    return starts[start], ends[end - 1]


@lru_cache(maxsize=65_536)
def skeleton(word: str) -> tuple[str, tuple[int, ...]]:
    """A word without repeated letters and the length of each run: ``fuuck`` is
    ``("fuck", (1, 2, 1, 1))``. A text word matches a keyword when the skeletons are equal and
    every run is at least as long as the keyword's, so "fuuuck" matches "fuck" and "asss"
    matches "ass" while "as" does not."""
    letters: list[str] = []
    runs: list[int] = []
    for char in word:
        if letters and letters[-1] == char:
            runs[-1] += 1
        else:
            letters.append(char)
            runs.append(1)
    return "".join(letters), tuple(runs)
