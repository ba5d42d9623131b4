"""CPU inference workers: ``celery -A keelwatch_workers.roles.cpu worker -Q cpu``."""

from keelwatch.contract import QUEUE_CPU
from keelwatch_workers.roles._build import INFERENCE_TASKS, build_role_app

app = build_role_app(INFERENCE_TASKS, queues=(QUEUE_CPU,))
