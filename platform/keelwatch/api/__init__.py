"""HTTP API (FastAPI). ``app.create_app(settings)`` builds it; one router module per concern in
``routers/``; request/response schemas next to their router; shared dependencies in ``deps.py``.
Routers call domain/storage functions and enqueue work by name; they never import task modules.
"""
