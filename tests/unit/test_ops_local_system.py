"""The one-command local system starts the portal's Celery worker and beat; the test command
installs Debian's Chromium when it is missing, never a downloaded browser."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

from pipeline.local.emulators import REPO_ROOT


def _local_system() -> ModuleType:
    path = REPO_ROOT / "scripts" / "local_system.py"
    spec = importlib.util.spec_from_file_location("local_system", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_worker_and_beat_run_the_portal_app_with_beats_schedule_under_local():
    module = _local_system()
    commands = module.celery_commands("python")
    assert commands["worker"][:6] == ["python", "-m", "celery", "-A", "portal", "worker"]
    assert commands["worker"][commands["worker"].index("--queues") + 1] == "portal"
    beat = commands["beat"]
    assert beat[:6] == ["python", "-m", "celery", "-A", "portal", "beat"]
    schedule = beat[beat.index("--schedule") + 1]
    assert schedule == str(REPO_ROOT / ".local" / "celerybeat-schedule")


def test_the_test_command_installs_chromium_only_when_absent_and_apt_get_exists():
    script = (REPO_ROOT / "scripts/deploy.sh").read_text()
    setup_browser = re.search(r"setup_browser\(\) \{\n(.*?)\n\}", script, re.S).group(1)
    assert "[ -x /usr/bin/chromium ] && return" in setup_browser
    assert "command -v apt-get" in setup_browser
    assert "apt-get install" in setup_browser and "chromium" in setup_browser
    commands = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert not any("playwright install" in line for line in commands)
    run_tests = re.search(r"run_tests\(\) \{\n(.*?)\n\}", script, re.S).group(1)
    assert "setup_browser" in run_tests
