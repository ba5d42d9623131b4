"""Notifiers: one module per delivery channel behind one contract, chosen by type name.

Every notifier is a :class:`Notifier`: built from a plain config mapping (validated, secrets
held as ``SecretStr``), with a pure ``render(notification)`` that returns the requests to send
and a small ``send_one(request)`` that performs the I/O. ``deliver(notification)`` does both and
returns a :class:`DeliveryReceipt` or raises :class:`RetryableDeliveryError` (retry with
backoff) or :class:`PermanentDeliveryError` (dead-letter at once). The delivery task, the
notification log and the dead letters live outside this package; it never imports Celery,
SQLAlchemy or settings.

New notifier: a module here with a ``NotifierConfig`` subclass and a ``Notifier`` subclass
(``type_name``, ``config_type``, ``target``, ``render``, ``send_one``), added to
:data:`NOTIFIER_TYPES`; the contract suite in ``tests/integration/test_notifiers.py`` then runs
against it with its own real receiver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keelwatch.alerting.notifiers._contract import (
    MASK,
    DeliveryError,
    DeliveryReceipt,
    HttpRequest,
    Notifier,
    NotifierConfig,
    NotifierConfigError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    scrub,
)
from keelwatch.alerting.notifiers.alertmanager import AlertmanagerNotifier
from keelwatch.alerting.notifiers.email import EmailNotifier
from keelwatch.alerting.notifiers.pagerduty import PagerDutyNotifier
from keelwatch.alerting.notifiers.slack import SlackNotifier
from keelwatch.alerting.notifiers.webhook import WebhookNotifier, verify_signature

NOTIFIER_TYPES: Mapping[str, type[Notifier[Any, Any]]] = {
    cls.type_name: cls
    for cls in (
        WebhookNotifier,
        SlackNotifier,
        PagerDutyNotifier,
        AlertmanagerNotifier,
        EmailNotifier,
    )
}
"""Every notifier type by name: ``webhook``, ``slack``, ``pagerduty``, ``alertmanager``,
``email``."""


def create_notifier(type_name: str, config: Mapping[str, Any]) -> Notifier[Any, Any]:
    """The notifier of ``type_name`` built from ``config``.

    Raises :class:`NotifierConfigError` (an ``InvalidInputError``, so a 422 at the API and a
    non-zero exit at the CLI) for an unknown type or a bad field, naming it, never its value.
    """
    try:
        notifier_type = NOTIFIER_TYPES[type_name]
    except KeyError:
        known = ", ".join(sorted(NOTIFIER_TYPES))
        raise NotifierConfigError(f"unknown notifier type {type_name!r} (known: {known})") from None
    return notifier_type.from_config(config)


__all__ = [
    "MASK",
    "NOTIFIER_TYPES",
    "AlertmanagerNotifier",
    "DeliveryError",
    "DeliveryReceipt",
    "EmailNotifier",
    "HttpRequest",
    "Notifier",
    "NotifierConfig",
    "NotifierConfigError",
    "PagerDutyNotifier",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "SlackNotifier",
    "WebhookNotifier",
    "create_notifier",
    "scrub",
    "verify_signature",
]
