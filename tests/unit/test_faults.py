"""The local runtime's fault injector, and proof that deployed code cannot switch it on."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from pipeline import aws
from pipeline.local import faults
from pipeline.local.__main__ import parse_args
from pipeline.local.runtime import LocalRuntime, RuntimeOptions
from tests.unit.test_layout import ROOT, _imports

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
ITEM = {"OrderId": {"S": "o-1"}}


@dataclass
class Endpoint:
    """A stand-in for DynamoDB on 127.0.0.1: answers every call with `{}`, keeps the bodies."""

    url: str
    requests: list[tuple[str, bytes]] = field(default_factory=list)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """The stand-in, serving in a thread for one test."""
    seen: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((self.headers.get("X-Amz-Target", ""), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Endpoint(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


def _client(endpoint: Endpoint, attempts: int = 1) -> Any:
    # total_max_attempts counts the first attempt too (botocore's max_attempts does not).
    config = Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=1,
        read_timeout=1,
    )
    return aws.new_client(
        "dynamodb",
        endpoint_url=endpoint.url,
        region="us-east-1",
        credentials=CREDENTIALS,
        config=config,
    )


def _script(injector: faults.FaultInjector, plan: list[faults.Fault | None]) -> None:
    """Make the injector's next decisions `plan`, then no faults."""
    steps = iter(plan)
    injector.decide = lambda service, operation: next(steps, None)  # type: ignore[method-assign]


# -- each kind of fault ------------------------------------------------------------------------


def test_throttling_is_answered_as_dynamodb_would_and_nothing_is_sent(endpoint: Endpoint) -> None:
    # Given an injector that throttles every call of a client with no retries
    injector = faults.FaultInjector(1.0, kinds=[faults.THROTTLING])
    client = injector.install(_client(endpoint))
    # When the client writes
    with pytest.raises(ClientError) as caught:
        client.put_item(TableName="Orders", Item=ITEM)
    # Then botocore parsed DynamoDB's own throttling answer, and the service never saw the call
    error = caught.value.response
    assert error["Error"]["Code"] in {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
    }
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert endpoint.requests == []
    assert injector.faults == {"throttling": 1}


def test_a_server_error_is_a_500_or_503_and_nothing_is_sent(endpoint: Endpoint) -> None:
    # Given an injector that fails every call with a server error
    injector = faults.FaultInjector(1.0, kinds=[faults.SERVER_ERROR], seed=3)
    client = injector.install(_client(endpoint))
    # When the client writes several times
    answers = set()
    for _ in range(20):
        with pytest.raises(ClientError) as caught:
            client.put_item(TableName="Orders", Item=ITEM)
        error = caught.value.response
        answers.add((error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]))
    # Then each answer is one of the service's 5xx errors, and nothing reached the service
    assert answers == {("InternalServerError", 500), ("ServiceUnavailable", 503)}
    assert endpoint.requests == []


def test_a_timeout_is_raised_before_anything_is_sent(endpoint: Endpoint) -> None:
    # Given an injector that times out every call
    injector = faults.FaultInjector(1.0, kinds=[faults.TIMEOUT], seed=3)
    client = injector.install(_client(endpoint))
    # When the client writes several times
    raised = set()
    for _ in range(20):
        with pytest.raises((ReadTimeoutError, ConnectTimeoutError)) as caught:
            client.put_item(TableName="Orders", Item=ITEM)
        raised.add(type(caught.value))
    # Then both timeouts occur, and the service never saw a request
    assert raised == {ReadTimeoutError, ConnectTimeoutError}
    assert endpoint.requests == []


def test_a_lost_response_is_applied_by_the_service_then_raised_as_a_read_timeout(
    endpoint: Endpoint,
) -> None:
    # Given an injector that loses the answer of every call
    injector = faults.FaultInjector(1.0, kinds=[faults.LOST_RESPONSE])
    client = injector.install(_client(endpoint))
    # When the client writes
    with pytest.raises(ReadTimeoutError):
        client.put_item(TableName="Orders", Item=ITEM)
    # Then the write reached the service although the caller saw a timeout
    assert [target for target, _ in endpoint.requests] == ["DynamoDB_20120810.PutItem"]
    assert injector.faults == {"lost_response": 1}


