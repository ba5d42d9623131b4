"""Model references: every accepted form and every malformed one."""

from __future__ import annotations

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.registry.refs import (
    ModelRef,
    parse_model_ref,
    validate_alias,
    validate_model_name,
    validate_version,
)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("churn", ModelRef("churn", alias="champion")),
        ("  churn  ", ModelRef("churn", alias="champion")),
        ("churn@challenger", ModelRef("churn", alias="challenger")),
        ("churn/3", ModelRef("churn", version="3")),
        ("churn/latest", ModelRef("churn", version="latest")),
        ("churn/LATEST", ModelRef("churn", version="latest")),
        ("models:/churn/12", ModelRef("churn", version="12")),
        ("models:/churn@champion", ModelRef("churn", alias="champion")),
        ("fraud model.v2", ModelRef("fraud model.v2", alias="champion")),
    ],
)
def test_accepted_references(ref: str, expected: ModelRef) -> None:
    assert parse_model_ref(ref, default_alias="champion") == expected


def test_bare_name_uses_the_given_default_alias() -> None:
    assert parse_model_ref("churn", default_alias="prod").alias == "prod"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("churn@", "invalid alias ''"),
        ("@champion", "model name must not be empty"),
        ("churn/", "invalid model version ''"),
        ("churn/0", "invalid model version '0'"),
        ("churn/-1", "invalid model version '-1'"),
        ("churn/three", "invalid model version 'three'"),
        ("churn/3/4", "invalid model version '3/4'"),
        ("churn@latest", "reserved"),
        ("churn@v3", "reserved"),
        ("churn@bad alias", "invalid alias 'bad alias'"),
        ("models:/m-0123456789abcdef", "has no version or alias"),
        ("models:/", "has no version or alias"),
        ("chu'rn", "must not contain '"),
    ],
)
def test_malformed_references_say_what_is_wrong(ref: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        parse_model_ref(ref, default_alias="champion")
    assert str(caught.value)  # the user sees a message, not an empty error


def test_str_round_trips() -> None:
    for text in ("churn@challenger", "churn/3"):
        assert str(parse_model_ref(text, default_alias="champion")) == text


def test_validators() -> None:
    assert validate_model_name("  churn ") == "churn"
    assert validate_version(7) == "7"
    assert validate_alias("champion-2") == "champion-2"
    with pytest.raises(InvalidInputError, match="longer than 255"):
        validate_model_name("x" * 256)
    with pytest.raises(InvalidInputError, match=r"must not contain / :"):
        validate_model_name("a/b:c")
