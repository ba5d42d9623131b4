"""Keelwatch's GPU inference path on a real CUDA device.

What a ``gpu``-queue chunk task does, minus Celery: the worker runtime chooses the device for
the queue, its model cache loads an MLflow pytorch model on that device, and
``run_inference_chunk`` reads the rows, scores them, writes the part files and finishes the job
(SQLite for Keelwatch's tables). The same rows also go through the ``cpu`` queue, and both
outputs are compared with the torch model run in float64 on the CPU.

MLflow saves pytorch models in two formats: ``pickle`` (loads on any device, but only with
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true``) and ``pt2`` (``torch.export``, its default), whose
weights MLflow will not move off the device they were exported from. A pickled model must run on
CUDA from the gpu queue; a pt2 model exported on the CPU must run on the CPU and say why.

Skipped (with the reason) where torch is not installed or sees no CUDA device, so CI without a
GPU stays green. On a GPU machine: ``python -m pytest -m gpu tests/gpu``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (extra 'gpu')")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available here"),
    # torch 2.11's torch.export.load warns (once) while reading a pt2 archive's weights.
    pytest.mark.filterwarnings("ignore:The given buffer is not writable:UserWarning"),
]

FEATURES = [f"x{i}" for i in range(16)]
OUTPUTS = 3
ROWS = 20_000
ROW_GROUP_ROWS = 2_500
CHUNK_ROWS = 7_500  # three row groups a chunk: 3 chunks, the last one short


def make_mlp(features: int, hidden: int, outputs: int, *, seed: int = 0) -> Any:
    """A small deterministic MLP (built-in modules only, so it pickles without code paths)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(features, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, outputs),
    ).eval()


def feature_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Standard-normal float32 features (never zeros: they would hide unwritten outputs)."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((rows, len(FEATURES)), dtype=np.float32)
    return pd.DataFrame(values, columns=FEATURES)


def save_mlp(model: Any, path: Path, *, serialization_format: str) -> str:
    """Save ``model`` as an MLflow pytorch model with a tensor signature; returns its URI."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    # A numpy example: with a torch.Tensor one MLflow saves a pt2 model without a pyfunc flavor.
    example = feature_frame(10, seed=99).to_numpy()
    with torch.no_grad():
        example_out = model(torch.from_numpy(example)).numpy()
    mlflow.pytorch.save_model(
        model,
        str(path),
        signature=infer_signature(example, example_out),
        input_example=example,
        serialization_format=serialization_format,
        # Inferring requirements runs the model in a subprocess: seconds for nothing here.
        pip_requirements=[f"torch=={torch.__version__}"],
    )
    return str(path)


@pytest.fixture(scope="module")
def mlp() -> Any:
    """The model every saved variant holds (on the CPU, float32)."""
    return make_mlp(len(FEATURES), 64, OUTPUTS)


@pytest.fixture(scope="module")
def model_uris(mlp: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The same weights saved both ways, from the CPU (where models are usually trained)."""
    folder = tmp_path_factory.mktemp("models")
    return {
        "pt2": save_mlp(mlp, folder / "pt2", serialization_format="pt2"),
        "pickle": save_mlp(mlp, folder / "pickle", serialization_format="pickle"),
    }


