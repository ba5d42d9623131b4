"""Rows per second of a torch MLP through Keelwatch's inference path, on CUDA vs the CPU.

Both devices go through the same code a chunk task runs: ``keelwatch_workers.runtime`` chooses
the device for the ``gpu`` or ``cpu`` queue and loads the MLflow pytorch model on it
(``load_pyfunc``), and ``keelwatch.inference.execution`` scores the rows. Two timings per device:

* predict: an Arrow table already in memory → ``_predict`` (Arrow → pandas → pyfunc schema
  check → torch on the device → host → output columns), the part a device can speed up;
* chunk: ``run_inference_chunk`` for one whole job of one chunk (read the Parquet input,
  predict, write the part file, complete the job in SQLite; no prediction-log sample).

The model is saved in MLflow's ``pickle`` format (a ``pt2`` model exported on the CPU cannot be
moved to CUDA) and loaded once per device before timing; one untimed run per device warms up
kernels and allocators. Figures are the median of ``--runs`` runs. float32 throughout (PyTorch
keeps TF32 off for float32 matmuls by default). Exits 0 with a message where CUDA is missing.

Usage: ``python benchmarks/gpu_inference_bench.py [--quick] [--rows N] [--runs N]
[--features N] [--hidden N]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers")]


def make_mlp(features: int, hidden: int, outputs: int) -> Any:
    """Three linear layers with ReLUs, fixed seed, in eval mode."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(features, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, outputs),
    ).eval()


def save_model(model: Any, features: int, path: Path) -> str:
    """An MLflow pytorch model (pickle format, tensor signature) at ``path``."""
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    example = np.random.default_rng(1).standard_normal((8, features), dtype=np.float32)
    with torch.no_grad():
        example_out = model(torch.from_numpy(example)).numpy()
    mlflow.pytorch.save_model(
        model,
        str(path),
        signature=infer_signature(example, example_out),
        input_example=example,
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__}"],
    )
    return str(path)


def time_runs(function: Any, runs: int) -> list[float]:
    """Wall seconds of ``runs`` calls after one untimed warm-up call."""
    function()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


class Bench:
    """The input, the model and a SQLite database in a temporary folder."""

    def __init__(self, work: Path, args: argparse.Namespace, rows: int) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from keelwatch.storage.db import Database, upgrade_database

        self.work = work
        self.rows = rows
        self.columns = [f"x{i}" for i in range(args.features)]
        model = make_mlp(args.features, args.hidden, args.outputs)
        self.model_uri = save_model(model, args.features, work / "model")
        values = np.random.default_rng(0).standard_normal((rows, args.features), dtype=np.float32)
        self.table = pa.table({name: values[:, i] for i, name in enumerate(self.columns)})
        self.source = work / "input.parquet"
        pq.write_table(self.table, self.source)
        database_url = f"sqlite:///{work / 'keelwatch.db'}"
        upgrade_database(database_url)
        self.db = Database(database_url)
        self.jobs = 0

    def params(self, queue: str, output_dir: Path) -> Any:
        """Job parameters as ``submit_batch_inference`` stores them (one chunk, no sample)."""
        from keelwatch.inference.submit import BatchInferenceParams

        return BatchInferenceParams(
            model_ref="mlp/1",
            model_name="mlp",
            model_version="1",
            model_uri=self.model_uri,
            input_path=str(self.source),
            input_format="parquet",
            columns=self.columns,
            output_dir=str(output_dir),
            device="gpu" if queue == "gpu" else "cpu",
            queue=queue,
            chunk_rows=self.rows,
            log_sample_rate=0.0,
        )

    def predict(self, loaded: Any, queue: str) -> Any:
        """The chunk task's predict step on the in-memory table."""
        from keelwatch.inference.execution import _predict

        return _predict(
            loaded.predictor, self.table, self.params(queue, self.work / "unused"), row_start=0
        )

    def chunk(self, loaded: Any, queue: str) -> None:
        """One whole single-chunk job through ``run_inference_chunk``."""
        from keelwatch.contract import JOB_BATCH_INFERENCE
        from keelwatch.entities import JobStatus
        from keelwatch.inference.execution import run_inference_chunk
        from keelwatch.storage.jobs import create_job, get_job

        self.jobs += 1
        params = self.params(queue, self.work / f"out-{self.jobs}")
        with self.db.session() as session:
            job = create_job(
                session,
                kind=JOB_BATCH_INFERENCE,
                params=params.model_dump(mode="json"),
                submitted_by="gpu-bench",
                chunk_bounds=[(0, self.rows)],
            )
        outcome = run_inference_chunk(self.db, job.id, 0, load_model=lambda _uri: loaded)
        with self.db.session() as session:
            finished = get_job(session, job.id)
        if finished.status is not JobStatus.SUCCEEDED or outcome.device != loaded.device:
            raise SystemExit(f"chunk run failed: {finished.error or outcome}")
        shutil.rmtree(params.output_dir)


