"""A table kept from an earlier run (DynamoDB Local's files under .local/) gets the template's
global indexes on the next start, as CloudFormation gives a stack's table on an update: an
index the template added is created, one it dropped is deleted, and the data stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from pipeline.local.cfn import load_template
from pipeline.local.emulators import LOCAL_CREDENTIALS, LOCAL_REGION, REPO_ROOT
from pipeline.local.tables import start_tables

pytestmark = pytest.mark.integration


def _orders_indexes(env: dict[str, str]) -> tuple[set[str], int]:
    client = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    table = client.describe_table(TableName=env["ORDERS_TABLE_NAME"])["Table"]
    count = client.scan(TableName=env["ORDERS_TABLE_NAME"], Select="COUNT")["Count"]
    return {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}, count


def _older_template(path: Path) -> Path:
    """template.yaml's tables as an earlier version had them: an exact-name index the current
    one does not have, and without the ClientIndex, which it does. Only the tables and keys
    are copied: the functions' code is not beside the copy."""
    template: dict[str, Any] = load_template(REPO_ROOT / "template.yaml")
    template["Resources"] = {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] in ("AWS::DynamoDB::Table", "AWS::KMS::Key")
    }
    orders = template["Resources"]["OrdersTable"]["Properties"]
    orders["AttributeDefinitions"] = [
        *(a for a in orders["AttributeDefinitions"] if a["AttributeName"] != "ClientId"),
        {"AttributeName": "CustomerName", "AttributeType": "S"},
    ]
    indexes = [i for i in orders["GlobalSecondaryIndexes"] if i["IndexName"] != "ClientIndex"]
    indexes.append(
        {
            "IndexName": "OldCustomerIndex",
            "KeySchema": [
                {"AttributeName": "CustomerName", "KeyType": "HASH"},
                {"AttributeName": "OrderDate", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    )
    orders["GlobalSecondaryIndexes"] = indexes
    path.write_text(yaml.safe_dump(template))
    return path


def test_a_kept_table_gets_the_templates_indexes_and_keeps_its_items(tmp_path: Path) -> None:
    data = tmp_path / "data"
    wanted = {
        i["IndexName"]
        for i in load_template(REPO_ROOT / "template.yaml")["Resources"]["OrdersTable"][
            "Properties"
        ]["GlobalSecondaryIndexes"]
    }
    # Given the Orders table made by an older template, with an order in it
    emulator, env = start_tables(
        "kept", data_dir=data, template=_older_template(tmp_path / "t.yaml")
    )
    try:
        boto3.client(
            "dynamodb",
            endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
            region_name=LOCAL_REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        ).put_item(
            TableName=env["ORDERS_TABLE_NAME"],
            Item={
                "OrderId": {"S": "kept-1"},
                "CustomerName": {"S": "Ann"},
                "OrderDate": {"S": "2026-12-07T00:00:00.000Z"},
                "Status": {"S": "SHIPPED"},
            },
        )
        before, _ = _orders_indexes(env)
    finally:
        emulator.stop()
    assert "OldCustomerIndex" in before and "ClientIndex" not in before

    # When the runtime starts again on the same files with today's template
    emulator, env = start_tables("kept", data_dir=data)
    try:
        after, count = _orders_indexes(env)
    finally:
        emulator.stop()

    # Then the table has exactly the template's indexes, and its order is still there
    assert after == wanted
    assert count == 1
