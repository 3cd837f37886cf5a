"""Zappa's hooks for the portal (zappa_settings.json): static files before packaging, checks after.

`zappa package|deploy|update <stage>` calls them from the activated virtualenv: `collect_static`
as its prebuild_script, `check_package` as its zip callback (before anything is uploaded).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# zappa_settings.json's stand-in for PortalTasksQueue's ARN, until scripts/portal_stack_env.py
# writes the stack's (the ARN names the account, which no file in the repository should).
UNSET_QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:portal-tasks-queue-unset"


def collect_static() -> None:
    """Zappa's prebuild_script: collectstatic with the production settings, so the package
    carries the hashed, compressed files WhiteNoise serves in Lambda (a stale or missing
    staticfiles/ would make every admin page fail on its manifest)."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="portal.settings.production")
    # Production refuses to start without these; collectstatic reads no database or secret,
    # and values set by the caller are kept.
    env.setdefault("DJANGO_SECRET_KEY", "build-only-" + os.urandom(24).hex())
    env.setdefault("DATABASE_URL", "sqlite:////tmp/portal-build-unused.sqlite3")
    env.setdefault("DJANGO_ALLOWED_HOSTS", "build.invalid")
    print("collectstatic (portal.settings.production) into staticfiles/", flush=True)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--clear", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def _checker() -> Any:
    # Loaded by path: Zappa imports this file on its own, without scripts/ on sys.path.
    spec = importlib.util.spec_from_file_location(
        "check_portal_package", ROOT / "scripts" / "check_portal_package.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_package(zappa_cli: Any) -> None:
    """Zappa's zip callback: refuse a package over Lambda's 250 MB unzipped, missing what the
    portal needs or shipping what it must not (scripts/check_portal_package.py's listing
    checks), and a deploy whose tasks queue ARN was never written."""
    zip_path = Path(zappa_cli.zip_path)
    problems = list(_checker().check(zip_path))
    if getattr(zappa_cli, "command", None) in ("deploy", "update"):
        for event in zappa_cli.stage_config.get("events", []):
            if event.get("event_source", {}).get("arn") == UNSET_QUEUE_ARN:
                problems.append(
                    "the tasks queue's ARN is still the placeholder: run "
                    "`python scripts/portal_stack_env.py <stage> --stack <stack> --write` first"
                )
    if problems:
        from click import ClickException  # Zappa's own CLI library: it prints and exits 1

        raise ClickException("the portal package is not fit to deploy:\n  " + "\n  ".join(problems))
    print(f"package checked: {zip_path.stat().st_size / 2**20:.1f} MiB zipped", flush=True)
