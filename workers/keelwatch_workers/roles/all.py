"""Every task module on every queue, for a laptop and the tests.

``celery -A keelwatch_workers.roles.all worker`` and ``celery -A keelwatch_workers.roles.all beat``.
"""

from keelwatch.contract import ALL_QUEUES
from keelwatch_workers.roles._build import INFERENCE_TASKS, MONITORING_TASKS, build_role_app

app = build_role_app((*INFERENCE_TASKS, *MONITORING_TASKS), queues=ALL_QUEUES)
