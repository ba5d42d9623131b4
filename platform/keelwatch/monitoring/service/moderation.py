"""Content moderation on the platform: tallies of decisions, rates, signals, and the text
columns of batch-inference chunks.

What the inference path (``inference.execution`` for jobs of text models), the API's
``/moderation`` routes and ``keelwatch moderation`` call. Every function that takes a session
never commits; the caller commits, then hands the tallies to
:func:`~keelwatch.monitoring.service.moderation_metrics.count_tallies` and, when
``alert_transitions`` says alerts changed, to ``alerting.service.after_commit_dispatch``.

:func:`record_moderation` stores one tally per (source, direction) (a rerun replaces it, see
``storage.moderation_tallies``), and when it stored something new writes the rates of the last
:data:`RATE_WINDOW_S` of that model version and direction as signals, then evaluates the rules
on them in a savepoint (``alerting.service.evaluate_or_defer``):

- ``moderation.block_rate``, ``moderation.review_rate``, ``moderation.redact_rate``: the share
  of texts with that decision;
- ``moderation.category_rate`` (label ``category``, one series per taxonomy category): the
  share of texts with at least one finding of the category, whatever the decision.

Labels: ``model``, ``version``, ``direction`` (``input``, ``output`` or ``text``), ``window``
(``1h``). A rule such as ``moderation.block_rate > 0.05`` fires on a jump in blocked outputs.
Importing this module registers the names in the rule catalogue.

The text columns of batch-inference chunks are moderated by
:mod:`keelwatch.monitoring.service.moderation_chunks`. Texts are never logged or put in an
error: messages name columns, rows and types.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from keelwatch.alerting.service import evaluate_or_defer
from keelwatch.alerting.signals import register_signal_names
from keelwatch.entities.moderation import ModerationTally
from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.realized import window_label
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.pipeline import ModerationResult, Moderator
from keelwatch.monitoring.moderation.policy import Decision
from keelwatch.monitoring.service.moderation_metrics import RECORDED_KEY
from keelwatch.storage import moderation_tallies as store
from keelwatch.storage import signals as signal_store
from keelwatch.storage.audit import record_audit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.entities.moderation import ReviewItem
    from keelwatch.settings import ModerationSettings

logger = logging.getLogger(__name__)

SIGNAL_PREFIX = "moderation."
BLOCK_RATE = SIGNAL_PREFIX + "block_rate"
REVIEW_RATE = SIGNAL_PREFIX + "review_rate"
REDACT_RATE = SIGNAL_PREFIX + "redact_rate"
CATEGORY_RATE = SIGNAL_PREFIX + "category_rate"
SIGNAL_NAMES = frozenset({BLOCK_RATE, REVIEW_RATE, REDACT_RATE, CATEGORY_RATE})
_DECISION_RATES = {"block": BLOCK_RATE, "review": REVIEW_RATE, "redact": REDACT_RATE}

# Importing this module makes rules on moderation.* valid (wiring imports it).
register_signal_names(SIGNAL_NAMES)

DIRECTIONS = ("input", "output", "text")
#: The rates written as signals cover this many seconds of tallies, ending when written.
RATE_WINDOW_S = 3600
#: The longest window rates are read over.
MAX_RATES_WINDOW = timedelta(days=400)
#: The most texts one API check takes.
MAX_CHECK_TEXTS = 1_000
CHECK_ACTION = "moderation.check"


@dataclass(frozen=True)
class ModerationRates:
    """Rates of one model version and direction over ``[since, until)``."""

    model_name: str
    model_version: str
    direction: str
    batches: int
    texts: int
    decisions: dict[str, int]
    rates: dict[str, float]  # decision -> share of texts
    category_rates: dict[str, float]  # category -> share of texts with a finding of it
    categories: dict[str, dict[str, int]]
    since: datetime
    until: datetime


# ----------------------------------------------------------------------------- tallies


def tally_results(
    results: Sequence[ModerationResult],
    *,
    model_name: str,
    model_version: str,
    direction: str,
    source: str,
    now: datetime | None = None,
    detail: Mapping[str, Any] | None = None,
) -> ModerationTally:
    """Count ``results``: texts per decision, and per category the texts with a finding of it
    by the text's decision (a category counts once per text)."""
    if direction not in DIRECTIONS:
        raise InvalidInputError(f"direction must be one of {', '.join(DIRECTIONS)}")
    if not source or len(source) > 255:
        raise InvalidInputError("a tally's source must be 1 to 255 characters")
    decisions = {d.value: 0 for d in Decision}
    categories: dict[str, dict[str, int]] = {}
    for result in results:
        decisions[result.decision.value] += 1
        for category in result.categories:
            per = categories.setdefault(category.value, {})
            per[result.decision.value] = per.get(result.decision.value, 0) + 1
    return ModerationTally(
        model_name=model_name,
        model_version=model_version,
        direction=direction,
        source=source,
        texts=len(results),
        decisions=decisions,
        categories=categories,
        created_at=now,
        detail=dict(detail or {}),
    )


