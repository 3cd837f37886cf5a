"""The local moto server's KMS keys, kept across restarts of the local runtime.

moto keeps KMS keys in memory and makes each key with a random id and random material. The
local runtime creates the template's keys at every start, so without this the webhook secrets
stored in DynamoDB Local (which does keep its data) could not be decrypted after a restart.
moto 5.2 cannot import key material or take a key id, so the moto server this project starts
(pipeline/local/moto_server.py) is given a state file: the first CreateKey for an account,
region and description records the key's id and material there, and a later CreateKey for
the same description, in a later moto process, gets them back.

The material lies in the local data directory, next to the data it protects: the local KMS
stands in for the API, not for the secrecy of a laptop's files (the file is made readable by
its owner only). Keys with tags, other key specs or no description are left as moto made them.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

from pipeline.local.emulators import read_json_object, write_json_object


def apply(state_file: Path) -> None:
    """Make moto's CreateKey reuse the id and material `state_file` holds for a description."""
    from moto.kms import models

    original = models.KmsBackend.create_key
    lock = threading.Lock()

    def create_key(self: Any, policy: Any, key_usage: Any, key_spec: Any, description: Any,
                   tags: Any, *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        key = original(self, policy, key_usage, key_spec, description, tags, *args, **kwargs)
        if tags or not description or key.key_spec != "SYMMETRIC_DEFAULT" or key.multi_region:
            return key
        name = f"{self.account_id}/{self.region_name}/{description}"
        with lock:
            state = read_json_object(state_file)
            kept = state.get(name)
            if kept is None or kept["KeyId"] in self.keys:
                state[name] = {
                    "KeyId": key.id,
                    "Material": base64.b64encode(key.key_material).decode("ascii"),
                }
                state_file.parent.mkdir(parents=True, exist_ok=True)
                write_json_object(state_file, state, private=True)
                return key
            # The key this description had before the restart: same id, same material.
            del self.keys[key.id]
            key.arn = key.arn.replace(key.id, kept["KeyId"])
            key.id = kept["KeyId"]
            key.key_material = base64.b64decode(kept["Material"])
            self.keys[key.id] = key
        return key

    models.KmsBackend.create_key = create_key
