"""Runnable examples that exercise Keelwatch end to end with real models.

Each example is one module with its heavy, optional imports (torch ...) at its top, so nothing
here is imported by ``import keelwatch``; import the example module itself, e.g.
``keelwatch.examples.torch_text`` (needs the ``torch`` extra: ``pip install -e '.[torch]'``).
"""
