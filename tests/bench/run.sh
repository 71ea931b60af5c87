#!/usr/bin/env bash
# run.sh — `make bench`: every benchmark, bounded in time, against one
# throwaway PostgreSQL cluster (torn down on exit). Each program prints its
# figures and the ratio to a baseline measured in the same run.
#
#   BENCH_SCALE=small   quick run (1e5 codes) to check the benchmarks work
#   BENCH_SCALE=full    the issue's sizes (1e6 and 1e7 codes); default
#   BENCH_ONLY=name     run only build/bench/<name>
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
deploy/install-deps.sh --bench
base=$(mktemp -d /tmp/msreg-bench.XXXXXX)
chmod 755 "$base"
cleanup() { deploy/pg.sh stop "$base/pg" >/dev/null 2>&1 || true; rm -rf "$base"; }
trap cleanup EXIT INT TERM
deploy/pg.sh start "$base/pg" || exit 1
export MSR_IT_PGBASE=$base/pg MSR_IT_BIN=$root/bin MSR_TEST_DATA=$root/tests/data
export BENCH_SCALE=${BENCH_SCALE:-full}
echo "msreg benchmarks — $(date -u +%FT%TZ), $(nproc) cores, scale $BENCH_SCALE"
echo "(medians and ratios; the machine is shared, absolute figures vary)"
fail=0
for b in build/bench/*; do
	name=$(basename "$b")
	[ -x "$b" ] || continue
	if [ -n "${BENCH_ONLY:-}" ] && [ "$name" != "$BENCH_ONLY" ]; then continue; fi
	echo
	echo "=== $name"
	timeout 1800 "$b" || { echo "BENCH FAILED: $name" >&2; fail=1; }
done
exit $fail
