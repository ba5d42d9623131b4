"""Monitoring workers: ``celery -A keelwatch_workers.roles.monitoring worker -Q monitoring``."""

from keelwatch.contract import QUEUE_MONITORING
from keelwatch_workers.roles._build import MONITORING_TASKS, build_role_app

app = build_role_app(MONITORING_TASKS, queues=(QUEUE_MONITORING,))
