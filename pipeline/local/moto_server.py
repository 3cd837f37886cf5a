"""`python -m pipeline.local.moto_server`: moto's server with the SQS speed-ups (moto_fast)."""

from __future__ import annotations

import sys

from pipeline.local import moto_fast

if __name__ == "__main__":
    moto_fast.apply()
    from moto.server import main

    sys.exit(main())
