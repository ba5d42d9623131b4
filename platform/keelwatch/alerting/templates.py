"""Annotation templates: ``{{ $labels.column }}`` and ``{{ $value }}``, substituted safely.

A deliberately tiny language (no ``eval``, no Jinja): a placeholder is ``{{ $value }}`` or
``{{ $labels.NAME }}``, optionally with spaces inside the braces. Anything else between
``{{`` and ``}}`` is rejected when the rule is created, with the column of the mistake. A label
the alert does not have renders as an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from keelwatch.errors import InvalidInputError

__all__ = ["TemplateError", "check_template", "format_value", "render_template"]

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_EXPRESSION = re.compile(r"\s*(?:\$value|\$labels\.([A-Za-z_][A-Za-z0-9_]*))\s*")


class TemplateError(InvalidInputError):
    """A template with an unknown placeholder; ``column`` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.reason = message


def check_template(template: str) -> None:
    """Raise :class:`TemplateError` unless every ``{{ ... }}`` is ``$value`` or ``$labels.X``."""
    for found in _PLACEHOLDER.finditer(template):
        if _EXPRESSION.fullmatch(found.group(1)) is None:
            raise TemplateError(
                "unknown placeholder: use {{ $value }} or {{ $labels.NAME }}", found.start() + 1
            )
    stray = template.find("{{", _last_end(template))
    if stray >= 0:
        raise TemplateError("'{{' without a closing '}}'", stray + 1)


def _last_end(template: str) -> int:
    end = 0
    for found in _PLACEHOLDER.finditer(template):
        end = found.end()
    return end


def format_value(value: float) -> str:
    """A value as people read it: up to 6 significant digits, no trailing noise."""
    return f"{value:.6g}"


_VALUE = object()


@lru_cache(maxsize=4096)
def _parts(template: str) -> tuple[tuple[str, str | object | None], ...]:
    # Split once per template: (literal, label name | _VALUE | None) pairs.
    parts: list[tuple[str, str | object | None]] = []
    last = 0
    for found in _PLACEHOLDER.finditer(template):
        expression = _EXPRESSION.fullmatch(found.group(1))
        if expression is None:  # checked at rule creation; keep the text rather than fail late
            continue
        label = expression.group(1)
        parts.append((template[last : found.start()], _VALUE if label is None else label))
        last = found.end()
    parts.append((template[last:], None))
    return tuple(parts)


def render_template(template: str, labels: Mapping[str, str], value: float) -> str:
    """Substitute placeholders in a template that passed :func:`check_template`."""
    out: list[str] = []
    for literal, slot in _parts(template):
        out.append(literal)
        if slot is _VALUE:
            out.append(format_value(value))
        elif isinstance(slot, str):
            out.append(labels.get(slot, ""))
    return "".join(out)
