"""One Celery app per worker role. A role decides which task modules a worker imports and which
queues it consumes by default; start one with e.g.
``celery -A keelwatch_workers.roles.gpu worker -Q gpu``.

* ``cpu``: batch inference on the cpu queue.
* ``gpu``: batch inference on the gpu queue (CUDA when present).
* ``monitoring``: scheduled and monitoring work (heartbeat now; drift, audits later).
* ``all``: every task module and every queue, for a laptop and the tests; also runs beat
  (``celery -A keelwatch_workers.roles.all beat``).
"""

from keelwatch_workers.roles._build import INFERENCE_TASKS, MONITORING_TASKS, build_role_app

__all__ = ["INFERENCE_TASKS", "MONITORING_TASKS", "build_role_app"]
