"""The canonical form against a character-by-character reference built from unicodedata, on
generated mixed text: normalize() lower-cases ASCII stretches whole, and must agree with the
definition (NFKD, case folding, marks and format characters dropped, look-alikes mapped, a
dropped mark's span joined to the letter before it) character for character."""

from __future__ import annotations

import random
import unicodedata

from keelwatch.monitoring.moderation._normalize import CONFUSABLES, normalize, original_span
from keelwatch.monitoring.moderation.findings import non_ascii


def reference(text: str) -> tuple[str, list[int], list[int]]:
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for index, char in enumerate(text):
        if 0xD800 <= ord(char) <= 0xDFFF:
            parts = " "
        else:
            parts = "".join(
                CONFUSABLES.get(part, part)
                for part in unicodedata.normalize("NFKD", char).casefold()
                if not unicodedata.combining(part) and unicodedata.category(part) != "Cf"
            )
        if not parts:
            if ends and ends[-1] == index:
                ends[-1] = index + 1
            continue
        for part in parts:
            chars.append(part)
            starts.append(index)
            ends.append(index + 1)
    return "".join(chars), starts, ends


# ASCII (cased, digits, punctuation), accents precomposed and combining, a zero-width space,
# ligatures and fullwidth forms, Cyrillic and Greek look-alikes, an emoji, a lone surrogate.
ALPHABET = (
    "aB z1@$.- \n\u00e9\u0301\u200b\ufb01\u00df\uff41\u0430\u0435\u03bf\u0130\U0001f389\ud800"
)


def test_normalize_agrees_with_the_character_by_character_reference() -> None:
    rng = random.Random(7)
    for _ in range(3_000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 40)))
        canonical, starts, ends = normalize(text)
        if text.isascii():
            assert (canonical, starts, ends) == (text.lower(), None, None)
        else:
            assert (canonical, starts, ends) == reference(text), ascii(text)


def test_spans_of_a_mixed_text_point_back_at_the_original() -> None:
    text = "Caf\u00e9 \ufb01ne FU\u200bCK"
    canonical, starts, ends = normalize(text)
    assert canonical == "cafe fine fuck"
    start = canonical.index("fuck")
    assert text[slice(*original_span(start, start + 4, starts, ends))] == "FU\u200bCK"
    assert text[slice(*original_span(0, 4, starts, ends))] == "Caf\u00e9"


def test_non_ascii_names_the_texts_outside_ascii() -> None:
    assert non_ascii(["plain", "caf\u00e9", "", "\U0001f389", "also plain"]) == [1, 3]
    assert non_ascii(["plain", "text"]) == []
    assert non_ascii([]) == []
