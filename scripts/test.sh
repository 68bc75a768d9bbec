#!/usr/bin/env bash
# Runs every test: unit tests, then integration tests on real Podman, real
# SQLite files and real gRPC over TLS. Prepares what they need first (Podman,
# the offline test image, a fresh build of the CLI and agent), idempotently.
#
#   npm test                      everything
#   npm test -- test/unit/x.test.ts   only the files given
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d node_modules ] || npm ci --no-audit --no-fund
if [ "$(id -u)" = 0 ]; then
  scripts/setup.sh
else
  # Without root we cannot install; the tests then fail loudly if Podman is missing.
  echo "[test] not root: skipping scripts/setup.sh" >&2
fi
npm run --silent build

if [ $# -gt 0 ]; then
  files=("$@")
else
  # Always an explicit file list: Node 20 runs zero tests when given none.
  files=(test/unit/*.test.ts test/integration/*.test.ts)
fi
# Network-namespace nodes (scripts/nodes.sh) for the tests that use them: made
# here once when missing, and then removed when the run ends, whatever the outcome.
if [ "$(id -u)" = 0 ] && grep -q netns-nodes "${files[@]}" 2>/dev/null && ! scripts/nodes.sh check 2; then
  trap 'scripts/nodes.sh down >/dev/null || echo "[test] scripts/nodes.sh down failed" >&2' EXIT
  scripts/nodes.sh up 2
fi
node --import tsx --test --test-reporter=spec "${files[@]}"
