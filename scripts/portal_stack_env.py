#!/usr/bin/env python
"""Wire the portal's Zappa stage to the SAM stack: its Outputs become the stage's environment.

    python scripts/portal_stack_env.py dev --stack ServerlessOrderProcessing          # print
    python scripts/portal_stack_env.py dev --stack ServerlessOrderProcessing --write  # and save

--write stores them in zappa_settings.json's `aws_environment_variables` for the stage, and
the stack's PortalRoleArn as the stage's `role_arn` (the stage has `manage_roles: false`: the
portal runs on the template's role, not one Zappa makes); the next `zappa deploy/update
<stage>` sets them on the function (Zappa keeps variables set on the function by other means,
such as DJANGO_SECRET_KEY, DATABASE_URL and REDIS_URL). It also points the stage's SQS event
source (portal/lambda_tasks.py) at the stack's PortalTasksQueueArn.

    python scripts/portal_stack_env.py prod --allowed-hosts abc1.execute-api.us-east-1.amazonaws.com

sets the stage's DJANGO_ALLOWED_HOSTS (production settings refuse to start without it) and
prints `changed` or `unchanged`; deploy.sh does it once `zappa deploy` has made the API.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import STACK_OUTPUT_ENV  # noqa: E402 (after the path is set)


def stack_env(outputs: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The environment variables the portal reads, from CloudFormation's Outputs list."""
    by_key = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    missing = sorted(set(STACK_OUTPUT_ENV) - set(by_key))
    if missing:
        raise SystemExit(f"the stack has no output(s) {', '.join(missing)}: is it this template's?")
    return {env: by_key[output] for output, env in STACK_OUTPUT_ENV.items()}


# The stack output naming the portal's role (template.yaml's PortalRole).
ROLE_OUTPUT = "PortalRoleArn"


def stack_role(outputs: Iterable[Mapping[str, str]]) -> str:
    """The portal's role ARN from CloudFormation's Outputs list."""
    for output in outputs:
        if output["OutputKey"] == ROLE_OUTPUT:
            return output["OutputValue"]
    raise SystemExit(f"the stack has no output {ROLE_OUTPUT}: deploy this template's stack first")


def write_stage_role(settings_path: Path, stage: str, role_arn: str) -> None:
    """Make the stage run on `role_arn` (and never let Zappa make or change a role)."""
    settings = json.loads(settings_path.read_text())
    if stage not in settings:
        raise SystemExit(f"no stage {stage!r} in {settings_path}")
    settings[stage]["manage_roles"] = False
    settings[stage]["role_arn"] = role_arn
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")


def write_stage_hosts(settings_path: Path, stage: str, hosts: str) -> bool:
    """Set the stage's DJANGO_ALLOWED_HOSTS; True when that changed it."""
    settings = json.loads(settings_path.read_text())
    if stage not in settings:
        raise SystemExit(f"no stage {stage!r} in {settings_path}")
    current = settings[stage].get("aws_environment_variables", {})
    if current.get("DJANGO_ALLOWED_HOSTS") == hosts:
        return False
    write_stage_env(settings_path, stage, {"DJANGO_ALLOWED_HOSTS": hosts})
    return True


# The stack output naming the portal's tasks queue, and the function Zappa wires to it.
TASKS_QUEUE_OUTPUT = "PortalTasksQueueArn"
TASKS_HANDLER = "portal.lambda_tasks.handler"


def stack_tasks_queue(outputs: Iterable[Mapping[str, str]]) -> str:
    """The tasks queue's ARN from CloudFormation's Outputs list."""
    for output in outputs:
        if output["OutputKey"] == TASKS_QUEUE_OUTPUT:
            return output["OutputValue"]
    raise SystemExit(f"the stack has no output {TASKS_QUEUE_OUTPUT}: deploy this template first")


def write_stage_tasks_queue(settings_path: Path, stage: str, queue_arn: str) -> None:
    """Point the stage's SQS event source (the tasks bridge) at `queue_arn`.

    Zappa bakes the ARN into the package (its AWS_EVENT_MAPPING routes each record to its
    function) and creates the event source mapping from it, so it must be the stack's own.
    A stage that extends another gets the events as its own: Zappa merges stages shallowly.
    """
    settings = json.loads(settings_path.read_text())
    if stage not in settings:
        raise SystemExit(f"no stage {stage!r} in {settings_path}")
    own = settings[stage]
    base = settings.get(own.get("extends", ""), {})
    events = json.loads(json.dumps(own.get("events", base.get("events", []))))
    sources = [e for e in events if e.get("function") == TASKS_HANDLER and "event_source" in e]
    if not sources:
        raise SystemExit(f"stage {stage!r} has no event source for {TASKS_HANDLER}")
    for event in sources:
        event["event_source"]["arn"] = queue_arn
    own["events"] = events
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")


def write_stage_env(settings_path: Path, stage: str, env: Mapping[str, str]) -> None:
    """Set the stage's aws_environment_variables in zappa_settings.json, keeping the rest."""
    settings = json.loads(settings_path.read_text())
    if stage not in settings:
        raise SystemExit(f"no stage {stage!r} in {settings_path}")
    current = settings[stage].get("aws_environment_variables", {})
    settings[stage]["aws_environment_variables"] = {**current, **env}
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Read the stack's outputs and print (or write) the stage's environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="the zappa_settings.json stage, e.g. dev or prod")
    parser.add_argument("--stack", help="the SAM stack's name")
    parser.add_argument(
        "--allowed-hosts", help="set the stage's DJANGO_ALLOWED_HOSTS (comma-separated) only"
    )
    parser.add_argument("--write", action="store_true", help="save into zappa_settings.json")
    parser.add_argument(
        "--shell", action="store_true", help="print `export NAME=value` lines for a shell"
    )
    args = parser.parse_args(argv)
    if args.allowed_hosts is not None:
        changed = write_stage_hosts(ROOT / "zappa_settings.json", args.stage, args.allowed_hosts)
        print("changed" if changed else "unchanged")
        return 0
    if not args.stack:
        parser.error("--stack is required")

    from pipeline import aws

    stacks = aws.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
    outputs = stacks[0].get("Outputs", [])
    env = stack_env(outputs)
    if args.shell:
        print("\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items()))
        return 0
    print(json.dumps(env, indent=2))
    if args.write:
        role_arn = stack_role(outputs)  # before writing anything: a stack without it is refused
        queue_arn = stack_tasks_queue(outputs)
        write_stage_env(ROOT / "zappa_settings.json", args.stage, env)
        write_stage_role(ROOT / "zappa_settings.json", args.stage, role_arn)
        write_stage_tasks_queue(ROOT / "zappa_settings.json", args.stage, queue_arn)
        print(
            f"written to zappa_settings.json [{args.stage}]: aws_environment_variables, role_arn, "
            "the tasks queue's event source"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
