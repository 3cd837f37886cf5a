"""pipeline/metric_names.py against what emits metrics (handlers, portal) and what reads them
(template.yaml's alarms and dashboard): a name or dimension that differs is a silent alarm."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orders_api import metrics as portal_metrics
from pipeline import metric_names
from pipeline.local.cfn import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
METRIC_NAMES_MODULE = "pipeline.metric_names"
PORTAL_METRICS_MODULE = "orders_api.metrics"
# Calls that emit a metric under the name in their first argument (or `name=`): Powertools'
# Metrics.add_metric, single_metric, and the provider API's put_metric.
EMITTING_CALLS = frozenset({"add_metric", "single_metric", "put_metric"})
# Where metrics are emitted from: the functions and the portal's side of the tree. The local
# runtime (pipeline/local) publishes AWS's own metrics (AWS/Lambda, ...), not ours.
EMITTING_TREES = ("lambdas", "orders_api", "operations", "portal", "pipeline")
NOT_EMITTING_TREES = ("pipeline/local",)


@dataclass(frozen=True)
class MetricRef:
    """One metric a template resource reads: where, namespace, name and dimensions."""

    where: str
    namespace: Any
    name: Any
    dimensions: dict[str, Any]


# -- reading the template -------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """template.yaml, short tags expanded (!Ref -> {"Ref": ...})."""
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="module")
def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's functions' properties by logical id."""
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _function_env(template: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """A function's environment as Lambda sees it: the Globals' variables, then its own."""
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    return {**globals_env, **props.get("Environment", {}).get("Variables", {})}


def _handler_file(props: dict[str, Any]) -> Path:
    """The file of a function's handler: CodeUri lambdas/x/ and Handler app.handler."""
    module = props["Handler"].rsplit(".", 1)[0]
    return REPO_ROOT / props["CodeUri"] / f"{module.replace('.', '/')}.py"


def _alarm_refs(template: dict[str, Any]) -> Iterator[MetricRef]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        if "MetricName" in props:
            yield MetricRef(
                logical_id,
                props.get("Namespace"),
                props["MetricName"],
                {d["Name"]: d["Value"] for d in props.get("Dimensions", [])},
            )
        for query in props.get("Metrics", []):
            if "MetricStat" not in query:
                continue  # an expression over the other queries
            metric = query["MetricStat"]["Metric"]
            yield MetricRef(
                f"{logical_id}.{query['Id']}",
                metric.get("Namespace"),
                metric["MetricName"],
                {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])},
            )


def _dashboard_rows(metrics: list[list[Any]]) -> Iterator[list[Any]]:
    """A metric widget's rows with CloudWatch's shorthands expanded: "." repeats the previous
    row's value at that position, a leading "..." all of the previous row the rest leaves."""
    previous: list[Any] = []
    for raw in metrics:
        row = [item for item in raw if not isinstance(item, dict)]  # drop rendering options
        if not row:
            continue  # a math expression ({"expression": ...}) names no metric
        if row[0] == "...":
            row = previous[: len(previous) - (len(row) - 1)] + row[1:]
        row = [previous[i] if item == "." else item for i, item in enumerate(row)]
        previous = row
        yield row


def _dashboard_refs(template: dict[str, Any]) -> Iterator[MetricRef]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Dashboard":
            continue
        body = resource["Properties"]["DashboardBody"]
        if isinstance(body, dict) and "Fn::Sub" in body:
            sub = body["Fn::Sub"]
            body = sub if isinstance(sub, str) else sub[0]
        # Each ${...} sits inside a JSON string: leaving its name there keeps the JSON valid.
        widgets = json.loads(PLACEHOLDER.sub(r"\1", body))["widgets"]
        for index, widget in enumerate(widgets):
            if widget["type"] != "metric":
                continue
            for row in _dashboard_rows(widget["properties"]["metrics"]):
                namespace, name, *pairs = row
                yield MetricRef(
                    f"{logical_id} widget {index} ({widget['properties'].get('title')})",
                    namespace,
                    name,
                    dict(zip(pairs[::2], pairs[1::2], strict=True)),
                )


def _template_refs(template: dict[str, Any]) -> list[MetricRef]:
    return [*_alarm_refs(template), *_dashboard_refs(template)]


# -- reading the code -----------------------------------------------------------------------


def _python_files(tree: str) -> list[Path]:
    excluded = [REPO_ROOT / folder for folder in NOT_EMITTING_TREES]
    return [
        path
        for path in sorted((REPO_ROOT / tree).rglob("*.py"))
        if not any(path.is_relative_to(folder) for folder in excluded)
    ]


