"""Batch inference: everything about a batch-inference job that is not Celery.

Where code goes:

* ``dataset.py`` reads input metadata (rows, columns, row groups) cheaply and reads one row range.
* ``planning.py`` splits rows into chunks, checks columns against the model signature, names
  output files.
* ``sampling.py`` picks, deterministically, which scored rows go to the prediction log.
* ``execution.py`` scores one chunk (called by the worker's thin task adapter).
* ``submit.py`` validates a request, creates the job and its chunks, then enqueues them.

Heavy libraries (pyarrow, pandas, numpy) are imported inside functions so that the CLI and the
API start fast.
"""

from keelwatch.inference.submit import BatchInferenceParams, submit_batch_inference

__all__ = ["BatchInferenceParams", "submit_batch_inference"]
