"""DynamoDB Streams: reading back the records of one shard's sequence range, while it holds them."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from pipeline import aws

# What DynamoDB Streams answers when it no longer holds a range: the records are past the
# 24-hour trim horizon, the shard (deleted 24 hours after it closed) or the stream is gone, or
# the sequence number is not in the shard any more.
GONE_CODES = frozenset(
    {"TrimmedDataAccessException", "ResourceNotFoundException", "ValidationException"}
)
# GetRecords may answer an empty page before the end of an open shard; a few more reads (each
# from a fresh iterator after the last record seen) tell an empty page from the end of the range.
EMPTY_PAGES_MAX = 3


class StreamRangeGone(LookupError):
    """The stream no longer holds the records of this range."""


def _position(sequence_number: str) -> int:
    # Sequence numbers are decimal strings of up to 40 digits; they order as numbers.
    return int(sequence_number)


class StreamRecords:
    """Reads one shard's records from a start to an end sequence number (inclusive)."""

    def __init__(self, client: Any | None = None, *, page_size: int = 1000):
        self._client = client
        self.page_size = page_size

    @property
    def client(self) -> Any:
        """The DynamoDB Streams client given, or the shared one."""
        return self._client or aws.client("dynamodbstreams")

    def read_range(
        self, *, stream_arn: str, shard_id: str, start: str, end: str
    ) -> list[dict[str, Any]]:
        """Every record of the shard from `start` to `end`, as GetRecords returns them.

        StreamRangeGone when the stream no longer holds the range; other errors raise as they
        are (the caller may try again later). A range read only in part returns what was read:
        the caller compares it with what it expected.
        """
        last = _position(end)
        try:
            iterator = self._iterator(stream_arn, shard_id, "AT_SEQUENCE_NUMBER", start)
            records: list[dict[str, Any]] = []
            empty = 0
            while iterator is not None:
                page = self.client.get_records(ShardIterator=iterator, Limit=self.page_size)
                fetched = page.get("Records", [])
                for record in fetched:
                    if _position(record["dynamodb"]["SequenceNumber"]) > last:
                        return records
                    records.append(record)
                if records and _position(records[-1]["dynamodb"]["SequenceNumber"]) >= last:
                    return records
                if fetched:
                    empty = 0
                    iterator = page.get("NextShardIterator")
                    continue
                empty += 1
                if empty >= EMPTY_PAGES_MAX:
                    return records
                # DynamoDB Local's iterator after an empty page may skip records (see
                # pipeline/local/event_sources.py); a fresh one after the last record does not.
                iterator = (
                    self._iterator(
                        stream_arn,
                        shard_id,
                        "AFTER_SEQUENCE_NUMBER",
                        records[-1]["dynamodb"]["SequenceNumber"],
                    )
                    if records
                    else page.get("NextShardIterator")
                )
            return records  # a closed shard, read to its end
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in GONE_CODES:
                raise StreamRangeGone(
                    f"{exc.response['Error']['Code']}: {exc.response['Error'].get('Message', '')}"
                ) from exc
            raise

    def _iterator(self, stream_arn: str, shard_id: str, kind: str, sequence: str) -> str | None:
        response = self.client.get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=shard_id,
            ShardIteratorType=kind,
            SequenceNumber=sequence,
        )
        return response.get("ShardIterator")
