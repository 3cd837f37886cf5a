"""The production settings with the intake benchmark's comparison endpoints mounted."""

from portal.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.intake_site"
