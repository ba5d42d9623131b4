"""Suite names and the defaults per dataset task."""

from __future__ import annotations

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.suites import SUITES, TASKS, check_suites, default_suites


@pytest.mark.parametrize("task", TASKS)
def test_every_task_gets_its_suite_and_efficiency(task: str) -> None:
    assert default_suites(task) == (task, "efficiency")
    assert set(default_suites(task)) <= set(SUITES)


def test_unknown_task() -> None:
    with pytest.raises(InvalidInputError, match="unknown task 'ranking'"):
        default_suites("ranking")


def test_check_suites() -> None:
    assert check_suites("regression", None) == ("regression", "efficiency")
    assert check_suites("regression", ["efficiency", "efficiency"]) == ("efficiency",)
    with pytest.raises(InvalidInputError, match="unknown suite\\(s\\) 'speed'"):
        check_suites("regression", ["speed"])
    with pytest.raises(InvalidInputError, match="do not apply to a regression dataset"):
        check_suites("regression", ["classification"])
    with pytest.raises(InvalidInputError, match="suites is empty"):
        check_suites("regression", [])
