"""Thin task adapters, one module per concern: payload in, domain call, retries and metrics.

Logic lives in ``keelwatch`` (domain code); a task here only deserialises its payload, picks the
per-process runtime (database, model cache, device), calls the domain function, and decides
between retrying (transient errors) and failing the job (errors a retry cannot fix).
"""
