#!/usr/bin/env bash
# Build the container image (Containerfile) from the static binary and check
# it as the Airflow Helm chart would run it. `podman run` cannot start
# containers in this CI's VM, so the image's root filesystem is exported and
# its entrypoint run as its user with the chart's arguments and the chart's
# mapping file; a StatsD line goes to 9125 and the page is read from 9102.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v podman >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null
fi
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
  cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu --bin promstatsd
image=localhost/promstatsd:smoke
work="$(mktemp -d)"
# The release profile keeps debug info (for profiling): the image takes a
# stripped copy.
mkdir "$work/context"
strip -o "$work/context/promstatsd" target/x86_64-unknown-linux-gnu/release/promstatsd
podman build --quiet -t "$image" -f Containerfile "$work/context" >/dev/null
cid=""
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "$cid" ] && podman rm -f "$cid" >/dev/null 2>&1 || true
  podman rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# What the image says about itself.
user="$(podman image inspect --format '{{.Config.User}}' "$image")"
ports="$(podman image inspect --format '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}' "$image")"
entry="$(podman image inspect --format '{{join .Config.Entrypoint " "}}' "$image")"
[ "$user" = "65534:65534" ] || { echo "container smoke: user is '$user'"; exit 1; }
for p in 9125/udp 9125/tcp 9102/tcp; do
  case " $ports" in *" $p "*) ;; *) echo "container smoke: $p not exposed ($ports)"; exit 1 ;; esac
done

# Its root filesystem: the binary and nothing else.
cid="$(podman create "$image")"
mkdir "$work/root"
podman export "$cid" | tar -x -C "$work/root"
files="$(cd "$work/root" && find . -type f | sort)"
[ "$files" = "./promstatsd" ] || { echo "container smoke: unexpected files: $files"; exit 1; }

# Its entrypoint as the chart runs it: the chart's arguments, its mapping file
# where the chart mounts it (here, beside the root), as nobody.
mkdir -p "$work/etc"
cp tests/data/airflow-helm-statsd-mappings.yml "$work/etc/mappings.yml"
chmod -R a+rX "$work"
read -r -a cmd <<<"$entry"
cmd[0]="$work/root${cmd[0]}"
setpriv --reuid 65534 --regid 65534 --clear-groups \
  "${cmd[@]}" "--statsd.mapping-config=$work/etc/mappings.yml" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:9102/-/healthy >/dev/null && break; sleep 0.1; done
# The chart's mapping turns the operator into a label.
printf 'airflow.operator_failures_BashOperator:1|c' >/dev/udp/127.0.0.1/9125
printf 'airflow.operator_failures_BashOperator:1|c\n' >/dev/tcp/127.0.0.1/9125
for _ in $(seq 50); do
  page="$(curl -sf http://127.0.0.1:9102/metrics || true)"
  if grep -qx 'airflow_operator_failures{operator="BashOperator"} 2' <<<"$page"; then
    echo "container smoke: ok ($(podman image inspect --format '{{.Size}}' "$image") bytes;" \
      "user $user; ports $ports; the chart's mapping applied)"
    exit 0
  fi
  sleep 0.1
done
echo "container smoke: airflow_operator_failures{operator=\"BashOperator\"} never reached 2"
cat "$work/log"
grep airflow <<<"$page" || true
exit 1