def record_moderation(
    session: Session,
    results: Sequence[ModerationResult],
    *,
    model_name: str,
    model_version: str,
    direction: str,
    source: str,
    now: datetime,
    detail: Mapping[str, Any] | None = None,
) -> ModerationTally:
    """Store the tally of ``results`` under (``source``, ``direction``) and, when it is new or
    its counts changed, write the window's rate signals and evaluate the rules on them.

    The returned tally's ``detail`` says what happened: ``recorded`` (``inserted``,
    ``replaced`` or ``unchanged``: a rerun of the same batch), ``signals`` (how many were
    written) and ``alert_transitions`` (how many alert states the evaluation changed)."""
    tally = tally_results(
        results,
        model_name=model_name,
        model_version=model_version,
        direction=direction,
        source=source,
        now=now,
        detail=detail,
    )
    outcome = store.save_tally(session, tally, now=now)
    signals: list[Signal] = []
    transitions = 0
    if outcome != "unchanged":
        signals = rate_signals(session, model_name, model_version, direction, now=now)
        signal_store.write_signals(session, signals)
        evaluated = evaluate_or_defer(session, signals, now, what="moderation")
        transitions = len(evaluated.transitions) if evaluated is not None else 0
    return replace(
        tally,
        detail={
            **tally.detail,
            RECORDED_KEY: outcome,
            "signals": len(signals),
            "alert_transitions": transitions,
        },
    )


def rate_signals(
    session: Session,
    model_name: str,
    model_version: str,
    direction: str,
    *,
    now: datetime,
    window_s: int = RATE_WINDOW_S,
) -> list[Signal]:
    """The ``moderation.*`` signals of one model version and direction over the tallies of
    ``[now - window_s, now]`` (nothing when they hold no text)."""
    summed = store.sum_tallies(
        session,
        since=now - timedelta(seconds=window_s),
        model_name=model_name,
        model_version=model_version,
        direction=direction,
    )
    if not summed or summed[0].texts == 0:
        return []
    totals = summed[0]
    labels = {
        "model": model_name,
        "version": model_version,
        "direction": direction,
        "window": window_label(window_s),
    }
    source = f"moderation:{model_name}/{model_version}:{direction}"[:255]
    out = [
        Signal(name, totals.decisions.get(decision, 0) / totals.texts, labels, now, source)
        for decision, name in _DECISION_RATES.items()
    ]
    for category in Category:
        touched = sum(totals.categories.get(category.value, {}).values())
        out.append(
            Signal(
                CATEGORY_RATE,
                touched / totals.texts,
                {**labels, "category": category.value},
                now,
                source,
            )
        )
    return out


def moderation_rates(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    model: str | None = None,
    version: str | None = None,
    direction: str | None = None,
) -> list[ModerationRates]:
    """Rates per model version and direction from the tallies created in ``[since, until)``."""
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInputError("since and until must be timezone-aware")
    if since >= until:
        raise InvalidInputError("since must be before until")
    if direction is not None and direction not in DIRECTIONS:
        raise InvalidInputError(f"direction must be one of {', '.join(DIRECTIONS)}")
    out: list[ModerationRates] = []
    for totals in store.sum_tallies(
        session,
        since=since,
        until=until,
        model_name=model,
        model_version=version,
        direction=direction,
    ):
        texts = totals.texts
        out.append(
            ModerationRates(
                model_name=totals.model_name,
                model_version=totals.model_version,
                direction=totals.direction,
                batches=totals.batches,
                texts=texts,
                decisions=dict(totals.decisions),
                rates={d: _share(n, texts) for d, n in totals.decisions.items()},
                category_rates={
                    c: _share(sum(per.values()), texts)
                    for c, per in sorted(totals.categories.items())
                },
                categories=totals.categories,
                since=since,
                until=until,
            )
        )
    return out


def rates_since(text: str, now: datetime) -> datetime:
    """The start of a rates window: ``text`` is a window back from ``now`` (``24h``, ``30m``,
    ``7d``) or an ISO 8601 time with a zone; at most :data:`MAX_RATES_WINDOW` back."""
    from keelwatch.monitoring.evaluation.realized import parse_window

    stripped = text.strip()
    if stripped[:1].isdigit() and len(stripped) <= 12 and "-" not in stripped:
        seconds = parse_window(stripped)
        if seconds > MAX_RATES_WINDOW.total_seconds():
            raise InvalidInputError(f"since: at most {MAX_RATES_WINDOW.days} days back")
        start = now - timedelta(seconds=seconds)
    else:
        try:
            start = datetime.fromisoformat(stripped)
        except ValueError:
            raise InvalidInputError(
                "since: use a window such as 24h or an ISO 8601 time with a zone"
            ) from None
        if start.tzinfo is None:
            raise InvalidInputError("since: an ISO 8601 time needs a time zone")
    if now - start > MAX_RATES_WINDOW:
        raise InvalidInputError(f"since: at most {MAX_RATES_WINDOW.days} days back")
    if start >= now:
        raise InvalidInputError("since must be in the past")
    return start


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


