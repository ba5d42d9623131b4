"""The evaluation suites and which ones a dataset's task gets by default."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from keelwatch.errors import InvalidInputError

SUITES: Final = ("classification", "regression", "text_generation", "efficiency")
#: A dataset's task: the kind of labels it holds.
TASKS: Final = ("classification", "regression", "text_generation")


def default_suites(task: str) -> tuple[str, ...]:
    """The task's own suite plus ``efficiency``, which every model gets."""
    if task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return (task, "efficiency")


def check_suites(task: str, suites: Iterable[str] | None) -> tuple[str, ...]:
    """The suites to run for a ``task`` dataset: the defaults when ``suites`` is None, else the
    given ones, de-duplicated in order; unknown suites or another task's suite raise."""
    if suites is None:
        return default_suites(task)
    chosen = tuple(dict.fromkeys(suites))
    if not chosen:
        raise InvalidInputError("suites is empty; name at least one suite")
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        raise InvalidInputError(
            f"unknown suite(s) {', '.join(map(repr, unknown))}; known: {', '.join(SUITES)}"
        )
    default_suites(task)  # validates the task
    wrong = [s for s in chosen if s not in (task, "efficiency")]
    if wrong:
        raise InvalidInputError(
            f"suite(s) {', '.join(wrong)} do not apply to a {task} dataset; "
            f"use {task} and/or efficiency"
        )
    return chosen
