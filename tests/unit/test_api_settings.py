"""The portal's settings modules: environment, the local env file, production's refusals."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.local.emulators import REPO_ROOT


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "AWS_", "ORDERS_", "PIPELINE_"))
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_a_secret_key():
    # Given production settings and no DJANGO_SECRET_KEY
    result = _python(
        "import django; django.setup()",
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings.production",
            "DATABASE_URL": "postgres://u@db/x",
        },
    )

    # Then Django does not start, and says why
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_production_refuses_to_start_without_a_database_url():
    # Given production settings with a key but no database
    result = _python(
        "import django; django.setup()",
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        },
    )

    # Then Django does not start, and says why
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "portal.settings.production",
    "DJANGO_SECRET_KEY": "x" * 60,
    "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
}


@pytest.mark.parametrize("hosts", ["", "*", "abc123.execute-api.us-east-1.amazonaws.com,*"])
def test_production_refuses_to_start_without_its_own_host_names(hosts: str):
    # Given production settings with no DJANGO_ALLOWED_HOSTS, or one that allows any host
    result = _python("import django; django.setup()", {**PRODUCTION, "DJANGO_ALLOWED_HOSTS": hosts})

    # Then Django does not start, and says why (no region-wide default to fall back on)
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS" in result.stderr


def test_production_allows_exactly_the_hosts_it_is_given():
    # Given the API's host and a custom domain
    hosts = "abc123.execute-api.us-east-1.amazonaws.com,orders.example.com"
    result = _python(
        "import django; django.setup(); from django.conf import settings; "
        "print(','.join(settings.ALLOWED_HOSTS))",
        {**PRODUCTION, "DJANGO_ALLOWED_HOSTS": hosts},
    )
    # Then those, and nothing wider, are allowed
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == hosts


def test_celery_without_settings_gets_production_never_the_local_ones():
    # Given a worker started with no DJANGO_SETTINGS_MODULE and no secrets
    result = _python(
        "import os; from portal.celery import app; "
        "print(os.environ['DJANGO_SETTINGS_MODULE']); app.conf.broker_url",
        {},
    )

    # Then it chose the production settings, which refuse to start without a secret key
    # (the local ones would have run with DEBUG and a key anyone can read)
    assert result.stdout.split()[0] == "portal.settings.production"
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_check_deploy_passes_with_production_settings_and_nothing_silenced():
    # Given production settings with a real secret and a PostgreSQL URL
    result = _python(
        "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', "
        "'WARNING'])",
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/orders_portal",
            "DJANGO_ALLOWED_HOSTS": "abc123.execute-api.us-east-1.amazonaws.com",
        },
    )

    # Then the deployment checklist finds no issue, and none was silenced
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


def test_local_settings_load_the_runtime_env_file_without_overriding(tmp_path: Path):
    # Given a runtime env file, and one of its variables already set in the shell
    env_file = tmp_path / "pipeline.env"
    env_file.write_text(
        "# written by python -m pipeline.local\n"
        "ORDERS_TABLE_NAME=from-file-orders\n"
        "INVENTORY_TABLE_NAME=from-file-inventory\n"
    )

    # When the local settings load
    result = _python(
        "import django, os; django.setup(); "
        "print(os.environ['ORDERS_TABLE_NAME'], os.environ['INVENTORY_TABLE_NAME'])",
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings.local",
            "PIPELINE_ENV_FILE": str(env_file),
            "ORDERS_TABLE_NAME": "from-shell",
        },
    )

    # Then the file filled in what was missing and left the shell's value alone
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-shell", "from-file-inventory"]


def test_local_settings_read_the_file_the_runtime_writes():
    # The local settings' default path must be the runtime's DEFAULT_ENV_FILE.
    from pipeline.local.runtime import DEFAULT_ENV_FILE

    result = _python(
        "from portal.settings import local; print(local.PIPELINE_ENV_FILE)",
        {"DJANGO_SETTINGS_MODULE": "portal.settings.local"},
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == DEFAULT_ENV_FILE


def test_sqlite_by_default_and_postgres_from_database_url():
    # When the local settings load without and with DATABASE_URL
    code = (
        "from django.conf import settings; import django; django.setup(); "
        "d = settings.DATABASES['default']; print(d['ENGINE'], d['NAME'])"
    )
    sqlite = _python(code, {"DJANGO_SETTINGS_MODULE": "portal.settings.local"})
    postgres = _python(
        code,
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings.local",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/orders_portal",
        },
    )

    # Then SQLite is the default and DATABASE_URL switches to PostgreSQL
    assert sqlite.stdout.split()[0] == "django.db.backends.sqlite3"
    assert postgres.stdout.split() == ["django.db.backends.postgresql", "orders_portal"]


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_bad_switches_are_refused_by_name(value: str):
    # Given a yes/no setting with a value that is neither
    result = _python(
        "import django; django.setup()",
        {"DJANGO_SETTINGS_MODULE": "portal.settings.local", "RATE_LIMIT_ENABLED": value},
    )

    # Then the settings do not load, and the message names the variable
    assert result.returncode != 0
    assert "RATE_LIMIT_ENABLED" in result.stderr


def test_a_process_that_never_served_a_request_announces_key_changes():
    # Given a process that only set Django up (a management command, a shell): it never
    # imported the API's views, nor the key cache through them
    code = (
        "import django; django.setup()\n"
        "import sys\n"
        "from django.db.models.signals import post_delete, post_save\n"
        "uids = {r[0][0] for signal in (post_save, post_delete) for r in signal.receivers}\n"
        "print(sorted(u for u in uids if isinstance(u, str) and u.startswith('key-cache-')))\n"
        "print('orders_api.views' in sys.modules)\n"
    )
    result = _python(code, {"DJANGO_SETTINGS_MODULE": "portal.settings.test"})

    # Then a key or plan it saves or deletes still raises the keys' version for every worker
    assert result.returncode == 0, result.stderr
    uids, views_loaded = result.stdout.splitlines()
    assert views_loaded == "False"
    assert uids == str(
        sorted(
            f"key-cache-{model}-{event}"
            for model in ("ClientAPIKey", "UsagePlan")
            for event in ("save", "delete")
        )
    )
