#!/usr/bin/env bash
# The test command: services up, dependencies installed, lint, type check, every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/ensure-services.sh rabbitmq postgres prometheus
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
.venv/bin/ruff check triage tests benchmarks
.venv/bin/mypy triage tests benchmarks
exec .venv/bin/python -m pytest "$@"
