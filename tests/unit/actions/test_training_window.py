"""The retrain window's parameters and assembly, against hand-built frames."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from keelwatch.actions.training_window import WindowSpec, assemble_window, window_spec
from keelwatch.entities import LabelledPrediction
from keelwatch.errors import InvalidInputError


def test_window_spec_defaults_and_parsed_values() -> None:
    assert window_spec({}) == WindowSpec(timedelta(days=7), 100, None, None, "7d")
    spec = window_spec({"window": "36h", "min_rows": "25", "target": "y", "queue": "gpu"})
    assert spec == WindowSpec(timedelta(hours=36), 25, "y", None, "36h")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": "a week"}, "retrain parameter 'window': invalid duration"),
        ({"window": "0s"}, "'window' must be longer than 0s"),
        ({"min_rows": "0"}, "'min_rows' must be a whole number >= 1, got '0'"),
        ({"min_rows": "ten"}, "'min_rows' must be a whole number >= 1, got 'ten'"),
    ],
)
def test_window_spec_names_the_bad_parameter(params: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        window_spec(params)


def _logged() -> list[LabelledPrediction]:
    return [
        LabelledPrediction(7, {"a": 1.0, "b": 2.0, "extra": "x"}, {"p": 0}, 1),
        LabelledPrediction(9, {"a": 3.0}, {"p": 1}, 0),
    ]


def test_reference_rows_come_first_then_log_rows_with_their_label_as_target() -> None:
    reference = pd.DataFrame({"b": [10.0, 20.0], "y": [0, 1], "a": [5.0, 6.0]})
    window = assemble_window(reference, _logged(), target="y", features=["a", "b"])
    expected = pd.DataFrame(
        {"a": [5.0, 6.0, 1.0, 3.0], "b": [10.0, 20.0, 2.0, None], "y": [0, 1, 1, 0]}
    )
    pd.testing.assert_frame_equal(window.frame, expected, check_dtype=False)
    assert (window.reference_rows, window.logged_rows) == (2, 2)


def test_features_default_to_the_reference_columns_else_the_logged_inputs() -> None:
    reference = pd.DataFrame({"a": [1.0], "y": [1]})
    assert list(assemble_window(reference, _logged(), target="y").frame.columns) == ["a", "y"]
    only_log = assemble_window(None, _logged(), target="y")
    assert list(only_log.frame.columns) == ["a", "b", "extra", "y"]
    assert only_log.frame["y"].tolist() == [1, 0]
    empty = assemble_window(None, [], target="y", features=["a"])
    assert list(empty.frame.columns) == ["a", "y"] and len(empty.frame) == 0


def test_a_reference_without_the_target_or_an_input_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="no target column 'y'"):
        assemble_window(pd.DataFrame({"a": [1.0]}), [], target="y")
    with pytest.raises(InvalidInputError, match=r"lacks the input columns \['b'\]"):
        assemble_window(pd.DataFrame({"a": [1.0], "y": [0]}), [], target="y", features=["a", "b"])