# ----------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class CheckOutcome:
    """What :func:`check_texts` decided and, with a model, what it stored."""

    results: list[ModerationResult]
    tally: ModerationTally | None = None
    review_items: list[int] = field(default_factory=list)
    source: str | None = None


def check_texts(
    session: Session,
    moderator: Moderator,
    texts: Sequence[str],
    *,
    actor: str,
    now: datetime,
    model: str | None = None,
    version: str | None = None,
) -> CheckOutcome:
    """Moderate ``texts``. Without ``model`` nothing is stored. With it and ``version`` (a
    client moderating its model's text through the API) the check is recorded like a batch: a
    tally (direction ``text``, source ``api:<uuid>``) that counts in the version's rates and
    signals, a review item per text decided ``review``, and an audit entry
    ``moderation.check`` with the counts."""
    if len(texts) > MAX_CHECK_TEXTS:
        raise InvalidInputError(f"at most {MAX_CHECK_TEXTS} texts per check, got {len(texts)}")
    for index, text in enumerate(texts):
        if isinstance(text, str) and len(text) > moderator.max_chars:
            raise InvalidInputError(
                f"texts[{index}]: {len(text)} characters exceeds the "
                f"{moderator.max_chars}-character limit"
            )
    results = moderator.moderate_many(texts)
    if model is None:
        return CheckOutcome(results)
    if not version:
        raise InvalidInputError("a check of a model's text needs its version")
    source = f"api:{uuid.uuid4()}"
    model_version = version
    tally = record_moderation(
        session,
        results,
        model_name=model,
        model_version=model_version,
        direction="text",
        source=source,
        now=now,
    )
    items = enqueue_reviews(
        session,
        [(f"{source}:{i}", texts[i], r) for i, r in enumerate(results)],
        model_name=model,
        model_version=model_version,
        direction="text",
        now=now,
        max_chars=moderator.max_chars,
    )
    record_audit(
        session,
        actor=actor,
        action=CHECK_ACTION,
        target=f"model:{model}"[:255],
        details={
            "source": source,
            "version": model_version,
            "texts": len(results),
            "decisions": tally.decisions,
            "review_items": [item.id for item in items],
        },
        at=now,
    )
    return CheckOutcome(results, tally, [item.id for item in items], source)


def enqueue_reviews(
    session: Session,
    candidates: Sequence[tuple[str, object, ModerationResult]],
    *,
    model_name: str,
    model_version: str,
    direction: str,
    now: datetime,
    max_chars: int,
) -> list[ReviewItem]:
    """A review item per ``review`` result (idempotent on its source key); the new ones."""
    from keelwatch.monitoring.service.review_queue import enqueue_review

    created: list[ReviewItem] = []
    for source_key, text, result in candidates:
        if result.decision is not Decision.REVIEW:
            continue
        item = enqueue_review(
            session,
            source_key=source_key,
            model_name=model_name,
            model_version=model_version,
            direction=direction,
            text=text if isinstance(text, str) else "",
            result=result,
            now=now,
            max_chars=max_chars,
        )
        if item is not None:
            created.append(item)
    return created


# ----------------------------------------------------------------------------- moderators


def build_moderator(
    settings: ModerationSettings, *, tracking_uri: str = "", registry_uri: str = ""
) -> Moderator:
    """The moderator ``settings`` describe (``monitoring.service.moderators``): rules, PII
    detectors and the configured classifier under the configured policy. A registered MLflow
    classifier (``models:/name/version``) is loaded through ``tracking_uri``/``registry_uri``
    (``settings.mlflow``); without them only the embedded classifier or none can be used."""
    from keelwatch.monitoring.service.moderators import build_moderator as build
    from keelwatch.monitoring.service.moderators import mlflow_model_loader

    loader = mlflow_model_loader(tracking_uri, registry_uri) if tracking_uri else None
    return build(settings, model_loader=loader)


def cached_moderator(
    settings: ModerationSettings, *, tracking_uri: str = "", registry_uri: str = ""
) -> Moderator:
    """:func:`build_moderator`, built once per process, configuration and MLflow store
    (filters compile their lists and load a classifier)."""
    return _cached(settings.model_dump_json(), tracking_uri, registry_uri)


@lru_cache(maxsize=4)
def _cached(settings_json: str, tracking_uri: str, registry_uri: str) -> Moderator:
    from keelwatch.settings import ModerationSettings

    return build_moderator(
        ModerationSettings.model_validate_json(settings_json),
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
    )
