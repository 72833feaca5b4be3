#!/usr/bin/env bash
# The load-harness sequence behind BENCHMARKS.md's "2026-11-29 night" tables:
# bare receive loop, counter and tagged-mix searches, fixed-rate runs, loss during
# large scrapes, and memory per series. About 2.5 minutes; run with nothing else
# on the machine. Prints the harness's Markdown rows.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
B=target/release/promstatsd-bench
rows() { grep -E "^\| \*\*zero|^\| promstatsd|bytes/series|scrape of|idle RSS|ready in" | grep -v "^| case" || true; }
zero() { rows | grep zero || true; }
echo "# $(date -u) $(git log --oneline -1 2>/dev/null || true)"
echo "## bare";            $B --bare --search 2>&1 | zero
echo "## counters search"; $B --search 2>&1 | zero
echo "## bare";            $B --bare --search 2>&1 | zero
echo "## counters search"; $B --search 2>&1 | zero
echo "## mix search";      $B --mix counter-timer --tags dogstatsd --search 2>&1 | zero
echo "## mix search";      $B --mix counter-timer --tags dogstatsd --search 2>&1 | zero
echo "## 10M 10s";         $B --rate 10000000 --secs 10 2>&1 | rows
echo "## 8M 10s";          $B --rate 8000000 --secs 10 2>&1 | rows
echo "## bare";            $B --bare --search 2>&1 | zero
echo "## scrape during";   $B --preload 1000000 --rate 3500000 --secs 3 --scrape-during -- --statsd.max-series=2000000 2>&1 | rows
echo "## memory"
for m in "1000000 labelled" "1000000 counter" "200000 timer" "200000 labelled-timer" \
         "200000 histogram" "200000 labelled-histogram"; do
  set -- $m
  case $2 in
    *histogram) $B --memory "$1" --mix "$2" -- --statsd.observer-type=histogram 2>&1 | rows ;;
    *) $B --memory "$1" --mix "$2" 2>&1 | rows ;;
  esac
done
echo "# done $(date -u)"