def _bindings(tree: ast.Module, module: str) -> tuple[set[str], dict[str, str]]:
    """The local names bound to `module` itself, and those bound to one of its attributes."""
    package, _, leaf = module.rpartition(".")
    modules: set[str] = set()
    attributes: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == package:
            modules |= {a.asname or a.name for a in node.names if a.name == leaf}
        elif isinstance(node, ast.ImportFrom) and node.module == module:
            attributes |= {a.asname or a.name: a.name for a in node.names}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == module and a.asname}
    return modules, attributes


def _constant_named(node: ast.expr, module: str, tree: ast.Module) -> str | None:
    """The attribute of `module` that `node` names (`metric_names.X`, or X imported from it)."""
    modules, attributes = _bindings(tree, module)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in modules
    ):
        return node.attr
    if isinstance(node, ast.Name) and node.id in attributes:
        return attributes[node.id]
    return None


def _name_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg == "name"), None)


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return call.func.id if isinstance(call.func, ast.Name) else None


def _emitting_calls(path: Path) -> Iterator[tuple[ast.Call, ast.expr, ast.Module]]:
    """Each call in `path` that emits a metric, with the expression naming the metric."""
    tree = ast.parse(path.read_text(), filename=str(path))
    portal_modules, portal_attributes = _bindings(tree, PORTAL_METRICS_MODULE)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = _called_name(node)
        portal_count = (
            isinstance(node.func, ast.Attribute)
            and called == "count"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in portal_modules
        ) or (isinstance(node.func, ast.Name) and portal_attributes.get(called or "") == "count")
        if called in EMITTING_CALLS or portal_count:
            argument = _name_argument(node)
            if argument is not None:
                yield node, argument, tree


def _handler_emissions(path: Path) -> list[tuple[int, str | None]]:
    """(line, metric name) of each metric a handler emits; None where it is not a constant of
    pipeline/metric_names.py."""
    found = []
    for call, argument, tree in _emitting_calls(path):
        constant = _constant_named(argument, METRIC_NAMES_MODULE, tree)
        value = getattr(metric_names, constant, None) if constant else None
        found.append((call.lineno, value if isinstance(value, str) else None))
    return found


def _portal_emissions() -> list[tuple[str, int, str | None]]:
    """(where, line, metric name) of each orders_api.metrics.count(...) call of the portal."""
    found = []
    for tree_name in ("orders_api", "operations", "portal"):
        for path in _python_files(tree_name):
            for call, argument, tree in _emitting_calls(path):
                if _called_name(call) != "count":
                    continue
                constant = _constant_named(argument, PORTAL_METRICS_MODULE, tree)
                value = getattr(portal_metrics, constant, None) if constant else None
                where = str(path.relative_to(REPO_ROOT))
                found.append((where, call.lineno, value if isinstance(value, str) else None))
    return found


