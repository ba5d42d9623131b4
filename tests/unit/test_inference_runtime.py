"""The worker runtime's pure parts: device choice and the LRU model cache."""

from __future__ import annotations

import importlib.util

from keelwatch.inference.execution import LoadedModel, prediction_columns
from keelwatch_workers.runtime import DeviceChoice, ModelCache, choose_device
from keelwatch_workers.tasks.retry import retry_backoff_s


class Constant:
    """A model that predicts its own name for every row."""

    def __init__(self, name: str) -> None:
        self.name = name

    def predict(self, data: object) -> list[str]:
        return [self.name] * len(data)  # type: ignore[arg-type]


def test_cpu_queue_runs_on_cpu_and_says_so() -> None:
    assert choose_device("cpu") == DeviceChoice("cpu", "task came through the cpu queue")


def test_gpu_queue_reason_matches_this_machine() -> None:
    choice = choose_device("gpu")
    assert choice.reason.startswith("gpu queue")
    if importlib.util.find_spec("torch") is None:
        assert choice == DeviceChoice("cpu", "gpu queue, but torch is not installed on this worker")
    else:
        import torch

        assert choice.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_model_cache_loads_once_and_evicts_least_recently_used() -> None:
    loads: list[str] = []

    def load(uri: str, device: DeviceChoice) -> LoadedModel:
        loads.append(uri)
        return LoadedModel(Constant(uri), device.device, device.reason)

    cache = ModelCache(2, loader=load)
    cpu = DeviceChoice("cpu", "test")
    a = cache.get("models:/a/1", cpu)
    assert cache.get("models:/a/1", cpu) is a
    cache.get("models:/b/1", cpu)
    cache.get("models:/a/1", cpu)  # a is now the most recent
    cache.get("models:/c/1", cpu)  # evicts b
    cache.get("models:/a/1", cpu)
    cache.get("models:/b/1", cpu)  # reloaded
    assert loads == ["models:/a/1", "models:/b/1", "models:/c/1", "models:/b/1"]
    assert len(cache) == 2 and cache.loads == 4


def test_prediction_columns_from_arrays_series_and_frames() -> None:
    import numpy as np
    import pandas as pd

    assert list(prediction_columns(np.zeros(3), 3)) == ["prediction"]
    assert list(prediction_columns(np.zeros((3, 2)), 3)) == ["prediction_0", "prediction_1"]
    assert list(prediction_columns(pd.Series([1, 2]), 2)) == ["prediction"]
    assert list(prediction_columns(pd.DataFrame({"p": [1], "q": [2]}), 1)) == ["p", "q"]
    assert prediction_columns(Constant("x").predict([1, 2]), 2)["prediction"].tolist() == ["x", "x"]


def test_retry_backoff_doubles_up_to_a_minute() -> None:
    assert [retry_backoff_s(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
