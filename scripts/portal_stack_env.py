#!/usr/bin/env python
"""Wire the portal's Zappa stage to the SAM stack: its Outputs become the stage's environment.

    python scripts/portal_stack_env.py dev --stack ServerlessOrderProcessing          # print
    python scripts/portal_stack_env.py dev --stack ServerlessOrderProcessing --write  # and save

--write stores them in zappa_settings.json's `aws_environment_variables` for the stage; the
next `zappa deploy/update <stage>` sets them on the function (Zappa keeps variables set on the
function by other means, such as DJANGO_SECRET_KEY, DATABASE_URL and REDIS_URL).
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
    parser.add_argument("--stack", required=True, help="the SAM stack's name")
    parser.add_argument("--write", action="store_true", help="save into zappa_settings.json")
    parser.add_argument(
        "--shell", action="store_true", help="print `export NAME=value` lines for a shell"
    )
    args = parser.parse_args(argv)

    from pipeline import aws

    stacks = aws.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
    env = stack_env(stacks[0].get("Outputs", []))
    if args.shell:
        print("\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items()))
        return 0
    print(json.dumps(env, indent=2))
    if args.write:
        write_stage_env(ROOT / "zappa_settings.json", args.stage, env)
        print(f"written to zappa_settings.json [{args.stage}].aws_environment_variables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