@pytest.mark.parametrize(
    ("fault", "sent"),
    [
        (faults.Fault(faults.THROTTLING, "ProvisionedThroughputExceededException", 400), 1),
        (faults.Fault(faults.SERVER_ERROR, "ServiceUnavailable", 503), 1),
        (faults.Fault(faults.TIMEOUT, "ConnectTimeoutError"), 1),
        (faults.Fault(faults.LOST_RESPONSE, "ReadTimeoutError"), 2),
    ],
    ids=lambda value: value.kind if isinstance(value, faults.Fault) else None,
)
def test_botocore_retries_every_kind_and_a_lost_write_is_sent_again(
    endpoint: Endpoint, fault: faults.Fault, sent: int
) -> None:
    # Given a client with 3 attempts, whose first attempt fails
    injector = faults.FaultInjector(1.0)
    client = injector.install(_client(endpoint, attempts=3))
    _script(injector, [fault])
    # When it writes
    response = client.put_item(TableName="Orders", Item=ITEM)
    # Then botocore's standard retry made the call succeed on its second attempt, re-sending
    # the very same request when the first one's answer was lost
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(endpoint.requests) == sent
    assert len({body for _, body in endpoint.requests}) == 1


def test_only_the_clients_it_is_installed_on_fail(endpoint: Endpoint) -> None:
    # Given two clients from one session, the injector on the first only
    injector = faults.FaultInjector(1.0, kinds=[faults.THROTTLING])
    faulty, healthy = injector.install(_client(endpoint)), _client(endpoint)
    # Then the second client's calls go through, and installing twice hooks once
    assert injector.install(faulty) is faulty
    healthy.put_item(TableName="Orders", Item=ITEM)
    with pytest.raises(ClientError):
        faulty.put_item(TableName="Orders", Item=ITEM)
    assert len(endpoint.requests) == 1
    assert injector.calls == 1


# -- the seeded draw ----------------------------------------------------------------------------


def _decisions(seed: str, calls: int = 4000) -> list[faults.Fault | None]:
    injector = faults.FaultInjector(0.1, seed=seed)
    return [injector.decide("dynamodb", "PutItem") for _ in range(calls)]


def test_the_same_seed_makes_the_same_faults_and_another_seed_others() -> None:
    # Given two injectors with one seed and one with another
    first, again, other = _decisions("7"), _decisions("7"), _decisions("8")
    # Then the first two fail the same calls the same way, the third does not
    assert first == again
    assert first != other
    # And about a tenth of the calls fail, with every kind of fault
    injected = [f for f in first if f is not None]
    assert 0.08 < len(injected) / len(first) < 0.12
    assert {f.kind for f in injected} == set(faults.KINDS)


def test_the_rate_and_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        faults.FaultInjector(1.5)
    with pytest.raises(ValueError, match="fault kinds"):
        faults.FaultInjector(0.1, kinds=["gremlins"])
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.parse_kinds("timeout,gremlins")
    assert faults.parse_kinds(" timeout, throttling ") == ("timeout", "throttling")


# -- how a worker is switched on --------------------------------------------------------------


def _factory_module(endpoint: Endpoint) -> types.ModuleType:
    """A stand-in for pipeline.aws whose factories make clients of the stand-in endpoint."""
    module = types.ModuleType("fake_aws")
    module.client = lambda service: _client(endpoint)  # type: ignore[attr-defined]
    module.new_client = lambda service, **kwargs: _client(endpoint)  # type: ignore[attr-defined]
    return module


def test_a_worker_without_the_runtime_option_installs_nothing(endpoint: Endpoint) -> None:
    # Given the environment of a worker of a runtime started without --fault-rate
    module = _factory_module(endpoint)
    factories = (module.client, module.new_client)
    # Then no injector is made and the client factories are left as they are
    assert faults.install_from_env({"AWS_LAMBDA_FUNCTION_NAME": "fn"}, module=module) is None
    assert faults.install_from_env({faults.ENV_RATE: "0"}, module=module) is None
    assert (module.client, module.new_client) == factories