def main() -> int:
    """Build, save and time the model on each device; print a table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 3 runs")
    parser.add_argument("--rows", type=int, default=None, help="rows scored (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs (default 5)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--outputs", type=int, default=8)
    args = parser.parse_args()
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    runs = args.runs or (3 if args.quick else 5)

    try:
        import torch
    except ImportError:
        print("torch is not installed (pip install 'keelwatch[gpu]'): nothing to benchmark")
        return 0
    if not torch.cuda.is_available():
        print(f"CUDA is not available (torch {torch.__version__}): nothing to benchmark")
        return 0

    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Pickled pytorch models load only when allowed (see the module docstring).
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    import numpy as np

    from keelwatch_workers.runtime import choose_device, load_pyfunc

    work = Path(tempfile.mkdtemp(prefix="kw-gpu-bench-"))
    try:
        print(
            f"{rows:,} rows x {args.features} float32 features; MLP {args.features}-"
            f"{args.hidden}-{args.hidden}-{args.outputs}; median of {runs} runs",
            flush=True,
        )
        bench = Bench(work, args, rows)
        medians: dict[tuple[str, str], float] = {}
        devices: dict[str, str] = {}
        outputs: dict[str, Any] = {}
        for queue in ("gpu", "cpu"):
            loaded = load_pyfunc(bench.model_uri, choose_device(queue))
            devices[queue] = loaded.device
            print(f"  {queue} queue: {loaded.device} ({loaded.device_reason})", flush=True)
            outputs[queue] = bench.predict(loaded, queue)
            for step, function in (("predict", bench.predict), ("chunk", bench.chunk)):
                seconds = time_runs(lambda f=function, m=loaded, q=queue: f(m, q), runs)
                medians[queue, step] = statistics.median(seconds)
                print(f"    {step}: {', '.join(f'{s:.3f}' for s in seconds)} s", flush=True)
        bench.db.dispose()

        gpu_out = np.column_stack(list(outputs["gpu"].values())).astype(np.float64)
        cpu_out = np.column_stack(list(outputs["cpu"].values())).astype(np.float64)
        error = float(np.linalg.norm(gpu_out - cpu_out) / np.linalg.norm(cpu_out))

        print(
            f"\nKeelwatch inference path, torch {torch.__version__}, "
            f"{torch.cuda.get_device_name()}, {os.cpu_count()} CPU cores "
            f"({torch.get_num_threads()} torch threads); {rows:,} rows, median of {runs}"
        )
        print(f"{'path':<10}{'queue':<7}{'device':<8}{'median s':>10}{'rows/s':>14}")
        for step in ("predict", "chunk"):
            for queue in ("gpu", "cpu"):
                median = medians[queue, step]
                print(
                    f"{step:<10}{queue:<7}{devices[queue]:<8}{median:>10.3f}{rows / median:>14,.0f}"
                )
        for step in ("predict", "chunk"):
            ratio = medians["cpu", step] / medians["gpu", step]
            print(f"ratio GPU/CPU rows/s, {step}: {ratio:.1f}x")
        print(f"GPU vs CPU outputs: relative error {error:.1e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
