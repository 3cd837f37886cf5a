"""template.yaml's security invariants: the key, what each role may do, checkov's skips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.local.cfn import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
ORDERS_ONLY_FUNCTIONS = ("PaymentFunction", "ShippingFunction", "ManualInterventionFunction")
# The only actions any statement of the template may grant on "*": AWS gives them no
# narrower resource (each is explained where it is granted).
STAR_ACTIONS = {
    "cloudwatch:GetMetricStatistics",
    "cloudwatch:DescribeAlarms",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    # Step Functions' log delivery (AWS's own guidance: not scoped to a log group).
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    """The template's resources by logical id, short tags expanded."""
    return load_template(REPO_ROOT / "template.yaml")["Resources"]


def _props(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return resources[logical_id]["Properties"]


def _of_type(resources: dict[str, Any], rtype: str) -> dict[str, Any]:
    return {k: r for k, r in resources.items() if r["Type"] == rtype}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM statement written in the template: inline function and state machine
    policies, and the portal role's."""
    found = []
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        for policy in _listed(props.get("Policies", [])):
            if isinstance(policy, dict) and "Statement" in policy:
                found += [(logical_id, s) for s in policy["Statement"]]
            elif isinstance(policy, dict) and "PolicyDocument" in policy:
                found += [(logical_id, s) for s in policy["PolicyDocument"]["Statement"]]
    return found


# -- The customer-managed key -----------------------------------------------------------------


def test_the_alarm_topic_uses_a_key_cloudwatch_may_use(resources: dict[str, Any]) -> None:
    # Given the alarm topic and the key it is encrypted with
    topic = _props(resources, "AlarmTopic")
    # Then it is the stack's own key, never the AWS-managed alias/aws/sns (alarms cannot
    # publish to a topic under that key: its policy cannot name cloudwatch.amazonaws.com)
    assert topic["KmsMasterKeyId"] == KEY
    assert "alias/aws/sns" not in json.dumps(topic)
    # And that key's policy lets CloudWatch make and read the topic's data keys
    statements = _props(resources, "EncryptionKey")["KeyPolicy"]["Statement"]
    cloudwatch = [
        s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(cloudwatch) == 1
    assert set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert cloudwatch[0]["Effect"] == "Allow"


def test_the_key_rotates_and_outlives_the_stack_like_the_tables(resources: dict[str, Any]) -> None:
    key = resources["EncryptionKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    # A retained table is unreadable once its key is deleted, so the key is retained too
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"


def test_the_only_wildcard_principal_is_dynamodb_for_this_account(
    resources: dict[str, Any],
) -> None:
    # Given the key policy's statements that name any principal
    statements = _props(resources, "EncryptionKey")["KeyPolicy"]["Statement"]
    wildcard = [s for s in statements if s["Principal"] == {"AWS": "*"}]
    # Then there is one, and it only works through DynamoDB, for this account's principals
    (only,) = wildcard
    assert only["Condition"]["StringEquals"] == {
        "kms:CallerAccount": {"Ref": "AWS::AccountId"},
        "kms:ViaService": {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"},
    }


def test_every_table_and_log_group_is_encrypted_with_the_key(resources: dict[str, Any]) -> None:
    tables = _of_type(resources, "AWS::DynamoDB::Table")
    groups = _of_type(resources, "AWS::Logs::LogGroup")
    assert len(tables) >= 2 and len(groups) >= 7
    for logical_id in tables:
        sse = _props(resources, logical_id)["SSESpecification"]
        assert sse == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": KEY}, logical_id
    for logical_id in groups:
        assert _props(resources, logical_id)["KmsKeyId"] == KEY, logical_id


# -- Function policies ------------------------------------------------------------------------


@pytest.mark.parametrize("function", ORDERS_ONLY_FUNCTIONS)
def test_tasks_that_update_one_order_may_only_read_and_update_orders(
    resources: dict[str, Any], function: str
) -> None:
    # Given a workflow task that reads an order and writes its next status
    policies = _props(resources, function)["Policies"]
    # Then it has no DynamoDBCrudPolicy (Scan, Delete, BatchWrite) on the Orders table
    crud = [p for p in policies if isinstance(p, dict) and "DynamoDBCrudPolicy" in p]
    assert [p for p in crud if p["DynamoDBCrudPolicy"]["TableName"] == {"Ref": "OrdersTable"}] == []
    # And its Orders statement is GetItem and UpdateItem on that table alone
    on_orders = [
        s
        for p in policies
        if isinstance(p, dict) and "Statement" in p
        for s in p["Statement"]
        if s["Resource"] == {"Fn::GetAtt": ["OrdersTable", "Arn"]}
    ]
    assert len(on_orders) == 1
    assert set(on_orders[0]["Action"]) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}


def test_no_statement_grants_a_whole_service_or_star_beyond_the_unscopable(
    resources: dict[str, Any],
) -> None:
    # Given every IAM statement the template writes itself
    statements = _statements(resources)
    assert len(statements) >= 10
    for where, statement in statements:
        actions = _listed(statement["Action"])
        # Then none grants every action of a service
        assert not [a for a in actions if a == "*" or a.endswith(":*")], where
        # And "*" as the resource only for actions AWS cannot scope
        if "*" in _listed(statement["Resource"]):
            assert set(actions) <= STAR_ACTIONS, (where, set(actions) - STAR_ACTIONS)


# -- The portal's role ------------------------------------------------------------------------


def _portal_statements(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (policy,) = _props(resources, "PortalRole")["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def test_the_portal_role_names_the_tables_queues_and_executions_it_uses(
    resources: dict[str, Any],
) -> None:
    statements = _portal_statements(resources)
    # The two tables and the Orders table's indexes, nothing else (no wildcard)
    assert statements["Tables"]["Resource"] == [
        {"Fn::GetAtt": ["OrdersTable", "Arn"]},
        {"Fn::Sub": "${OrdersTable.Arn}/index/*"},
        {"Fn::GetAtt": ["InventoryTable", "Arn"]},
    ]
    assert "dynamodb:BatchWriteItem" not in statements["Tables"]["Action"]
    # The ledger only read and noted (a sweeper's refund), the stream only read (a replay)
    assert statements["PaymentLedger"]["Resource"] == {"Fn::GetAtt": ["PaymentLedgerTable", "Arn"]}
    assert set(_listed(statements["PaymentLedger"]["Action"])) == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    }
    assert statements["OrdersStreamReads"]["Resource"] == {"Fn::Sub": "${OrdersTable.Arn}/stream/*"}
    # Each queue with what the portal does on it
    assert statements["OrdersQueue"]["Resource"] == {"Fn::GetAtt": ["OrdersQueue", "Arn"]}
    assert set(_listed(statements["OrdersQueue"]["Action"])) == {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
    }
    dead = statements["DeadLetterQueues"]
    assert [r["Fn::GetAtt"][0] for r in dead["Resource"]] == [
        "OrdersDeadLetterQueue",
        "StreamFailureQueue",
    ]
    assert set(_listed(dead["Action"])) == {
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:PurgeQueue",
    }
    # The workflow's executions, described only (the portal never starts one)
    executions = statements["WorkflowExecutions"]
    assert executions["Action"] == "states:DescribeExecution"
    assert executions["Resource"]["Fn::Sub"].endswith(":execution:${OrderWorkflow.Name}:*")
    # Its own log group and function, by the name the errors alarm watches
    assert "${PortalFunctionName}" in statements["OwnLogs"]["Resource"]["Fn::Sub"]
    assert all(
        "${PortalFunctionName}" in r["Fn::Sub"]
        for r in statements["InvokedByApiGateway"]["Resource"]
    )


def test_the_portal_role_is_assumed_by_what_zappa_wires_to_it(resources: dict[str, Any]) -> None:
    (trust,) = _props(resources, "PortalRole")["AssumeRolePolicyDocument"]["Statement"]
    assert set(trust["Principal"]["Service"]) == {
        "lambda.amazonaws.com",
        "apigateway.amazonaws.com",
        "events.amazonaws.com",
    }
    assert "AWS" not in trust["Principal"]


def test_the_portal_role_is_an_output_and_zappa_uses_it_instead_of_its_own() -> None:
    template = load_template(REPO_ROOT / "template.yaml")
    assert template["Outputs"]["PortalRoleArn"]["Value"] == {"Fn::GetAtt": ["PortalRole", "Arn"]}
    stages = json.loads((REPO_ROOT / "zappa_settings.json").read_text())
    # prod extends dev: neither may let Zappa make (or widen) a role
    assert stages["dev"]["manage_roles"] is False
    assert stages["prod"].get("manage_roles", False) is False
    # And no stage bakes in a region-wide host pattern
    for stage in stages.values():
        hosts = stage.get("environment_variables", {}).get("DJANGO_ALLOWED_HOSTS", "")
        assert ".execute-api." not in hosts and "*" not in hosts


# -- Alarms and checkov -----------------------------------------------------------------------


def test_the_limiter_being_unavailable_alarms(resources: dict[str, Any]) -> None:
    # Given the alarm on the portal's RateLimiterUnavailable (emitted without dimensions)
    alarm = _props(resources, "RateLimiterUnavailableAlarm")
    # Then one occurrence in five minutes notifies the topic
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "OrderProcessing",
        "RateLimiterUnavailable",
    )
    assert "Dimensions" not in alarm
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 300, 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_every_checkov_skip_says_why(resources: dict[str, Any]) -> None:
    skipped = {}
    for logical_id, resource in resources.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            # Then each skip names its check and gives a reason of some substance
            assert skip["id"].startswith("CKV"), logical_id
            assert len(skip.get("comment", "")) >= 40, (logical_id, skip["id"])
            skipped.setdefault(skip["id"], set()).add(logical_id)
    # And only these checks are skipped (a new skip is a decision: add it here and in
    # docs/security.md); encryption of tables, logs and the topic is never skipped
    assert set(skipped) == {
        "CKV_AWS_27",
        "CKV_AWS_33",
        "CKV_AWS_111",
        "CKV_AWS_115",
        "CKV_AWS_116",
        "CKV_AWS_117",
        "CKV_AWS_173",
    }
    assert skipped["CKV_AWS_111"] == {"PortalRole"}
    assert skipped["CKV_AWS_33"] == {"EncryptionKey"}
