"""A template feature the local runtime cannot honour stops it at start-up, naming the feature."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from pipeline.local.cfn import TemplateError, load_template, sam_to_cloudformation
from pipeline.local.emulators import (
    LOCAL_ACCOUNT_ID,
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    REPO_ROOT,
    dynamodb_local,
    free_port,
    moto_server,
    port_open,
)
from pipeline.local.provisioner import Provisioner, ProvisionResult
from pipeline.local.runtime import DEFAULT_PORTS
from pipeline.local.stepfunctions.server import StepFunctionsServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Change = Callable[[dict[str, Any], dict[str, Any]], None]  # (template, definition)


def _stream_event(template: dict[str, Any]) -> dict[str, Any]:
    function = template["Resources"]["OrderProcessingFunction"]["Properties"]
    return function["Events"]["OrdersStream"]["Properties"]


def _add_bucket(template: dict[str, Any], definition: dict[str, Any]) -> None:
    template["Resources"]["ArchiveBucket"] = {"Type": "AWS::S3::Bucket"}


def _parallelization(template: dict[str, Any], definition: dict[str, Any]) -> None:
    _stream_event(template)["ParallelizationFactor"] = 11  # AWS allows 1 to 10


def _tumbling_window(template: dict[str, Any], definition: dict[str, Any]) -> None:
    _stream_event(template)["TumblingWindowInSeconds"] = 60


def _wildcard_filter(template: dict[str, Any], definition: dict[str, Any]) -> None:
    pattern = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"Status": {"S": [
        {"wildcard": "PEND*"}]}}}}  # fmt: skip
    _stream_event(template)["FilterCriteria"]["Filters"][0]["Pattern"] = json.dumps(pattern)


def _map_state(template: dict[str, Any], definition: dict[str, Any]) -> None:
    states = definition["States"]
    states["ShipEachLine"] = {
        "Type": "Map",
        "ItemsPath": "$.Items",
        "ItemProcessor": {"StartAt": "Line", "States": {"Line": {"Type": "Pass", "End": True}}},
        "ResultPath": None,
        "Next": "ShipOrder",
    }
    states["ProcessPayment"]["Next"] = "ShipEachLine"


def _node_runtime(template: dict[str, Any], definition: dict[str, Any]) -> None:
    template["Resources"]["ShippingFunction"]["Properties"]["Runtime"] = "nodejs20.x"


def _kinesis_on_table(template: dict[str, Any], definition: dict[str, Any]) -> None:
    template["Resources"]["OrdersTable"]["Properties"]["KinesisStreamSpecification"] = {
        "StreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
    }


def _reserve(value: Any) -> Change:
    def change(template: dict[str, Any], definition: dict[str, Any]) -> None:
        properties = template["Resources"]["ShippingFunction"]["Properties"]
        properties["ReservedConcurrentExecutions"] = value

    return change


# (change, words the refusal must contain: the feature, then the resource)
CASES: dict[str, tuple[Change, list[str]]] = {
    "s3-bucket": (_add_bucket, ["AWS::S3::Bucket", "ArchiveBucket"]),
    "parallelization-factor": (
        _parallelization,
        ["ParallelizationFactor 11", "OrderProcessingFunctionOrdersStream"],
    ),
    "tumbling-window": (
        _tumbling_window,
        ["TumblingWindowInSeconds", "OrderProcessingFunctionOrdersStream"],
    ),
    "filter-operator": (_wildcard_filter, ["wildcard", "OrderProcessingFunctionOrdersStream"]),
    "map-state": (_map_state, ["Map", "ShipEachLine", "OrderWorkflow"]),
    "node-runtime": (_node_runtime, ["nodejs20.x", "ShippingFunction"]),
    "kinesis-on-table": (_kinesis_on_table, ["KinesisStreamSpecification", "OrdersTable"]),
    "no-concurrency": (_reserve(0), ["ReservedConcurrentExecutions 0", "ShippingFunction"]),
    "negative-concurrency": (_reserve(-2), ["ReservedConcurrentExecutions -2", "ShippingFunction"]),
    "concurrency-not-a-number": (
        _reserve("many"),
        ["ReservedConcurrentExecutions 'many'", "ShippingFunction"],
    ),
}


def _modified_template(tmp_path: Path, change: Change) -> Path:
    """A copy of template.yaml and its definition file in tmp_path, with `change` applied."""
    template = load_template(REPO_ROOT / "template.yaml")
    definition_uri = template["Resources"]["OrderWorkflow"]["Properties"]["DefinitionUri"]
    shutil.copytree(REPO_ROOT / "statemachine", tmp_path / "statemachine")
    definition = json.loads((tmp_path / definition_uri).read_text())
    # The functions' code stays where it is: only the template and definition are copies.
    for resource in template["Resources"].values():
        code_uri = resource.get("Properties", {}).get("CodeUri")
        if isinstance(code_uri, str):
            resource["Properties"]["CodeUri"] = str(REPO_ROOT / code_uri)
    change(template, definition)
    (tmp_path / definition_uri).write_text(json.dumps(definition, indent=2))
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def _processes_mentioning(needle: str) -> list[str]:
    """Command lines of this machine's processes that contain `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _translate(path: Path, stack_name: str) -> tuple[dict[str, Any], dict[str, Path]]:
    return sam_to_cloudformation(
        load_template(path),
        root=path.parent,
        region=LOCAL_REGION,
        account_id=LOCAL_ACCOUNT_ID,
        stack_name=stack_name,
    )


