"""scripts/portal_stack_env.py: the stack's role and the API's host reach the Zappa stage."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/stack-PortalRole-ABC"


@pytest.fixture(scope="module")
def script() -> Any:
    """The script, loaded as a module."""
    spec = importlib.util.spec_from_file_location(
        "portal_stack_env", REPO_ROOT / "scripts" / "portal_stack_env.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    """A copy of zappa_settings.json to write into."""
    target = tmp_path / "zappa_settings.json"
    target.write_text((REPO_ROOT / "zappa_settings.json").read_text())
    return target


def test_the_stacks_role_becomes_the_stages_role(script: Any, settings_file: Path) -> None:
    # Given the stack's outputs, PortalRoleArn among them
    outputs = [
        {"OutputKey": "OrdersTableName", "OutputValue": "orders"},
        {"OutputKey": "PortalRoleArn", "OutputValue": ROLE},
    ]
    # When the role is written for prod
    script.write_stage_role(settings_file, "prod", script.stack_role(outputs))
    # Then prod runs on it, Zappa manages no role, and dev is untouched
    written = json.loads(settings_file.read_text())
    assert written["prod"]["role_arn"] == ROLE
    assert written["prod"]["manage_roles"] is False
    assert "role_arn" not in written["dev"]


def test_a_stack_without_the_role_is_refused(script: Any) -> None:
    with pytest.raises(SystemExit, match="PortalRoleArn"):
        script.stack_role([{"OutputKey": "OrdersTableName", "OutputValue": "orders"}])


def test_the_hosts_are_written_once_and_say_whether_they_changed(
    script: Any, settings_file: Path
) -> None:
    host = "abc123.execute-api.us-east-1.amazonaws.com"
    assert script.write_stage_hosts(settings_file, "prod", host) is True
    assert script.write_stage_hosts(settings_file, "prod", host) is False
    env = json.loads(settings_file.read_text())["prod"]["aws_environment_variables"]
    assert env["DJANGO_ALLOWED_HOSTS"] == host
