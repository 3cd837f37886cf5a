"""The local moto server keeps its KMS keys across restarts when given a state file: what a
key encrypted before a restart decrypts after it (webhook secrets stored in DynamoDB Local)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline import aws
from pipeline.local.emulators import (
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    free_port,
    moto_server,
)

CONTEXT = {"EndpointId": "sub-1"}


@contextmanager
def _kms(state: Path | None) -> Iterator[Any]:
    """A KMS client of a moto server of its own, started with `state` and stopped after."""
    server = moto_server(free_port(), kms_state=state)
    server.start()
    try:
        yield aws.new_client(
            "kms", endpoint_url=server.url, region=LOCAL_REGION, credentials=LOCAL_CREDENTIALS
        )
    finally:
        server.stop()


def _create(kms: Any, description: str) -> str:
    return kms.create_key(Description=description)["KeyMetadata"]["KeyId"]


def test_a_key_made_again_after_a_restart_decrypts_what_it_encrypted_before(
    tmp_path: Path,
) -> None:
    # Given a moto server with a state file, whose key encrypted a secret
    state = tmp_path / "kms-keys.json"
    with _kms(state) as kms:
        key_id = _create(kms, "WebhookSecretsKey")
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"whsec_1", EncryptionContext=CONTEXT)[
            "CiphertextBlob"
        ]

    # When a new moto server (a restart) is asked for the key of the same description again
    with _kms(state) as kms:
        again = _create(kms, "WebhookSecretsKey")
        other = _create(kms, "AnotherKey")
        plain = kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT)["Plaintext"]
        described = kms.describe_key(KeyId=again)["KeyMetadata"]

    # Then it is the same key: same id and ARN, and the old ciphertext decrypts; a key of
    # another description is a key of its own; only the owner can read the file
    assert again == key_id
    assert described["Arn"].endswith(f":key/{key_id}")
    assert plain == b"whsec_1"
    assert other != key_id
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_without_a_state_file_a_restart_makes_a_new_key(tmp_path: Path) -> None:
    # Given a moto server without a state file (an in-memory runtime), whose key encrypted
    with _kms(None) as kms:
        key_id = _create(kms, "WebhookSecretsKey")

    # When another one is asked for the key of the same description
    with _kms(None) as kms:
        again = _create(kms, "WebhookSecretsKey")

    # Then it is another key, as moto makes them
    assert again != key_id
