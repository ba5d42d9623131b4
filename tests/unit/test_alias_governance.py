"""The pure alias-governance decision: what happened to a governed alias and what to do."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keelwatch.entities import AliasChange
from keelwatch.entities.registry import TAG_REGISTERED_BY, ApprovalState, ModelVersionInfo
from keelwatch.registry.governance import (
    EXTERNAL_ACTOR,
    ExternalKind,
    Restore,
    SeparationOfDutiesError,
    assess_alias,
    check_separation_of_duties,
    external_change_signal,
)

T = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def row(version: str | None, previous: str | None = None, *, external: bool = False) -> AliasChange:
    actor = EXTERNAL_ACTOR if external else "carol"
    return AliasChange(1, "m", "champion", version, previous, T, actor, "", external)


@pytest.mark.parametrize(
    ("observed", "history", "kind"),
    [
        ("2", [row("1")], ExternalKind.MOVED),
        ("2", [], ExternalKind.SET),
        ("2", [row("1"), row(None, "1")], ExternalKind.SET),
        (None, [row("1")], ExternalKind.REMOVED),
    ],
)
def test_a_mismatch_is_an_external_change(
    observed: str | None, history: list[AliasChange], kind: ExternalKind
) -> None:
    found = assess_alias("m", "champion", observed, history, enforce=False)
    assert found.external is not None and found.external.kind is kind
    assert found.external.to_version == observed
    assert found.restore is None


@pytest.mark.parametrize(
    ("observed", "history"), [("1", [row("1")]), (None, []), (None, [row("1"), row(None, "1")])]
)
def test_agreement_is_in_order_in_both_modes(
    observed: str | None, history: list[AliasChange]
) -> None:
    for enforce in (False, True):
        assert assess_alias("m", "champion", observed, history, enforce=enforce).in_order


def test_enforce_restores_to_the_newest_row_keelwatch_wrote() -> None:
    history = [row("1"), row("2", "1"), row("3", "2", external=True)]
    found = assess_alias("m", "champion", "3", history, enforce=True)
    assert found.external is None  # already recorded
    assert found.restore == Restore(version="2", replaced="3")
    cleared = assess_alias("m", "champion", "4", [row("1"), row(None, "1")], enforce=True)
    assert cleared.restore == Restore(version=None, replaced="4")


def test_enforce_never_restores_an_alias_keelwatch_never_set() -> None:
    found = assess_alias("m", "champion", "2", [], enforce=True)
    assert found.external is not None and found.restore is None
    assert found.note == "Keelwatch never set m@champion: recorded, not put back"


def test_signal_labels_drop_empty_values() -> None:
    found = assess_alias("m", "champion", None, [row("1")], enforce=False)
    assert found.external is not None
    signal = external_change_signal(found.external, at=T, source="alias_history:9")
    assert (signal.name, signal.value, signal.source) == (
        "registry.alias.external_change",
        1.0,
        "alias_history:9",
    )
    assert dict(signal.labels) == {
        "model": "m",
        "alias": "champion",
        "from_version": "1",
        "change": "removed",
    }


def version(tags: dict[str, str]) -> ModelVersionInfo:
    return ModelVersionInfo(
        name="m",
        version="3",
        source="",
        run_id=None,
        created_at=T,
        approval=ApprovalState.PENDING,
        approval_actor=None,
        approval_reason=None,
        aliases=(),
        rolled_back=False,
        description="",
        tags=tags,
    )


def test_separation_of_duties() -> None:
    mine = version({TAG_REGISTERED_BY: "token:alice"})
    with pytest.raises(SeparationOfDutiesError, match=r"v3 .* registered by token:alice"):
        check_separation_of_duties(mine, "token:alice")
    check_separation_of_duties(mine, "token:bob")
    check_separation_of_duties(version({}), "token:alice")  # registrant unknown
