"""The ``keelwatch`` command line: a Typer root (``app.py``) with one module per command group.

Where code goes: a command group in its own module (``models.py``, ``jobs.py``, ``drift.py``,
``monitors.py``, ``predictions.py``, ``ops.py``), mounted in ``app.py``; helpers every group shares
(building services, the actor, one-line errors) in ``support.py``. ``keelwatch up`` in four
pieces that each do one thing: the services' command lines in ``commands.py``, settings turned
into ``KEELWATCH_*`` variables in ``environment.py``, the one-stack-per-data-dir lock in
``lock.py``, and the supervisor that starts and stops the children in ``supervisor.py``. The
end-to-end demo in ``demo.py``; the console script in ``entry.py``. What does not belong here:
business rules (they live in the services the commands call) and task modules (the CLI enqueues
by name).

Importing this package imports nothing: ``keelwatch drift`` loads only ``drift.py``.
"""
