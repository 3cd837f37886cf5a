"""`zappa package dev` builds offline (no AWS) with python3.12 binaries, and the app loads."""

from __future__ import annotations

import json
import os
import subprocess
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
