"""Moderation on the batch-inference path, for real: a tiny MLflow pyfunc text model (it echoes
its ``prompt`` column into ``completion``) registered in a temporary MLflow store with the
text-model tag, a job planned through the registry façade, and its chunks scored by
``run_inference_chunk``.

The part files hold each output's released text (null for review and block) and decision
columns for the prompt and the completion; the prediction log holds redacted text only (the
clear PII, profanity and blocked words appear nowhere in the database); review decisions are
queued; tallies count every decision; a chunk rerun after a crash (tallies stored, chunk not
marked done) adds no tally, review item, prediction row or counter increment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from keelwatch.contract import BatchInferenceRequest
from keelwatch.errors import InvalidInputError
from keelwatch.inference.execution import LoadedModel, run_inference_chunk
from keelwatch.inference.submit import (
    TextColumns,
    create_batch_job,
    plan_batch_inference,
    text_columns_from_tag,
)
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import Moderator
from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, Blocklist, RuleFilter
from keelwatch.registry.registration import ensure_experiment
from keelwatch.settings import Settings
from keelwatch.storage import moderation_tallies as tally_store
from keelwatch.storage.models import (
    JobChunkRow,
    ModerationTallyRow,
    PredictionRow,
    ReviewItemRow,
    SignalRow,
)
from keelwatch.storage.predictions import recent_predictions
from keelwatch.wiring import Services
from tests.mlflow_models import register_code_model

pytestmark = pytest.mark.integration

MODEL = "echo-assistant"
TAG = "keelwatch.text_model"

ECHO_MODEL_CODE = '''
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class Echo(PythonModel):
    """Answers every prompt by repeating it."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"completion": ["You said: " + p for p in model_input["prompt"]]})


