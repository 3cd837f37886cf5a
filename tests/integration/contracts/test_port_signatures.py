"""Each fake and each adapter has every method of its port, with the port's parameters."""

from __future__ import annotations

import inspect

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.sqs import SqsQueue
from pipeline.adapters.stepfunctions import FulfilmentWorkflow
from pipeline.ports import MessageQueue, ReservationStore, Workflow
from tests.fakes import FakeQueue, FakeStore, FakeWorkflow

pytestmark = pytest.mark.integration

# port -> (fake, real)
PORTS: dict[type, tuple[type, type]] = {
    ReservationStore: (FakeStore, DynamoStore),
    MessageQueue: (FakeQueue, SqsQueue),
    Workflow: (FakeWorkflow, FulfilmentWorkflow),
}


def _methods(port: type) -> list[str]:
    """The port's own methods, with those of the ports it extends."""
    return sorted(
        name
        for klass in port.__mro__
        if klass.__dict__.get("_is_protocol")
        for name, value in vars(klass).items()
        if inspect.isfunction(value) and not name.startswith("_")
    )


def _parameters(function: object) -> list[tuple[str, object, object]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize("port", list(PORTS), ids=lambda port: port.__name__)
@pytest.mark.parametrize("implementation", ["fake", "real"])
def test_the_implementation_has_the_ports_methods_and_parameters(
    port: type, implementation: str
) -> None:
    # Given a port and what implements it
    fake, real = PORTS[port]
    klass = fake if implementation == "fake" else real

    # When their methods are compared
    methods = _methods(port)
    missing = [name for name in methods if not hasattr(klass, name)]
    different = {
        name: {"port": _parameters(getattr(port, name)), "has": _parameters(getattr(klass, name))}
        for name in methods
        if name not in missing
        and _parameters(getattr(klass, name)) != _parameters(getattr(port, name))
    }

    # Then every method is there, with the same names, kinds and defaults
    assert methods, f"{port.__name__} declares no methods"
    assert missing == [], f"{klass.__name__} lacks methods of {port.__name__}"
    assert different == {}, f"{klass.__name__} differs from {port.__name__}"
