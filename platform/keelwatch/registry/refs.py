"""Parsing model references and validating registry names (pure: no MLflow import).

A reference names one model version, directly or through an alias::

    churn            the champion of "churn" (the policy's champion alias)
    churn@challenger the version the alias "challenger" points to
    churn/3          version 3
    churn/latest     the highest version number
    models:/churn/3  MLflow's URI forms of the two above
    models:/churn@challenger
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keelwatch.errors import InvalidInputError

MODELS_URI_SCHEME = "models:/"
LATEST = "latest"

# MLflow forbids '/' and ':' in model names; we also keep '@' and quotes out so a name survives
# a reference ("name@alias") and an MLflow search filter ("name = '...'") unambiguously.
_FORBIDDEN_NAME_CHARS = frozenset("/:@'\"\\")
_ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_VERSION_ALIAS_PATTERN = re.compile(r"^[vV]\d+$")
_VERSION_PATTERN = re.compile(r"^[1-9]\d*$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``version`` and ``alias`` is set."""

    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"


def validate_model_name(name: str) -> str:
    """Return ``name`` stripped, or raise :class:`InvalidInputError` saying what is wrong."""
    stripped = name.strip()
    if not stripped:
        raise InvalidInputError("model name must not be empty")
    bad = sorted({char for char in stripped if char in _FORBIDDEN_NAME_CHARS})
    if bad:
        raise InvalidInputError(
            f"invalid model name {stripped!r}: it must not contain {' '.join(bad)}"
        )
    if len(stripped) > 255:
        raise InvalidInputError(f"invalid model name {stripped[:40]!r}...: longer than 255")
    return stripped


def validate_alias(alias: str) -> str:
    """Return ``alias`` if MLflow accepts it as an alias name, else raise InvalidInputError."""
    if not _ALIAS_PATTERN.match(alias):
        raise InvalidInputError(f"invalid alias {alias!r}: use 1-255 letters, digits, '_' or '-'")
    if alias.lower() == LATEST or _VERSION_ALIAS_PATTERN.match(alias):
        raise InvalidInputError(f"invalid alias {alias!r}: 'latest' and 'v<number>' are reserved")
    return alias


def validate_version(version: str | int) -> str:
    """Return the version number as MLflow's string form (``"3"``), or raise InvalidInputError."""
    text = str(version).strip()
    if not _VERSION_PATTERN.match(text):
        raise InvalidInputError(f"invalid model version {text!r}: expected a positive integer")
    return text


def parse_model_ref(ref: str, *, default_alias: str) -> ModelRef:
    """Parse ``ref`` (see the module docstring); a bare name means ``name@default_alias``.

    ``latest`` is kept as the version string ``"latest"``; the registry turns it into a number.
    """
    text = ref.strip()
    if not text:
        raise InvalidInputError("model reference must not be empty")
    body = text[len(MODELS_URI_SCHEME) :] if text.startswith(MODELS_URI_SCHEME) else text
    if text.startswith(MODELS_URI_SCHEME) and "@" not in body and "/" not in body:
        # models:/m-<id> names a logged model, not a registered version: nothing to resolve.
        raise InvalidInputError(
            f"model reference {text!r} has no version or alias; "
            "use models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    if "@" in body:
        name, _, alias = body.partition("@")
        return ModelRef(name=validate_model_name(name), alias=validate_alias(alias))
    if "/" in body:
        name, _, version = body.partition("/")
        if version.strip().lower() == LATEST:
            return ModelRef(name=validate_model_name(name), version=LATEST)
        return ModelRef(name=validate_model_name(name), version=validate_version(version))
    return ModelRef(name=validate_model_name(body), alias=validate_alias(default_alias))
