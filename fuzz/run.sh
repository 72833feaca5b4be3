#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 30), starting from the committed
# seeds plus whatever corpus earlier runs left. Prints each target's last stats line.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse_datagram load_mapping pipeline load_web_config parse_text_format push_requests push_protobuf)
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== fuzz $t for ${secs}s"
  cargo fuzz run --release "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    > "corpus/$t.log" 2>&1 || { tail -40 "corpus/$t.log"; echo "fuzz target $t FAILED"; exit 1; }
  grep -E "^#[0-9]+.*(DONE|cov)" "corpus/$t.log" | tail -1 || true
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "corpus/$t.log" || true
done
