"""`python -m pipeline.local`: run template.yaml's backbone on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from pipeline.local import faults
from pipeline.local.cfn import TemplateError
from pipeline.local.emulators import REPO_ROOT, EmulatorError
from pipeline.local.runtime import (
    DEFAULT_DATA_DIR,
    DEFAULT_ENV_FILE,
    DEFAULT_PORTS,
    LocalRuntime,
    RuntimeOptions,
)

DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    result = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} takes NAME=VALUE, got {value!r}")
        result[key] = val
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.local",
        description="Run the order pipeline of template.yaml locally (no AWS account needed).",
    )
    parser.add_argument(
        "--template",
        type=Path,
        default=DEFAULT_TEMPLATE,
        help=f"the SAM template to run (default {DEFAULT_TEMPLATE})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"where tables, workflow history and stream positions live ({DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--in-memory", action="store_true", help="keep nothing on disk")
    parser.add_argument("--fresh", action="store_true", help="delete the data directory first")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=DEFAULT_ENV_FILE,
        help=f"dotenv file the portal and scripts read (default {DEFAULT_ENV_FILE})",
    )
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(
            f"--{name}-port", type=int, default=port, help=f"default {port}; 0 picks a free port"
        )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply workflow retry intervals, waits and queue redelivery delays (tests: 0.05)",
    )
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter, e.g. PaymentSuccessRate=1.0",
    )
    parser.add_argument(
        "--function-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every function, e.g. PAYMENT_RANDOM_SEED=7",
    )
    parser.add_argument(
        "--max-concurrency",
        type=_positive,
        default=None,
        metavar="N",
        help="most workers per function, pollers per queue and lanes per stream "
        "(default: twice the cores, at least 2; the template's larger figures are AWS's)",
    )
    parser.add_argument(
        "--nice",
        type=_niceness,
        default=0,
        metavar="N",
        help="run the backbone (emulators, pollers, workflows, functions) this much below "
        "normal CPU priority, 0-19, so that a portal beside it answers first (default 0; "
        "deploy.sh local uses 10)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not echo function logs")
    testing = parser.add_argument_group(
        "fault injection (resilience tests only; the deployed functions have no such switch)"
    )
    testing.add_argument(
        "--fault-rate",
        type=_rate,
        default=0.0,
        metavar="SHARE",
        help="make this share (0..1) of the functions' AWS SDK calls fail, e.g. 0.1",
    )
    testing.add_argument(
        "--fault-seed", default="0", help="seed of the fault RNG, so a run can be repeated"
    )
    testing.add_argument(
        "--fault-kinds",
        type=_kinds,
        default=faults.KINDS,
        metavar="KIND,...",
        help=f"which faults to inject (default all: {','.join(faults.KINDS)})",
    )
    testing.add_argument(
        "--fault-report-dir",
        type=Path,
        help="where each worker writes its fault counts (default: beside the data directory)",
    )
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _niceness(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= value <= 19:
        raise argparse.ArgumentTypeError(f"must be from 0 to 19, got {text}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    try:
        return faults.parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _announce(runtime: LocalRuntime, options: RuntimeOptions) -> None:
    assert runtime.result is not None
    print("\nLocal order pipeline is running. Clients need:\n")
    for key, value in runtime.client_env().items():
        print(f"  {key}={value}")
    if options.env_file:
        print(f"\n(also written to {options.env_file})")
    where = "in memory" if options.data_dir is None else str(options.data_dir)
    functions = ", ".join(f.spec.name for f in runtime.lambdas.functions())
    print(f"Data: {where}. Functions: {functions}")
    for note in runtime.result.notes:
        print(f"  note: {note}")
    for warning in runtime.warnings:
        print(f"  WARNING: {warning}")
    print("\nREADY (Ctrl-C stops everything)", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Start, print what clients need, wait for SIGINT/SIGTERM, stop everything."""
    args = parse_args(argv)
    # Before anything starts: the emulators and function workers inherit it. In AWS the
    # backbone runs on AWS's capacity; here it shares the cores with the portal, and under a
    # load the machine cannot keep up with, API requests waited behind the pipeline's backlog
    # (the steady benchmark's API p50 1,300 ms at nice 0, 136 ms at nice 10, in the same hour;
    # the backlog drained no later).
    if args.nice:
        os.nice(args.nice)
    if not args.template.is_file():
        print(f"error: no template at {args.template}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = RuntimeOptions(
        template=args.template,
        data_dir=None if args.in_memory else args.data_dir,
        fresh=args.fresh,
        env_file=args.env_file,
        ports={name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS},
        time_scale=args.time_scale,
        parameters=_pairs(args.parameter, "--parameter"),
        function_env=_pairs(args.function_env, "--function-env"),
        echo_function_logs=not args.quiet,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
        fault_kinds=args.fault_kinds,
        fault_report_dir=args.fault_report_dir,
        max_concurrency=args.max_concurrency,
    )
    runtime = LocalRuntime(options)

    def shutdown(signum: int, _frame: object) -> None:
        print(f"\n{signal.Signals(signum).name}: stopping the local runtime...", flush=True)
        runtime.request_stop()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        runtime.start()
    except (TemplateError, EmulatorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        _announce(runtime, options)
        runtime.wait()
    finally:
        runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
