"""Stream and queue pollers keep Lambda's event-source semantics with template.yaml's settings."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.local.cfn import load_template, sam_to_cloudformation
from pipeline.local.emulators import (
    LOCAL_ACCOUNT_ID,
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    REPO_ROOT,
    dynamodb_local,
    free_port,
    moto_server,
)
from pipeline.local.event_sources import Checkpoints, MappingSpec, QueuePoller, StreamPoller
from pipeline.local.lambdas import FunctionError
from pipeline.local.provisioner import Provisioner, ProvisionResult
from pipeline.local.stepfunctions.server import StepFunctionsServer

pytestmark = pytest.mark.integration

STREAM_TIME_SCALE = 0.01  # retry pauses of 2, 4, 8 ... ms instead of 0.2, 0.4, 0.8 ... s
DEADLINE_S = 30.0


# -- Emulators and the template's mappings, once per module ---------------------------------------


def _client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def ddb_url() -> Iterator[str]:
    """DynamoDB Local, in memory."""
    emulator = dynamodb_local(free_port(), None)
    emulator.start()
    try:
        yield emulator.url
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's server (SQS and the rest of what the template provisions)."""
    emulator = moto_server(free_port())
    emulator.start()
    try:
        yield emulator.url
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def dynamodb(ddb_url: str) -> Any:
    """A DynamoDB client."""
    return _client("dynamodb", ddb_url)


@pytest.fixture(scope="module")
def streams(ddb_url: str) -> Any:
    """A DynamoDB Streams client."""
    return _client("dynamodbstreams", ddb_url)


@pytest.fixture(scope="module")
def sqs(moto_url: str) -> Any:
    """An SQS client."""
    return _client("sqs", moto_url)


@pytest.fixture(scope="module")
def provisioned(ddb_url: str, moto_url: str) -> Iterator[ProvisionResult]:
    """template.yaml provisioned as the runtime provisions it; its mappings are what we test."""
    sfn = StepFunctionsServer(invoke=lambda *_: None, port=0, region=LOCAL_REGION)
    sfn.start()
    try:
        cfn, code_dirs = sam_to_cloudformation(
            load_template(REPO_ROOT / "template.yaml"),
            root=REPO_ROOT,
            region=LOCAL_REGION,
            account_id=LOCAL_ACCOUNT_ID,
            stack_name="evsrc",
        )
        clients = {
            "dynamodb": _client("dynamodb", ddb_url),
            "sqs": _client("sqs", moto_url),
            "logs": _client("logs", moto_url),
            "sns": _client("sns", moto_url),
            "cloudwatch": _client("cloudwatch", moto_url),
            "stepfunctions": _client("stepfunctions", sfn.endpoint_url),
        }
        yield Provisioner(
            cfn,
            code_dirs,
            stack_name="evsrc",
            region=LOCAL_REGION,
            account_id=LOCAL_ACCOUNT_ID,
            parameters={},
            clients=clients,
        ).provision()
    finally:
        sfn.stop()


# The mappings these tests drive: the Orders stream into OrderProcessing, the Orders queue into
# SQSProcessor (the template has others, e.g. the webhooks', built the same way).
MAPPED_FUNCTION = {"stream": "OrderProcessingFunction", "queue": "SQSProcessorFunction"}


def _mapping(result: ProvisionResult, kind: str, *, lanes: int = 1) -> MappingSpec:
    """The provisioned mapping; a stream mapping with `lanes` parallel lanes (one by default,
    so batch boundaries are predictable; the lanes have a test of their own)."""
    (spec,) = [
        m
        for m in result.mappings
        if (":sqs:" in m.source_arn) == (kind == "queue")
        and m.logical_id.startswith(MAPPED_FUNCTION[kind])
    ]
    return spec if kind == "queue" else dataclasses.replace(spec, parallelization=lanes)


# -- Per-test resources -------------------------------------------------------------------------


@dataclasses.dataclass
class Table:
    """A fresh table with an Orders-like key and a NEW_AND_OLD_IMAGES stream."""

    name: str
    stream_arn: str
    client: Any
    streams: Any

    def put(self, order_id: str, status: str, **extra: str) -> None:
        item = {"OrderId": {"S": order_id}, "Status": {"S": status}}
        item.update({k: {"S": v} for k, v in extra.items()})
        self.client.put_item(TableName=self.name, Item=item)

    def delete(self, order_id: str) -> None:
        self.client.delete_item(TableName=self.name, Key={"OrderId": {"S": order_id}})

    def records(self) -> list[dict[str, Any]]:
        """Every record of the stream so far, read independently of the poller."""
        (shard,) = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"][
            "Shards"
        ]
        iterator = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return self.streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]

    def shard_id(self) -> str:
        (shard,) = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"][
            "Shards"
        ]
        return shard["ShardId"]


