"""Alertmanager label matchers: parse ``{model="credit-risk", column=~"f[0-9]+"}`` and apply them.

Semantics follow Alertmanager: ``=`` and ``!=`` compare strings; ``=~`` and ``!~`` use a regex
anchored at both ends (``^(?:re)$``), so ``column=~"f1"`` does not match ``f10``. A label that is
absent has the value ``""``: ``team=""`` matches alerts without ``team``, ``team!=""`` requires
it. The parser is a small hand-written tokenizer (never ``eval``); errors give the 1-based
column of the mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from keelwatch.entities.alerts import Matcher, MatchOp
from keelwatch.errors import InvalidInputError

__all__ = ["MatcherSyntaxError", "matcher_matches", "matches_all", "parse_matchers"]

_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class MatcherSyntaxError(InvalidInputError):
    """A matcher string that does not parse; ``column`` is 1-based within that string."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.reason = message


@lru_cache(maxsize=65536)
def _anchored(pattern: str) -> re.Pattern[str]:
    return re.compile(f"^(?:{pattern})$")


def compile_regex(pattern: str) -> re.Pattern[str]:
    """The anchored regex a ``=~``/``!~`` matcher applies; raises ``re.error`` if invalid."""
    return _anchored(pattern)


def matcher_matches(matcher: Matcher, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy one matcher (a missing label counts as ``""``)."""
    value = labels.get(matcher.name, "")
    op = matcher.op
    if op is MatchOp.EQUAL:
        return value == matcher.value
    if op is MatchOp.NOT_EQUAL:
        return value != matcher.value
    hit = _anchored(matcher.value).match(value) is not None
    return hit if op is MatchOp.REGEX else not hit


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every matcher (an empty list matches everything)."""
    return all(matcher_matches(m, labels) for m in matchers)


class _Cursor:
    def __init__(self, text: str, offset: int) -> None:
        self.text = text
        self.pos = 0
        self.offset = offset

    def fail(self, message: str, pos: int | None = None) -> MatcherSyntaxError:
        return MatcherSyntaxError(message, (self.pos if pos is None else pos) + 1 + self.offset)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)


def _describe(char: str) -> str:
    return "end of input" if not char else f"{char!r}"


def _label_name(cur: _Cursor) -> str:
    found = _LABEL_NAME.match(cur.text, cur.pos)
    if found is None:
        raise cur.fail(f"expected a label name, found {_describe(cur.peek())}")
    cur.pos = found.end()
    return found.group()


def _operator(cur: _Cursor) -> MatchOp:
    for op in (MatchOp.REGEX, MatchOp.NOT_REGEX, MatchOp.NOT_EQUAL, MatchOp.EQUAL):
        if cur.text.startswith(op.value, cur.pos):
            cur.pos += len(op.value)
            return op
    raise cur.fail(f"expected one of =, !=, =~, !~, found {_describe(cur.peek())}")


def _quoted(cur: _Cursor) -> str:
    quote = cur.peek()
    if quote not in ('"', "'"):
        raise cur.fail(f'expected a quoted value ("..."), found {_describe(quote)}')
    start = cur.pos
    cur.pos += 1
    out: list[str] = []
    while True:
        char = cur.peek()
        if not char:
            raise cur.fail("unterminated quoted value", start)
        cur.pos += 1
        if char == quote:
            return "".join(out)
        if char == "\\":
            escaped = cur.peek()
            if escaped == quote:
                out.append(quote)
            elif escaped in _ESCAPES:
                out.append(_ESCAPES[escaped])
            else:
                message = f"unknown escape \\{escaped}" if escaped else "dangling \\"
                raise cur.fail(message, cur.pos - 1)
            cur.pos += 1
        else:
            out.append(char)


def _matcher(cur: _Cursor) -> Matcher:
    name = _label_name(cur)
    cur.skip_space()
    op = _operator(cur)
    cur.skip_space()
    value_at = cur.pos
    value = _quoted(cur)
    if op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
        try:
            compile_regex(value)
        except re.error as err:
            raise cur.fail(f"invalid regular expression for {name!r}: {err.msg}", value_at) from err
    return Matcher(name, op, value)


def parse_matchers(text: str, *, offset: int = 0) -> tuple[Matcher, ...]:
    """Parse ``{a="x", b=~"y.*"}`` or the same without braces; ``""`` or ``{}`` is no matchers.

    ``offset`` shifts reported columns, for a matcher string embedded in a longer line.
    Raises :class:`MatcherSyntaxError` naming the column of the first mistake.
    """
    cur = _Cursor(text, offset)
    cur.skip_space()
    braced = cur.peek() == "{"
    if braced:
        cur.pos += 1
    matchers: list[Matcher] = []
    while True:
        cur.skip_space()
        if cur.at_end() or (braced and cur.peek() == "}"):
            break
        matchers.append(_matcher(cur))
        cur.skip_space()
        if cur.peek() == ",":
            cur.pos += 1
            continue
        break
    cur.skip_space()
    if braced:
        if cur.peek() != "}":
            raise cur.fail(f"expected ',' or '}}', found {_describe(cur.peek())}")
        cur.pos += 1
        cur.skip_space()
    if not cur.at_end():
        raise cur.fail(f"unexpected {_describe(cur.peek())} after the matchers")
    return tuple(matchers)
