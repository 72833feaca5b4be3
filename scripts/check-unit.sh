#!/usr/bin/env bash
# Check dist/promstatsd.service with `systemd-analyze verify`, against the
# binary this tree builds (verify wants ExecStart's program to exist). Any
# warning fails the check: verify itself exits 0 on a misspelled value.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt-get install -y -qq systemd >/dev/null
fi
bin="$(pwd)/target/debug/promstatsd"
[ -x "$bin" ] || cargo build --locked --quiet --bin promstatsd
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
sed "s#/usr/local/bin/promstatsd#${bin}#" dist/promstatsd.service >"$dir/promstatsd.service"
out="$(systemd-analyze verify "$dir/promstatsd.service" 2>&1)" || {
  echo "$out"
  exit 1
}
if [ -n "$out" ]; then
  echo "systemd-analyze verify warned:"
  echo "$out"
  exit 1
fi
echo "dist/promstatsd.service: verified"
