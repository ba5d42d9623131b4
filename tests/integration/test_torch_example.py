"""The torch text example (keelwatch.examples.torch_text): a real classifier trained here, its
int8 dynamically quantized variant, both registered through the registry façade in a real
MLflow store, loaded back with ``mlflow.pyfunc.load_model``, and judged by the gate on a real
Celery worker. Skipped where torch is not installed (it is an optional extra)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch", reason="torch is an optional extra: pip install -e '.[torch]'")

import mlflow.pyfunc  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402

from keelwatch.entities import JobStatus  # noqa: E402
from keelwatch.examples import torch_text  # noqa: E402
from keelwatch.settings import Settings  # noqa: E402
from keelwatch.storage.audit import list_audit  # noqa: E402
from keelwatch.storage.jobs import get_job  # noqa: E402
from keelwatch.wiring import Services  # noqa: E402
from tests.integration.conftest import api_client  # noqa: E402
from tests.integration.test_inference_fleet import upgraded_settings  # noqa: E402

pytestmark = pytest.mark.integration

MODEL = "tickets"
ACTOR = "ann"
APPROVER = "bob"


@pytest.fixture(scope="module")
def trained() -> tuple[Any, Any, pd.DataFrame]:
    """fp32 and int8 models trained once for the module, and a held-out frame."""
    fp32 = torch_text.train_text_classifier(torch_text.build_dataset(2000, 0), epochs=3, seed=0)
    return fp32, torch_text.quantize(fp32), torch_text.build_dataset(600, 1)


def register(settings: Settings, trained: tuple[Any, Any, pd.DataFrame]) -> Any:
    fp32, int8, holdout = trained
    return torch_text.log_and_register(
        Services(settings).registry,
        MODEL,
        fp32=fp32,
        int8=int8,
        eval_frame=holdout,
        actor=ACTOR,
        approver=APPROVER,
    )


def load(mlflow_uri: str, version: str) -> Any:
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    return mlflow.pyfunc.load_model(client.get_model_version_download_uri(MODEL, version))


def test_dataset_is_reproducible_and_noisy() -> None:
    first, again = torch_text.build_dataset(400, 7), torch_text.build_dataset(400, 7)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(torch_text.build_dataset(400, 8))
    assert set(first["label"]) == set(torch_text.CLASSES)
    # the same texts without noise: about LABEL_NOISE of the labels differ
    clean = torch_text.build_dataset(4000, 3, noise=0.0)
    noisy = torch_text.build_dataset(4000, 3)
    pd.testing.assert_series_equal(clean["text"], noisy["text"])
    flipped = float(np.mean(clean["label"].to_numpy() != noisy["label"].to_numpy()))
    assert flipped == pytest.approx(torch_text.LABEL_NOISE, abs=0.02)
    # CRC-32 buckets: the same ids in every process (Python's hash() would not be)
    assert torch_text.hash_tokens("Charged twice", 1 << 13) == [5597, 5163, 6909]


def test_fp32_and_int8_register_load_and_score(
    sqlite_url: str, mlflow_uri: str, tmp_path: Path, trained: tuple[Any, Any, pd.DataFrame]
) -> None:
    from keelwatch.monitoring.service.evaluation_runner import predict_outputs

    fp32, int8, holdout = trained
    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, "")
    pair = register(settings, trained)
    registry = Services(settings).registry
    assert registry.resolve(f"{MODEL}@champion").version == pair.fp32.version
    assert registry.resolve(f"{MODEL}@challenger").version == pair.int8.version
    device = "gpu" if torch.cuda.is_available() else "cpu"
    assert registry.get_version(MODEL, pair.fp32.version).tags["keelwatch.device"] == device
    assert registry.get_version(MODEL, pair.int8.version).tags["keelwatch.device"] == "cpu"
    with registry.db.session() as session:
        actions = {(e.action, e.actor) for e in list_audit(session, limit=50)}
    assert {("model.approve", APPROVER), ("model.promote", APPROVER)} <= actions
    assert ("model.alias.set", ACTOR) in actions

    accuracy = {}
    for name, version, in_memory in (
        ("fp32", pair.fp32.version, fp32),
        ("int8", pair.int8.version, int8),
    ):
        model = load(mlflow_uri, version)
        inner = model.unwrap_python_model()
        assert torch_text.is_quantized(inner._model) == (name == "int8")
        out = model.predict(holdout[["text"]])
        assert list(out.columns) == ["prediction", *(f"proba_{c}" for c in torch_text.CLASSES)]
        proba = inner.predict_proba(holdout[["text"]])
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(out.iloc[:, 1:].to_numpy(), proba, rtol=0, atol=1e-7)
        # what was logged is what was trained
        expected = torch_text.predict_labels(in_memory, list(holdout["text"]))
        assert (out["prediction"].to_numpy() == expected).all()
        # Keelwatch's evaluation runner reads predictions, classes and probabilities from it
        outputs = predict_outputs(model, holdout, label_column="label")
        assert outputs.classes == torch_text.CLASSES
        assert outputs.proba is not None
        np.testing.assert_allclose(outputs.proba, proba)
        accuracy[name] = accuracy_score(holdout["label"], out["prediction"])
        run = registry.client.get_run(pair.fp32_run_id if name == "fp32" else pair.int8_run_id)
        assert run.data.metrics["accuracy"] == pytest.approx(accuracy[name])
    # label noise keeps it below 100 %; quantization costs at most a few points
    assert 0.75 < accuracy["fp32"] < 0.97, accuracy
    assert abs(accuracy["int8"] - accuracy["fp32"]) <= 0.03, accuracy


def wait_job(settings: Settings, job_id: str, timeout: float = 240.0) -> Any:
    """Poll the job row until it finished."""
    services = Services(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.db.session() as session:
            job = get_job(session, job_id)
        if job.finished:
            return job
        time.sleep(0.3)
    raise TimeoutError(f"gate check {job_id} not finished after {timeout}s")


GATE_POLICY: dict[str, Any] = {
    "dataset": "tickets-holdout",
    "bootstrap_samples": 500,
    "min_rows": 200,
    "any_of": [
        {
            "all_of": [
                {"metric": "accuracy", "max_drop": 0.02},
                {"metric": "latency_p95_s", "min_improvement": 0.2},
            ]
        }
    ],
}


def test_gate_decides_int8_against_fp32_on_a_worker(
    sqlite_url: str,
    mlflow_uri: str,
    redis_url: str,
    tmp_path: Path,
    start_worker: Any,
    trained: tuple[Any, Any, pd.DataFrame],
) -> None:
    fp32, int8, holdout = trained
    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, redis_url)
    pair = register(settings, trained)
    path = tmp_path / "holdout.csv"
    holdout.to_csv(path, index=False)
    start_worker(settings, queues="cpu", concurrency=1)

    with api_client(settings, raise_server_exceptions=False) as client:
        created = client.post(
            "/evaluations/datasets",
            json={"name": "tickets-holdout", "uri": str(path), "label_column": "label"},
        )
        assert created.status_code == 201, created.text
        put = client.put(f"/gate/policies/{MODEL}", json={"policy": GATE_POLICY})
        assert put.status_code == 200, put.text
        check = client.post("/gate/checks", json={"model": MODEL})
        assert check.status_code == 202, check.text
        assert check.json()["champion_version"] == pair.fp32.version
        job = wait_job(settings, check.json()["job_id"])
        assert job.status is JobStatus.SUCCEEDED, job.error
        (decision,) = client.get("/gate/decisions", params={"model": MODEL}).json()["items"]

    assert decision["challenger_version"] == pair.int8.version
    assert decision["outcome"] in ("promote", "reject"), decision
    by_metric = {c["metric"]: c for c in decision["comparisons"]}
    texts = list(holdout["text"])
    for side, model in (("champion", fp32), ("challenger", int8)):
        reference = accuracy_score(holdout["label"], torch_text.predict_labels(model, texts))
        assert by_metric["accuracy"][side] == pytest.approx(reference)
    assert by_metric["latency_p95_s"]["champion"] > 0
    assert any("accuracy" in r for r in decision["reasons"]), decision["reasons"]
    assert any("latency_p95_s" in r for r in decision["reasons"]), decision["reasons"]
    tags = (
        MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
        .get_model_version(MODEL, pair.int8.version)
        .tags
    )
    assert tags["keelwatch.gate.outcome"] == decision["outcome"]
