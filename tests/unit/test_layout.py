"""DESIGN.md's import rules: lambdas and orders_api import pipeline; no Django below them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> the first-party packages it may import (besides itself)
ALLOWED = {
    "pipeline": set(),
    "lambdas": {"pipeline"},
    "orders_api": {"pipeline"},
}
FIRST_PARTY = {"pipeline", "lambdas", "orders_api", "portal", "operations", "scripts", "bench"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_the_layout_allows(package: str) -> None:
    # Given every module of the package
    offences = []
    for path in sorted((ROOT / package).rglob("*.py")):
        imported = _imports(path)
        # Then it imports no first-party package beyond what the layout allows
        forbidden = (imported & FIRST_PARTY) - ALLOWED[package] - {package}
        if forbidden:
            offences.append(f"{path.relative_to(ROOT)} imports {sorted(forbidden)}")
    assert offences == []


@pytest.mark.parametrize("package", ["pipeline", "lambdas"])
def test_the_lambda_side_never_imports_django(package: str) -> None:
    # Given the code that runs in the Lambda bundle (and the local runtime)
    users = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / package).rglob("*.py"))
        if {"django", "rest_framework"} & _imports(path)
    ]
    # Then none of it needs Django, so a Lambda bundle needs no Django
    assert users == []
