"""Fixtures of the Lambda handler tests: a function's environment without AWS, and its app
module imported as Lambda would."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from pipeline import aws


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a function has in the template, minus AWS: any client use fails."""
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "test")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    for name in ("PAYMENT_SUCCESS_RATE", "PAYMENT_TRANSIENT_ERROR_RATE", "PAYMENT_RANDOM_SEED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SHIPPING_FAILURE_RATE", raising=False)

    def no_aws(service: str) -> Any:
        raise AssertionError(f"unit tests must not build a {service} client")

    monkeypatch.setattr(aws, "client", no_aws)


@pytest.fixture(scope="session")
def session_stdout() -> Any:
    """The stdout of the whole test session (pytest's global capture), before capsys swaps it."""
    return sys.stdout


@pytest.fixture
def load_app(
    lambda_env: None, session_stdout: Any, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[[str], ModuleType]]:
    """Import lambdas/<name>/app.py as Lambda would, with the test environment in place.

    Powertools reads its settings when Logger and Metrics are made, so a module imported
    earlier without them is reloaded. Every handler shares one logging handler, bound to the
    stdout of the moment it was made: it is pointed at capsys's stdout for the test and back
    at the session's afterwards (assigned, not setStream: that flushes a possibly closed stream).
    """
    handlers = []

    def load(name: str) -> ModuleType:
        module = importlib.import_module(f"lambdas.{name}.app")
        if module.metrics.namespace != "Test" or module.logger.service != "test":
            module = importlib.reload(module)
        handler = module.logger.registered_handler
        handler.stream = sys.stdout
        handlers.append(handler)
        return module

    yield load
    for handler in handlers:
        handler.stream = session_stdout