def test_a_worker_with_the_runtime_option_fails_calls_and_reports_them(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    # Given the environment the runtime gives its workers with --fault-rate 1 (timeouts only)
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "orders-local-PaymentFunction",
        **faults.worker_env(1.0, seed="7", kinds=[faults.TIMEOUT], report_dir=tmp_path),
    }
    module = _factory_module(endpoint)
    # When two workers of the function start and make calls through the factories
    first = faults.install_from_env(env, module=module)
    second = faults.install_from_env(env, module=module)
    assert first is not None and second is not None
    for make in (lambda: module.client("dynamodb"), lambda: module.new_client("dynamodb")):
        with pytest.raises((ReadTimeoutError, ConnectTimeoutError)):
            make().put_item(TableName="Orders", Item=ITEM)
    first.flush()
    # Then each worker has its own report file and seed, and the counts add up across them
    assert sorted(p.name for p in tmp_path.glob(faults.REPORT_GLOB)) == [
        "faults-orders-local-PaymentFunction-0.json",
        "faults-orders-local-PaymentFunction-1.json",
    ]
    assert first.seed != second.seed
    report = json.loads((tmp_path / "faults-orders-local-PaymentFunction-0.json").read_text())
    assert report["calls"] == 2 and report["faults"] == {"timeout": 2}
    assert faults.read_reports(tmp_path)["faults"] == {"timeout": 2}
    assert endpoint.requests == []
    # And a new run starts from no counts
    faults.clear_reports(tmp_path)
    assert faults.read_reports(tmp_path)["workers"] == 0


def test_the_runtime_option_reaches_the_workers_environment(tmp_path: Path) -> None:
    # Given the command line of a resilience test
    args = parse_args(["--fault-rate", "0.1", "--fault-seed", "7", "--fault-kinds", "timeout"])
    assert (args.fault_rate, args.fault_seed, args.fault_kinds) == (0.1, "7", ("timeout",))
    # When the runtime builds its functions' environment
    options = RuntimeOptions(
        data_dir=None,
        console=None,
        fault_rate=0.1,
        fault_seed="7",
        fault_kinds=("timeout",),
        fault_report_dir=tmp_path,
    )
    env = LocalRuntime(options)._fault_env()
    # Then the workers get the rate, seed, kinds and report directory
    assert env == {
        faults.ENV_RATE: "0.1",
        faults.ENV_SEED: "7",
        faults.ENV_KINDS: "timeout",
        faults.ENV_REPORT_DIR: str(tmp_path),
    }
    # And without the option they get none of it
    assert LocalRuntime(RuntimeOptions(data_dir=None, console=None))._fault_env() == {}


def test_the_command_line_refuses_a_rate_outside_zero_to_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--fault-rate", "1.5"])
    assert "between 0 and 1" in capsys.readouterr().err


# -- production code cannot switch it on ----------------------------------------------------

# The only modules that may use the injector: the local runtime's command line, the runtime
# that passes the option to its workers, and the worker that installs it.
MAY_USE_FAULTS = {
    "pipeline/local/__main__.py",
    "pipeline/local/runtime.py",
    "pipeline/local/lambda_worker.py",
}
DEPLOYED_OR_SHIPPED = ("pipeline", "lambdas", "orders_api", "operations", "portal", "scripts")


def _source_files() -> list[Path]:
    return [
        path
        for folder in DEPLOYED_OR_SHIPPED
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]


def test_only_the_local_runtime_imports_the_injector() -> None:
    # Given every Python module of the project outside tests
    users = {
        str(path.relative_to(ROOT))
        for path in _source_files()
        if path.suffix == ".py" and "pipeline.local.faults" in _imports(path)
    }
    # Then only the local runtime's own modules import it
    assert users == MAY_USE_FAULTS


