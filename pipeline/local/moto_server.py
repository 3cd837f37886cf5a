"""`python -m pipeline.local.moto_server`: moto's server with the SQS speed-ups (moto_fast),
and its KMS keys kept across restarts when given a state file (moto_kms_keep)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.local import moto_fast, moto_kms_keep
from pipeline.local.emulators import KMS_STATE_ENV

if __name__ == "__main__":
    moto_fast.apply()
    if os.environ.get(KMS_STATE_ENV):
        moto_kms_keep.apply(Path(os.environ[KMS_STATE_ENV]))
    from moto.server import main

    sys.exit(main())
