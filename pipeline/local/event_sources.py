"""Event source mappings run locally: DynamoDB stream and SQS pollers with Lambda's semantics.

Stream: one batch per shard at a time, in order; filter criteria drop records before the
function sees them; a failed batch is retried (bisected when the mapping says so) until
MaximumRetryAttempts or MaximumRecordAgeInSeconds, then described to the on-failure destination
and skipped; ReportBatchItemFailures restarts from the lowest failed sequence number.
Queue: batches of received messages; success deletes them, a reported failure or a function
error leaves them to reappear after the visibility timeout, and SQS's redrive policy moves a
message to the dead-letter queue after maxReceiveCount receives.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipeline.local.emulators import write_json_object
from pipeline.local.filters import matches_any_filter
from pipeline.local.lambdas import FunctionError

log = logging.getLogger("pipeline.local.event_sources")

Invoke = Callable[[Any], Any]


@dataclass
class MappingSpec:
    """An AWS::Lambda::EventSourceMapping as the template gives it."""

    logical_id: str
    function_name: str
    function_arn: str
    source_arn: str
    batch_size: int
    batching_window: float = 0.0
    starting_position: str | None = None
    bisect: bool = False
    max_retries: int = -1  # -1: until the record expires, Lambda's default
    max_record_age: int = -1
    report_item_failures: bool = False
    on_failure_arn: str | None = None
    filters: list[dict[str, Any]] = field(default_factory=list)
    max_concurrency: int = 2
    enabled: bool = True
    parallelization: int = 1  # concurrent batches per shard (ParallelizationFactor)


GET_RECORDS_LIMIT = 1000  # the most one GetRecords call returns
RAW_RECORDS = "RawStreamRecords"  # where GetRecords' records land, as the wire gave them
_raw_records = threading.local()  # set by a poller around its own GetRecords calls only


def _keep_records_raw(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """Hand GetRecords' records over as the JSON the stream sent, not parsed by botocore.

    The wire form is what Lambda gives a function (numbers for times, base64 for binary), and
    botocore's parse of every image of every record was the largest part of the runtime's own
    CPU under load; only the rest of the answer goes through its parser.
    """
    if not getattr(_raw_records, "wanted", False) or response_dict.get("status_code") != 200:
        return  # another user of the same client gets botocore's usual answer
    body = json.loads(response_dict["body"])
    customized_response_dict[RAW_RECORDS] = body.pop("Records", [])
    response_dict["body"] = json.dumps(body).encode()


def _created(raw: Mapping[str, Any]) -> float:
    """A stream record's ApproximateCreationDateTime in seconds (wire number or datetime)."""
    created = raw["dynamodb"]["ApproximateCreationDateTime"]
    return created.timestamp() if isinstance(created, datetime) else float(created)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Checkpoints:
    """Last processed sequence number per stream shard, kept in a JSON file across restarts."""

    def __init__(self, path: Path | None):
        self._path = path
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}
        if path and path.exists():
            self._data = json.loads(path.read_text())

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)

    def set(self, key: str, sequence_number: str) -> None:
        with self._lock:
            self._data[key] = sequence_number
            if self._path:
                write_json_object(self._path, self._data)


class _Poller(threading.Thread):
    """A mapping's polling thread: poll until stopped, pausing when idle or after an error."""

    idle_pause = 0.2
    error_pause = 1.0

    def __init__(
        self,
        name: str,
        spec: MappingSpec,
        *,
        sqs: Any,
        invoke: Invoke,
        region: str,
        stop: threading.Event,
        time_scale: float,
    ):
        super().__init__(name=name, daemon=True)
        self.spec = spec
        self._sqs = sqs
        self._invoke = invoke
        self._region = region
        self._stop_event = stop
        self._time_scale = time_scale

    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def pause(self, seconds: float) -> None:
        self._stop_event.wait(seconds)

    def poll_once(self) -> bool:
        """Fetch and deliver one batch; say whether there was anything to deliver."""
        raise NotImplementedError

    def run(self) -> None:
        while not self.stopping():
            try:
                busy = self.poll_once()
            except ClientError as exc:
                log.warning("%s: %s", self.name, exc)
                self.pause(self.error_pause)
                continue
            except Exception:
                # A poller must outlive any one failure, as Lambda's pollers do; the records
                # stay where they were and are read again.
                log.exception("%s: poller error", self.name)
                self.pause(self.error_pause)
                continue
            if not busy:
                self.pause(self.idle_pause)


