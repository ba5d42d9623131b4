"""The gate on the torch example: fp32 champion vs its int8 dynamically quantized challenger.

    .venv/bin/python benchmarks/gate_torch_bench.py            # 4,000 training rows, 2,000 held out
    .venv/bin/python benchmarks/gate_torch_bench.py --quick    # 2,000 / 1,000
    .venv/bin/python benchmarks/gate_torch_bench.py --device cuda   # fp32 on the GPU (int8: CPU)

Both models are trained/quantized here (keelwatch.examples.torch_text), saved as MLflow pyfunc
models and loaded back with ``mlflow.pyfunc.load_model``, the way a worker loads them. Then, on
the same held-out rows and in this one process:

- accuracy (checked against scikit-learn's ``accuracy_score``);
- the efficiency suite (``measure_efficiency``): p50/p95 latency per batch size and rows/s;
- the gate's own latency samples (256-row batches, 2 warm-up + 30 timed calls each, as the
  gate-check job takes them) and the pure ``decide_gate`` with the issue's policy: at most 1
  point of accuracy lost and at least 20 % lower p95 latency, or any accuracy gain with at most
  10 % slower p95. The decision and its reasons are printed.

Needs the ``torch`` extra. Figures on a shared machine move between runs; the decision is
bootstrapped over both the rows and the latency samples so noise alone does not promote.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))

import mlflow.pyfunc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402

from keelwatch.examples import torch_text  # noqa: E402
from keelwatch.inference.efficiency import measure_efficiency  # noqa: E402
from keelwatch.monitoring.evaluation.gate import VersionEvaluation, decide_gate  # noqa: E402
from keelwatch.monitoring.evaluation.gate_policy import parse_gate_policy  # noqa: E402
from keelwatch.monitoring.service.evaluation_runner import predict_outputs  # noqa: E402

POLICY: dict[str, Any] = {
    "bootstrap_samples": 1000,
    "min_rows": 200,
    "any_of": [
        {
            "all_of": [
                {"metric": "accuracy", "max_drop": 0.01},
                {"metric": "latency_p95_s", "min_improvement": 0.20},
            ]
        },
        {
            "all_of": [
                {"metric": "accuracy", "min_gain": 0.0},
                {"metric": "latency_p95_s", "max_regression": 0.10},
            ]
        },
    ],
}
GATE_BATCH, GATE_WARMUP, GATE_REPEATS = 256, 2, 30


def gate_latencies(
    predict: Callable[[pd.DataFrame], object], features: pd.DataFrame
) -> np.ndarray[Any, Any]:
    """Per-batch latencies the way the gate-check job samples them."""
    size = min(GATE_BATCH, len(features))
    span = max(len(features) - size + 1, 1)
    samples = []
    for i in range(GATE_WARMUP + GATE_REPEATS):
        start = (i * size) % span
        batch = features.iloc[start : start + size]
        began = time.perf_counter()
        predict(batch)
        if i >= GATE_WARMUP:
            samples.append(time.perf_counter() - began)
    return np.asarray(samples, dtype=np.float64)


def main() -> int:
    """Train, quantize, save, load, measure, decide; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available here", file=sys.stderr)
        return 2
    train_rows, holdout_rows = (2000, 1000) if args.quick else (4000, 2000)
    began = time.perf_counter()
    fp32 = torch_text.train_text_classifier(
        torch_text.build_dataset(train_rows, 0), epochs=args.epochs, seed=0, device=args.device
    )
    trained_s = time.perf_counter() - began
    int8 = torch_text.quantize(fp32)
    holdout = torch_text.build_dataset(holdout_rows, 1)
    features, y_true = holdout[["text"]], holdout["label"].to_numpy()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, training "
        f"{train_rows} rows x {args.epochs} epochs: {trained_s:.1f} s; held out: {holdout_rows}"
    )

    evaluations: dict[str, VersionEvaluation] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="kw-torch-bench-") as folder:
        for variant, model in (("fp32", fp32), ("int8", int8)):
            path = Path(folder) / variant
            torch_text.save_pyfunc(model, path, holdout)
            loaded = mlflow.pyfunc.load_model(str(path), model_config={"device": args.device})
            device = "cpu" if variant == "int8" else args.device
            outputs = predict_outputs(loaded, holdout, label_column="label")
            accuracy = accuracy_score(y_true, outputs.predictions)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            efficiency = measure_efficiency(
                loaded.predict, features, device=device, model_size_bytes=size
            ).as_dict()
            latencies = gate_latencies(loaded.predict, features)
            evaluations[variant] = VersionEvaluation(
                version=variant,
                metrics={"model_size_bytes": float(size)},
                y_true=y_true,
                y_pred=outputs.predictions,
                proba=outputs.proba,
                classes=outputs.classes,
                latencies_s=latencies,
            )
            rows.append((variant, device, accuracy, efficiency, latencies, size))

    print(
        f"\n{'version':8} {'device':6} {'accuracy':>8} {'p95 b=1':>9} {'p95 b=32':>9} "
        f"{'p95 b=256':>10} {'rows/s b=256':>12} {'gate p95':>9} {'size MB':>8}"
    )
    for variant, device, accuracy, eff, latencies, size in rows:
        print(
            f"{variant:8} {device:6} {accuracy:8.4f} {eff['latency_p95_s@1'] * 1e3:7.2f}ms "
            f"{eff['latency_p95_s@32'] * 1e3:7.2f}ms {eff['latency_p95_s@256'] * 1e3:8.2f}ms "
            f"{eff['rows_per_s']:12.0f} {np.percentile(latencies, 95) * 1e3:7.2f}ms "
            f"{size / 1e6:8.2f}"
        )
    decision = decide_gate(parse_gate_policy(POLICY), evaluations["fp32"], evaluations["int8"])
    print(f"\ngate (int8 challenger vs fp32 champion): {decision.outcome}")
    for reason in decision.reasons:
        print(f"  - {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