# -- Every case, through the provisioner the runtime uses, on emulators shared by the module -------


def _client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, Any]]:
    """Clients of DynamoDB Local, moto and a local Step Functions server, as the runtime has."""
    ddb, moto = dynamodb_local(free_port(), None), moto_server(free_port())
    sfn = StepFunctionsServer(invoke=lambda *_: None, port=0, region=LOCAL_REGION)
    try:
        ddb.start()
        moto.start()
        sfn.start()
        yield {
            "dynamodb": _client("dynamodb", ddb.url),
            "sqs": _client("sqs", moto.url),
            "logs": _client("logs", moto.url),
            "sns": _client("sns", moto.url),
            "cloudwatch": _client("cloudwatch", moto.url),
            "stepfunctions": _client("stepfunctions", sfn.endpoint_url),
        }
    finally:
        sfn.stop()
        moto.stop()
        ddb.stop()


def _provision(
    path: Path, clients: dict[str, Any], stack_name: str, parameters: dict[str, str] | None = None
) -> ProvisionResult:
    cfn, code_dirs = _translate(path, stack_name)
    return Provisioner(
        cfn,
        code_dirs,
        stack_name=stack_name,
        region=LOCAL_REGION,
        account_id=LOCAL_ACCOUNT_ID,
        parameters=parameters or {},
        clients=clients,
    ).provision()


def test_an_unchanged_copy_provisions(tmp_path: Path, clients: dict[str, Any]) -> None:
    # Given a copy of the template made the way each case below makes its own, unchanged
    path = _modified_template(tmp_path, lambda template, definition: None)
    # When it is provisioned, then nothing is refused: a refusal below is the change's doing
    _provision(path, clients, "unchanged", {"PaymentSuccessRate": "1.0"})


def test_a_parameter_outside_its_allowed_pattern_is_refused(
    tmp_path: Path, clients: dict[str, Any]
) -> None:
    # Given the template and a payment success rate CloudFormation would refuse
    path = _modified_template(tmp_path, lambda template, definition: None)
    # When it is provisioned with it
    with pytest.raises(TemplateError) as refused:
        _provision(path, clients, "bad-parameter", {"PaymentSuccessRate": "1.5"})
    # Then the parameter and its AllowedPattern are named
    assert "PaymentSuccessRate=1.5" in str(refused.value)
    assert "does not match" in str(refused.value)


def test_a_reserved_concurrency_is_kept_apart_from_none(
    tmp_path: Path, clients: dict[str, Any]
) -> None:
    # Given the template with 3 reserved for the shipping function, and none for the others
    path = _modified_template(tmp_path, _reserve(3))
    # When it is provisioned
    result = _provision(path, clients, "reserved", {"PaymentSuccessRate": "1.0"})
    # Then the shipping function carries its 3 and the others say nothing was reserved
    reserved = {spec.logical_id: spec.reserved_concurrency for spec in result.functions}
    assert reserved.pop("ShippingFunction") == 3
    assert set(reserved.values()) == {None}


@pytest.mark.parametrize("case", list(CASES))
def test_the_provisioner_refuses_naming_the_feature_and_the_resource(
    case: str, tmp_path: Path, clients: dict[str, Any]
) -> None:
    # Given template.yaml with one feature the local runtime cannot honour
    change, words = CASES[case]
    path = _modified_template(tmp_path, change)
    # When the runtime's provisioner creates its resources
    with pytest.raises(TemplateError) as refused:
        _provision(path, clients, case)
    # Then it stops with a message naming the feature and the resource
    for word in words:
        assert word in str(refused.value), refused.value


# -- The command line: exit code 2, nothing left running --------------------------------------


@pytest.mark.parametrize("case", ["s3-bucket", "map-state"])
def test_the_command_refuses_and_leaves_nothing_running(case: str, tmp_path: Path) -> None:
    # Given template.yaml with an unsupported resource type, or a Map state, the last thing
    # provisioned while every emulator is up
    change, words = CASES[case]
    path = _modified_template(tmp_path, change)
    ports = {name: free_port() for name in DEFAULT_PORTS}
    env_file = tmp_path / "pipeline.env"
    command = [
        sys.executable, "-m", "pipeline.local",
        "--template", str(path), "--in-memory", "--quiet", "--env-file", str(env_file),
        *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))),
    ]  # fmt: skip
    # When `python -m pipeline.local` is started on it
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    # Then it refuses with exit code 2 and one message naming the feature and the resource
    assert result.returncode == 2, result.stdout + result.stderr
    (message,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for word in words:
        assert word in message, message
    assert "READY" not in result.stdout
    # And it wrote no env file for clients, and left no emulator running
    assert not env_file.exists()
    for name, port in ports.items():
        assert not port_open(port), f"{name} still listens on {port}"
    assert _processes_mentioning(f"-port {ports['dynamodb']}") == []
    assert _processes_mentioning(f"-p {ports['moto']}") == []
