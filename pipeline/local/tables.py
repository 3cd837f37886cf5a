"""DynamoDB Local with just template.yaml's tables: for tests and benchmarks of the data layer."""

from __future__ import annotations

from pathlib import Path

from pipeline import aws
from pipeline.local.cfn import load_template, sam_to_cloudformation
from pipeline.local.emulators import (
    LOCAL_ACCOUNT_ID,
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    REPO_ROOT,
    Emulator,
    dynamodb_local,
    free_port,
)
from pipeline.local.provisioner import Provisioner


def start_tables(
    stack_name: str, *, data_dir: Path | None = None, template: Path | None = None
) -> tuple[Emulator, dict[str, str]]:
    """Start DynamoDB Local on a free port and create the template's tables in it.

    Returns the running emulator (stop it when done) and the environment a client needs:
    region, credentials, AWS_ENDPOINT_URL_DYNAMODB and the tables' names (*_TABLE_NAME).
    """
    emulator = dynamodb_local(free_port(), data_dir)
    emulator.start()
    try:
        client = aws.new_client(
            "dynamodb",
            endpoint_url=emulator.url,
            region=LOCAL_REGION,
            credentials=LOCAL_CREDENTIALS,
            config=aws.SDK_DEFAULT_CONFIG,
        )
        template_path = template or REPO_ROOT / "template.yaml"
        cfn, code_dirs = sam_to_cloudformation(
            load_template(template_path),
            root=template_path.parent,
            region=LOCAL_REGION,
            account_id=LOCAL_ACCOUNT_ID,
            stack_name=stack_name,
        )
        result = Provisioner(
            cfn,
            code_dirs,
            stack_name=stack_name,
            region=LOCAL_REGION,
            account_id=LOCAL_ACCOUNT_ID,
            parameters={},
            clients={"dynamodb": client},
        ).provision(only_types={"AWS::DynamoDB::Table"})
    except BaseException:
        emulator.stop()
        raise
    return emulator, {
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL_DYNAMODB": emulator.url,
        "ORDERS_TABLE_NAME": result.physical["OrdersTable"].ref,
        "INVENTORY_TABLE_NAME": result.physical["InventoryTable"].ref,
        "WEBHOOKS_TABLE_NAME": result.physical["WebhooksTable"].ref,
        "PAYMENT_LEDGER_TABLE_NAME": result.physical["PaymentLedgerTable"].ref,
    }
