"""Per-worker-process state: device choice, a small LRU cache of loaded models, the database.

A prefork worker forks its pool processes from the main process; connections and loaded models
must not be shared across that fork, so everything here is rebuilt lazily in each child
(``os.register_at_fork`` drops the parent's copy, and a pid check guards the rest).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keelwatch.contract import QUEUE_GPU
from keelwatch.inference.execution import LoadedModel
from keelwatch.settings import Settings
from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

# Imported once in the worker's main process so pool processes inherit them through fork:
# importing MLflow and scikit-learn takes seconds, which every child would otherwise pay on its
# first chunk (and all at once, competing for the same cores).
PRELOADED_MODULES = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "pyarrow.csv",
    "mlflow.pyfunc",
    "mlflow.models",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "sklearn",
    "skops.io",
)


def preload_libraries(modules: tuple[str, ...] = PRELOADED_MODULES) -> list[str]:
    """Import ``modules`` that are installed; returns the ones imported."""
    imported = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        imported.append(name)
    _warm_mlflow_requirement_check()
    return imported


def _warm_mlflow_requirement_check() -> None:
    # load_model compares the model's requirements with installed packages through a map of
    # every installed distribution (seconds to build, then cached in the module): build it here.
    try:
        from mlflow.utils import requirements_utils

        requirements_utils._init_packages_to_modules_map()  # type: ignore[no-untyped-call]
    # A private helper: pyproject caps MLflow at the tested range and
    # tests/unit/test_private_dependencies.py fails if it disappears; here a miss only costs time.
    except (ImportError, AttributeError):
        logger.debug("could not pre-build MLflow's package map", exc_info=True)


@dataclass(frozen=True)
class DeviceChoice:
    """Where this worker can run models for a given queue, and why."""

    device: str
    reason: str


def choose_device(queue: str | None) -> DeviceChoice:
    """CUDA when the task came through the gpu queue and CUDA is usable; CPU otherwise.

    torch is optional and imported only for gpu-queue tasks.
    """
    if queue != QUEUE_GPU:
        return DeviceChoice("cpu", f"task came through the {queue or 'default'} queue")
    if importlib.util.find_spec("torch") is None:
        return DeviceChoice("cpu", "gpu queue, but torch is not installed on this worker")
    import torch

    if not torch.cuda.is_available():
        return DeviceChoice("cpu", "gpu queue, but CUDA is not available on this worker")
    return DeviceChoice("cuda", f"gpu queue and CUDA is available ({torch.cuda.get_device_name()})")


def _accepts_model_config(model_uri: str) -> bool:
    # Only some pyfunc flavors (pytorch, transformers, ...) take a device through model_config;
    # handing it to others (sklearn) is a TypeError, so ask the model's MLmodel file first.
    from mlflow.models import get_model_info

    flavor = get_model_info(model_uri).flavors.get("python_function", {})
    loader = flavor.get("loader_module")
    if not loader:
        return False
    load_pyfunc = getattr(importlib.import_module(loader), "_load_pyfunc", None)
    return load_pyfunc is not None and "model_config" in inspect.signature(load_pyfunc).parameters


def load_pyfunc(model_uri: str, device: DeviceChoice) -> LoadedModel:
    """Load ``model_uri`` with ``mlflow.pyfunc`` on ``device`` when the flavor can use it.

    A flavor that takes a device is always told which one: left to itself, MLflow's pytorch
    flavor picks CUDA whenever it sees a GPU, so a cpu-queue task on a GPU node would run there
    while the job says ``cpu``.
    """
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    if not _accepts_model_config(model_uri):
        model = mlflow.pyfunc.load_model(model_uri)
        if device.device == "cuda":
            return LoadedModel(
                model, "cpu", f"{device.reason}, but this model's flavor cannot take a device"
            )
        return LoadedModel(model, "cpu", device.reason)
    try:
        model = mlflow.pyfunc.load_model(model_uri, model_config={"device": device.device})
    except MlflowException as exc:
        # A torch.export'ed (pt2, MLflow's default) model keeps its weights on the device it
        # was saved from, and MLflow refuses to move them. When the model loads on the CPU,
        # run it there and say why, rather than failing the job after every retry.
        if device.device != "cuda":
            raise
        try:
            model = mlflow.pyfunc.load_model(model_uri, model_config={"device": "cpu"})
        except MlflowException:
            raise exc from None
        why = str(exc).split(". ")[0].strip()
        return LoadedModel(
            model, "cpu", f"{device.reason}, but this model cannot be loaded on CUDA ({why})"
        )
    return LoadedModel(model, device.device, device.reason)


class ModelCache:
    """The ``capacity`` most recently used models, keyed by (model URI, device)."""

    def __init__(
        self,
        capacity: int,
        loader: Callable[[str, DeviceChoice], LoadedModel] = load_pyfunc,
    ) -> None:
        self.capacity = capacity
        self._loader = loader
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, model_uri: str, device: DeviceChoice) -> LoadedModel:
        """The loaded model, loading (and evicting the least recently used) on a miss."""
        key = (model_uri, device.device)
        with self._lock:
            cached = self._models.get(key)
            if cached is not None:
                self._models.move_to_end(key)
                return cached
        loaded = self._loader(model_uri, device)
        with self._lock:
            self.loads += 1
            self._models[key] = loaded
            self._models.move_to_end(key)
            while len(self._models) > self.capacity:
                evicted, _ = self._models.popitem(last=False)
                logger.info("model cache full: evicted %s on %s", *evicted)
        return loaded

    def __len__(self) -> int:
        return len(self._models)


class WorkerRuntime:
    """Everything a worker process keeps between tasks."""

    def __init__(self, settings: Settings) -> None:
        import mlflow

        self.settings = settings
        self.pid = os.getpid()
        # Process-global in MLflow; a worker process serves exactly one Keelwatch installation.
        mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
        mlflow.set_registry_uri(settings.mlflow.registry_uri)
        self.db = Database(settings.database.url, pool_size=2)
        self.models = ModelCache(settings.inference.model_cache_size)
        self._devices: dict[str | None, DeviceChoice] = {}

    def device_for(self, queue: str | None) -> DeviceChoice:
        """Device choice for tasks from ``queue`` (probed once per process)."""
        if queue not in self._devices:
            self._devices[queue] = choose_device(queue)
        return self._devices[queue]

    def close(self) -> None:
        """Release connections and models."""
        self.db.dispose()
        self.models = ModelCache(self.settings.inference.model_cache_size)


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime(settings: Settings) -> WorkerRuntime:
    """This process's runtime, built on first use (and again after a fork)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = WorkerRuntime(settings)
        return _runtime


def reset_runtime() -> None:
    """Forget this process's runtime (connections are not closed: they may be the parent's)."""
    global _runtime, _runtime_lock
    _runtime = None
    _runtime_lock = threading.Lock()


def describe_runtime() -> dict[str, Any]:
    """A small status dict for heartbeats and debugging."""
    runtime = _runtime
    return {
        "pid": os.getpid(),
        "models_cached": len(runtime.models) if runtime is not None else 0,
        "model_loads": runtime.models.loads if runtime is not None else 0,
    }


os.register_at_fork(after_in_child=reset_runtime)