@pytest.fixture
def table(dynamodb: Any, streams: Any) -> Table:
    """A table of its own for each test, so each stream holds only that test's records."""
    name = f"evsrc-{uuid.uuid4().hex[:12]}"
    description = dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "OrderId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "OrderId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    return Table(name, description["LatestStreamArn"], dynamodb, streams)


@dataclasses.dataclass
class Queue:
    """An SQS queue of the test's own."""

    url: str
    arn: str
    sqs: Any

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) messages."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def drain(self, wait_for: int, timeout: float = DEADLINE_S) -> list[dict[str, Any]]:
        """Receive (and delete) messages until `wait_for` have come or the deadline passes."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < wait_for and time.monotonic() < deadline:
            batch = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for message in batch:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            found += batch
        return found


def _queue(sqs: Any, attributes: dict[str, str] | None = None) -> Queue:
    url = sqs.create_queue(QueueName=f"evsrc-{uuid.uuid4().hex[:12]}", Attributes=attributes or {})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Queue(url, arn, sqs)


@pytest.fixture
def failure_queue(sqs: Any) -> Queue:
    """Where the stream mapping describes what it gave up on."""
    return _queue(sqs)


@pytest.fixture
def orders_queues(sqs: Any, provisioned: ProvisionResult) -> tuple[Queue, Queue]:
    """A fresh (queue, dead-letter queue) pair with the template's Orders queue attributes."""
    template_queue = provisioned.outputs["OrdersQueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=template_queue, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
    )["Attributes"]
    dlq = _queue(sqs)
    redrive = json.loads(attributes["RedrivePolicy"])
    redrive["deadLetterTargetArn"] = dlq.arn
    queue = _queue(
        sqs,
        {
            "VisibilityTimeout": attributes["VisibilityTimeout"],
            "RedrivePolicy": json.dumps(redrive),
        },
    )
    return queue, dlq


# -- The function stand-in and the pollers ------------------------------------------------------

Answer = Callable[[list[dict[str, Any]], int], Any]


class FakeFunction:
    """Stands in for a Lambda function: records every batch, answers as the test decides."""

    def __init__(self, answer: Answer | None = None):
        self._answer = answer or (lambda records, call: None)
        self._lock = threading.Lock()
        self.calls: list[list[dict[str, Any]]] = []
        self.outcomes: list[bool] = []  # per call: True when it returned (no FunctionError)
        self.times: list[float] = []

    def __call__(self, event: dict[str, Any]) -> Any:
        records = event["Records"]
        with self._lock:
            self.calls.append(records)
            self.times.append(time.monotonic())
            call = len(self.calls)
        try:
            result = self._answer(records, call)
        except FunctionError:
            self.outcomes.append(False)
            raise
        self.outcomes.append(True)
        return result

    def keys(self, call: int) -> list[str]:
        """Order ids (stream) or bodies (queue) of the call-th batch (0-based)."""
        return [_key(r) for r in self.calls[call]]

    def all_keys(self) -> list[str]:
        return [_key(r) for batch in self.calls for r in batch]

    def succeeded_keys(self) -> list[str]:
        return [_key(r) for batch, ok in zip(self.calls, self.outcomes, strict=False) if ok
                for r in batch]  # fmt: skip


def _key(record: dict[str, Any]) -> str:
    if "dynamodb" in record:
        return record["dynamodb"]["Keys"]["OrderId"]["S"]
    return record["body"]


def _keys(records: list[dict[str, Any]]) -> list[str]:
    return [_key(r) for r in records]


