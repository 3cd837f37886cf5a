"""The local runtime's size and priority: workers per function and pollers per queue are
capped by the machine's cores unless `--max-concurrency` says otherwise; a stream mapping keeps
its ParallelizationFactor (within an explicit cap), with a worker per lane; a function's
ReservedConcurrentExecutions caps both; `--nice` lowers the whole backbone's CPU priority."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.local.__main__ import main as local_main
from pipeline.local.__main__ import parse_args
from pipeline.local.event_sources import MappingSpec
from pipeline.local.runtime import LocalRuntime, RuntimeOptions, local_concurrency


@pytest.mark.parametrize(("cores", "cap"), [(1, 2), (2, 4), (8, 16)])
def test_the_default_cap_is_twice_the_cores_and_at_least_two(cores: int, cap: int) -> None:
    assert local_concurrency(cores) == cap


def test_without_a_cap_the_runtime_sizes_itself_to_this_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a machine whose core count is known
    monkeypatch.setattr("os.cpu_count", lambda: 3)

    # When the runtime is made with the command line's defaults
    options = RuntimeOptions(data_dir=None, env_file=None, console=None)
    options.max_concurrency = parse_args([]).max_concurrency

    # Then its cap follows the cores
    assert LocalRuntime(options).concurrency_cap == 6


@pytest.mark.parametrize(("given", "cap"), [("1", 1), ("12", 12)])
def test_max_concurrency_on_the_command_line_sets_the_cap(given: str, cap: int) -> None:
    args = parse_args(["--max-concurrency", given])
    options = RuntimeOptions(data_dir=None, env_file=None, console=None)
    options.max_concurrency = args.max_concurrency
    assert LocalRuntime(options).concurrency_cap == cap


@pytest.mark.parametrize(
    ("option", "given"),
    [
        # a cap must be a positive whole number
        *(("--max-concurrency", given) for given in ("0", "-2", "four", "1.5")),
        # a niceness a whole number from 0 to 19
        *(("--nice", given) for given in ("-1", "20", "ten")),
    ],
)
def test_a_cap_or_niceness_out_of_range_is_refused(
    option: str, given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([option, given])
    assert exit_.value.code == 2
    assert option in capsys.readouterr().err


def _mapping(function: str, source: str, lanes: int = 1, enabled: bool = True) -> MappingSpec:
    return MappingSpec(
        logical_id=f"{function}Events",
        function_name=function,
        function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
        source_arn=source,
        batch_size=10,
        parallelization=lanes,
        enabled=enabled,
    )


STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-01-01T00:00:00.000"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:orders"


def test_a_stream_mapping_keeps_its_parallelization_factor_above_the_core_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a 2-core machine (cap 4) and a stream mapping with ParallelizationFactor 10
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    runtime = LocalRuntime(RuntimeOptions(data_dir=None, env_file=None, console=None))
    reserve = _mapping("Reserve", STREAM, lanes=10)
    queue = _mapping("Start", QUEUE)
    off = _mapping("Off", STREAM, lanes=10, enabled=False)

    lanes = runtime.stream_lanes([reserve, queue, off])

    # Then the stream's function gets ten lanes and a worker for each, others the cap
    assert runtime.concurrency_cap == 4
    assert lanes == {reserve.function_arn: 10}
    assert runtime.function_workers(8, lanes[reserve.function_arn]) == 10
    assert runtime.function_workers(8, lanes.get(queue.function_arn, 0)) == 4
    assert runtime.function_workers(2, 0) == 2


def _runtime_capped_at(cap: int) -> LocalRuntime:
    options = RuntimeOptions(data_dir=None, env_file=None, console=None)
    options.max_concurrency = cap
    return LocalRuntime(options)


def test_an_explicit_max_concurrency_caps_the_stream_lanes_too() -> None:
    runtime = _runtime_capped_at(3)
    reserve = _mapping("Reserve", STREAM, lanes=10)
    assert runtime.stream_lanes([reserve]) == {reserve.function_arn: 3}
    assert runtime.function_workers(8, 3) == 3


def test_a_reserved_concurrency_caps_the_workers_and_the_stream_lanes() -> None:
    # Given a runtime capped at 4 and a stream mapping with ParallelizationFactor 10
    runtime = _runtime_capped_at(4)
    reserve = _mapping("Reserve", STREAM, lanes=10)

    # When its function reserves 3, Lambda runs at most 3 at once: 3 lanes, 3 workers
    lanes = runtime.stream_lanes([reserve], {reserve.function_arn: 3})
    assert lanes == {reserve.function_arn: 3}
    assert runtime.function_workers(8, lanes[reserve.function_arn], 3) == 3

    # And a reservation is a ceiling, not a floor: under the cap it caps, above it changes nothing
    assert runtime.function_workers(8, 0, 2) == 2
    assert runtime.function_workers(2, 0, 6) == 2
    assert runtime.function_workers(8, 0, None) == 4


@pytest.mark.parametrize(("argv", "niced"), [(["--nice", "7"], [7]), ([], [])])
def test_the_backbone_lowers_its_priority_before_it_starts_anything(
    argv: list[str], niced: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a command line, and a template that is not there (so nothing starts)
    calls: list[int] = []
    monkeypatch.setattr("os.nice", calls.append)
    # When the runtime's command runs
    code = local_main([*argv, "--template", str(tmp_path / "missing.yaml")])
    # Then it lowered its priority first (what it starts inherits it), only when asked
    assert code == 2
    assert calls == niced
