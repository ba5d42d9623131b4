"""Trainers for the retrain tests, imported by spec (``tests.integration.trainers:NAME``) the
way the executor imports a model's registered trainer, in the test process or in a worker.

``gated_logistic`` is for crash tests: it notes each call in the folder named by
``KW_TEST_TRAINER_CALLS`` and then waits until the file named by ``KW_TEST_TRAINER_GATE``
exists, so a test can kill the worker while a retrain is inside the trainer.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.linear_model import LogisticRegression

TARGET = "default"
#: Frames the in-process trainers were called with, in order (tests clear it first).
RECORDED: list[pd.DataFrame] = []


def _fit(frame: pd.DataFrame) -> Any:
    features = [c for c in frame.columns if c != TARGET]
    return LogisticRegression(max_iter=200).fit(frame[features], frame[TARGET].astype(int))


def recording_logistic(frame: pd.DataFrame) -> Any:
    """Keep a copy of the frame, then fit a logistic regression on it."""
    RECORDED.append(frame.copy())
    return _fit(frame)


def broken(frame: pd.DataFrame) -> Any:
    """A trainer that fails the way user code does."""
    raise ValueError(f"solver did not converge on {len(frame)} rows")


def gated_logistic(frame: pd.DataFrame) -> Any:
    """Record the call, wait for the gate file (at most two minutes), then fit."""
    calls = Path(os.environ["KW_TEST_TRAINER_CALLS"])
    calls.mkdir(parents=True, exist_ok=True)
    (calls / f"call-{uuid.uuid4().hex}").write_text(str(len(frame)))
    gate = Path(os.environ["KW_TEST_TRAINER_GATE"])
    deadline = time.monotonic() + 120
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the trainer's gate")
        time.sleep(0.1)
    return _fit(frame)
