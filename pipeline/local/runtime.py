"""The local runtime: emulators, the template's resources, functions, pollers and workflow."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from pipeline import aws
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.sqs import SqsQueue
from pipeline.adapters.stepfunctions import FulfilmentWorkflow
from pipeline.config import (
    ENV_INVENTORY_TABLE,
    ENV_ORDERS_QUEUE_URL,
    ENV_ORDERS_TABLE,
    ENV_STATE_MACHINE_ARN,
    STACK_OUTPUT_ENV,
)
from pipeline.fulfilment import fulfilment_requeue_stranded
from pipeline.local import faults
from pipeline.local.cfn import load_template, sam_to_cloudformation
from pipeline.local.emulators import (
    LOCAL_ACCOUNT_ID,
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    LOCK_FILE,
    OWNER_ENV,
    PID_FILE,
    REPO_ROOT,
    Emulator,
    JavaMissing,
    PidFile,
    Watchdog,
    dynamodb_local,
    free_port,
    moto_dynamodb_fallback_warning,
    moto_server,
    owner_token,
)
from pipeline.local.envfile import write_env_file
from pipeline.local.event_sources import Checkpoints, MappingSpec, QueuePoller, StreamPoller
from pipeline.local.lambda_api import LambdaApiServer
from pipeline.local.lambdas import FunctionError, LambdaService, LocalFunction
from pipeline.local.provisioner import Provisioner, ProvisionResult
from pipeline.local.stepfunctions.asl import TaskFailure
from pipeline.local.stepfunctions.server import StepFunctionsServer
from pipeline.local.telemetry import AlarmEvaluator, FunctionLogs, MetricsPublisher

log = logging.getLogger("pipeline.local")

DEFAULT_PORTS = {"moto": 4566, "dynamodb": 4567, "stepfunctions": 4568, "lambda": 4569}
DEFAULT_DATA_DIR = REPO_ROOT / ".local" / "data"
DEFAULT_ENV_FILE = REPO_ROOT / ".local" / "pipeline.env"
# The CPU priority (`nice`) deploy.sh local and the benchmark give the backbone beside the
# portal: `python -m pipeline.local --nice`.
BACKBONE_NICE = 10
DEFAULT_STACK_NAME = "orders-local"


@dataclass
class RuntimeOptions:
    """How to run; the defaults are what `python -m pipeline.local` uses."""

    template: Path = REPO_ROOT / "template.yaml"
    data_dir: Path | None = DEFAULT_DATA_DIR  # None: everything in memory
    fresh: bool = False
    env_file: Path | None = DEFAULT_ENV_FILE
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    time_scale: float = 1.0
    parameters: dict[str, str] = field(default_factory=dict)
    function_env: dict[str, str] = field(default_factory=dict)
    stack_name: str = DEFAULT_STACK_NAME
    console: TextIO | None = sys.stdout
    echo_function_logs: bool = True
    # Tests of resilience only (pipeline/local/faults.py): this share of the functions' AWS
    # calls fails; each worker writes its counts to fault_report_dir (default: beside the data,
    # or a temporary directory when in memory).
    fault_rate: float = 0.0
    fault_seed: str = "0"
    fault_kinds: tuple[str, ...] = faults.KINDS
    fault_report_dir: Path | None = None
    # At most this many workers per function, pollers per queue mapping and lanes per stream
    # mapping (the template's larger figures are AWS's, on AWS's capacity; here every worker
    # shares this machine's cores). None: local_concurrency() workers and pollers, and each
    # stream mapping's own ParallelizationFactor (see LocalRuntime.stream_lanes).
    max_concurrency: int | None = None


def local_concurrency(cores: int | None = None) -> int:
    """The default cap: twice the cores, at least 2. On a CPU-bound 2-core machine, 8 workers a
    function gave no more throughput than 4 and paid 4 more cold starts (about half a second of
    CPU each) whenever a burst scaled them out."""
    return max(2, 2 * (cores or os.cpu_count() or 1))


class LocalRuntime:
    """Runs template.yaml's backbone on 127.0.0.1 until stopped."""

    def __init__(self, options: RuntimeOptions):
        self.options = options
        self._emulators: list[Emulator] = []
        self._stop = threading.Event()
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self.lambdas = LambdaService()
        self.sfn: StepFunctionsServer | None = None
        self.lambda_api: LambdaApiServer | None = None
        self.alarms: AlarmEvaluator | None = None
        self.metrics: MetricsPublisher | None = None
        self.logs: FunctionLogs | None = None
        self.result: ProvisionResult | None = None
        self.endpoints: dict[str, str] = {}
        self.warnings: list[str] = []
        self.fault_report_dir: Path | None = None
        self._watchdog = Watchdog()
        self._pid_file: PidFile | None = None
        self._functions_ready = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything; return once the pipeline is ready for orders."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        opts = self.options
        data_dir = opts.data_dir
        if data_dir is not None:
            # First of all: a runtime may still use this directory (refused), or one that was
            # killed may have left processes holding its ports and files (stopped now).
            self._pid_file = PidFile(data_dir)
            reclaimed = self._pid_file.claim()
            if reclaimed:
                self._say(
                    f"stopped {len(reclaimed)} process(es) an earlier runtime on {data_dir} left "
                    f"running: {reclaimed}"
                )
            if opts.fresh:
                # The lock and pid file are this runtime's now (a new lock file is not locked).
                _empty_keeping(data_dir, {LOCK_FILE, PID_FILE})
        self._watchdog.start(owner_token())
        log_dir = (data_dir.parent / "logs") if data_dir else None
        ports = {k: (p or free_port()) for k, p in {**DEFAULT_PORTS, **opts.ports}.items()}

        moto = moto_server(
            ports["moto"],
            log_dir / "moto.log" if log_dir else None,
            kms_state=data_dir / "kms-keys.json" if data_dir else None,
        )
        self._emulators.append(moto)  # before start(): stop() then stops one that half started
        moto.start()
        self._started(moto)
        try:
            ddb = dynamodb_local(
                ports["dynamodb"],
                data_dir / "dynamodb" if data_dir else None,
                log_dir / "dynamodb-local.log" if log_dir else None,
            )
            self._emulators.append(ddb)
            ddb.start()
            self._started(ddb)
            dynamodb_url = ddb.url
        except JavaMissing:
            warning = moto_dynamodb_fallback_warning()
            self.warnings.append(warning)
            self._say("!" * 78 + "\n" + warning + "\n" + "!" * 78)
            dynamodb_url = moto.url

        self.endpoints = {
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": dynamodb_url,
            "AWS_ENDPOINT_URL_SFN": f"http://127.0.0.1:{ports['stepfunctions']}",
            "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{ports['lambda']}",
        }
        clients = {
            "dynamodb": self._client("dynamodb", dynamodb_url),
            "dynamodbstreams": self._client("dynamodbstreams", dynamodb_url),
            "sqs": self._client("sqs", moto.url),
            "logs": self._client("logs", moto.url),
            "sns": self._client("sns", moto.url),
            "kms": self._client("kms", moto.url),
            "cloudwatch": self._client("cloudwatch", moto.url),
            "stepfunctions": self._client("stepfunctions", self.endpoints["AWS_ENDPOINT_URL_SFN"]),
        }
        self.metrics = MetricsPublisher(clients["cloudwatch"])
        console = opts.console if opts.echo_function_logs else None
        self.logs = FunctionLogs(log_dir / "functions" if log_dir else None, self.metrics, console)

        self.sfn = StepFunctionsServer(
            invoke=self._invoke_task,
            port=ports["stepfunctions"],
            db_path=(data_dir / "stepfunctions.sqlite3") if data_dir else None,
            time_scale=opts.time_scale,
            region=LOCAL_REGION,
            account_id=LOCAL_ACCOUNT_ID,
            on_execution_finished=self._execution_finished,
        )
        self.sfn.start()

        template = load_template(opts.template)
        cfn, code_dirs = sam_to_cloudformation(
            template,
            root=opts.template.parent,
            region=LOCAL_REGION,
            account_id=LOCAL_ACCOUNT_ID,
            stack_name=opts.stack_name,
        )
        provisioner = Provisioner(
            cfn,
            code_dirs,
            stack_name=opts.stack_name,
            region=LOCAL_REGION,
            account_id=LOCAL_ACCOUNT_ID,
            parameters=opts.parameters,
            clients=clients,
        )
        self.result = provisioner.provision()

        base_env = {**self._function_base_env(), **self._fault_env()}
        cap = self.concurrency_cap
        reserved = {
            spec.arn: spec.reserved_concurrency
            for spec in self.result.functions
            if spec.reserved_concurrency is not None
        }
        lanes = self.stream_lanes(self.result.mappings, reserved)
        for spec in self.result.functions:
            spec.environment.update(opts.function_env)
            workers = self.function_workers(
                spec.max_concurrency, lanes.get(spec.arn, 0), spec.reserved_concurrency
            )
            local_spec = replace(spec, max_concurrency=workers)
            function = LocalFunction(
                local_spec, base_env, log=self.logs, observe=self._invocation_observed
            )
            self.lambdas.add(function)
            threading.Thread(target=function.prewarm, daemon=True).start()
        self._functions_ready.set()

        self.lambda_api = LambdaApiServer(self.lambdas, ports["lambda"])
        self.lambda_api.start()

        checkpoints = Checkpoints(data_dir / "stream-checkpoints.json" if data_dir else None)
        for mapping in self.result.mappings:
            if mapping.enabled:
                local_mapping = replace(
                    mapping,
                    max_concurrency=min(mapping.max_concurrency, cap),
                    parallelization=lanes.get(mapping.function_arn, 1),
                )
                self._start_mapping(local_mapping, clients, checkpoints)

        self.alarms = AlarmEvaluator(
            clients["cloudwatch"], clients["sqs"], self.result.queue_urls, self.metrics, self._stop
        )
        self.alarms.start()
        if data_dir is not None:
            self._requeue_stranded(clients)
        if opts.env_file is not None:
            write_env_file(opts.env_file, self.client_env())

    def stream_lanes(
        self, mappings: list[MappingSpec], reserved: Mapping[str, int] | None = None
    ) -> dict[str, int]:
        """Lanes per function fed by a stream: its mapping's ParallelizationFactor, capped only
        by an explicit --max-concurrency and by the function's reserved concurrency (`reserved`,
        by function ARN: Lambda would throttle the lanes above it). The lanes are the pipeline's
        entry and wait on DynamoDB's answers most of the time; capped at the cores, every
        reservation of a burst queued behind the workflow's steps (reservation p95 of a warm
        burst of 300: 4.1 s with 4 lanes, 2.3 s with 8, for the same CPU per order)."""
        limit = self.options.max_concurrency or 10  # AWS's largest ParallelizationFactor
        lanes: dict[str, int] = {}
        for mapping in mappings:
            if mapping.enabled and ":sqs:" not in mapping.source_arn:
                wanted = min(mapping.parallelization, limit)
                if reserved and mapping.function_arn in reserved:
                    wanted = min(wanted, reserved[mapping.function_arn])
                lanes[mapping.function_arn] = max(lanes.get(mapping.function_arn, 1), wanted)
        return lanes

    def function_workers(self, declared: int, lanes: int, reserved: int | None = None) -> int:
        """Warm workers a function may have: its declared concurrency within the cap, and at
        least one per stream lane feeding it, so that no lane waits for a worker; never more
        than the concurrency the template reserves for it (`reserved`), as Lambda would run."""
        workers = max(min(declared, self.concurrency_cap), lanes)
        return workers if reserved is None else min(workers, reserved)

    @property
    def concurrency_cap(self) -> int:
        """The most workers a function, pollers a queue mapping or lanes a stream mapping get."""
        return max(1, self.options.max_concurrency or local_concurrency())

    def _start_mapping(
        self, spec: MappingSpec, clients: Mapping[str, Any], checkpoints: Checkpoints
    ) -> None:
        assert self.result is not None
        function = self.lambdas.get(spec.function_arn)

        def invoke(event: Any) -> Any:
            return function.invoke(event)

        if ":sqs:" in spec.source_arn:
            for index in range(max(1, spec.max_concurrency)):
                poller: threading.Thread = QueuePoller(
                    spec,
                    sqs=clients["sqs"],
                    queue_url=self.result.queue_urls[spec.source_arn],
                    invoke=invoke,
                    region=LOCAL_REGION,
                    stop=self._stop,
                    time_scale=self.options.time_scale,
                    visibility_timeout=self.result.queue_visibility[spec.source_arn],
                    index=index,
                )
                poller.start()
                self._threads.append(poller)
        else:
            poller = StreamPoller(
                spec,
                streams=clients["dynamodbstreams"],
                sqs=clients["sqs"],
                invoke=invoke,
                region=LOCAL_REGION,
                checkpoints=checkpoints,
                stop=self._stop,
                time_scale=self.options.time_scale,
                queue_url_of=lambda arn: self.result.queue_urls[arn],  # type: ignore[union-attr]
            )
            poller.start()
            self._threads.append(poller)

    def _started(self, emulator: Emulator) -> None:
        if self._pid_file is not None and emulator.proc is not None:
            self._pid_file.add_child(emulator.name, emulator.proc.pid)

    def request_stop(self) -> None:
        """Ask wait() to return (safe from a signal handler)."""
        self._stop.set()

    def _requeue_stranded(self, clients: Mapping[str, Any]) -> None:
        # Tables and executions survive a restart, the local queues do not: orders that were
        # waiting in them are sent again (one workflow per order still holds).
        env = self.client_env()
        requeued = fulfilment_requeue_stranded(
            store=DynamoStore(
                env[ENV_ORDERS_TABLE], env[ENV_INVENTORY_TABLE], client=clients["dynamodb"]
            ),
            workflow=FulfilmentWorkflow(
                env[ENV_STATE_MACHINE_ARN], client=clients["stepfunctions"]
            ),
            queue=SqsQueue(env[ENV_ORDERS_QUEUE_URL], client=clients["sqs"]),
        )
        if requeued:
            self._say(f"re-queued {len(requeued)} reserved order(s) whose queue message was lost")

    def stop(self) -> None:
        """Stop pollers, workflows, functions and emulators, in that order (idempotent)."""
        self._stop.set()
        if self._stopped:
            return
        self._stopped = True
        for thread in [*self._threads, *([self.alarms] if self.alarms else [])]:
            thread.join(timeout=15)
        if self.sfn is not None:
            self.sfn.stop()
        if self.lambda_api is not None:
            self.lambda_api.stop()
        self.lambdas.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.logs is not None:
            self.logs.close()
        for emulator in reversed(self._emulators):
            emulator.stop()
        self._emulators.clear()
        # Last: the watchdog kills whatever is still running (a worker stuck in a handler), and
        # only then is the data directory free for another runtime.
        self._watchdog.stop()
        if self._pid_file is not None:
            self._pid_file.release()

    def wait(self) -> None:
        """Block until stop() is called from a signal handler or another thread."""
        self._stop.wait()

    # -- wiring ------------------------------------------------------------------------------

    def _client(self, service: str, url: str) -> Any:
        return aws.new_client(
            service,
            endpoint_url=url,
            region=LOCAL_REGION,
            credentials=LOCAL_CREDENTIALS,
            config=aws.LOCAL_RUNTIME_CONFIG,
        )

    def client_env(self) -> dict[str, str]:
        """Everything a client of the local system needs in its environment."""
        env = {
            "AWS_REGION": LOCAL_REGION,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            **LOCAL_CREDENTIALS,
            **self.endpoints,
        }
        if self.result is not None:
            for output, name in STACK_OUTPUT_ENV.items():
                if output in self.result.outputs:
                    env[name] = str(self.result.outputs[output])
        return env

    def _function_base_env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
        return {
            **keep,
            **self.client_env(),
            # No X-Ray daemon locally: the tracer is switched off, the handlers stay the same.
            "POWERTOOLS_TRACE_DISABLED": "true",
            "AWS_XRAY_SDK_ENABLED": "false",
            "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
            # Whose worker this is: the watchdog and the next start find leftovers by it.
            OWNER_ENV: owner_token(),
        }

    def _fault_env(self) -> dict[str, str]:
        opts = self.options
        if opts.fault_rate <= 0:
            return {}
        report_dir = opts.fault_report_dir
        if report_dir is None:
            report_dir = (
                opts.data_dir.parent / "faults"
                if opts.data_dir is not None
                else Path(tempfile.mkdtemp(prefix="pipeline-faults-"))
            )
        report_dir.mkdir(parents=True, exist_ok=True)
        faults.clear_reports(report_dir)  # counts of an earlier run would be summed with these
        self.fault_report_dir = report_dir
        warning = (
            f"fault injection: {opts.fault_rate * 100:g}% of the functions' AWS calls fail "
            f"({', '.join(opts.fault_kinds)}; seed {opts.fault_seed}); counts in {report_dir}"
        )
        self.warnings.append(warning)
        self._say(warning)
        return faults.worker_env(
            opts.fault_rate, seed=opts.fault_seed, kinds=opts.fault_kinds, report_dir=report_dir
        )

    def _invoke_task(self, function_arn: str, payload: Any, timeout: float | None = None) -> Any:
        # Executions an earlier process left RUNNING resume as soon as the Step Functions server
        # starts, before the functions are provisioned: they wait for them. Failing instead
        # (Lambda.ResourceNotFoundException) would run their Retry and Catch within moments at
        # a small --time-scale, and a good order would end PAYMENT_FAILED, or stay PAID.
        while not self._functions_ready.wait(0.1):
            if self._stop.is_set():
                raise TaskFailure("Lambda.ServiceException", "the local runtime is stopping")
        try:
            return self.lambdas.invoke(function_arn, payload, timeout=timeout)
        except FunctionError as exc:
            raise TaskFailure(exc.error_type, exc.cause) from exc

    def _invocation_observed(self, function: str, seconds: float, failed: bool) -> None:
        if self.metrics is None:
            return
        dims = {"FunctionName": function}
        self.metrics.count("AWS/Lambda", "Invocations", dims)
        self.metrics.count("AWS/Lambda", "Errors", dims, 1.0 if failed else 0.0)
        self.metrics.count("AWS/Lambda", "Duration", dims, seconds * 1000, "Milliseconds")

    def _execution_finished(self, execution: Mapping[str, Any]) -> None:
        if self.metrics is None:
            return
        status = str(execution.get("status", ""))
        name = {
            "SUCCEEDED": "ExecutionsSucceeded",
            "FAILED": "ExecutionsFailed",
            "TIMED_OUT": "ExecutionsTimedOut",
            "ABORTED": "ExecutionsAborted",
        }.get(status)
        if name:
            dims = {"StateMachineArn": str(execution.get("stateMachineArn", ""))}
            self.metrics.count("AWS/States", name, dims)

    def _say(self, text: str) -> None:
        if self.options.console is not None:
            self.options.console.write(text + "\n")
            self.options.console.flush()


def _empty_keeping(directory: Path, keep: set[str]) -> None:
    """Delete everything in `directory` but the entries named in `keep` (--fresh)."""
    for entry in directory.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
