#!/usr/bin/env bash
# A real Apache Airflow 3.3.2 against promstatsd (the ecosystem issue, item 2):
# installs Airflow from PyPI into a virtualenv (kept between runs in
# $AIRFLOW_E2E_VENV, by default ~/.cache/promstatsd/airflow-3.3.2), builds the
# daemon, then scripts/airflow-e2e/run.py runs Airflow in plain and DogStatsD
# mode side by side for AIRFLOW_E2E_SECONDS (180) and checks what a real
# Prometheus scraped against Airflow's own database.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${AIRFLOW_E2E_VENV:-$HOME/.cache/promstatsd/airflow-3.3.2}"
if ! "$venv/bin/python" -c 'import airflow, statsd, datadog' >/dev/null 2>&1 \
  || [ "$("$venv/bin/airflow" version 2>/dev/null)" != "3.3.2" ]; then
  echo "== installing Apache Airflow 3.3.2 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "apache-airflow==3.3.2" statsd datadog
fi
command -v prometheus >/dev/null || { echo "prometheus is needed (scripts/test.sh installs it)"; exit 1; }
cargo build --locked --quiet --bin promstatsd
exec "$venv/bin/python" scripts/airflow-e2e/run.py "$(pwd)/target/debug/promstatsd"