@pytest.fixture(autouse=True)
def _allow_pickled_models(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow refuses to unpickle models unless told to (pt2 models load without this).
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")


@pytest.fixture
def runtime(tmp_path: Path, sqlite_url: str) -> Iterator[Any]:
    """A worker runtime on an upgraded SQLite database (what a chunk task gets)."""
    from keelwatch.storage.db import upgrade_database
    from keelwatch_workers.runtime import WorkerRuntime
    from tests.conftest import make_settings

    settings = make_settings(
        tmp_path, database_url=sqlite_url, mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    upgrade_database(settings.database.url)
    worker = WorkerRuntime(settings)
    yield worker
    worker.close()


def _parameter_devices(loaded: Any) -> set[str]:
    raw = loaded.predictor.get_raw_model()
    return {p.device.type for p in raw.parameters()}


def test_gpu_queue_chooses_cuda() -> None:
    from keelwatch_workers.runtime import choose_device

    choice = choose_device("gpu")
    assert choice.device == "cuda"
    name = torch.cuda.get_device_name()
    assert choice.reason == f"gpu queue and CUDA is available ({name})", choice.reason
    # A GPU node serving the cpu queue still says cpu.
    assert choose_device("cpu").device == "cpu"


def test_pickled_model_follows_the_queue(model_uris: dict[str, str]) -> None:
    from keelwatch_workers.runtime import choose_device, load_pyfunc

    on_gpu = load_pyfunc(model_uris["pickle"], choose_device("gpu"))
    assert (on_gpu.device, _parameter_devices(on_gpu)) == ("cuda", {"cuda"})
    # MLflow's pytorch flavor picks CUDA by itself when it sees a GPU; a cpu-queue task must
    # not end up there while the job says "cpu".
    on_cpu = load_pyfunc(model_uris["pickle"], choose_device("cpu"))
    assert (on_cpu.device, _parameter_devices(on_cpu)) == ("cpu", {"cpu"})


def test_pt2_model_exported_on_cpu_stays_on_cpu_and_says_why(model_uris: dict[str, str]) -> None:
    from keelwatch_workers.runtime import choose_device, load_pyfunc

    # The cpu queue on a GPU node: MLflow alone would try CUDA and refuse to move the weights.
    on_cpu = load_pyfunc(model_uris["pt2"], choose_device("cpu"))
    assert (on_cpu.device, _parameter_devices(on_cpu)) == ("cpu", {"cpu"})
    # The gpu queue: the weights cannot move, so it runs on the CPU and the reason says so.
    on_gpu = load_pyfunc(model_uris["pt2"], choose_device("gpu"))
    assert (on_gpu.device, _parameter_devices(on_gpu)) == ("cpu", {"cpu"})
    assert on_gpu.device_reason.startswith("gpu queue and CUDA is available ("), on_gpu
    assert "but this model cannot be loaded on CUDA" in on_gpu.device_reason, on_gpu
    assert "torch.export" in on_gpu.device_reason, on_gpu


def _submit_job(
    runtime: Any, model_uri: str, source: Path, output: Path, queue: str
) -> tuple[str, int]:
    """A pending job as ``submit_batch_inference`` writes it (pinned model, planned chunks)."""
    from keelwatch.contract import JOB_BATCH_INFERENCE
    from keelwatch.inference.dataset import inspect_input
    from keelwatch.inference.planning import plan_chunks
    from keelwatch.inference.submit import BatchInferenceParams
    from keelwatch.storage.jobs import create_job

    params = BatchInferenceParams(
        model_ref="mlp/1",
        model_name="mlp",
        model_version="1",
        model_uri=model_uri,
        input_path=str(source),
        input_format="parquet",
        columns=FEATURES,
        output_dir=str(output),
        device="gpu" if queue == "gpu" else "cpu",
        queue=queue,
        chunk_rows=CHUNK_ROWS,
        log_sample_rate=0.01,
    )
    info = inspect_input(str(source))
    bounds = plan_chunks(info.rows, CHUNK_ROWS, info.row_group_rows)
    with runtime.db.session() as session:
        job = create_job(
            session,
            kind=JOB_BATCH_INFERENCE,
            params=params.model_dump(mode="json"),
            submitted_by="gpu-test",
            chunk_bounds=bounds,
        )
    return job.id, len(bounds)


def _run_job(runtime: Any, job_id: str, chunks: int, queue: str) -> tuple[list[Any], Any]:
    """Every chunk of ``job_id``, the way the chunk task runs it from ``queue``."""
    from keelwatch.inference.execution import run_inference_chunk
    from keelwatch.storage.jobs import get_job

    device = runtime.device_for(queue)
    outcomes = [
        run_inference_chunk(
            runtime.db,
            job_id,
            index,
            load_model=lambda uri: runtime.models.get(uri, device),
        )
        for index in range(chunks)
    ]
    with runtime.db.session() as session:
        return outcomes, get_job(session, job_id)


def _read_predictions(job: Any) -> np.ndarray[Any, Any]:
    table = pq.read_table(job.params["output_dir"]).to_pandas()
    table = table.sort_values("row_index").reset_index(drop=True)
    assert table["row_index"].tolist() == list(range(ROWS))
    columns = [c for c in table.columns if c != "row_index"]
    assert columns == [f"prediction_{i}" for i in range(OUTPUTS)], columns
    predictions: np.ndarray[Any, Any] = table[columns].to_numpy(np.float64)
    return predictions


@pytest.mark.parametrize(("saved_as", "gpu_device"), [("pickle", "cuda"), ("pt2", "cpu")])
def test_gpu_and_cpu_queue_chunks_match_float64(
    mlp: Any,
    model_uris: dict[str, str],
    runtime: Any,
    tmp_path: Path,
    saved_as: str,
    gpu_device: str,
) -> None:
    from keelwatch.entities import JobStatus

    frame = feature_frame(ROWS, seed=7)
    source = tmp_path / "in" / "features.parquet"
    source.parent.mkdir(parents=True)
    frame.to_parquet(source, index=False, row_group_size=ROW_GROUP_ROWS)

    results = {}
    uri = model_uris[saved_as]
    for queue in ("gpu", "cpu"):
        job_id, chunks = _submit_job(runtime, uri, source, tmp_path / f"out-{queue}", queue)
        assert chunks == 3
        outcomes, job = _run_job(runtime, job_id, chunks, queue)
        assert [o.status for o in outcomes] == ["done"] * chunks
        assert outcomes[-1].job_finished
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.rows_done == ROWS
        assert job.result["logged_rows"] > 0
        results[queue] = (_read_predictions(job), outcomes, job)

    gpu, gpu_outcomes, gpu_job = results["gpu"]
    cpu, cpu_outcomes, cpu_job = results["cpu"]
    assert {o.device for o in gpu_outcomes} == {gpu_device}
    assert gpu_job.result["device"] == gpu_device
    assert gpu_job.result["device_reason"].startswith("gpu queue and CUDA is available (")
    if gpu_device == "cpu":
        assert "but this model cannot be loaded on CUDA" in gpu_job.result["device_reason"]
    assert {o.device for o in cpu_outcomes} == {"cpu"}
    assert cpu_job.result["device"] == "cpu"
    assert cpu_job.result["device_reason"] == "task came through the cpu queue"
    # One load per (model, device): every later chunk came from the cache.
    assert runtime.models.loads == 2

    reference_model = copy.deepcopy(mlp).double()
    with torch.no_grad():
        reference = reference_model(torch.from_numpy(frame.to_numpy(np.float64))).numpy()

    def relative_error(out: np.ndarray[Any, Any]) -> float:
        return float(np.linalg.norm(out - reference) / np.linalg.norm(reference))

    assert np.isfinite(gpu).all() and np.isfinite(cpu).all()
    # float32 on both devices (TF32 is off for float32 matmuls by default): far below 1e-3.
    assert relative_error(gpu) < 1e-5, relative_error(gpu)
    assert relative_error(cpu) < 1e-5, relative_error(cpu)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)
