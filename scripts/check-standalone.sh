#!/usr/bin/env bash
# The repository must stand alone: no path in the code, tests, benches, fuzz
# targets, scripts, CI or the docs may reach outside it (the team's shared
# reading material or tool library beside the checkout, an absolute checkout
# path), and the test data must be the files its README lists, unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='\.\./shared|\.\./\.library|/work/|CARGO_MANIFEST_DIR"\)\)\s*\.join\("\.\.'
if hits=$(git ls-files -- src tests benches fuzz scripts .ci examples dist '*.md' Containerfile Cargo.toml \
    | grep -v '^fuzz/seeds/' | grep -v '^scripts/check-standalone.sh$' \
    | xargs grep -nE "$pattern" 2>/dev/null); then
  echo "check-standalone: paths that reach outside the repository:"
  echo "$hits"
  exit 1
fi
# Every data file has a checksum in tests/data/README.md, and all of them match.
sums=$(sed -n '/^```$/,/^```$/p' tests/data/README.md | grep -E '^[0-9a-f]{64}  ' || true)
for f in $(git ls-files -- tests/data | grep -v '^tests/data/README.md$'); do
  grep -q "  ${f#tests/data/}\$" <<<"$sums" || { echo "check-standalone: $f has no checksum in tests/data/README.md"; exit 1; }
done
(cd tests/data && sha256sum --check --quiet <<<"$sums")
echo "check-standalone: no path leaves the repository; tests/data matches its checksums"
