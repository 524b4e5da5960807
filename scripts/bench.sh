#!/usr/bin/env bash
# Benchmarks of the auth foundation (a benchmark, not a test: it prints numbers).
#
#   scripts/bench.sh [DURATION_SECONDS]
#
# Builds release binaries, starts a fresh `keyfold dev` on loopback, then:
#   * wrk: authenticated GET /auth/users at 1, 10 and 100 connections (throughput, p50, p99);
#   * the Rust SDK: login, user action and signed-mutation latency (sequential).
# Needs Debian's `wrk` (installed here if missing and running as root).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
command -v wrk >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y --no-install-recommends wrk >/dev/null; }

cargo build --release --locked -p keyfold
cargo build --release --locked -p keyfold-sdk --example auth_bench
export KEYFOLD_BIN=target/release/keyfold
source scripts/lib.sh

work=$(mktemp -d)
trap 'stop_keyfold; rm -rf "$work"' EXIT
start_keyfold "$work/data"
token=$("$KEYFOLD_BIN" token --admin-file "$work/data/admin.json")

echo "## $(date -u +%Y-%m-%d) — $(nproc) cores, $(uname -m), keyfold dev (SQLite), release build"
echo
echo "### Authenticated GET /auth/users (wrk, ${DURATION}s each)"
echo
echo "| connections | threads | requests/s | p50 ms | p99 ms |"
echo "| --- | --- | --- | --- | --- |"
for c in 1 10 100; do
  t=$(( c < 2 ? 1 : 2 ))
  out=$(wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -H "Authorization: Bearer $token" "$KF_URL/auth/users")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  [ -z "$non2xx" ] || { echo "wrk saw non-2xx responses: $non2xx" >&2; exit 1; }
  echo "| $c | $t | $rps | $p50 | $p99 |"
done
echo
echo "### Auth round trips (Rust SDK, sequential, loopback)"
echo
target/release/examples/auth_bench "$work/data/admin.json" "${BENCH_ITERATIONS:-300}"
