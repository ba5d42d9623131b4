"""GPU inference workers: ``celery -A keelwatch_workers.roles.gpu worker -Q gpu``.

Chunks from the gpu queue run on CUDA when torch sees a device and the model's flavor can take
one; otherwise on CPU, and the job result says why.
"""

from keelwatch.contract import QUEUE_GPU
from keelwatch_workers.roles._build import INFERENCE_TASKS, build_role_app

app = build_role_app(INFERENCE_TASKS, queues=(QUEUE_GPU,))
