#!/usr/bin/env bash
# Build the portal's Lambda package with `zappa package <stage>`, offline as far as AWS goes:
#   scripts/build_portal_package.sh [stage] [output.zip]     (default: dev build/portal-dev.zip)
#
# 1. A Python 3.12 virtualenv with the runtime dependencies only (.venv-zappa, reused while
#    pyproject.toml and requirements.lock are unchanged): Lambda's python3.12 needs cp312
#    binaries, and dev tools (moto, playwright, pytest) would only bloat the package.
# 2. collectstatic (production settings), so WhiteNoise serves the admin's and docs' assets.
# 3. zappa package, with fake credentials and every AWS endpoint pointed at a closed local
#    port: `package` needs a region and credentials to start, and nothing may reach AWS.
# 4. scripts/check_portal_package.py: cp312 binaries, the right files, and the WSGI app imports
#    from the unpacked zip under a bare Python 3.12 with only the SDK Lambda ships.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAGE="${1:-dev}"
OUTPUT="${2:-$ROOT/build/portal-$STAGE.zip}"
VENV="${PORTAL_BUILD_VENV:-$ROOT/.venv-zappa}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

PY312=""
# A pyenv shim may exist without 3.12 being selected: ask each candidate to run.
for candidate in python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python3.12"; do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then
    PY312="$("$candidate" -c 'import sys; print(sys.executable)')"; break
  fi
done
[ -n "$PY312" ] || die "python3.12 is required: Lambda runs python3.12 and needs its binaries"

if [ ! -x "$VENV/bin/python" ]; then
  say "creating the build virtualenv $VENV (Python 3.12)"
  "$PY312" -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' ||
  die "$VENV is not a Python 3.12 virtualenv: remove it and run again"

stamp="$VENV/.installed-$(cat pyproject.toml requirements.lock 2>/dev/null | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing the portal's runtime dependencies and zappa into $VENV"
  # The [project] dependencies (not the project itself: its code goes in from the work tree).
  mapfile -t deps < <("$VENV/bin/python" - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(project["project"]["dependencies"]))
print(next(d for d in project["project"]["optional-dependencies"]["dev"] if d.startswith("zappa")))
PY
)
  constraints=()
  [ -f requirements.lock ] && constraints=(-c requirements.lock)
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${constraints[@]}" "${deps[@]}"
  rm -f "$VENV"/.installed-*; touch "$stamp"
fi

# Settings production refuses to start without; collectstatic reads no database or secret.
build_env=(
  DJANGO_SETTINGS_MODULE=portal.settings.production
  DJANGO_SECRET_KEY="build-only-$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
  DATABASE_URL="sqlite:////tmp/portal-build-unused.sqlite3"
  DJANGO_ALLOWED_HOSTS="build.invalid"
)
say "collectstatic"
env "${build_env[@]}" "$VENV/bin/python" manage.py collectstatic --noinput --clear -v 0

# Fake credentials and a closed port for every endpoint: a call to AWS would fail at once.
closed="http://127.0.0.1:9"
aws_env=(
  AWS_ACCESS_KEY_ID=build-only AWS_SECRET_ACCESS_KEY=build-only AWS_SESSION_TOKEN=
  AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_PROFILE= AWS_CONFIG_FILE=/dev/null
  AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_ENDPOINT_URL="$closed" AWS_EC2_METADATA_DISABLED=true
)
mkdir -p "$(dirname "$OUTPUT")"
rm -f "$OUTPUT"
say "zappa package $STAGE -> $OUTPUT"
env -u AWS_PROFILE "${aws_env[@]}" VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" \
  "$VENV/bin/zappa" package "$STAGE" --output "$OUTPUT"

say "checking the package"
"$VENV/bin/python" scripts/check_portal_package.py "$OUTPUT" --python "$PY312" --sdk-from "$VENV"
