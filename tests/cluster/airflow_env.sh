#!/usr/bin/env bash
# Create the Airflow virtualenv used by tests/cluster/test_airflow_dag.py, if it is missing.
# Airflow's pins clash with vLLM's, so it lives in its own venv, apart from the project's.
#   tests/cluster/airflow_env.sh [VENV]      (default: .venv-airflow at the repository root)
# Idempotent: a stamp file records the pins; a finished venv with the same pins is kept as is.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${1:-${AIRFLOW_VENV:-$ROOT/.venv-airflow}}"
PY="${PY:-python3}"
PINS="apache-airflow==3.3.2 apache-airflow-providers-apache-spark==6.3.4"
STAMP="$VENV/.airflow-ready"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$PINS" ]]; then
  echo "airflow venv ready: $VENV"
  exit 0
fi
if [[ -e "$VENV" && ! -f "$VENV/.airflow-venv" ]]; then
  echo "airflow venv: $VENV exists and was not made by this script; not touching it" >&2
  exit 1
fi
start=$(date +%s)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
touch "$VENV/.airflow-venv"
LOG="$VENV/pip-install.log"
# shellcheck disable=SC2086  # PINS is a list of requirement specifiers
if ! { "$VENV/bin/python" -m pip install --upgrade pip && "$VENV/bin/pip" install $PINS; } \
    >"$LOG" 2>&1; then
  tail -n 40 "$LOG" >&2
  echo "airflow venv: pip install failed (log: $LOG)" >&2
  exit 1
fi
echo "$PINS" > "$STAMP"
echo "airflow venv built in $(( $(date +%s) - start )) s: $VENV"