class StreamPoller(_Poller):
    """Feeds a DynamoDB stream to a function."""

    shard_refresh_seconds = 5.0
    # Lambda polls a stream's shard about four times a second. Reading again as soon as a read
    # returns only makes the emulator answer more, smaller reads while records trickle in: each
    # costs it (and this process) about a millisecond whatever it carries.
    read_interval = 0.25

    def __init__(
        self,
        spec: MappingSpec,
        *,
        streams: Any,
        sqs: Any,
        invoke: Invoke,
        region: str,
        checkpoints: Checkpoints,
        stop: threading.Event,
        time_scale: float = 1.0,
        queue_url_of: Callable[[str], str],
    ):
        super().__init__(
            f"stream:{spec.logical_id}",
            spec,
            sqs=sqs,
            invoke=invoke,
            region=region,
            stop=stop,
            time_scale=time_scale,
        )
        self._streams = streams
        self._checkpoints = checkpoints
        self._queue_url_of = queue_url_of
        self._iterators: dict[str, str | None] = {}
        self._last_seen: dict[str, str] = {}
        self._mapping_started = time.time() - 1  # creation times have second precision
        self._lanes = (
            ThreadPoolExecutor(spec.parallelization, thread_name_prefix=f"lane:{spec.logical_id}")
            if spec.parallelization > 1
            else None
        )
        self._count_lock = threading.Lock()
        self.batches_invoked = 0
        self._shard_list: list[dict[str, Any]] | None = None
        self._shards_fresh_until = 0.0
        self._next_read: dict[str, float] = {}  # shard id -> monotonic time of its next read
        events = getattr(getattr(streams, "meta", None), "events", None)
        if events is not None:
            events.register(
                "before-parse.dynamodb-streams.GetRecords",
                _keep_records_raw,
                unique_id="pipeline-local-raw-stream-records",
            )

    def _shards(self) -> list[dict[str, Any]]:
        # The shard list changes only when a shard closes (hours apart), so it is described
        # every few seconds, not on every poll: one DynamoDB Local call fewer per poll.
        now = time.monotonic()
        if self._shard_list is None or now >= self._shards_fresh_until:
            description = self._streams.describe_stream(StreamArn=self.spec.source_arn)
            self._shard_list = description["StreamDescription"]["Shards"]
            self._shards_fresh_until = now + self.shard_refresh_seconds
        return self._shard_list

    def _iterator(self, shard_id: str) -> str | None:
        if shard_id in self._iterators:
            return self._iterators[shard_id]
        key = f"{self.spec.logical_id}/{shard_id}"
        position = self._last_seen.get(shard_id) or self._checkpoints.get(key)
        if position:
            kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": position}
        elif self.spec.starting_position == "LATEST":
            # Read from the start and drop what is older than the mapping (see _lambda_record):
            # a LATEST iterator cannot be re-created after the emulator quirk below.
            kwargs = {"ShardIteratorType": "TRIM_HORIZON"}
        else:
            kwargs = {"ShardIteratorType": self.spec.starting_position or "TRIM_HORIZON"}
        response = self._streams.get_shard_iterator(
            StreamArn=self.spec.source_arn, ShardId=shard_id, **kwargs
        )
        self._iterators[shard_id] = response.get("ShardIterator")
        return self._iterators[shard_id]

    def poll_once(self) -> bool:
        """Read up to a batch of matching records from each shard and deliver it."""
        busy = False
        for shard in self._shards():
            shard_id = shard["ShardId"]
            records: list[dict[str, Any]] = []  # those that pass the filters
            last_read: str | None = None
            window_ends = time.monotonic() + self.spec.batching_window * self._time_scale
            # With a ParallelizationFactor, one read feeds that many concurrent batches. As in
            # Lambda, the batches are made of the records that pass the filters: with filters,
            # each read takes what the stream has (up to GetRecords' 1,000), so a mapping that
            # wants one record in four does not get batches a quarter full.
            wanted = self.spec.batch_size * self.spec.parallelization
            while len(records) < wanted and not self.stopping():
                next_read = self._next_read.get(shard_id, 0.0)
                if records and next_read >= window_ends:
                    break  # the window closes before the next read may start
                if next_read > time.monotonic():
                    self.pause(next_read - time.monotonic())
                    if self.stopping():
                        break
                iterator = self._iterator(shard_id)
                if iterator is None:
                    break  # a closed shard, read to its end
                self._next_read[shard_id] = time.monotonic() + self.read_interval * self._time_scale
                limit = GET_RECORDS_LIMIT if self.spec.filters else wanted - len(records)
                try:
                    _raw_records.wanted = True
                    try:
                        response = self._streams.get_records(ShardIterator=iterator, Limit=limit)
                    finally:
                        _raw_records.wanted = False
                except ClientError as exc:
                    # An expired iterator (or a "trimmed" one, see below) is re-created after
                    # the last record seen; the short pause keeps a persistent error from
                    # turning this loop into a busy one against the emulator.
                    if exc.response["Error"]["Code"] in (
                        "ExpiredIteratorException",
                        "TrimmedDataAccessException",
                    ):
                        self._iterators.pop(shard_id, None)
                        self.pause(0.05)
                        continue
                    raise
                fetched = response.get(RAW_RECORDS) or response.get("Records", [])
                # After an empty read, DynamoDB Local's next iterator breaks on the first gap
                # in its sequence numbers (shared by all tables): start again from the last
                # record seen instead, which costs one GetShardIterator per idle poll.
                self._iterators[shard_id] = response.get("NextShardIterator")
                if not fetched and response.get("NextShardIterator"):
                    self._iterators.pop(shard_id, None)
                if fetched:
                    last_read = fetched[-1]["dynamodb"]["SequenceNumber"]
                    self._last_seen[shard_id] = last_read
                records += [
                    record
                    for record in (self._lambda_record(r) for r in fetched if self._after_start(r))
                    if matches_any_filter(self.spec.filters, record)
                ]
                if time.monotonic() >= window_ends or (not fetched and not records):
                    break
            if last_read is not None:
                busy = True
                self._deliver(shard_id, records, last_read)
        return busy

    def _after_start(self, raw: dict[str, Any]) -> bool:
        if self.spec.starting_position != "LATEST":
            return True
        return _created(raw) >= self._mapping_started

    def _lambda_record(self, raw: dict[str, Any]) -> dict[str, Any]:
        record = dict(raw)
        body = dict(record["dynamodb"])
        if body.get("ApproximateCreationDateTime") is not None:
            body["ApproximateCreationDateTime"] = int(_created(raw))
        record["dynamodb"] = body
        record["awsRegion"] = self._region
        record["eventSourceARN"] = self.spec.source_arn
        return record

    def _deliver(self, shard_id: str, records: list[dict[str, Any]], last_read: str) -> None:
        """Process the matching `records`, then checkpoint the shard at `last_read` (records
        the filters dropped count as processed, as in Lambda)."""
        if records and not self._process_lanes(shard_id, records):
            # Stopped mid-batch: no checkpoint, so the next start reads these records again.
            self._iterators.pop(shard_id, None)
            self._last_seen.pop(shard_id, None)
            return
        self._checkpoints.set(f"{self.spec.logical_id}/{shard_id}", last_read)

    def _process_lanes(self, shard_id: str, records: list[dict[str, Any]]) -> bool:
        """Deliver `records` in batches; with a ParallelizationFactor, as Lambda does: records
        of one partition key stay in one lane, in order, and the lanes run concurrently. The
        shard's checkpoint moves only once every lane is done (True), not if stopped (False).
        """
        first_seen = time.time()
        # As many lanes as the records fill batches, up to the factor: a read of a stream that
        # trickles (a dozen orders a quarter second) is one or two invocations, not one per
        # lane with a record or two each, and each invocation has a fixed cost. A full read
        # still uses every lane.
        used = min(self.spec.parallelization, -(-len(records) // self.spec.batch_size))
        if self._lanes is None or used == 1:
            return self._process_in_batches(shard_id, records, first_seen)
        lanes: list[list[dict[str, Any]]] = [[] for _ in range(used)]
        lane_of: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            key = json.dumps(record["dynamodb"].get("Keys", {}), sort_keys=True)
            lane = lane_of.get(key)
            if lane is None:
                # A new key joins the shortest lane: the lanes finish together, where hashing
                # keys would leave one lane with a second batch while the others sit idle.
                lane = lane_of[key] = min(lanes, key=len)
            lane.append(record)
        futures = [
            self._lanes.submit(self._process_in_batches, shard_id, lane, first_seen)
            for lane in lanes
            if lane
        ]
        return all([future.result() for future in futures])

    def _process_in_batches(
        self, shard_id: str, records: list[dict[str, Any]], first_seen: float
    ) -> bool:
        size = self.spec.batch_size
        return all(
            self._process(shard_id, records[i : i + size], 0, first_seen)
            for i in range(0, len(records), size)
        )

    def _process(
        self, shard_id: str, batch: list[dict[str, Any]], attempts: int, first_seen: float
    ) -> bool:
        """Invoke until the batch succeeds or is given up on (True), or the runtime stops."""
        while batch:
            if self.stopping():
                return False
            with self._count_lock:
                self.batches_invoked += 1
            failed_from = self._invoke_batch(batch)
            if failed_from is None:
                return True
            attempts += 1
            whole_batch = failed_from == 0
            age = time.time() - first_seen
            exhausted = 0 <= self.spec.max_retries < attempts
            too_old = 0 <= self.spec.max_record_age < age / max(self._time_scale, 1e-9)
            if exhausted or too_old:
                self._send_failure(
                    shard_id,
                    batch[failed_from:],
                    "RetryAttemptsExhausted" if exhausted else "RecordAgeExceeded",
                    attempts,
                )
                return True
            batch = batch[failed_from:]
            if self.spec.bisect and whole_batch and len(batch) > 1:
                half = len(batch) // 2
                return self._process(shard_id, batch[:half], attempts, first_seen) and (
                    self._process(shard_id, batch[half:], attempts, first_seen)
                )
            self.pause(min(0.2 * 2 ** (attempts - 1), 5.0) * self._time_scale)
        return True

    def _invoke_batch(self, batch: list[dict[str, Any]]) -> int | None:
        """Invoke once; None on success, else the index of the first record to retry."""
        try:
            response = self._invoke({"Records": batch})
        except FunctionError as exc:
            log.info("%s: batch of %d failed: %s", self.name, len(batch), exc)
            return 0
        if not self.spec.report_item_failures or not isinstance(response, dict):
            return None
        failures = response.get("batchItemFailures") or []
        if not failures:
            return None
        sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
        indexes = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in sequence_numbers:
                return 0  # Lambda treats an unknown identifier as a failure of the whole batch
            indexes.append(sequence_numbers.index(identifier))
        return min(indexes)

    def _send_failure(
        self, shard_id: str, batch: list[dict[str, Any]], condition: str, attempts: int
    ) -> None:
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.spec.function_arn,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": _iso(time.time()),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first["ApproximateCreationDateTime"]),
                "approximateArrivalOfLastRecord": _iso(last["ApproximateCreationDateTime"]),
                "batchSize": len(batch),
                "streamArn": self.spec.source_arn,
            },
        }
        log.warning(
            "%s: giving up on %d record(s) (%s); described to %s",
            self.name,
            len(batch),
            condition,
            self.spec.on_failure_arn or "nowhere (no on-failure destination)",
        )
        if self.spec.on_failure_arn:
            self._sqs.send_message(
                QueueUrl=self._queue_url_of(self.spec.on_failure_arn),
                MessageBody=json.dumps(record),
            )


