"""ORM rows stay inside ``storage/``, and storage depends only on entities, errors and pure parsers.

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


#: Pure parsers storage uses to turn stored JSON back into entities (rules, silence matchers,
#: policies). They are under import-linter's pure contracts (no Keelwatch beyond entities and
#: errors), so storage importing them cannot close a cycle through service code.
PURE_PARSERS = (
    "keelwatch.alerting.rules",
    "keelwatch.alerting.matchers",
    "keelwatch.actions.policies",
)


def test_storage_imports_only_entities_errors_and_itself() -> None:
    allowed = ("keelwatch.storage", "keelwatch.entities", "keelwatch.errors", *PURE_PARSERS)
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} imports {module}"
        for path in sorted(STORAGE.rglob("*.py"))
        for line, module in _imports(path)
        if module.startswith("keelwatch") and not module.startswith(allowed)
    ]
    assert offenders == []


def test_the_parsers_storage_may_use_are_under_a_pure_contract() -> None:
    import tomllib

    config = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())
    pure = {
        module
        for contract in config["tool"]["importlinter"]["contracts"]
        if contract["type"] == "forbidden" and "keelwatch.*" in contract["forbidden_modules"]
        for module in contract["source_modules"]
    }
    assert set(PURE_PARSERS) <= pure, sorted(set(PURE_PARSERS) - pure)
