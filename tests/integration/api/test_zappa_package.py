"""`zappa package dev` builds offline (no AWS) with python3.12 binaries, and the app loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline.config import STACK_OUTPUT_ENV
from pipeline.local.emulators import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTINGS = json.loads((REPO_ROOT / "zappa_settings.json").read_text())


def test_stages_run_python312_with_the_production_settings():
    # Given zappa_settings.json, Then dev and prod exist, and prod inherits dev's build
    assert {"dev", "prod"} <= set(SETTINGS)
    dev, prod = SETTINGS["dev"], SETTINGS["prod"]
    assert dev["runtime"] == "python3.12"
    assert dev["django_settings"] == "portal.settings.production"
    assert prod["extends"] == "dev"
    # And the function's name is the one template.yaml's errors alarm watches
    assert f"{dev['project_name']}-prod" == "order-portal-prod"
    assert "order-portal-prod" in (REPO_ROOT / "template.yaml").read_text()


def test_stack_outputs_become_the_stage_environment(tmp_path: Path):
    # Given the stack's outputs as CloudFormation lists them
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "portal_stack_env", REPO_ROOT / "scripts" / "portal_stack_env.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outputs = [{"OutputKey": key, "OutputValue": f"value-of-{key}"} for key in STACK_OUTPUT_ENV]
    outputs.append({"OutputKey": "OrdersTableStreamArn", "OutputValue": "ignored"})

    # When they are turned into the portal's environment and written for a stage
    env = module.stack_env(outputs)
    settings_file = tmp_path / "zappa_settings.json"
    settings_file.write_text(json.dumps(SETTINGS))
    module.write_stage_env(settings_file, "prod", env)

    # Then every variable the pipeline reads is set from its output, on that stage only
    assert env["ORDERS_TABLE_NAME"] == "value-of-OrdersTableName"
    assert env["STATE_MACHINE_ARN"] == "value-of-OrderWorkflowArn"
    assert set(env) == set(STACK_OUTPUT_ENV.values())
    written = json.loads(settings_file.read_text())
    assert written["prod"]["aws_environment_variables"] == env
    assert written["dev"] == SETTINGS["dev"]


def test_the_stacks_tasks_queue_becomes_the_stages_sqs_event_source(tmp_path: Path):
    # Given zappa_settings.json and a stack's PortalTasksQueueArn
    module = _portal_stack_env()
    arn = "arn:aws:sqs:us-east-1:123456789012:Stack-PortalTasksQueue-ABC"
    outputs = [{"OutputKey": "PortalTasksQueueArn", "OutputValue": arn}]
    settings_file = tmp_path / "zappa_settings.json"
    settings_file.write_text(json.dumps(SETTINGS))

    # When it is written for prod (which extends dev)
    module.write_stage_tasks_queue(settings_file, "prod", module.stack_tasks_queue(outputs))

    # Then prod's own events point the bridge's event source at it, its schedules unchanged,
    # and dev is left as it was
    written = json.loads(settings_file.read_text())
    (source,) = [e for e in written["prod"]["events"] if "event_source" in e]
    assert source["function"] == "portal.lambda_tasks.handler"
    assert source["event_source"] == {**_dev_source()["event_source"], "arn": arn}
    schedules = [e for e in written["prod"]["events"] if "expression" in e]
    assert schedules == [e for e in SETTINGS["dev"]["events"] if "expression" in e]
    assert written["dev"] == SETTINGS["dev"]


def _dev_source() -> dict:
    (source,) = [e for e in SETTINGS["dev"]["events"] if "event_source" in e]
    return source


def _portal_stack_env():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "portal_stack_env", REPO_ROOT / "scripts" / "portal_stack_env.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zappa_package_dev_builds_offline_with_cp312_binaries(tmp_path: Path):
    # Given no AWS credentials or profile of the developer's
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    output = tmp_path / "portal-dev.zip"

    # When the documented build runs (scripts/build_portal_package.sh)
    result = subprocess.run(
        ["bash", "scripts/build_portal_package.sh", "dev", str(output)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )

    # Then it succeeded, and its own check found cp312 binaries and an app that loads
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    summary = json.loads(result.stdout[result.stdout.rindex("{\n") :])
    assert summary["problems"] == []
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
    assert any(n.endswith(".cpython-312-x86_64-linux-gnu.so") for n in names)
    assert not any(".cpython-311-" in n for n in names)


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 12),
    reason="zappa package ships this virtualenv's binaries, and Lambda runs Python 3.12",
)
def test_plain_zappa_package_from_the_project_virtualenv_fits_lambda_and_loads(tmp_path: Path):
    # Given the project's own virtualenv (dev tools and all), activated as Zappa's users
    # activate it, and no AWS account: fake credentials, every endpoint a closed local port
    venv = Path(sys.prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        AWS_ACCESS_KEY_ID="package-only",
        AWS_SECRET_ACCESS_KEY="package-only",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_EC2_METADATA_DISABLED="true",
    )
    output = tmp_path / "portal-dev.zip"

    # When `zappa package dev` runs, plainly (its prebuild collects the static files, its zip
    # callback runs check_portal_package's listing checks)
    result = subprocess.run(
        [str(venv / "bin" / "zappa"), "package", "dev", "-o", str(output)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "package checked" in result.stdout + result.stderr

    # Then the whole check passes: under Lambda's 250 MB unzipped, nothing of the dev tools,
    # and the WSGI app and the tasks bridge load from the zip under a bare Python 3.12
    check = subprocess.run(
        [sys.executable, "scripts/check_portal_package.py", str(output),
         "--python", sys._base_executable, "--sdk-from", str(venv)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    summary = json.loads(check.stdout[check.stdout.rindex("{\n") :])
    assert check.returncode == 0 and summary["problems"] == [], summary
    assert summary["unzipped_mib"] < 250
    with zipfile.ZipFile(output) as archive:
        names = set(archive.namelist())
    assert "portal/lambda_tasks.py" in names
    assert not any(n.startswith(("playwright/", "moto/", "cfnlint/", "sympy/")) for n in names)