class QueuePoller(_Poller):
    """Feeds an SQS queue to a function (one of `max_concurrency` such threads)."""

    def __init__(
        self,
        spec: MappingSpec,
        *,
        sqs: Any,
        queue_url: str,
        invoke: Invoke,
        region: str,
        stop: threading.Event,
        time_scale: float = 1.0,
        visibility_timeout: int = 30,
        index: int = 0,
    ):
        super().__init__(
            f"queue:{spec.logical_id}:{index}",
            spec,
            sqs=sqs,
            invoke=invoke,
            region=region,
            stop=stop,
            time_scale=time_scale,
        )
        self._queue_url = queue_url
        self._visibility = visibility_timeout
        self.idle_pause = 0.0  # receive_message long-polls for a second already

    def poll_once(self) -> bool:
        """Receive up to a batch and deliver it."""
        messages = self._receive_batch()
        if messages:
            self._deliver(messages)
        return bool(messages)

    def _receive_batch(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        window_ends = time.monotonic() + self.spec.batching_window * self._time_scale
        while len(messages) < self.spec.batch_size and not self.stopping():
            asked = min(10, self.spec.batch_size - len(messages))
            response = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=asked,
                WaitTimeSeconds=0 if messages else 1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            batch = response.get("Messages", [])
            messages += batch
            # A receive that got fewer than it asked for found the queue drained: asking again
            # at once would only come back empty (one more request per batch, for nothing).
            if len(batch) < asked or time.monotonic() >= window_ends:
                break
        return messages

    def _lambda_record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        }
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.spec.source_arn,
            "awsRegion": self._region,
        }

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        records = [self._lambda_record(m) for m in messages]
        kept = []
        for record in records:
            if matches_any_filter(self.spec.filters, record):
                kept.append(record)
            else:
                # Lambda deletes messages its filters drop.
                self._delete_messages([record])
        if not kept:
            return
        failed_ids: set[str]
        try:
            response = self._invoke({"Records": kept})
        except FunctionError as exc:
            log.info("%s: batch of %d failed: %s", self.name, len(kept), exc)
            failed_ids = {r["messageId"] for r in kept}
        else:
            failed_ids = self._reported_failures(response, kept)
        self._delete_messages([r for r in kept if r["messageId"] not in failed_ids])
        self._hide_failed([r for r in kept if r["messageId"] in failed_ids])

    def _reported_failures(self, response: Any, records: list[dict[str, Any]]) -> set[str]:
        if not self.spec.report_item_failures or not isinstance(response, dict):
            return set()
        ids = {r["messageId"] for r in records}
        failed = set()
        for failure in response.get("batchItemFailures") or []:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in ids:
                return ids  # an unknown identifier fails the whole batch, as in Lambda
            failed.add(identifier)
        return failed

    def _delete_messages(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)
                ],
            )

    def _hide_failed(self, records: list[dict[str, Any]]) -> None:
        # Lambda leaves a failed message invisible for the queue's visibility timeout; under a
        # time scale the local runtime shortens that wait the same way it shortens every other.
        if self._time_scale >= 1.0 or not records:
            return
        seconds = max(0, round(self._visibility * self._time_scale))
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": r["receiptHandle"],
                        "VisibilityTimeout": seconds,
                    }
                    for i, r in enumerate(chunk)
                ],
            )