@pytest.fixture(scope="module")
def emitted(
    template: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> dict[str, set[str | None]]:
    """Every metric the code emits, and the `service` dimensions it carries when emitted."""
    found: dict[str, set[str | None]] = {}
    for props in functions.values():
        service = _function_env(template, props).get("POWERTOOLS_SERVICE_NAME")
        for _, name in _handler_emissions(_handler_file(props)):
            if name is not None:
                found.setdefault(name, set()).add(service)
    for _, _, name in _portal_emissions():
        if name is not None:
            found.setdefault(name, set()).add(None)  # single_metric: no dimensions
    return found


# -- the namespace and the services ---------------------------------------------------------


def test_the_template_gives_every_function_the_namespace(
    template: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    # Given every function's environment as the template sets it
    for logical_id, props in functions.items():
        env = _function_env(template, props)
        # Then Powertools puts its metrics in the namespace the code defines
        assert env.get("POWERTOOLS_METRICS_NAMESPACE") == metric_names.NAMESPACE, logical_id


def test_the_portal_is_deployed_with_the_namespace() -> None:
    # Given the portal's Zappa stages (prod extends dev)
    stages = json.loads((REPO_ROOT / "zappa_settings.json").read_text())
    env = stages["dev"]["environment_variables"]
    # Then its metrics land in the namespace the template's alarms and dashboard read
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == metric_names.NAMESPACE
    for name, stage in stages.items():
        override = stage.get("environment_variables", {}).get("POWERTOOLS_METRICS_NAMESPACE")
        assert override in (None, metric_names.NAMESPACE), name


def test_every_defined_service_is_a_function_of_the_template(
    template: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    # Given the service names the template gives its functions
    services = {
        _function_env(template, props).get("POWERTOOLS_SERVICE_NAME")
        for props in functions.values()
    }
    # Then each service a metric is defined with is one of them
    defined = {s for s in metric_names.SERVICE_OF.values() if s is not None}
    assert defined <= services, sorted(defined - services)


# -- the code emits defined names only ------------------------------------------------------


def test_no_metric_is_named_by_a_string_literal() -> None:
    # Given every call that emits a metric, in the functions and the portal
    literals = []
    for tree_name in EMITTING_TREES:
        for path in _python_files(tree_name):
            for call, argument, _ in _emitting_calls(path):
                # Then its name is a constant, never a literal written at the call
                if isinstance(argument, ast.Constant | ast.JoinedStr | ast.BinOp):
                    literals.append(f"{path.relative_to(REPO_ROOT)}:{call.lineno}")
    assert literals == [], "use a constant of pipeline/metric_names.py"


def test_every_handler_emits_defined_metrics_of_its_own_service(
    template: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    # Given each function's handler and the service name the template gives it
    for logical_id, props in functions.items():
        service = _function_env(template, props).get("POWERTOOLS_SERVICE_NAME")
        emissions = _handler_emissions(_handler_file(props))
        assert emissions, f"{logical_id} emits no metric"
        for line, name in emissions:
            where = f"{props['CodeUri']}app.py:{line}"
            # Then it names each metric by a constant of pipeline/metric_names.py
            assert name is not None, f"{where}: not a constant of pipeline/metric_names.py"
            # And that constant is defined with the service the function's metrics carry
            assert name in metric_names.SERVICE_OF, where
            assert metric_names.SERVICE_OF[name] == service, (where, name, service)


def test_the_portal_counts_defined_metrics_without_a_service() -> None:
    # Given every metrics.count(...) call of the portal
    emissions = _portal_emissions()
    assert emissions, "the portal counts no metric"
    for where, line, name in emissions:
        # Then it names an orders_api.metrics constant, itself one of pipeline/metric_names.py
        assert name is not None, f"{where}:{line}: not a constant of orders_api/metrics.py"
        assert name in metric_names.SERVICE_OF, f"{where}:{line}: {name}"
        # And one defined without a service dimension (single_metric adds none)
        assert metric_names.SERVICE_OF[name] is None, f"{where}:{line}: {name}"


def test_every_defined_metric_is_emitted(emitted: dict[str, set[str | None]]) -> None:
    # Given the metrics the handlers and the portal emit
    # Then each defined metric is one of them (a constant nobody emits misleads its readers)
    assert set(metric_names.SERVICE_OF) == set(emitted)


# -- the template reads emitted metrics only ------------------------------------------------


def test_the_template_reads_the_namespace_or_aws_ones_only(template: dict[str, Any]) -> None:
    # Given every metric an alarm or the dashboard reads
    refs = _template_refs(template)
    # Then it is in the pipeline's namespace or one AWS publishes (a typo would hide it)
    odd = [
        (r.where, r.namespace)
        for r in refs
        if r.namespace != metric_names.NAMESPACE
        and not (isinstance(r.namespace, str) and r.namespace.startswith("AWS/"))
    ]
    assert odd == []


def test_every_custom_metric_the_template_reads_is_emitted_with_its_dimensions(
    template: dict[str, Any], emitted: dict[str, set[str | None]]
) -> None:
    # Given the metrics of the pipeline's namespace that alarms and the dashboard read
    refs = [r for r in _template_refs(template) if r.namespace == metric_names.NAMESPACE]
    # (the parsing found the alarm and the dashboard's custom graphs, so the test is not empty)
    assert any(r.where == "ManualInterventionAlarm" for r in refs)
    assert sum(r.where.startswith("OperationsDashboard") for r in refs) >= 10
    for ref in refs:
        # Then the code emits each of them
        assert ref.name in emitted, f"{ref.where}: nothing emits {ref.name}"
        # And with exactly the dimensions named: only Powertools' service, or none at all
        service = metric_names.SERVICE_OF[ref.name]
        expected = {"service": service} if service is not None else {}
        assert ref.dimensions == expected, f"{ref.where}: {ref.name} {ref.dimensions}"
        assert service in emitted[ref.name], f"{ref.where}: {ref.name}"
