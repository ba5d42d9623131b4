"""The notifier contract: a pure ``render`` and a small I/O ``send``, and how failures are told.

A delivery task (Celery, with retries and a dead letter) calls ``notifier.deliver(n)`` and
looks only at the exception class: :class:`RetryableDeliveryError` (connection refused,
timeout, HTTP 5xx or 429, SMTP 4xx) is retried with backoff; :class:`PermanentDeliveryError`
(HTTP 4xx other than 429, SMTP 5xx, a refused login, a bad target) goes straight to the dead
letter, since sending the same thing again cannot succeed.

Secrets (webhook keys, routing keys, passwords, the path of a Slack webhook URL) live in
Pydantic ``SecretStr`` fields: reprs print ``**********``, and every error message passes
through :func:`scrub` so a secret that a library echoes back never reaches a log line.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from keelwatch.entities.notifications import Notification
from keelwatch.errors import InvalidInputError, KeelwatchError

MASK = "**********"
"""What a secret is replaced with wherever it would otherwise be shown."""

DEFAULT_TIMEOUT_S = 5.0
"""Connect/read/write timeout of one delivery: a hung receiver costs seconds, not a worker."""


class DeliveryError(KeelwatchError):
    """A notification could not be delivered; ``str(err)`` names the target, never a secret."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, response_code: int | None = None) -> None:
        """``response_code``: the receiver's HTTP status or SMTP reply code, when it answered."""
        super().__init__(message)
        self.response_code = response_code


class RetryableDeliveryError(DeliveryError):
    """The receiver may accept the same notification later: retry with backoff."""

    retryable = True

    def __init__(
        self, message: str, *, response_code: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, response_code=response_code)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """Sending the same notification again cannot succeed: dead-letter it."""


class NotifierConfigError(InvalidInputError):
    """A notifier's configuration is malformed (unknown type, missing or bad field)."""


@dataclass(frozen=True)
class HttpRequest:
    """One rendered HTTP request. Only ``method`` and ``display_url`` show in its repr: the
    URL (a Slack path), headers and body (a PagerDuty routing key) may carry secrets."""

    method: str
    url: str = field(repr=False)
    display_url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class DeliveryReceipt:
    """What a successful delivery reports for the notification log."""

    notifier: str
    target: str
    idempotency_key: str
    attempts: tuple[str, ...] = ()
    """One short line per request sent (``POST http://host/path -> 202``)."""


class NotifierConfig(BaseModel):
    """Base of every notifier's configuration: strict, unknown keys rejected, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    timeout_s: float = DEFAULT_TIMEOUT_S

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in this configuration, for :func:`scrub`."""
        values: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return tuple(values)


ConfigT = TypeVar("ConfigT", bound=NotifierConfig)
RequestT = TypeVar("RequestT")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by :data:`MASK` (longest first)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def parse_config(config_type: type[ConfigT], notifier: str, raw: Mapping[str, Any]) -> ConfigT:
    """Validate ``raw`` into ``config_type``; errors name the field and the problem, never the
    value (so a mistyped secret is not echoed back)."""
    try:
        return config_type.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise NotifierConfigError(f"{notifier} notifier config: {problems}") from None


class Notifier(abc.ABC, Generic[ConfigT, RequestT]):
    """One delivery channel. Subclasses set ``type_name`` and ``config_type`` and implement
    ``render`` (pure: a notification in, requests out) and ``send_one`` (I/O: one request)."""

    type_name: ClassVar[str]
    config_type: ClassVar[type[NotifierConfig]]

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> Notifier[Any, Any]:
        """Build the notifier from a plain mapping (YAML, API body); raises
        :class:`NotifierConfigError` naming the bad field."""
        config: Any = parse_config(cls.config_type, cls.type_name, raw)
        return cls(config)

    @property
    @abc.abstractmethod
    def target(self) -> str:
        """Where this notifier delivers, safe to show and log (secrets masked)."""

    @abc.abstractmethod
    def render(self, notification: Notification) -> Sequence[RequestT]:
        """The requests that deliver ``notification``; pure and deterministic."""

    @abc.abstractmethod
    def send_one(self, request: RequestT) -> str:
        """Send one rendered request; return a short outcome line or raise a
        :class:`DeliveryError`."""

    def send(self, requests: Sequence[RequestT]) -> tuple[str, ...]:
        """Send rendered requests in order, with every error message scrubbed of secrets."""
        outcomes: list[str] = []
        for request in requests:
            try:
                outcomes.append(self.send_one(request))
            except DeliveryError as exc:
                exc.args = (scrub(str(exc), self.config.secrets()),)
                raise
        return tuple(outcomes)

    def deliver(self, notification: Notification) -> DeliveryReceipt:
        """Render and send ``notification``; the one call a delivery task makes."""
        outcomes = self.send(self.render(notification))
        return DeliveryReceipt(
            notifier=self.type_name,
            target=self.target,
            idempotency_key=notification.idempotency_key,
            attempts=outcomes,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r})"