def test_nothing_outside_the_local_runtime_reads_the_fault_switch() -> None:
    # Given every file that is deployed or ships (code, template, Zappa settings, scripts)
    names = [faults.ENV_RATE, faults.ENV_SEED, faults.ENV_KINDS, faults.ENV_REPORT_DIR]
    files = [
        *_source_files(),
        ROOT / "template.yaml",
        ROOT / "zappa_settings.json",
        ROOT / "Makefile",
        *sorted((ROOT / "statemachine").glob("*")),
    ]
    # Then the variables that switch the injector on are named only inside pipeline/local
    mentions = [
        str(path.relative_to(ROOT))
        for path in files
        if not path.is_relative_to(ROOT / "pipeline" / "local")
        and any(name in path.read_text(errors="replace") for name in names)
    ]
    assert mentions == []


def _layer_command(artifacts: Path) -> list[str]:
    """The Makefile's rsync of the pipeline into the Lambda layer, aimed at `artifacts`."""
    makefile = (ROOT / "Makefile").read_text()
    line = next(ln for ln in makefile.splitlines() if ln.strip().startswith("rsync "))
    return shlex.split(line.strip().replace('"$(ARTIFACTS_DIR)', f'"{artifacts}'))


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_the_lambda_layer_does_not_carry_the_injector(tmp_path: Path) -> None:
    # When the Makefile's layer step copies the pipeline
    subprocess.run(_layer_command(tmp_path), cwd=ROOT, check=True)
    layer = tmp_path / "python" / "pipeline"
    # Then the layer holds the pipeline without its local runtime, so no injector at all
    assert (layer / "aws.py").is_file()
    assert not (layer / "local").exists()
    assert not [p for p in layer.rglob("*") if p.is_file() and "LOCAL_FAULT" in p.read_text()]


def test_the_portal_package_does_not_carry_the_injector() -> None:
    # Given the globs Zappa removes from the package (resolved as Zappa does: Path.glob)
    settings = json.loads((ROOT / "zappa_settings.json").read_text())
    removed = {
        path
        for stage in settings.values()
        for pattern in stage.get("exclude_glob", [])
        for path in ROOT.glob(pattern)
    }
    injector = ROOT / "pipeline" / "local" / "faults.py"
    # Then the injector's module is inside what it removes, in every stage
    assert any(injector == path or injector.is_relative_to(path) for path in removed)


HANDLER_PROBE = textwrap.dedent(
    """
    import importlib, json, sys, types
    from pathlib import Path

    root = Path(sys.argv[1])
    for code_dir in sorted(p for p in (root / "lambdas").iterdir() if (p / "app.py").is_file()):
        sys.path.insert(0, str(code_dir))  # as Lambda does: the function's folder, then the layer
        importlib.import_module("app")
        sys.modules.pop("app")
        sys.path.pop(0)
    sys.path.insert(0, str(root / "lambdas" / "payment"))
    import app
    context = types.SimpleNamespace(
        function_name="payment", memory_limit_in_mb=128, aws_request_id="r-1",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:payment",
    )
    try:
        app.handler({"OrderId": "o-1"}, context)
    except Exception as exc:  # the stand-in has no such order
        local = sorted(m for m in sys.modules if m.startswith("pipeline.local"))
        print(json.dumps({"error": type(exc).__name__, "local": local}))
    """
)


def test_a_deployed_handler_with_the_switch_in_its_environment_injects_nothing(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    # Given every handler imported as Lambda imports it, with the fault variables set to fail
    # every call (as if someone copied them into a deployed function's configuration)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        **CREDENTIALS,
        **faults.worker_env(1.0, seed="1", kinds=faults.KINDS, report_dir=tmp_path),
        "PYTHONPATH": str(ROOT),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint.url,
        "ORDERS_TABLE_NAME": "Orders",
        "INVENTORY_TABLE_NAME": "Inventory",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
        "POWERTOOLS_SERVICE_NAME": "payment",
    }
    # When the payment handler runs
    out = subprocess.run(
        [sys.executable, "-c", HANDLER_PROBE, str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # Then its read reached DynamoDB untouched (the order is not there), nothing of the local
    # runtime was loaded, and no fault was counted anywhere
    assert result == {"error": "OrderNotFound", "local": []}, out.stderr
    assert [target for target, _ in endpoint.requests] == ["DynamoDB_20120810.GetItem"]
    assert list(tmp_path.iterdir()) == []
