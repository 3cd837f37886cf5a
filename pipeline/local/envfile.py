"""The dotenv file the local runtime writes and the portal and scripts read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """Write KEY=value lines (dotenv) atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    lines = [
        "# Written by `python -m pipeline.local`: the local endpoints and resource names.",
        *(f"{k}={v}" for k, v in env.items()),
    ]
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def read_env_file(path: Path) -> dict[str, str]:
    """Read a dotenv file written by write_env_file."""
    env = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env
