"""A table kept from an earlier run (DynamoDB Local's files under .local/) gets the template's
global indexes on the next start, as CloudFormation gives a stack's table on an update: an
index the template added is created, one it dropped is deleted, and the data stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import aws
from pipeline.local.cfn import load_template
from pipeline.local.emulators import LOCAL_CREDENTIALS, LOCAL_REGION, REPO_ROOT
from pipeline.local.tables import start_tables

pytestmark = pytest.mark.integration

# Orders in the kept table, every one of which must still be there after its indexes change.
ORDERS = 200


def _client(env: dict[str, str]) -> Any:
    return aws.new_client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        region=LOCAL_REGION,
        credentials=LOCAL_CREDENTIALS,
    )


def _orders_indexes(env: dict[str, str]) -> tuple[set[str], int]:
    client, table = _client(env), env["ORDERS_TABLE_NAME"]
    found = client.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
    count = client.scan(TableName=table, Select="COUNT")["Count"]
    return {i["IndexName"] for i in found}, count


def _put_orders(env: dict[str, str]) -> None:
    client, table = _client(env), env["ORDERS_TABLE_NAME"]
    for start in range(0, ORDERS, 25):
        puts = [
            {
                "PutRequest": {
                    "Item": {
                        "OrderId": {"S": f"kept-{n}"},
                        "CustomerName": {"S": f"Ann {n}"},
                        "OrderDate": {"S": "2026-12-07T00:00:00.000Z"},
                        "Status": {"S": "SHIPPED"},
                    }
                }
            }
            for n in range(start, start + 25)
        ]
        client.batch_write_item(RequestItems={table: puts})


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
    orders = load_template(REPO_ROOT / "template.yaml")["Resources"]["OrdersTable"]
    wanted = {i["IndexName"] for i in orders["Properties"]["GlobalSecondaryIndexes"]}
    # Given the Orders table made by an older template, with orders in it
    older = _older_template(tmp_path / "t.yaml")
    emulator, env = start_tables("kept", data_dir=data, template=older)
    try:
        _put_orders(env)
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

    # Then the table has exactly the template's indexes, and its orders are all there
    assert after == wanted
    assert count == ORDERS


class _DroppingSlowly:
    """DescribeTable as DynamoDB answers while an index is being deleted: DELETING twice,
    then gone."""

    def __init__(self) -> None:
        self.describes = 0

    def describe_table(self, TableName: str) -> dict[str, Any]:  # boto3 names it so
        self.describes += 1
        indexes = [{"IndexName": "StatusIndex", "IndexStatus": "ACTIVE"}]
        if self.describes <= 2:
            indexes.append({"IndexName": "OldCustomerIndex", "IndexStatus": "DELETING"})
        key = [{"AttributeName": "OrderId", "KeyType": "HASH"}]
        return {
            "Table": {"TableName": TableName, "KeySchema": key, "GlobalSecondaryIndexes": indexes}
        }


def test_a_dropped_index_is_waited_for_until_it_is_gone() -> None:
    from pipeline.local.provisioner import _without

    client, naps = _DroppingSlowly(), []
    table = _without(client, "orders", {"OldCustomerIndex"}, sleep=naps.append)
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["StatusIndex"]
    assert client.describes == 3 and len(naps) == 2


class _StillDeleting(_DroppingSlowly):
    """A kept table whose old index an earlier start began to delete: UpdateTable must not
    be asked to delete it again."""

    def __init__(self) -> None:
        super().__init__()
        self.updates: list[dict[str, Any]] = []

    def update_table(self, **request: Any) -> None:
        self.updates.append(request)


def test_an_index_already_being_deleted_is_only_waited_for() -> None:
    from pipeline.local.provisioner import Provisioner

    client = _StillDeleting()
    found = client.describe_table(TableName="orders")["Table"]
    wanted = {
        "TableName": "orders",
        "KeySchema": found["KeySchema"],
        "GlobalSecondaryIndexes": [{"IndexName": "StatusIndex"}],
    }
    table = Provisioner._sync_indexes(client, wanted, found)
    assert client.updates == []
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["StatusIndex"]
