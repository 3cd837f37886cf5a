"""The local runtime's size: workers per function, pollers per queue and lanes per stream are
capped by the machine's cores unless `--max-concurrency` says otherwise."""

from __future__ import annotations

import pytest

from pipeline.local.__main__ import parse_args
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


@pytest.mark.parametrize("given", ["0", "-2", "four", "1.5"])
def test_a_cap_that_is_not_a_positive_whole_number_is_refused(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--max-concurrency", given])
    assert exit_.value.code == 2
    assert "--max-concurrency" in capsys.readouterr().err
