"""Counterfactual audits of a text model on the platform: read the templates and term lists,
fill the templates (``monitoring.fairness.counterfactual``), run the model on every prompt and
compare the groups.

What ``keelwatch audit counterfactual`` calls. The model is a loaded pyfunc (or anything with
``predict(DataFrame)``); its outputs are read the way an evaluation reads them
(:func:`~keelwatch.monitoring.service.evaluation_runner.predict_outputs`): ``kind="score"``
takes the positive class's probability, ``label`` the prediction, ``text`` the generated text.

File formats (the term lists are configuration, not code):

- templates: a text file, one template per line (blank lines and lines starting with ``#``
  skipped), or a JSON list of strings; each holds the placeholder ``{term}``;
- terms: a JSON or YAML mapping of group name to a list of terms,
  e.g. ``{"female": ["she", "the woman"], "male": ["he", "the man"]}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    from keelwatch.monitoring.fairness.counterfactual import (
        CounterfactualKind,
        CounterfactualPrompt,
        CounterfactualResult,
    )
    from keelwatch.monitoring.fairness.results import AuditConfig

KindChoice = Literal["auto", "score", "label", "text"]
#: Largest template or terms file read (they are configuration, not data).
MAX_CONFIG_BYTES = 1_000_000
#: Most prompts one audit runs (templates x terms).
MAX_PROMPTS = 100_000


def read_templates(path: Path) -> list[str]:
    """The templates of ``path`` (see the module docstring); InvalidInputError naming the file
    when it cannot be read or holds none."""
    text = _read(path, "templates")
    if path.suffix.lower() == ".json":
        loaded = _parse_json(text, path, "templates")
        if not isinstance(loaded, list) or not all(isinstance(t, str) for t in loaded):
            raise InvalidInputError(f"templates {path.name}: a JSON file must hold a list of text")
        templates = [t.strip() for t in loaded if t.strip()]
    else:
        templates = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    if not templates:
        raise InvalidInputError(f"templates {path.name}: no templates found")
    return templates


def read_terms(path: Path) -> dict[str, list[str]]:
    """Group → terms from a JSON or YAML file; InvalidInputError naming the file and the group
    when the shape is wrong."""
    text = _read(path, "terms")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"terms {path.name}: not valid YAML") from exc
    else:
        loaded = _parse_json(text, path, "terms")
    if not isinstance(loaded, Mapping) or not loaded:
        raise InvalidInputError(
            f"terms {path.name}: expected a mapping of group name to a list of terms"
        )
    terms: dict[str, list[str]] = {}
    for group, values in loaded.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidInputError(f"terms {path.name}: group {str(group)[:64]!r} needs a list")
        terms[str(group)] = list(values)
    return terms


def run_counterfactual(
    model: Any,
    templates: Sequence[str],
    terms: Mapping[str, Sequence[str]],
    *,
    input_column: str,
    kind: KindChoice,
    positive_label: Any,
    config: AuditConfig,
) -> tuple[CounterfactualResult, list[CounterfactualPrompt]]:
    """Fill ``templates`` with ``terms``, run ``model`` once over all prompts (a one-column
    frame named ``input_column``), compare the groups. ``kind="auto"``: score when the model
    gives probabilities, else text when its predictions are text, else label."""
    import numpy as np
    import pandas as pd

    from keelwatch.monitoring.fairness.counterfactual import counterfactual_audit, expand_templates
    from keelwatch.monitoring.service.evaluation_runner import predict_outputs

    prompts = expand_templates(templates, terms)
    if len(prompts) > MAX_PROMPTS:
        raise InvalidInputError(
            f"{len(prompts):,} prompts (templates x terms); at most {MAX_PROMPTS:,} per audit"
        )
    frame = pd.DataFrame({input_column: [p.prompt for p in prompts]})
    outputs = predict_outputs(model, frame, label_column=None)
    chosen = _kind(kind, outputs.proba is not None, outputs.predictions)
    values: Sequence[Any]
    if chosen == "score":
        if outputs.proba is None or outputs.classes is None:
            raise InvalidInputError("--kind score needs a model that gives probabilities")
        wanted = str(positive_label)
        if wanted not in outputs.classes:
            raise InvalidInputError(
                f"positive label {wanted[:32]!r} is not one of the model's classes "
                f"({', '.join(c[:32] for c in outputs.classes[:10])})"
            )
        values = [float(v) for v in outputs.proba[:, outputs.classes.index(wanted)]]
    elif chosen == "label":
        values = [_plain(v) for v in outputs.predictions]
    else:
        values = [str(v) for v in np.asarray(outputs.predictions, dtype=object)]
    result = counterfactual_audit(
        prompts, values, kind=chosen, positive_label=positive_label, config=config
    )
    return result, prompts


def _kind(kind: KindChoice, has_proba: bool, predictions: Any) -> CounterfactualKind:
    if kind != "auto":
        return kind
    if has_proba:
        return "score"
    if any(isinstance(v, str) for v in predictions[:100]):
        return "text"
    return "label"


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value, so ``1 == positive_label`` holds for ``np.int64``."""
    return value.item() if hasattr(value, "item") else value


def _read(path: Path, what: str) -> str:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InvalidInputError(f"{what} {path.name}: larger than {MAX_CONFIG_BYTES:,} bytes")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{what} file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{what} {path.name}: cannot read ({type(exc).__name__})") from exc


def _parse_json(text: str, path: Path, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{what} {path.name}: not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from exc
