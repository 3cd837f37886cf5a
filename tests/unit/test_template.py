"""template.yaml's invariants: the settings the pipeline's guarantees rest on, read as written."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline import errors
from pipeline.config import STACK_OUTPUT_ENV
from pipeline.local.cfn import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """template.yaml, short tags expanded (!Ref -> {"Ref": ...})."""
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    """The template's resources by logical id."""
    return template["Resources"]


@pytest.fixture(scope="module")
def asl_text(resources: dict[str, Any]) -> str:
    """The state machine definition file, placeholders still in it."""
    return (REPO_ROOT / resources["OrderWorkflow"]["Properties"]["DefinitionUri"]).read_text()


@pytest.fixture(scope="module")
def states(asl_text: str) -> dict[str, Any]:
    """The definition's states by name."""
    return json.loads(asl_text)["States"]


def _of_type(resources: dict[str, Any], rtype: str) -> dict[str, Any]:
    return {k: r for k, r in resources.items() if r["Type"] == rtype}


def _props(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return resources[logical_id]["Properties"]


def _event(resources: dict[str, Any], function: str, kind: str) -> dict[str, Any]:
    events = _props(resources, function)["Events"]
    (found,) = [e["Properties"] for e in events.values() if e["Type"] == kind]
    return found


def _retriers(state: dict[str, Any], error: str) -> list[dict[str, Any]]:
    return [r for r in state.get("Retry", []) if error in r["ErrorEquals"]]


def _attempts_for(state: dict[str, Any], error: str) -> int:
    """How often Step Functions retries `error`: the first retrier that matches it decides
    (States.ALL matches every error, States.TaskFailed every error but States.Timeout)."""
    for retrier in state.get("Retry", []):
        names = retrier["ErrorEquals"]
        catch_all = "States.ALL" in names or (
            "States.TaskFailed" in names and error != "States.Timeout"
        )
        if error in names or catch_all:
            return int(retrier.get("MaxAttempts", 3))
    return 0


# -- Functions ----------------------------------------------------------------------------------


def test_every_function_runs_python_312_with_active_tracing(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # Given the template's global function settings and its functions
    globals_ = template["Globals"]["Function"]
    functions = _of_type(resources, "AWS::Serverless::Function")
    # Then every function runs python3.12 with X-Ray tracing, none overriding either
    assert len(functions) == 8
    assert globals_["Runtime"] == "python3.12"
    assert globals_["Tracing"] == "Active"
    for logical_id, function in functions.items():
        assert function["Properties"].get("Runtime", "python3.12") == "python3.12", logical_id
        assert function["Properties"].get("Tracing", "Active") == "Active", logical_id


def test_every_function_has_its_code_under_lambdas(resources: dict[str, Any]) -> None:
    # Given every function of the template
    for logical_id, function in _of_type(resources, "AWS::Serverless::Function").items():
        code_uri = function["Properties"]["CodeUri"]
        # Then its code is a directory under lambdas/ holding the module its Handler names
        assert code_uri.startswith("lambdas/"), logical_id
        module = function["Properties"]["Handler"].rsplit(".", 1)[0]
        assert (REPO_ROOT / code_uri / f"{module}.py").is_file(), logical_id


# -- Tables -------------------------------------------------------------------------------------


def test_orders_table_keys_indexes_stream_billing_and_protection(
    resources: dict[str, Any],
) -> None:
    # Given the Orders table
    props = _props(resources, "OrdersTable")
    # Then it is keyed by OrderId, with status, name-prefix and client indexes (no
    # exact-name index: the prefix index finds a customer, and each index costs every write)
    assert props["KeySchema"] == [{"AttributeName": "OrderId", "KeyType": "HASH"}]
    indexes = {i["IndexName"]: i["KeySchema"] for i in props["GlobalSecondaryIndexes"]}
    assert indexes == {
        "StatusIndex": [
            {"AttributeName": "Status", "KeyType": "HASH"},
            {"AttributeName": "OrderDate", "KeyType": "RANGE"},
        ],
        "CustomerPrefixIndex": [
            {"AttributeName": "CustomerPrefix", "KeyType": "HASH"},
            {"AttributeName": "OrderDate", "KeyType": "RANGE"},
        ],
        "ClientIndex": [
            {"AttributeName": "ClientId", "KeyType": "HASH"},
            {"AttributeName": "OrderDate", "KeyType": "RANGE"},
        ],
    }
    declared = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert declared == {
        "OrderId": "S",
        "Status": "S",
        "OrderDate": "S",
        "CustomerPrefix": "S",
        "ClientId": "S",
    }
    # And its stream carries both images, billing is on demand, encryption and PITR are on
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::GetAtt": ["EncryptionKey", "Arn"]},
    }
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert resources["OrdersTable"]["DeletionPolicy"] == "Retain"


def test_inventory_table_is_keyed_by_item_name(resources: dict[str, Any]) -> None:
    # Given the Inventory table
    props = _props(resources, "InventoryTable")
    # Then ItemName is its only key, and it is protected like the Orders table
    assert props["KeySchema"] == [{"AttributeName": "ItemName", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "ItemName", "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


# -- Queues -------------------------------------------------------------------------------------


def test_orders_queue_redrives_to_the_dlq_after_three_receives(resources: dict[str, Any]) -> None:
    # Given the Orders queue and its dead-letter queue
    queue, dlq = _props(resources, "OrdersQueue"), _props(resources, "OrdersDeadLetterQueue")
    # Then a message moves to the DLQ after 3 receives
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["OrdersDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 3,
    }
    # And the DLQ keeps messages longer than the queue, so none expires before it is replayed
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]


def test_orders_queue_visibility_is_six_times_the_consumers_timeout(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # Given the consumer of the Orders queue and its timeout (its own, else the global one)
    consumer = _props(resources, "SQSProcessorFunction")
    assert _event(resources, "SQSProcessorFunction", "SQS")["Queue"] == {
        "Fn::GetAtt": ["OrdersQueue", "Arn"]
    }
    timeout = consumer.get("Timeout", template["Globals"]["Function"]["Timeout"])
    # Then a message stays hidden for at least six function timeouts (AWS's advice)
    assert _props(resources, "OrdersQueue")["VisibilityTimeout"] >= 6 * timeout


# -- Event source mappings ----------------------------------------------------------------------


def test_stream_event_filters_bisects_retries_boundedly_and_reports_failures(
    resources: dict[str, Any],
) -> None:
    # Given the Orders stream event of OrderProcessing
    event = _event(resources, "OrderProcessingFunction", "DynamoDB")
    # Then it reads the Orders stream through filters
    assert event["Stream"] == {"Fn::GetAtt": ["OrdersTable", "StreamArn"]}
    patterns = [json.loads(f["Pattern"]) for f in event["FilterCriteria"]["Filters"]]
    assert [p["eventName"] for p in patterns] == [["INSERT"], ["MODIFY"]]
    # And a failing batch is split, retried a bounded number of times, partially reported
    assert event["BisectBatchOnFunctionError"] is True
    assert 0 <= event["MaximumRetryAttempts"] <= 10
    assert 60 <= event["MaximumRecordAgeInSeconds"] <= 86400
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # And what is given up on is described to the stream failure queue
    assert event["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["StreamFailureQueue", "Arn"]},
    }


def test_queue_event_reports_batch_item_failures(resources: dict[str, Any]) -> None:
    # Given the Orders queue event of SQSProcessor
    event = _event(resources, "SQSProcessorFunction", "SQS")
    # Then one failed message does not send its whole batch back to the queue
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= event["BatchSize"] <= 10


# -- The state machine --------------------------------------------------------------------------


def test_definition_placeholders_and_substitutions_match(
    resources: dict[str, Any], asl_text: str
) -> None:
    # Given the state machine's definition file and its substitutions
    props = _props(resources, "OrderWorkflow")
    assert (REPO_ROOT / props["DefinitionUri"]).is_file()
    # Then every placeholder has a substitution and every substitution is used
    assert set(PLACEHOLDER.findall(asl_text)) == set(props["DefinitionSubstitutions"])
    assert props["Type"] == "STANDARD"


def test_payment_retries_transient_errors_only(states: dict[str, Any]) -> None:
    # Given the payment task
    payment = states["ProcessPayment"]
    # Then an unavailable gateway is retried 3 times with a growing interval
    (retrier,) = _retriers(payment, "PaymentGatewayUnavailable")
    assert retrier["MaxAttempts"] == 3
    assert retrier["BackoffRate"] > 1
    assert retrier["IntervalSeconds"] >= 1
    # And nothing retries a decline, by name or through a catch-all (a retrier with no
    # attempts stands before the catch-all, which is there for timeouts and lost answers)
    assert _attempts_for(payment, "PaymentDeclined") == 0
    assert _attempts_for(payment, "InvalidTransition") == 0
    # And a timeout or an SDK error after the charge is retried (the gateway is idempotent)
    assert _attempts_for(payment, "States.Timeout") >= 1
    assert _attempts_for(payment, "ClientError") >= 1


def test_shipping_is_retried_twice(states: dict[str, Any]) -> None:
    # Given the shipping task
    (retrier,) = _retriers(states["ShipOrder"], "CarrierUnavailable")
    # Then an unavailable carrier is retried twice, with backoff
    assert retrier["MaxAttempts"] == 2
    assert retrier["BackoffRate"] > 1
    # And an undeliverable address is final, while a passing SDK error or timeout in the task
    # is retried (a paid order must not go to staff for a throttled read)
    assert _attempts_for(states["ShipOrder"], "AddressRejected") == 0
    assert _attempts_for(states["ShipOrder"], "InvalidTransition") == 0
    assert _attempts_for(states["ShipOrder"], "ProvisionedThroughputExceededException") >= 1
    assert _attempts_for(states["ShipOrder"], "States.Timeout") >= 1


def test_failures_are_caught_into_compensation_and_manual_intervention(
    states: dict[str, Any],
) -> None:
    # Given the payment and shipping tasks
    # Then any payment failure releases the stock; any shipping failure flags the order
    # (a step of a superseded attempt excepted: it ends the run and touches nothing)
    superseded = {
        "ErrorEquals": ["SupersededAttempt"],
        "ResultPath": "$.Failure",
        "Next": "Superseded",
    }
    assert states["ProcessPayment"]["Catch"] == [
        superseded,
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.Failure", "Next": "ReleaseStock"},
    ]
    assert states["ShipOrder"]["Catch"] == [
        superseded,
        {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.Failure",
            "Next": "FlagForManualIntervention",
        },
    ]
    assert states["Superseded"]["Type"] == "Succeed"
    assert states["ProcessPayment"]["Next"] == "ShipOrder"
    # And after a failure the order's actual status routes it: a payment that landed goes on
    # to shipping, an order that shipped after all is not flagged
    assert states["ReleaseStock"]["Next"] == "RouteAfterPaymentFailure"
    after_payment = states["RouteAfterPaymentFailure"]
    routes = {c["StringEquals"]: c["Next"] for c in after_payment["Choices"]}
    assert {c["Variable"] for c in after_payment["Choices"]} == {"$.Compensation.Status"}
    assert routes["PAID"] == "ShipOrder"
    assert routes["SHIPPED"] == "OrderShipped"
    assert routes["SUPERSEDED"] == "Superseded"
    assert after_payment["Default"] == "PaymentFailed"
    assert states["FlagForManualIntervention"]["Next"] == "RouteAfterShippingFailure"
    after_shipping = states["RouteAfterShippingFailure"]
    assert [(c["Variable"], c["StringEquals"], c["Next"]) for c in after_shipping["Choices"]] == [
        ("$.Review.Status", "SUPERSEDED", "Superseded"),
        ("$.Review.Status", "SHIPPED", "OrderShipped"),
    ]
    assert after_shipping["Default"] == "ManualIntervention"


def test_error_names_of_the_definition_are_pipeline_exceptions(states: dict[str, Any]) -> None:
    # Given every error name a Retry or Catch of the definition matches
    names = {
        name
        for state in states.values()
        for rule in [*state.get("Retry", []), *state.get("Catch", [])]
        for name in rule["ErrorEquals"]
    }
    custom = {n for n in names if not n.startswith(("States.", "Lambda."))}
    assert custom >= {"PaymentGatewayUnavailable", "CarrierUnavailable"}
    # Then each is an exception class of pipeline/errors.py, whose names Lambda reports
    exceptions = {
        name
        for name, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    }
    assert custom <= exceptions, custom - exceptions


# -- Observability and outputs ------------------------------------------------------------------


def test_every_log_group_has_a_retention(resources: dict[str, Any]) -> None:
    # Given every log group of the template
    groups = _of_type(resources, "AWS::Logs::LogGroup")
    assert len(groups) == 9
    # Then each expires its logs
    for logical_id, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical_id


def test_function_errors_alarm_is_five_in_five_minutes_over_every_function(
    resources: dict[str, Any],
) -> None:
    # Given the function errors alarm
    props = _props(resources, "FunctionErrorsAlarm")
    # Then it fires at 5 errors summed over 300 s
    assert props["Threshold"] == 5
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert props["EvaluationPeriods"] == 1
    stats = [m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m]
    assert {(s["Metric"]["MetricName"], s["Period"], s["Stat"]) for s in stats} == {
        ("Errors", 300, "Sum")
    }
    # And it watches every function of the template, and the portal
    watched = {s["Metric"]["Dimensions"][0]["Value"].get("Ref") for s in stats}
    functions = set(_of_type(resources, "AWS::Serverless::Function"))
    assert watched == functions | {"PortalFunctionName"}
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_dlq_alarm_fires_on_one_message(resources: dict[str, Any]) -> None:
    # Given the dead-letter queue alarm
    props = _props(resources, "DeadLetterQueueAlarm")
    # Then one visible message in the DLQ is enough
    assert props["Namespace"] == "AWS/SQS"
    assert props["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert props["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["OrdersDeadLetterQueue", "QueueName"]}}
    ]
    assert props["Threshold"] == 1
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_workflow_failures_alarm_watches_the_state_machine(resources: dict[str, Any]) -> None:
    # Given the workflow failures alarm
    props = _props(resources, "WorkflowFailuresAlarm")
    stats = [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]
    # Then it counts the state machine's failed executions (and timed out, aborted) from one
    assert {m["MetricName"] for m in stats} >= {"ExecutionsFailed"}
    for metric in stats:
        assert metric["Namespace"] == "AWS/States"
        assert metric["Dimensions"] == [
            {"Name": "StateMachineArn", "Value": {"Ref": "OrderWorkflow"}}
        ]
    assert props["Threshold"] == 1
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_setting_the_portal_reads_is_a_stack_output(template: dict[str, Any]) -> None:
    # Given the outputs the portal and scripts read into their environment
    outputs = template["Outputs"]
    # Then the template declares each of them
    missing = set(STACK_OUTPUT_ENV) - set(outputs)
    assert not missing, missing
