"""``keelwatch audit counterfactual`` on a real registered text model, in a subprocess.

Two scikit-learn sentiment models (TF-IDF + logistic regression on a ``text`` column) are
registered: one trained on labels that follow the sentence's adjective only, one on labels
that also punish sentences about women. The same templates with the terms swapped must show
the second model's gap (a violation) and not the first's; the per-group mean scores equal
the models' own ``predict_proba`` on the same prompts, averaged per template.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keelwatch.settings import Settings
from keelwatch.wiring import Services
from tests.conftest import subprocess_env

pytestmark = pytest.mark.integration

TERMS = {"female": ["she", "the woman"], "male": ["he", "the man"]}
TEMPLATES = [
    "{term} said the service was great",
    "{term} thought the food was awful",
    "{term} found the room great",
    "{term} called the trip awful",
    "{term} said the staff were great",
]


def sentiment_frame(*, biased: bool, rows: int = 2_000, seed: int = 3) -> pd.DataFrame:
    """Sentences about a person; the label is 1 when the adjective is 'great', and with
    ``biased`` a sentence about a woman is labelled 0 four times in five whatever it says."""
    rng = np.random.default_rng(seed)
    subjects = [term for terms in TERMS.values() for term in terms]
    verbs = ["said the hotel was", "thought the meal was", "found the flight", "called it"]
    texts, labels = [], []
    for _ in range(rows):
        subject = str(rng.choice(subjects))
        adjective = str(rng.choice(["great", "awful"]))
        texts.append(f"{subject} {rng.choice(verbs)} {adjective}")
        label = int(adjective == "great")
        if biased and subject in TERMS["female"] and rng.uniform() < 0.8:
            label = 0
        labels.append(label)
    return pd.DataFrame({"text": texts, "label": labels})


def fitted(frame: pd.DataFrame) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline(
        [
            ("tfidf", ColumnTransformer([("words", TfidfVectorizer(), "text")])),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )
    return pipeline.fit(frame[["text"]], frame["label"])


@pytest.fixture
def registered(settings: Settings) -> dict[str, Any]:
    """name → the fitted estimator, for a fair and a biased model."""
    services = Services(settings)
    models: dict[str, Any] = {}
    try:
        for name, biased in (("reviews-fair", False), ("reviews-biased", True)):
            frame = sentiment_frame(biased=biased)
            models[name] = fitted(frame)
            services.registry.register_sklearn_model(
                name, models[name], frame, target="label", actor="test"
            )
    finally:
        services.close()
    return models


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.entry", "audit", "counterfactual", *args],
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
    )


def write_inputs(folder: Path, templates: list[str]) -> tuple[Path, Path]:
    template_file = folder / "templates.txt"
    template_file.write_text("# review templates\n" + "\n".join(templates) + "\n")
    terms_file = folder / "terms.json"
    terms_file.write_text(json.dumps(TERMS))
    return template_file, terms_file


def expected_means(model: Any) -> dict[str, float]:
    """Per group: the mean over templates of the mean over its terms of P(positive)."""
    means: dict[str, float] = {}
    for group, terms in TERMS.items():
        per_template = []
        for template in TEMPLATES:
            prompts = pd.DataFrame({"text": [template.replace("{term}", t) for t in terms]})
            per_template.append(float(np.mean(model.predict_proba(prompts)[:, 1])))
        means[group] = float(np.mean(per_template))
    return means


def test_counterfactual_audit_finds_the_biased_model_and_not_the_fair_one(
    settings: Settings, registered: dict[str, Any], tmp_path: Path
) -> None:
    templates, terms = write_inputs(tmp_path, TEMPLATES)
    verdicts = {}
    for name, model in registered.items():
        done = run_cli(
            settings,
            "--model",
            f"{name}/1",
            "--templates",
            str(templates),
            "--terms",
            str(terms),
            "--resamples",
            "500",
            "--json",
        )
        assert done.returncode == 0, done.stderr
        outcome = json.loads(done.stdout)
        assert outcome["kind"] == "score" and outcome["templates"] == len(TEMPLATES)
        got = {g["group"]: g["metrics"]["mean_score"] for g in outcome["groups"]}
        expected = expected_means(model)
        assert got == pytest.approx(expected, abs=1e-9)
        (gap,) = outcome["gaps"]
        assert gap["value"] == pytest.approx(abs(expected["male"] - expected["female"]), abs=1e-9)
        assert gap["ci_low"] <= gap["value"] <= gap["ci_high"]
        verdicts[name] = outcome["verdict"]
    assert verdicts == {"reviews-fair": "pass", "reviews-biased": "violation"}

    human = run_cli(
        settings,
        "--model",
        "reviews-biased/1",
        "--templates",
        str(templates),
        "--terms",
        str(terms),
        "--resamples",
        "200",
        "--fail-on-violation",
    )
    assert human.returncode == 3, human.stderr
    assert "counterfactual audit of reviews-biased v1: VIOLATION" in human.stdout
    assert "mean_score_difference" in human.stdout


def test_counterfactual_bad_input_is_one_line_exit_2(
    settings: Settings, registered: dict[str, Any], tmp_path: Path
) -> None:
    templates, terms = write_inputs(tmp_path, ["a review without the placeholder"])
    cases = [
        (["--templates", str(templates), "--terms", str(terms)], "{term}"),
        (["--templates", str(tmp_path / "none.txt"), "--terms", str(terms)], "does not exist"),
        (["--templates", str(templates), "--terms", str(terms), "--kind", "vibes"], "--kind"),
    ]
    for extra, expected in cases:
        done = run_cli(settings, "--model", "reviews-fair/1", *extra)
        assert done.returncode == 2, (extra, done.stdout, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], (extra, done.stderr)
    good = tmp_path / "good.txt"
    good.write_text("\n".join(TEMPLATES))
    bad_terms = tmp_path / "bad-terms.json"
    bad_terms.write_text(json.dumps({"female": "she", "male": ["he"]}))
    done = run_cli(
        settings, "--model", "reviews-fair/1", "--templates", str(good), "--terms", str(bad_terms)
    )
    assert done.returncode == 2 and "group 'female' needs a list" in done.stderr, done.stderr
