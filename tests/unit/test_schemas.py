"""The API's I/O shapes live in ``keelwatch.schemas`` and are built from entities whole."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from keelwatch.api.routers import audit, health, jobs, monitors, predictions, registry
from keelwatch.entities import AuditEntry, ChunkStatus, Job, JobChunk, JobStatus
from keelwatch.entities.monitors import DriftMonitor, DriftResult, DriftStatus
from keelwatch.entities.registry import ApprovalState, ModelVersionInfo, RegisteredModelInfo
from keelwatch.schemas.audit import AuditEntryOut
from keelwatch.schemas.jobs import JobView
from keelwatch.schemas.monitors import MonitorOut, ResultOut
from keelwatch.schemas.registry import ModelVersionOut, RegisteredModelOut

ROUTERS = (audit, health, jobs, monitors, predictions, registry)
#: Request shapes defined elsewhere on purpose: the monitor spec carries domain validation and
#: stays with the service that validates it; the batch-inference request is the payload the
#: worker contract sends to the fleet, so it lives with the contract.
ELSEWHERE = {"keelwatch.monitoring.service.specs", "keelwatch.contract"}
AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic classes inside an annotation (``Page[JobView]`` gives Page and JobView)."""
    found: list[type[BaseModel]] = []
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        metadata = annotation.__pydantic_generic_metadata__
        if metadata["origin"] is not None:
            found.append(metadata["origin"])
            for arg in metadata["args"]:
                found.extend(_models_of(arg))
        else:
            found.append(annotation)
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_models_of(arg))
    return found


def _route_models(module: ModuleType) -> list[tuple[str, type[BaseModel]]]:
    models: list[tuple[str, type[BaseModel]]] = []
    for route in module.router.routes:
        assert isinstance(route, APIRoute)
        models.extend((route.path, model) for model in _models_of(route.response_model))
        for param in route.dependant.body_params:
            models.extend((route.path, model) for model in _models_of(param.field_info.annotation))
    return models


@pytest.mark.parametrize("module", ROUTERS, ids=lambda module: module.__name__.rsplit(".", 1)[1])
def test_route_models_are_defined_in_schemas(module: ModuleType) -> None:
    models = _route_models(module)
    assert models, f"{module.__name__} declares no response or body models"
    misplaced = {
        f"{path}: {model.__module__}.{model.__qualname__}"
        for path, model in models
        if not model.__module__.startswith("keelwatch.schemas.")
        and model.__module__ not in ELSEWHERE
    }
    assert not misplaced, f"I/O classes outside keelwatch.schemas: {sorted(misplaced)}"


def test_no_pydantic_class_is_defined_in_a_router() -> None:
    for module in ROUTERS:
        inline = [
            name
            for name, value in vars(module).items()
            if inspect.isclass(value)
            and issubclass(value, BaseModel)
            and value.__module__ == module.__name__
            # Page[X] written in a router is a parametrisation, not a definition.
            and value.__pydantic_generic_metadata__["origin"] is None
        ]
        assert not inline, f"{module.__name__} defines {inline}; they belong in keelwatch.schemas"


def _entity_fields(entity: Any) -> dict[str, Any]:
    return {field.name: getattr(entity, field.name) for field in dataclasses.fields(entity)}


def test_job_view_copies_every_entity_field_it_names() -> None:
    job = Job(
        id="j1",
        kind="batch_inference",
        status=JobStatus.RUNNING,
        params={"model": "m"},
        chunks_total=2,
        chunks_done=1,
        rows_total=10,
        rows_done=5,
        created_at=AT,
        updated_at=AT,
        submitted_by="ada",
        result={"rows": 5},
        error=None,
    )
    chunk = JobChunk(
        job_id="j1",
        index=0,
        status=ChunkStatus.DONE,
        row_start=0,
        row_stop=5,
        rows_done=5,
        attempts=1,
        device="cpu",
        output_path="/tmp/out.parquet",
        error=None,
    )
    without = JobView.from_job(job).model_dump(mode="json")
    assert without["chunks"] is None
    assert without["status"] == "running"
    assert JobView.from_job(job).model_dump(exclude={"chunks"}) == {
        **_entity_fields(job),
        "status": "running",
    }
    with_chunks = JobView.from_job(job, [chunk]).model_dump(mode="json")
    assert with_chunks["chunks"] == [
        {
            "index": 0,
            "status": "done",
            "row_start": 0,
            "row_stop": 5,
            "rows_done": 5,
            "attempts": 1,
            "device": "cpu",
            "error": None,
        }
    ]


def test_registry_outputs_from_entities() -> None:
    info = ModelVersionInfo(
        name="m",
        version="3",
        source="runs:/r/model",
        run_id="r",
        created_at=AT,
        approval=ApprovalState.APPROVED,
        approval_actor="ada",
        approval_reason="ok",
        aliases=("champion",),
        rolled_back=False,
        description="",
        tags={"team": "a"},
    )
    out = ModelVersionOut.of(info)
    assert out.model_uri == "models:/m/3"
    assert out.aliases == ["champion"]
    assert out.approval is ApprovalState.APPROVED
    model = RegisteredModelOut.of(
        RegisteredModelInfo(
            name="m",
            description="d",
            created_at=AT,
            updated_at=AT,
            latest_version="3",
            aliases={"champion": "3"},
        )
    )
    assert list(model.model_dump()) == [
        "name",
        "description",
        "created_at",
        "updated_at",
        "latest_version",
        "aliases",
    ]


def test_monitor_and_result_outputs_from_entities() -> None:
    monitor = DriftMonitor(
        id=1,
        name="mon",
        model_name="m",
        model_ref="m@champion",
        window={"kind": "rows", "last_rows": 100},
        schedule_interval_s=60,
        schedule_cron=None,
        config={},
        enabled=True,
        description="",
        created_by="ada",
        created_at=AT,
        updated_by="ada",
        updated_at=AT,
    )
    assert MonitorOut.of(monitor).model_dump() == _entity_fields(monitor)
    result = DriftResult(
        id=7,
        monitor_id=1,
        job_id=None,
        model_name="m",
        model_version="3",
        status=DriftStatus.DRIFT,
        dataset_drift=True,
        share_drifted=0.5,
        window_rows=100,
        mode="full",
        started_at=AT,
        finished_at=AT,
    )
    dumped = ResultOut.of(result).model_dump()
    assert type(dumped["status"]) is str
    assert dumped == {**_entity_fields(result), "status": result.status.value}


def test_audit_entry_output_from_entity() -> None:
    entry = AuditEntry(
        id=3,
        at=AT,
        actor="ada",
        action="model.approve",
        target="m/3",
        reason="ok",
        details={"k": 1},
    )
    assert AuditEntryOut.from_entry(entry).model_dump() == _entity_fields(entry)