def _until(condition: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def _running(make: Callable[[threading.Event], threading.Thread]) -> Iterator[threading.Thread]:
    stop = threading.Event()
    poller = make(stop)
    poller.start()
    try:
        yield poller
    finally:
        stop.set()
        poller.join(timeout=15)
        assert not poller.is_alive(), "the poller did not stop"


def _stream_poller(
    spec: MappingSpec,
    table: Table,
    function: FakeFunction,
    checkpoints: Checkpoints,
    failure_queue: Queue | None,
    sqs: Any,
    time_scale: float = STREAM_TIME_SCALE,
) -> Callable[[threading.Event], StreamPoller]:
    spec = dataclasses.replace(
        spec,
        source_arn=table.stream_arn,
        on_failure_arn=failure_queue.arn if failure_queue else None,
    )
    urls = {failure_queue.arn: failure_queue.url} if failure_queue else {}
    return lambda stop: StreamPoller(
        spec,
        streams=table.streams,
        sqs=sqs,
        invoke=function,
        region=LOCAL_REGION,
        checkpoints=checkpoints,
        stop=stop,
        time_scale=time_scale,
        queue_url_of=urls.__getitem__,
    )


def _queue_poller(
    spec: MappingSpec, queue: Queue, function: FakeFunction, visibility: int, time_scale: float
) -> Callable[[threading.Event], QueuePoller]:
    spec = dataclasses.replace(spec, source_arn=queue.arn)
    return lambda stop: QueuePoller(
        spec,
        sqs=queue.sqs,
        queue_url=queue.url,
        invoke=function,
        region=LOCAL_REGION,
        stop=stop,
        time_scale=time_scale,
        visibility_timeout=visibility,
    )


def _checkpointed(checkpoints: Checkpoints, spec: MappingSpec, table: Table, sequence: str) -> bool:
    return checkpoints.get(f"{spec.logical_id}/{table.shard_id()}") == sequence


def _fails_on(poison: str) -> Answer:
    def answer(records: list[dict[str, Any]], call: int) -> Any:
        if any(_key(r) == poison for r in records):
            raise FunctionError("ValueError", f"cannot handle {poison}")
        return {"batchItemFailures": []}

    return answer


# -- The mappings as provisioned ----------------------------------------------------------------


def test_the_provisioned_mappings_carry_the_templates_settings(
    provisioned: ProvisionResult, sqs: Any
) -> None:
    # Given template.yaml provisioned as the runtime does it
    stream = next(
        m
        for m in provisioned.mappings
        if ":sqs:" not in m.source_arn and m.logical_id.startswith(MAPPED_FUNCTION["stream"])
    )
    queue = _mapping(provisioned, "queue")
    failure_queue_arn = sqs.get_queue_attributes(
        QueueUrl=provisioned.outputs["StreamFailureQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    # Then the stream mapping has the template's batching, retries, bisecting and destination
    assert stream.source_arn == provisioned.outputs["OrdersTableStreamArn"]
    assert (stream.batch_size, stream.batching_window, stream.starting_position) == (
        10,
        0.0,
        "TRIM_HORIZON",
    )
    assert (stream.bisect, stream.max_retries, stream.max_record_age) == (True, 5, 3600)
    assert _mapping(provisioned, "stream", lanes=10) == stream  # ParallelizationFactor 10
    assert stream.report_item_failures is True
    assert stream.on_failure_arn == failure_queue_arn
    assert [f["eventName"] for f in stream.filters] == [["INSERT"], ["MODIFY"]]
    # And the queue mapping batches 10 with partial failures, on a queue redriving after 3
    assert (queue.batch_size, queue.report_item_failures, queue.max_concurrency) == (10, True, 10)
    assert provisioned.queue_visibility[queue.source_arn] == 180
    redrive = sqs.get_queue_attributes(
        QueueUrl=provisioned.outputs["OrdersQueueUrl"], AttributeNames=["RedrivePolicy"]
    )["Attributes"]["RedrivePolicy"]
    assert json.loads(redrive)["maxReceiveCount"] == 3


# -- Stream -------------------------------------------------------------------------------------


def test_only_new_pending_orders_and_returns_to_pending_reach_the_function(
    provisioned: ProvisionResult, table: Table, sqs: Any
) -> None:
    # Given every kind of change an order goes through, the last one filtered out
    table.put("o1", "PENDING")  # INSERT PENDING: kept
    table.put("o2", "RESERVED")  # INSERT, not PENDING: dropped
    table.put("o1", "RESERVED")  # MODIFY PENDING -> RESERVED: dropped (the pipeline's write)
    table.put("o1", "PENDING")  # MODIFY RESERVED -> PENDING: kept (staff resubmission)
    table.put("o1", "PENDING", Note="x")  # MODIFY PENDING -> PENDING: dropped
    table.delete("o2")  # REMOVE: dropped
    records = table.records()
    assert [r["eventName"] for r in records] == ["INSERT"] * 2 + ["MODIFY"] * 3 + ["REMOVE"]
    spec = _mapping(provisioned, "stream")
    function, checkpoints = FakeFunction(), Checkpoints(None)
    # When the template's stream mapping reads the stream
    with _running(_stream_poller(spec, table, function, checkpoints, None, sqs)):
        last = records[-1]["dynamodb"]["SequenceNumber"]
        _until(lambda: _checkpointed(checkpoints, spec, table, last), "the checkpoint")
        # And then a batch of nothing but the pipeline's own writes arrives
        table.put("o3", "REJECTED")
        table.put("o1", "RESERVED")
        only_filtered = table.records()[-1]["dynamodb"]["SequenceNumber"]
        _until(lambda: _checkpointed(checkpoints, spec, table, only_filtered), "the checkpoint")
    # Then the function saw exactly the new PENDING order and its return to PENDING
    seen = [r for batch in function.calls for r in batch]
    assert [(r["eventName"], _key(r)) for r in seen] == [("INSERT", "o1"), ("MODIFY", "o1")]
    assert seen[1]["dynamodb"]["OldImage"]["Status"] == {"S": "RESERVED"}
    # And the filtered-out records moved the checkpoint past themselves (waited for above)
    assert seen[-1]["dynamodb"]["SequenceNumber"] < last


def test_records_reach_the_function_as_lambda_sends_them(table: Table, sqs: Any) -> None:
    # Given a new order carrying a binary attribute
    table.client.put_item(
        TableName=table.name,
        Item={"OrderId": {"S": "wire-1"}, "Status": {"S": "PENDING"}, "Blob": {"B": b"\x00\xff"}},
    )
    spec = MappingSpec("S", "F", "arn:fn", table.stream_arn, batch_size=10)
    function, checkpoints = FakeFunction(), Checkpoints(None)
    # When a poller delivers it
    with _running(_stream_poller(spec, table, function, checkpoints, None, sqs)):
        _until(lambda: function.calls, "a batch")
    (record,) = function.calls[0]
    # Then it is the JSON Lambda gives a function: the time in whole seconds, binary in
    # base64, the source's ARN and region (and the test's own reads still get botocore's form)
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert record["dynamodb"]["NewImage"]["Blob"] == {"B": "AP8="}
    assert (record["eventSourceARN"], record["awsRegion"]) == (table.stream_arn, LOCAL_REGION)
    assert json.loads(json.dumps(record)) == record
    assert table.records()[0]["dynamodb"]["NewImage"]["Blob"] == {"B": b"\x00\xff"}


def test_batches_never_exceed_the_batch_size(
    provisioned: ProvisionResult, table: Table, sqs: Any
) -> None:
    # Given 23 new orders on the stream and the template's batch size of 10
    ids = [f"o{i:02d}" for i in range(23)]
    for order_id in ids:
        table.put(order_id, "PENDING")
    spec = _mapping(provisioned, "stream")
    function = FakeFunction()
    # When the mapping reads them
    with _running(_stream_poller(spec, table, function, Checkpoints(None), None, sqs)):
        _until(lambda: len(function.all_keys()) >= len(ids), "every record")
    # Then they arrive in order, in batches of at most 10
    assert [len(batch) for batch in function.calls] == [10, 10, 3]
    assert function.all_keys() == ids


def test_a_filtered_mapping_gets_full_batches_of_the_records_it_wants(
    provisioned: ProvisionResult, table: Table, sqs: Any
) -> None:
    # Given 20 new orders, each followed on the stream by three of the pipeline's own writes
    # that the template's filters drop (as reservation, payment and shipping write them)
    ids = [f"o{i:02d}" for i in range(20)]
    for order_id in ids:
        table.put(order_id, "PENDING")
        for status in ("RESERVED", "PAID", "SHIPPED"):
            table.put(order_id, status)
    last = table.records()[-1]["dynamodb"]["SequenceNumber"]
    spec = _mapping(provisioned, "stream")
    function, checkpoints = FakeFunction(), Checkpoints(None)
    # When the mapping (batch size 10) reads them
    with _running(_stream_poller(spec, table, function, checkpoints, None, sqs)):
        _until(lambda: _checkpointed(checkpoints, spec, table, last), "the checkpoint")
    # Then the 20 orders came in two full batches, in order, not in batches of the two or
    # three that each ten records of the stream hold
    assert [len(batch) for batch in function.calls] == [10, 10]
    assert function.all_keys() == ids


def test_a_mapping_reads_a_busy_stream_four_times_a_second_not_after_every_answer(
    provisioned: ProvisionResult, table: Table, sqs: Any
) -> None:
    # Given the template's filtered mapping at real time (no batching window), and a
    # stream that gets one of the pipeline's own writes (filtered out) every 20 ms for 1.5 s
    spec = _mapping(provisioned, "stream")
    function = FakeFunction()
    read_at: list[float] = []

    def note_read(**_: Any) -> None:
        if threading.current_thread().name.startswith("stream:"):
            read_at.append(time.monotonic())

    events = table.streams.meta.events
    events.register("before-call.dynamodb-streams.GetRecords", note_read, unique_id="t-reads")
    make = _stream_poller(spec, table, function, Checkpoints(None), None, sqs, time_scale=1.0)
    try:
        with _running(make):
            ends = time.monotonic() + 1.5
            written = 0
            while time.monotonic() < ends:
                table.put(f"own-{written}", "RESERVED")
                written += 1
                time.sleep(0.02)
            # ...and then a new order
            table.put("new-order", "PENDING")
            _until(lambda: function.all_keys() == ["new-order"], "the new order", timeout=10)
    finally:
        events.unregister("before-call.dynamodb-streams.GetRecords", unique_id="t-reads")
    # Then the new order came, and the shard was read at most four times a second while the
    # writes trickled in, not once per handful of records
    gaps = [later - earlier for earlier, later in pairwise(read_at)]
    assert written > 30
    assert len(read_at) >= 4
    assert min(gaps) >= 0.2


@pytest.mark.parametrize(
    ("ids", "batches"),
    [
        # Eight orders whose keys would hash unevenly over four lanes (4, 1, 3 and 0): each
        # lane gets two, four full batches, no lane with a second batch while the others wait.
        ([f"o{i * 37}" for i in range(8)], [2, 2, 2, 2]),
        # Fewer than the lanes' batches hold: as few batches as they fill (each invocation
        # has a fixed cost), not one per lane with a record each.
        ([f"o{i}" for i in range(5)], [1, 2, 2]),
        (["o0", "o1"], [2]),
    ],
)
def test_a_reads_keys_fill_as_few_lanes_as_they_need_evenly(
    provisioned: ProvisionResult, table: Table, sqs: Any, ids: list[str], batches: list[int]
) -> None:
    # Given new orders and a mapping of four lanes with batches of 2
    for order_id in ids:
        table.put(order_id, "PENDING")
    spec = dataclasses.replace(
        _mapping(provisioned, "stream", lanes=4), filters=[], batch_size=2, batching_window=0.5
    )
    function = FakeFunction()
    # When the mapping reads them in one read
    with _running(_stream_poller(spec, table, function, Checkpoints(None), None, sqs)):
        _until(lambda: len(function.all_keys()) >= len(ids), "every record")
    # Then they came in the batches above, every order once
    assert sorted(len(batch) for batch in function.calls) == batches
    assert sorted(function.all_keys()) == sorted(ids)


def _failure_record(queue: Queue) -> dict[str, Any]:
    (message,) = queue.drain(wait_for=1)
    return json.loads(message["Body"])


def test_bisecting_isolates_a_poison_record_and_describes_only_it(
    provisioned: ProvisionResult, table: Table, failure_queue: Queue, sqs: Any
) -> None:
    # Given four new orders, the third of which the function always fails on
    for order_id in ("a", "b", "poison", "d"):
        table.put(order_id, "PENDING")
    records = table.records()
    spec = _mapping(provisioned, "stream")
    function, checkpoints = FakeFunction(_fails_on("poison")), Checkpoints(None)
    # When the template's mapping (bisect on, 5 retries) processes them
    with _running(_stream_poller(spec, table, function, checkpoints, failure_queue, sqs)):
        failure = _failure_record(failure_queue)
        last = records[-1]["dynamodb"]["SequenceNumber"]
        _until(lambda: _checkpointed(checkpoints, spec, table, last), "the checkpoint")
    # Then every good record was processed exactly once
    assert sorted(function.succeeded_keys()) == ["a", "b", "d"]
    # And the poison record was tried once and retried MaximumRetryAttempts times
    assert function.all_keys().count("poison") == spec.max_retries + 1
    # And exactly that record is described, in Lambda's on-failure record shape
    poison = records[2]["dynamodb"]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["functionArn"] == spec.function_arn
    assert failure["requestContext"]["approximateInvokeCount"] == spec.max_retries + 1
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert failure["version"] == "1.0"
    datetime.fromisoformat(failure["timestamp"])
    info = failure["DDBStreamBatchInfo"]
    assert info["shardId"] == table.shard_id()
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison["SequenceNumber"]
    assert info["batchSize"] == 1
    assert info["streamArn"] == table.stream_arn
    datetime.fromisoformat(info["approximateArrivalOfFirstRecord"])
    # And nothing else was given up on
    assert failure_queue.drain(wait_for=1, timeout=1.5) == []


def test_without_bisecting_the_whole_failed_batch_is_described(
    provisioned: ProvisionResult, table: Table, failure_queue: Queue, sqs: Any
) -> None:
    # Given four new orders, one of which the function always fails on
    for order_id in ("a", "b", "poison", "d"):
        table.put(order_id, "PENDING")
    records = table.records()
    spec = dataclasses.replace(_mapping(provisioned, "stream"), bisect=False)
    function = FakeFunction(_fails_on("poison"))
    # When the mapping gives up on the batch
    with _running(_stream_poller(spec, table, function, Checkpoints(None), failure_queue, sqs)):
        failure = _failure_record(failure_queue)
    # Then the whole batch was retried as one, MaximumRetryAttempts times
    assert [len(batch) for batch in function.calls] == [4] * (spec.max_retries + 1)
    assert function.succeeded_keys() == []
    # And the whole batch is described
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 4
    assert info["startSequenceNumber"] == records[0]["dynamodb"]["SequenceNumber"]
    assert info["endSequenceNumber"] == records[-1]["dynamodb"]["SequenceNumber"]


def test_reported_item_failures_retry_from_the_lowest_failed_record(
    provisioned: ProvisionResult, table: Table, failure_queue: Queue, sqs: Any
) -> None:
    # Given five new orders, and a function that reports d and c as failed the first time
    for order_id in "abcde":
        table.put(order_id, "PENDING")
    spec = _mapping(provisioned, "stream")

    def answer(records: list[dict[str, Any]], call: int) -> Any:
        if call > 1:
            return {"batchItemFailures": []}
        by_key = {_key(r): r["dynamodb"]["SequenceNumber"] for r in records}
        return {"batchItemFailures": [{"itemIdentifier": by_key[k]} for k in ("d", "c")]}

    function = FakeFunction(answer)
    # When the mapping processes them
    with _running(_stream_poller(spec, table, function, Checkpoints(None), failure_queue, sqs)):
        _until(lambda: len(function.calls) >= 2, "the retry")
        time.sleep(0.3)  # room for a wrong, third delivery to show up
    # Then the retry starts at c, the lowest failed record; a and b are not delivered again
    assert function.keys(0) == list("abcde")
    assert function.keys(1) == list("cde")
    assert len(function.calls) == 2
    assert failure_queue.counts() == (0, 0)


def test_an_unknown_item_identifier_fails_the_whole_batch(
    provisioned: ProvisionResult, table: Table, failure_queue: Queue, sqs: Any
) -> None:
    # Given four new orders, and a function that reports a failure Lambda cannot place
    for order_id in "abcd":
        table.put(order_id, "PENDING")
    spec = _mapping(provisioned, "stream")

    def answer(records: list[dict[str, Any]], call: int) -> Any:
        if call > 1:
            return None
        return {"batchItemFailures": [{"itemIdentifier": "no-such-sequence-number"}]}

    function = FakeFunction(answer)
    # When the mapping processes them
    with _running(_stream_poller(spec, table, function, Checkpoints(None), failure_queue, sqs)):
        _until(lambda: sorted(k for c in function.calls[1:] for k in _keys(c)) == list("abcd"),
               "every record delivered again")  # fmt: skip
    # Then the whole batch failed: bisected as a function error is, every record retried
    assert function.keys(0) == list("abcd")
    assert function.keys(1) == ["a", "b"]
    assert function.keys(2) == ["c", "d"]


def test_checkpoints_persist_and_a_new_poller_resumes_after_them(
    provisioned: ProvisionResult, table: Table, sqs: Any, tmp_path: Path
) -> None:
    # Given a poller that processed three orders with its checkpoints in a file
    for order_id in ("a", "b", "c"):
        table.put(order_id, "PENDING")
    path = tmp_path / "stream-checkpoints.json"
    spec = _mapping(provisioned, "stream")
    first = FakeFunction()
    checkpoints = Checkpoints(path)
    third = table.records()[-1]["dynamodb"]["SequenceNumber"]
    with _running(_stream_poller(spec, table, first, checkpoints, None, sqs)):
        _until(lambda: _checkpointed(checkpoints, spec, table, third), "the first checkpoint")
    assert first.all_keys() == ["a", "b", "c"]
    assert json.loads(path.read_text()) == {f"{spec.logical_id}/{table.shard_id()}": third}
    # When two more orders arrive and a new poller starts from the same file
    table.put("d", "PENDING")
    table.put("e", "PENDING")
    fifth = table.records()[-1]["dynamodb"]["SequenceNumber"]
    second = FakeFunction()
    resumed = Checkpoints(path)
    with _running(_stream_poller(spec, table, second, resumed, None, sqs)):
        _until(lambda: _checkpointed(resumed, spec, table, fifth), "the second checkpoint")
    # Then it delivers only the new ones
    assert second.all_keys() == ["d", "e"]
    assert json.loads(path.read_text()) == {f"{spec.logical_id}/{table.shard_id()}": fifth}


# -- Queue --------------------------------------------------------------------------------------


def _send(queue: Queue, bodies: list[str]) -> None:
    queue.sqs.send_message_batch(
        QueueUrl=queue.url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)]
    )


def _fail_ids(records: list[dict[str, Any]], bodies: set[str]) -> dict[str, Any]:
    return {
        "batchItemFailures": [
            {"itemIdentifier": r["messageId"]} for r in records if r["body"] in bodies
        ]
    }


def test_a_successful_batch_is_deleted(
    provisioned: ProvisionResult, orders_queues: tuple[Queue, Queue]
) -> None:
    # Given three messages on a queue like the Orders queue
    queue, dlq = orders_queues
    _send(queue, ["m1", "m2", "m3"])
    function = FakeFunction(lambda records, call: {"batchItemFailures": []})
    spec = _mapping(provisioned, "queue")
    # When the template's queue mapping delivers them and the function succeeds
    with _running(_queue_poller(spec, queue, function, 180, 1.0)):
        _until(lambda: function.calls, "the delivery")
    # Then they came as one batch and are gone from the queue, none to the DLQ
    assert sorted(function.keys(0)) == ["m1", "m2", "m3"]
    assert function.calls[0][0]["eventSource"] == "aws:sqs"
    assert queue.counts() == (0, 0)
    assert dlq.counts() == (0, 0)


def test_a_partial_batch_costs_one_receive_not_a_second_empty_one(
    provisioned: ProvisionResult, orders_queues: tuple[Queue, Queue], moto_url: str
) -> None:
    # Given three messages on a queue whose mapping takes batches of ten, and a client that
    # counts the mapping's calls
    queue, _ = orders_queues
    _send(queue, ["m1", "m2", "m3"])
    sqs = _client("sqs", moto_url)
    calls: list[str] = []
    sqs.meta.events.register("before-send.sqs.*", lambda event_name, **_: calls.append(
        event_name.rsplit(".", 1)[-1]))  # fmt: skip
    function = FakeFunction(lambda records, call: {"batchItemFailures": []})
    spec = _mapping(provisioned, "queue")
    assert spec.batch_size == 10

    # When the mapping delivers them
    counted = Queue(queue.url, queue.arn, sqs)
    with _running(_queue_poller(spec, counted, function, 180, 1.0)):
        _until(lambda: function.calls, "the delivery")
        _until(lambda: "DeleteMessageBatch" in calls, "the delete")
        first_batch = calls[: calls.index("DeleteMessageBatch") + 1]

    # Then one receive found all three (the queue was drained: no second, empty receive
    # before the function was called), and one call deleted them
    assert sorted(function.keys(0)) == ["m1", "m2", "m3"]
    assert first_batch == ["ReceiveMessage", "DeleteMessageBatch"]


def test_a_partial_failure_deletes_only_the_successful_messages(
    provisioned: ProvisionResult, orders_queues: tuple[Queue, Queue]
) -> None:
    # Given five messages, two of which the function reports as failed
    queue, _ = orders_queues
    _send(queue, ["m1", "m2", "m3", "m4", "m5"])
    function = FakeFunction(lambda records, call: _fail_ids(records, {"m2", "m4"}))
    spec = _mapping(provisioned, "queue")
    # When the mapping delivers them (real time: the queue's 180 s visibility applies)
    with _running(_queue_poller(spec, queue, function, 180, 1.0)):
        _until(lambda: function.calls, "the delivery")
    # Then the three successful ones are deleted and the two failed ones still wait, hidden
    assert sorted(function.keys(0)) == ["m1", "m2", "m3", "m4", "m5"]
    assert queue.counts() == (0, 2)
    assert len(function.calls) == 1


def test_a_function_error_deletes_nothing(
    provisioned: ProvisionResult, orders_queues: tuple[Queue, Queue]
) -> None:
    # Given three messages and a function that fails
    queue, _ = orders_queues
    _send(queue, ["m1", "m2", "m3"])

    def answer(records: list[dict[str, Any]], call: int) -> Any:
        raise FunctionError("RuntimeError", "boom")

    function = FakeFunction(answer)
    spec = _mapping(provisioned, "queue")
    # When the mapping delivers them
    with _running(_queue_poller(spec, queue, function, 180, 1.0)):
        _until(lambda: function.calls, "the delivery")
        time.sleep(0.5)  # room for a wrong redelivery before the visibility timeout
    # Then all three are still on the queue, hidden until the visibility timeout ends
    assert queue.counts() == (0, 3)
    assert len(function.calls) == 1


def test_failed_messages_reappear_after_the_scaled_visibility_timeout(
    provisioned: ProvisionResult, orders_queues: tuple[Queue, Queue]
) -> None:
    # Given the 180 s visibility timeout scaled down to 2 s, and five messages, two failing once
    queue, _ = orders_queues
    time_scale = 2 / 180
    _send(queue, ["m1", "m2", "m3", "m4", "m5"])

    def answer(records: list[dict[str, Any]], call: int) -> Any:
        return _fail_ids(records, {"m2", "m4"} if call == 1 else set())

    function = FakeFunction(answer)
    spec = _mapping(provisioned, "queue")
    # When the mapping delivers them
    with _running(_queue_poller(spec, queue, function, 180, time_scale)):
        _until(lambda: len(function.calls) >= 2, "the redelivery")
        _until(lambda: queue.counts() == (0, 0), "the queue to empty")
    # Then exactly the failed two came back, after about 2 s and not 180 s
    assert sorted(function.keys(1)) == ["m2", "m4"]
    waited = function.times[1] - function.times[0]
    assert 1.8 <= waited < 10, waited
    assert len(function.calls) == 2


def test_a_message_failing_every_time_lands_in_the_dlq_after_three_receives(
    provisioned: ProvisionResult, orders_queues: tuple[Queue, Queue]
) -> None:
    # Given a poison message among four good ones, visibility scaled down to 1 s
    queue, dlq = orders_queues
    _send(queue, ["good1", "good2", "poison", "good3", "good4"])
    function = FakeFunction(lambda records, call: _fail_ids(records, {"poison"}))
    spec = _mapping(provisioned, "queue")
    # When the mapping keeps delivering it and the function keeps failing it
    with _running(_queue_poller(spec, queue, function, 180, 1 / 180)):
        (dead,) = dlq.drain(wait_for=1)
        _until(lambda: queue.counts() == (0, 0), "the queue to empty")
    # Then it was received maxReceiveCount (3) times, then SQS moved it to the DLQ
    assert dead["Body"] == "poison"
    assert function.all_keys().count("poison") == 3
    # And every good message was processed exactly once; nothing else is in either queue
    assert sorted(k for k in function.all_keys() if k != "poison") == [
        "good1",
        "good2",
        "good3",
        "good4",
    ]
    assert dlq.counts() == (0, 0)


# -- ParallelizationFactor ----------------------------------------------------------------------


def test_parallel_lanes_keep_each_orders_records_in_order_and_run_at_once(
    provisioned: ProvisionResult, table: Table, sqs: Any, tmp_path: Path
) -> None:
    # Given a stream mapping with ParallelizationFactor 4, batches of 2, no filters, and a
    # function that takes a while per batch
    spec = dataclasses.replace(
        _mapping(provisioned, "stream", lanes=4), filters=[], batch_size=2, batching_window=0.5
    )
    in_flight = 0
    most_at_once = 0
    lock = threading.Lock()

    def slow(records: list[dict[str, Any]], call: int) -> Any:
        nonlocal in_flight, most_at_once
        with lock:
            in_flight += 1
            most_at_once = max(most_at_once, in_flight)
        time.sleep(0.2)
        with lock:
            in_flight -= 1
        return {"batchItemFailures": []}

    function = FakeFunction(slow)
    # And 8 orders, each written three times (a status path), interleaved
    order_ids = [f"o{i}" for i in range(8)]
    for status in ("PENDING", "RESERVED", "PAID"):
        for order_id in order_ids:
            table.put(order_id, status)
    checkpoints = Checkpoints(tmp_path / "checkpoints.json")
    make = _stream_poller(spec, table, function, checkpoints, None, sqs)
    # When the poller runs
    with _running(make):
        _until(lambda: len(function.all_keys()) >= 24, "all 24 records delivered")
        last = table.records()[-1]["dynamodb"]["SequenceNumber"]
        _until(lambda: _checkpointed(checkpoints, spec, table, last), "the checkpoint")
    # Then every record came exactly once, each order's records in the order they were written
    assert sorted(function.all_keys()) == sorted(order_ids * 3)
    for order_id in order_ids:
        statuses = [
            r["dynamodb"]["NewImage"]["Status"]["S"]
            for batch in function.calls
            for r in batch
            if _key(r) == order_id
        ]
        assert statuses == ["PENDING", "RESERVED", "PAID"]
    # And batches of different lanes ran at the same time
    assert most_at_once > 1
