"""Settings → ``KEELWATCH_*`` environment variables, for child processes and for the docs.

:func:`settings_environment` flattens a *resolved* settings tree into the variables that
rebuild it exactly in a child process, so a relative data dir or a default derived in the
parent means the same thing in every child; :func:`iter_env_vars` lists every variable the
settings tree reads (``keelwatch config``, the deploy files' tests). Nothing here starts a
process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from keelwatch.settings import Settings

ENV_PREFIX = "KEELWATCH_"
ENV_NESTED_DELIMITER = "__"


@dataclass(frozen=True)
class EnvVar:
    """One ``KEELWATCH_*`` variable derived from a settings field."""

    name: str
    type_name: str
    default: str
    description: str


def _field_type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def iter_env_vars(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> Iterator[EnvVar]:
    """Every environment variable the settings tree reads: top-level fields and nested groups
    joined by ``__`` (``KEELWATCH_DATABASE__URL``)."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        env_name = f"{prefix}{name.upper()}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from iter_env_vars(annotation, f"{env_name}{ENV_NESTED_DELIMITER}")
            continue
        default = info.get_default(call_default_factory=True)
        yield EnvVar(
            name=env_name,
            type_name=_field_type_name(annotation),
            default=_env_value(default),
            description=info.description or "",
        )


def settings_environment(settings: Settings) -> dict[str, str]:
    """``KEELWATCH_*`` variables that rebuild exactly ``settings`` in a child process."""
    return dict(_flatten(settings, ENV_PREFIX))


def _flatten(model: BaseModel, prefix: str) -> Iterator[tuple[str, str]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        env_name = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            yield from _flatten(value, f"{env_name}{ENV_NESTED_DELIMITER}")
        elif value is not None:
            # None stays unset: an empty string would not parse as an optional number.
            yield env_name, _env_value(value)


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        # A child process needs the real value; `keelwatch config` redacts it (cli/ops.py).
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (str, int, float, Path)):
        return str(value)
    # Lists and dicts: pydantic-settings parses JSON for complex fields. Compact, so a value
    # is one word (`keelwatch config` keeps every value whole on one line).
    return json.dumps(value, separators=(",", ":"))


def child_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the resolved settings on top."""
    env = dict(os.environ if base is None else base)
    env.update(settings_environment(settings))
    return env
