"""docs/design.md's import rules ("Imports run one way"), checked on every top-level package."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The project's own top-level packages and folders of Python files.
FIRST_PARTY = frozenset(
    {"pipeline", "lambdas", "orders_api", "operations", "portal", "scripts", "bench", "tests"}
)
# The portal's side of the project: none of it is in the Lambda layer (Makefile) or the
# functions' CodeUri folders, so the Lambda side cannot import it.
DJANGO_SIDE = frozenset({"django", "rest_framework", "rest_framework_api_key", "drf_spectacular"})
CELERY = frozenset({"celery", "kombu"})
# Neither the Lambda layer (rsync --exclude local) nor the Zappa package (exclude_glob) carries
# the local runtime: only the runtime itself, scripts and benchmarks may use it.
LOCAL_RUNTIME = "pipeline.local"


@dataclass(frozen=True)
class Rule:
    """What the modules of one part of the tree may import."""

    name: str
    folder: str
    # First-party modules it may import (a prefix: "pipeline" allows "pipeline.domain").
    may_import: tuple[str, ...]
    # Exceptions to may_import.
    denied: tuple[str, ...] = ()
    # Third-party top-level packages it must not import.
    forbidden_libraries: frozenset[str] = frozenset()
    # Sub-folders that another rule covers.
    excluding: tuple[str, ...] = ()


RULES = (
    # The domain, use cases, ports and adapters: the Lambda layer. No Django, no local runtime.
    Rule(
        "pipeline (core)",
        "pipeline",
        may_import=("pipeline",),
        denied=(LOCAL_RUNTIME,),
        forbidden_libraries=DJANGO_SIDE | CELERY,
        excluding=("pipeline/local",),
    ),
    # The local runtime builds on the core; it loads handlers by their template name, in worker
    # processes, so it never imports lambdas either.
    Rule(
        "pipeline.local",
        "pipeline/local",
        may_import=("pipeline",),
        forbidden_libraries=DJANGO_SIDE | CELERY,
    ),
    # Each handler is deployed alone (CodeUri lambdas/<function>/) with the layer beside it:
    # `lambdas.*` does not exist on AWS, only `pipeline` does.
    Rule(
        "lambdas",
        "lambdas",
        may_import=("pipeline",),
        denied=(LOCAL_RUNTIME,),
        forbidden_libraries=DJANGO_SIDE | CELERY,
    ),
    # The order API: a Django app over the pipeline's use cases, unaware of the staff pages.
    Rule(
        "orders_api",
        "orders_api",
        may_import=("orders_api", "pipeline"),
        denied=(LOCAL_RUNTIME,),
        forbidden_libraries=CELERY,
    ),
    # The staff pages use the API's models (keys) and the pipeline; of the project package only
    # the Celery app, which its AppConfig loads so the tasks bind to it in every process.
    Rule(
        "operations",
        "operations",
        may_import=("operations", "orders_api", "pipeline", "portal.celery"),
        denied=(LOCAL_RUNTIME,),
    ),
    # The Django project wires everything deployed with Zappa, and nothing Zappa leaves out.
    Rule(
        "portal",
        "portal",
        may_import=("portal", "orders_api", "operations", "pipeline"),
        denied=(LOCAL_RUNTIME,),
    ),
    # Helper scripts drive the pipeline and its local runtime, and the portal only through
    # manage.py's commands (a subprocess or execute_from_command_line), never its modules.
    Rule("scripts", "scripts", may_import=("pipeline",)),
    # Benchmarks measure the pipeline and the portal: the intake section serves the portal's
    # own settings and a minimal endpoint on its API keys beside it.
    Rule("bench", "bench", may_import=("bench", "pipeline", "portal", "orders_api")),
)

# Folders at the top that hold no package of ours.
NOT_PACKAGES = frozenset({"tests", "node_modules", "build", "dist", "staticfiles"})


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, as a dotted name (`from a import b` counts as `a.b`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path)[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A relative import: resolved against the file's own package.
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                found.add(module if alias.name == "*" else f"{module}.{alias.name}")
    return found


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _files(rule: Rule) -> list[Path]:
    return [
        path
        for path in sorted((ROOT / rule.folder).rglob("*.py"))
        if not any(path.is_relative_to(ROOT / folder) for folder in rule.excluding)
    ]


def offences(rule: Rule) -> list[str]:
    """Each import of the rule's files that the rule does not allow."""
    found = []
    for path in _files(rule):
        for module in sorted(_imports(path)):
            top = module.split(".")[0]
            if top in FIRST_PARTY:
                allowed = any(_matches(module, p) for p in rule.may_import) and not any(
                    _matches(module, p) for p in rule.denied
                )
            else:
                allowed = top not in rule.forbidden_libraries
            if not allowed:
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_each_part_imports_only_what_the_layout_allows(rule: Rule) -> None:
    # Given every module of one part of the tree
    assert _files(rule), f"{rule.folder} has no Python files: the rule checks nothing"
    # Then it imports nothing its rule forbids
    assert offences(rule) == []


def test_every_top_level_package_has_a_rule() -> None:
    # Given the top-level folders that hold Python code
    folders = {
        path.name
        for path in ROOT.iterdir()
        if path.is_dir()
        and not path.name.startswith(".")
        and path.name not in NOT_PACKAGES
        and not path.name.endswith(".egg-info")
        and any(path.rglob("*.py"))
    }
    # Then each one is checked by a rule, so a new package cannot escape the layout
    assert folders == {rule.folder for rule in RULES if "/" not in rule.folder}
    assert folders | {"tests"} == FIRST_PARTY


def test_a_broken_rule_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a handler that imports Django, the local runtime and another handler
    handler = tmp_path / "lambdas" / "bad" / "app.py"
    handler.parent.mkdir(parents=True)
    handler.write_text(
        "import django.conf\n"
        "from pipeline.local import emulators\n"
        "from lambdas.payment.app import handler\n"
        "from pipeline.domain import Order\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)

    # When the lambdas rule is checked
    found = offences(next(rule for rule in RULES if rule.name == "lambdas"))

    # Then each forbidden import is named, and the allowed one is not
    assert found == [
        "lambdas/bad/app.py imports django.conf",
        "lambdas/bad/app.py imports lambdas.payment.app.handler",
        "lambdas/bad/app.py imports pipeline.local.emulators",
    ]
