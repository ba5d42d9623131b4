"""The one retry policy of every task: retry transient errors with backoff, then give up.

A task calls :func:`retry_or_give_up` from its ``except Exception`` branch (errors a retry cannot
fix, :class:`~keelwatch.errors.KeelwatchError`, fail the job at once and never come here). While
attempts remain it raises Celery's ``Retry`` after :func:`retry_backoff_s`; after
:data:`MAX_RETRIES` retries it records ``"gave up after N attempts: <cause>"`` through the
caller's ``give_up`` and returns that message for the task's result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn

from celery import Task

logger = logging.getLogger(__name__)

#: Retries after the first attempt (each task declares ``max_retries=MAX_RETRIES``).
MAX_RETRIES = 5
MAX_BACKOFF_S = 60


def retry_backoff_s(retries: int) -> int:
    """Seconds before retry number ``retries + 1``: 1, 2, 4, ... capped at a minute."""
    return int(min(2**retries, MAX_BACKOFF_S))


def retry_or_give_up(
    task: Task[Any, Any],
    *,
    what: str,
    cause: str,
    give_up: Callable[[str], None],
    retry_exc: Exception,
    queue: str | None,
) -> str:
    """Retry ``task`` (raises ``celery.exceptions.Retry``) or, out of attempts, give up.

    ``what`` names the work in log lines ("drift check 42"); ``cause`` is the error as it may be
    stored and logged (callers strip row data from it); ``retry_exc`` is what Celery records
    for the retry; ``queue`` keeps the retry on the queue the task came from (a gpu chunk must
    not drift to the cpu queue). Returns the message passed to ``give_up``.
    """
    retries = int(task.request.retries or 0)
    if retries >= MAX_RETRIES:
        message = f"gave up after {retries + 1} attempts: {cause}"
        logger.error("%s: %s", what, message)
        give_up(message)
        return message
    logger.warning("%s: transient %s, retrying", what, cause)
    countdown = retry_backoff_s(retries)
    if queue is None:
        raise task.retry(exc=retry_exc, countdown=countdown)
    raise task.retry(exc=retry_exc, countdown=countdown, queue=queue)


def retry_later(task: Task[Any, Any], *, countdown: float, queue: str) -> NoReturn:
    """Retry ``task`` after ``countdown`` seconds on ``queue`` (raises ``celery.exceptions.Retry``).

    For tasks that count their attempts in their own row (notification delivery does, so a
    replayed dead letter starts again from one) and so choose the countdown themselves.
    """
    raise task.retry(countdown=countdown, queue=queue)
