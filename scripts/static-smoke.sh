#!/usr/bin/env bash
# Build the static binary as README's "A static binary" says, check it has no
# shared-library dependencies, start it, send a StatsD line, scrape it, stop it.
# Prints its idle RSS (informational: the figure depends on the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
  cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu --bin promstatsd
bin=target/x86_64-unknown-linux-gnu/release/promstatsd
if ldd "$bin" >/dev/null 2>&1; then
  echo "static smoke: $bin has shared-library dependencies:"; ldd "$bin"; exit 1
fi
udp=127.0.0.1:18125 web=127.0.0.1:19102
"$bin" --statsd.listen-udp=$udp --statsd.listen-tcp= --web.listen-address=$web \
  --push.listen-address= >/tmp/promstatsd-static.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://$web/metrics" >/dev/null && break; sleep 0.1; done
echo "static smoke: idle $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' ')"
printf 'static.smoke:3|c\nstatic.smoke:4|c' >/dev/udp/${udp%:*}/${udp#*:}
for _ in $(seq 50); do
  if curl -sf "http://$web/metrics" | grep -qx 'static_smoke 7'; then
    echo "static smoke: ok (static_smoke 7 on the page)"; exit 0
  fi
  sleep 0.1
done
echo "static smoke: the page never showed static_smoke 7"; cat /tmp/promstatsd-static.log
curl -s "http://$web/metrics" | grep static || true
exit 1
