"""ORM rows stay inside ``storage/``, and storage depends only on entities and errors.

import-linter enforces the layers in ``make lint``; these tests keep the same two rules visible
in the suite, and name the offending module and line when one breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "platform" / "keelwatch"
STORAGE = PACKAGE / "storage"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, function-level imports included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def test_orm_models_are_imported_only_inside_storage() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if STORAGE not in path.parents
        for line, module in _imports(path)
        if module.startswith("keelwatch.storage.models")
    ]
    assert offenders == []


def test_storage_imports_only_entities_errors_and_itself() -> None:
    allowed = ("keelwatch.storage", "keelwatch.entities", "keelwatch.errors")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} imports {module}"
        for path in sorted(STORAGE.rglob("*.py"))
        for line, module in _imports(path)
        if module.startswith("keelwatch") and not module.startswith(allowed)
    ]
    assert offenders == []