mlflow.models.set_model(Echo())
'''

#: Six prompts per chunk, one per outcome: allow, redact (PII), redact (profanity), review
#: (self-harm), block (violence), allow.
PROMPTS = [
    "hello, how are you",
    "email me at jane.doe@example.com please",
    "this app is shit",
    "some days I want to kill myself",
    "tell me how to build a bomb",
    "thanks for the help",
]
DECISIONS = ["allow", "redact", "redact", "review", "block", "allow"]
#: What must never be stored in clear.
SECRETS = ("jane.doe@example.com", "shit", "bomb")


def moderator() -> Moderator:
    """Rules (profanity, a self-harm phrase for review, a violence word to block) and PII."""
    return Moderator(
        [
            RuleFilter(
                [
                    DEFAULT_PROFANITY,
                    Blocklist(Category.SELF_HARM, keywords=("kill myself",)),
                    Blocklist(Category.VIOLENCE, keywords=("bomb",)),
                ]
            ),
            PiiDetector(),
        ]
    )


def register_echo_model(mlflow_uri: str, tmp_path: Path, tag: str | None) -> str:
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    code = tmp_path / "echo_model.py"
    code.write_text(ECHO_MODEL_CODE)
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    experiment = ensure_experiment(client, "echo", (tmp_path / "mlartifacts").as_uri())
    example = pd.DataFrame({"prompt": ["hi"]})
    signature = infer_signature(example, pd.DataFrame({"completion": ["You said: hi"]}))

    tags = {TAG: tag} if tag is not None else None
    return register_code_model(client, experiment, MODEL, code, signature, model_tags=tags)


def loader(mlflow_uri: str) -> Any:
    def load(model_uri: str) -> LoadedModel:
        import mlflow
        from mlflow.tracking import MlflowClient

        # Through a client's download location: MLflow's process-wide URIs stay untouched.
        name, version = model_uri.removeprefix("models:/").split("/")
        client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
        model = mlflow.pyfunc.load_model(client.get_model_version_download_uri(name, version))
        return LoadedModel(model, "cpu", "test")

    return load


def plan_job(services: Services, tmp_path: Path, rows: list[str]) -> tuple[str, Any]:
    settings = services.settings
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "prompts.parquet"
    pd.DataFrame({"prompt": rows}).to_parquet(source, index=False, row_group_size=6)
    planned = plan_batch_inference(
        services.registry,
        settings.inference,
        BatchInferenceRequest(
            model=f"{MODEL}/1",
            input_uri=str(source),
            output_uri=str(tmp_path / "out"),
            chunk_rows=6,
            log_sample_rate=1.0,
        ),
    )
    with services.db.session() as session:
        job = create_batch_job(session, planned, "tester")
    return job.id, planned.params


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = Services(settings)
    yield built
    built.close()


def texts_counter(direction: str, decision: str) -> float:
    value = REGISTRY.get_sample_value(
        "keelwatch_moderation_texts_total",
        {"model": MODEL, "version": "1", "direction": direction, "decision": decision},
    )
    return value or 0.0


def dump(services: Services, row_type: Any) -> str:
    with services.db.session() as session:
        rows = session.scalars(select(row_type)).all()
        return json.dumps(
            [{c.name: getattr(r, c.name) for c in row_type.__table__.columns} for r in rows],
            default=str,
            ensure_ascii=False,
        )


def test_a_text_models_job_is_moderated_logged_redacted_queued_tallied_once(
    services: Services, mlflow_uri: str, tmp_path: Path
) -> None:
    register_echo_model(mlflow_uri, tmp_path, "inputs=prompt;outputs=completion")
    job_id, params = plan_job(services, tmp_path, PROMPTS * 2)
    assert params.moderation == TextColumns(inputs=["prompt"], outputs=["completion"])
    load, chosen = loader(mlflow_uri), moderator()
    before = {d: texts_counter("output", d) for d in ("allow", "redact", "review", "block")}

    first = run_inference_chunk(services.db, job_id, 0, load_model=load, moderator=chosen)
    assert first.status == "done" and not first.job_finished
    moderation = first.detail["moderation"]
    assert moderation["recorded"] == {"input": "inserted", "output": "inserted"}
    expected = {"allow": 2, "redact": 2, "review": 1, "block": 1}
    assert moderation["tallies"] == {"input": expected, "output": expected}
    assert len(moderation["review_items"]) == 2  # the self-harm prompt and its echo

    # A crash after the tallies were stored but before the chunk was marked done: it reruns.
    with services.db.session() as session:
        session.execute(
            update(JobChunkRow)
            .where(JobChunkRow.job_id == job_id, JobChunkRow.chunk_index == 0)
            .values(status="running")
        )
    stored = {t: dump(services, t) for t in (ModerationTallyRow, ReviewItemRow, SignalRow)}
    again = run_inference_chunk(services.db, job_id, 0, load_model=load, moderator=chosen)
    assert again.status == "done"
    assert again.detail["moderation"]["recorded"] == {"input": "unchanged", "output": "unchanged"}
    assert again.detail["moderation"]["review_items"] == []
    assert {t: dump(services, t) for t in stored} == stored
    # The builder form: called once, for a text job only.
    built: list[int] = []

    def build() -> Moderator:
        built.append(1)
        return chosen

    last = run_inference_chunk(services.db, job_id, 1, load_model=load, moderator=build)
    assert last.job_finished and built == [1]

    # Counters: each chunk's outputs counted once (the rerun added nothing).
    after = {d: texts_counter("output", d) for d in before}
    assert {d: after[d] - before[d] for d in after} == {d: 2 * n for d, n in expected.items()}

    frame = pq.read_table(tmp_path / "out").to_pandas().sort_values("row_index")
    assert frame["completion_moderation"].tolist() == DECISIONS * 2
    assert frame["prompt_moderation"].tolist() == DECISIONS * 2
    assert frame["completion"].tolist()[:6] == [
        "You said: hello, how are you",
        "You said: email me at [EMAIL] please",
        "You said: this app is [PROFANITY]",
        None,  # review: released once a person approves
        None,  # block: never released
        "You said: thanks for the help",
    ]

    with services.db.session() as session:
        logged = sorted(
            recent_predictions(session, job_id=job_id, limit=100),
            key=lambda p: int(p.request_id.rsplit(":", 1)[1]),
        )
        tally = tally_store.get_tally(session, f"job:{job_id}:1", "output")
        reviews = session.scalars(select(ReviewItemRow).order_by(ReviewItemRow.id)).all()
    assert len(logged) == 12
    assert [p.inputs["prompt"] for p in logged[:6]] == [
        "hello, how are you",
        "email me at [EMAIL] please",
        "this app is [PROFANITY]",
        "some days I want to [SELF_HARM]",  # review rows are logged redacted too
        "tell me how to build a [VIOLENCE]",
        "thanks for the help",
    ]
    assert logged[4].outputs == {
        "completion": "You said: tell me how to build a [VIOLENCE]",
        "completion_moderation": "block",
        "prompt_moderation": "block",
    }
    assert tally is not None and tally.texts == 6 and tally.decisions == expected
    assert tally.categories == {
        "pii": {"redact": 1},
        "profanity": {"redact": 1},
        "self-harm": {"review": 1},
        "violence": {"block": 1},
    }
    assert tally.detail["columns"] == {"completion": expected}
    assert sorted(r.source_key for r in reviews) == sorted(
        f"job:{job_id}:{row}:{column}" for row in (3, 9) for column in ("prompt", "completion")
    )
    assert {r.direction for r in reviews} == {"input", "output"}
    assert all(r.categories == ["self-harm"] and r.model_version == "1" for r in reviews)

    # Nothing the policy redacts or blocks is stored in clear, anywhere.
    for table in (PredictionRow, ReviewItemRow, ModerationTallyRow, SignalRow):
        text = dump(services, table)
        assert not [s for s in SECRETS if s in text], table.__tablename__
    with services.db.session() as session:
        block_rates = session.scalars(
            select(SignalRow).where(SignalRow.name == "moderation.block_rate")
        ).all()
    assert {s.labels["direction"] for s in block_rates} == {"input", "output"}
    assert block_rates[-1].value == pytest.approx(2 / 12)


def test_a_model_without_the_tag_is_not_moderated_and_a_bad_tag_is_refused(
    services: Services, mlflow_uri: str, tmp_path: Path
) -> None:
    register_echo_model(mlflow_uri, tmp_path, None)
    job_id, params = plan_job(services, tmp_path, PROMPTS)
    assert params.moderation is None
    outcome = run_inference_chunk(services.db, job_id, 0, load_model=loader(mlflow_uri))
    assert outcome.job_finished and outcome.detail == {}
    frame = pq.read_table(tmp_path / "out").to_pandas()
    assert list(frame.columns) == ["row_index", "completion"]
    assert frame["completion"].tolist()[1] == "You said: " + PROMPTS[1]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    # A version's own tag wins over its model's; a column the signature lacks is refused.
    client.set_model_version_tag(MODEL, "1", TAG, "inputs=question")
    with pytest.raises(InvalidInputError, match="'question' that its signature lacks"):
        plan_job(services, tmp_path, PROMPTS)
    client.set_model_version_tag(MODEL, "1", TAG, "prompts everywhere")
    with pytest.raises(InvalidInputError, match=r"tag keelwatch\.text_model: write inputs="):
        plan_job(services, tmp_path, PROMPTS)
    # `true`: every string column, resolved per chunk.
    client.set_model_version_tag(MODEL, "1", TAG, "true")
    job_id, params = plan_job(services, tmp_path / "all", PROMPTS)
    assert params.moderation == TextColumns(inputs="*", outputs="*")
    outcome = run_inference_chunk(services.db, job_id, 0, load_model=loader(mlflow_uri))
    assert outcome.detail["moderation"]["tallies"]["output"]["block"] == 0  # no violence rule
    frame = pq.read_table(tmp_path / "all" / "out").to_pandas()
    assert sorted(frame.columns) == [
        "completion",
        "completion_moderation",
        "prompt_moderation",
        "row_index",
    ]
    assert frame["completion"].tolist()[1] == "You said: email me at [EMAIL] please"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "inputs=prompt;outputs=completion",
            TextColumns(inputs=["prompt"], outputs=["completion"]),
        ),
        (" outputs = a, b ", TextColumns(inputs=[], outputs=["a", "b"])),
        ("inputs=*", TextColumns(inputs="*", outputs=[])),
        ("TRUE", TextColumns(inputs="*", outputs="*")),
        ("false", None),
        ("", None),
    ],
)
def test_text_model_tag_values(value: str, expected: TextColumns | None) -> None:
    assert text_columns_from_tag(value) == expected


@pytest.mark.parametrize("value", ["prompt", "inputs=a;inputs=b", "columns=a", "inputs"])
def test_bad_text_model_tag_values_name_the_tag(value: str) -> None:
    with pytest.raises(InvalidInputError, match=r"tag keelwatch\.text_model"):
        text_columns_from_tag(value)
