#!/usr/bin/env bash
# The whole test suite: installs the real programs the tests use (Prometheus and
# promtool from Debian's `prometheus` package, VictoriaMetrics from
# `victoria-metrics`; Debian's chromium, which renders the status page
# headless; Debian's protoc and Python's protobuf package, which decode the
# protobuf page with code of their own; Python's prometheus_client, and the
# statsd and datadog clients Airflow itself uses) when they are missing
# (always under CI, so a green run cannot hide a broken install step), then runs
# every unit, integration and doc test.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -n "${CI:-}" ] || ! command -v promtool >/dev/null 2>&1 || ! command -v ss >/dev/null 2>&1 \
  || ! command -v victoria-metrics >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 \
  || ! command -v protoc >/dev/null 2>&1; then
  echo "== installing prometheus (promtool), victoria-metrics, chromium, protoc, openssl, curl and iproute2 (ss) from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    prometheus victoria-metrics chromium protobuf-compiler openssl curl iproute2 >/dev/null
fi
if [ -n "${CI:-}" ] || ! python3 -c 'import prometheus_client, statsd, datadog, google.protobuf' >/dev/null 2>&1; then
  echo "== installing Python's prometheus_client, statsd, datadog and protobuf packages"
  python3 -m pip install -q --disable-pip-version-check prometheus_client statsd datadog protobuf
fi
command -v promtool >/dev/null
command -v prometheus >/dev/null
command -v victoria-metrics >/dev/null
command -v chromium >/dev/null
command -v protoc >/dev/null
command -v openssl >/dev/null
command -v curl >/dev/null
command -v ss >/dev/null
python3 -c 'import prometheus_client, statsd, datadog, google.protobuf'

echo "== cargo test"
cargo test --locked "$@"
