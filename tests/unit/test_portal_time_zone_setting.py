"""PORTAL_TIME_ZONE sets the zone the portal shows dates in; a name that is no time zone stops
the portal at start-up, saying what it wants."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.local.emulators import REPO_ROOT

SHOW = "from django.conf import settings; print(settings.TIME_ZONE)"


def _settings_with(zone: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.local",
        "PORTAL_TIME_ZONE": zone,
    }
    return subprocess.run(
        [sys.executable, "-c", SHOW], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )


def test_a_known_zone_is_the_portals() -> None:
    shown = _settings_with("Europe/Paris")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "Europe/Paris"


@pytest.mark.parametrize("bad", ["Mars/Olympus_Mons", "GMT+2:30"])
def test_a_name_that_is_no_zone_stops_the_portal(bad: str) -> None:
    refused = _settings_with(bad)
    assert refused.returncode != 0
    assert "PORTAL_TIME_ZONE must be an IANA time zone name" in refused.stderr
    assert bad in refused.stderr
