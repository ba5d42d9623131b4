"""Domain errors. Each maps to a clear message (CLI exit code, API 4xx) at the edges."""

from __future__ import annotations


class KeelwatchError(Exception):
    """Base of every error Keelwatch raises on purpose; ``str(err)`` is the user message."""

    status_code = 400


class NotFoundError(KeelwatchError):
    """Unknown model, version, alias, job or other named thing."""

    status_code = 404


class ConflictError(KeelwatchError):
    """The request contradicts current state (e.g. promoting an unapproved version)."""

    status_code = 409


class InvalidInputError(KeelwatchError):
    """Malformed input: schema mismatch, empty dataset, NaN where not allowed, bad payload."""

    status_code = 422


class UnavailableError(KeelwatchError):
    """A store Keelwatch depends on is down, too slow or busy: the API answers 503 with a
    ``Retry-After`` of :attr:`retry_after_s` seconds; retrying later may succeed."""

    status_code = 503
    retry_after_s = 5


class RegistryUnavailableError(UnavailableError):
    """MLflow's tracking / registry store could not be reached or did not answer in time."""
