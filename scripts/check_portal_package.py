#!/usr/bin/env python
"""Check a `zappa package` zip of the portal: cp312 binaries, contents, and a WSGI app that loads.

    python scripts/check_portal_package.py build/portal-dev.zip --python python3.12 \
        --sdk-from .venv-zappa

The import check unpacks the zip and starts Django from it with a bare Python 3.12 and only the
AWS SDK packages that Lambda's runtime provides (Zappa leaves them out of the zip).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# What Lambda's python3.12 runtime ships, and Zappa therefore excludes.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "dateutil")
REQUIRED = (
    "zappa_settings.py",
    "handler.py",
    "manage.py",
    "portal/settings/production.py",
    "portal/wsgi.py",
    "orders_api/views.py",
    "orders_api/migrations/0001_initial.py",
    "pipeline/orders.py",
    "django/__init__.py",
    "rest_framework/__init__.py",
    "rest_framework_api_key/__init__.py",
    "drf_spectacular_sidecar/__init__.py",
    "whitenoise/__init__.py",
    "redis/__init__.py",
    "psycopg/__init__.py",
    "staticfiles/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
)
FORBIDDEN_PREFIXES = (
    "tests/",
    "pipeline/local/",
    "lambdas/",
    ".venv",
    "node_modules/",
    ".git/",
    ".local/",
    "moto/",
    "pytest/",
    "_pytest/",
    "playwright/",
    "cfnlint/",
    "samtranslator/",
    "sympy/",
    "networkx/",
    "hypothesis/",
    "schemathesis/",
)
EXTENSION = re.compile(r"\.(cpython-(\d+)[^/]*|abi3)\.so$")


def check(zip_path: Path) -> list[str]:
    """Every problem found in the zip's listing (empty: fine)."""
    problems = []
    with zipfile.ZipFile(zip_path) as archive:
        infos = archive.infolist()
        names = {info.filename for info in infos}
        settings_text = (
            archive.read("zappa_settings.py").decode() if "zappa_settings.py" in names else ""
        )
    problems += [f"missing {name}" for name in REQUIRED if name not in names]
    problems += [
        f"should not be shipped: {name}"
        for name in sorted(names)
        if name.startswith(FORBIDDEN_PREFIXES)
    ][:20]
    abis = {m.group(2) for name in names if (m := EXTENSION.search(name)) and m.group(2)}
    if not abis:
        problems.append("no compiled extension found (psycopg-binary should bring some)")
    elif abis != {"312"}:
        problems.append(f"compiled for CPython {sorted(abis)}, Lambda runs 3.12 only")
    if "portal.settings.production" not in settings_text:
        problems.append("zappa_settings.py does not name portal.settings.production")
    unzipped = sum(info.file_size for info in infos)
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        problems.append(f"{unzipped / 2**20:.0f} MiB unzipped: over Lambda's 250 MiB")
    return problems


def import_check(zip_path: Path, python: str, sdk_from: Path | None) -> str | None:
    """Start Django from the unpacked zip; None if the WSGI app and URLs load."""
    with tempfile.TemporaryDirectory(prefix="portal-package-") as tmp:
        root = Path(tmp) / "task"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(root)
        paths = [str(root)]
        if sdk_from is not None:
            sdk = Path(tmp) / "runtime-sdk"
            sdk.mkdir()
            site = next(sdk_from.resolve().glob("lib/python3.12/site-packages"))
            for name in RUNTIME_SDK:
                if (site / name).exists():
                    (sdk / name).symlink_to(site / name)
            paths.append(str(sdk))
        code = (
            "import django, sys; django.setup(); "
            "from portal.wsgi import application; from django.urls import resolve; "
            "resolve('/submitorder'); resolve('/api/docs/'); "
            "import orders_api.views, pipeline.wiring; "
            # The tasks bridge, on the SQS broker it runs with in AWS (kombu's transport
            # publishes with boto3: no pycurl).
            "import portal.lambda_tasks, kombu.transport.SQS; from portal.celery import app; "
            "assert app.conf.broker_url == 'sqs://', app.conf.broker_url; "
            "print('ok', sys.version.split()[0])"
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(paths),
            "DJANGO_SETTINGS_MODULE": "portal.settings.production",
            "DJANGO_SECRET_KEY": "check-only-" + "x" * 50,
            "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",
            "DJANGO_ALLOWED_HOSTS": "check.invalid",
            "PORTAL_TASKS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/check",
            "AWS_DEFAULT_REGION": "us-east-1",
            # As in Lambda: the settings then load the X-Ray middleware and its SDK patches.
            "AWS_LAMBDA_FUNCTION_NAME": "order-portal-check",
        }
        # -I: nothing from the user's site-packages, only the zip and the runtime's SDK.
        result = subprocess.run(
            [python, "-I", "-c", f"import sys; sys.path[:0] = {paths!r}; {code}"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0 or not result.stdout.startswith("ok 3.12"):
            return (result.stdout + result.stderr)[-3000:]
    return None


def main(argv: list[str] | None = None) -> int:
    """Check the zip; print a summary; exit 1 on any problem."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zip", type=Path)
    parser.add_argument("--python", default="python3.12", help="a bare Python 3.12")
    parser.add_argument("--sdk-from", type=Path, help="virtualenv to take boto3/botocore from")
    args = parser.parse_args(argv)
    problems = check(args.zip)
    failure = import_check(args.zip, args.python, args.sdk_from) if not problems else None
    if failure:
        problems.append("the WSGI app does not load from the package:\n" + failure)
    with zipfile.ZipFile(args.zip) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
        count = len(archive.infolist())
    summary = {
        "zip": str(args.zip),
        "zipped_mib": round(args.zip.stat().st_size / 2**20, 1),
        "unzipped_mib": round(unzipped / 2**20, 1),
        "files": count,
        "problems": problems,
    }
    print(json.dumps(summary, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
