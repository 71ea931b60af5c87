#!/usr/bin/env bash
# run.sh — `make bench`: every benchmark, bounded in time, against one
# throwaway PostgreSQL cluster (torn down on exit). Each program prints its
# figures next to a baseline measured in the same run, and one GOAL line per
# goal of issue 12; this script repeats those lines as a closing table.
#
#   BENCH_SCALE=small   quick run (smoke test, about a minute): the benchmarks
#                       work and produce every figure
#   BENCH_SCALE=full    the default (1e6 registry, 1e7 search and index)
#   BENCH_SCALE=large   as full, with the index at 1e8 generated codes
#   BENCH_ONLY=name     run only build/bench/<name>
#
# Exit status: 1 when a benchmark failed (a measurement could not be taken)
# or, on a complete run, when a goal's figure is missing. A FAIL verdict
# (a figure below its goal) does not change the exit status, nor does SKIP
# (a figure measured at a scale where its goal is not judged).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
deploy/install-deps.sh --bench
base=$(mktemp -d /tmp/msreg-bench.XXXXXX)
chmod 755 "$base"
cleanup() { deploy/pg.sh stop "$base/pg" >/dev/null 2>&1 || true; rm -rf "$base"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
deploy/pg.sh start "$base/pg" || exit 1
export MSR_IT_PGBASE=$base/pg MSR_IT_BIN=$root/bin MSR_TEST_DATA=$root/tests/data
export BENCH_SCALE=${BENCH_SCALE:-full}
export PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v pg_ctl)")}
started=$(date -u +%FT%TZ)
echo "msreg benchmarks — $started, $(nproc) cores, scale $BENCH_SCALE, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(medians and ratios; the machine is shared, absolute figures vary)"
fail=0
ran=0
goals=$base/goals
: >"$goals"
for b in build/bench/*; do
	name=$(basename "$b")
	[ -x "$b" ] || continue
	if [ -n "${BENCH_ONLY:-}" ] && [ "$name" != "$BENCH_ONLY" ]; then continue; fi
	echo
	echo "=== $name"
	ran=$((ran + 1))
	timeout 1800 "$b" > >(tee -a "$goals.$name") || { echo "BENCH FAILED: $name" >&2; fail=1; }
	wait
	grep '^GOAL ' "$goals.$name" >>"$goals" 2>/dev/null
done

echo
echo "=== issue 12 goals ($started, scale $BENCH_SCALE; baselines from the same run)"
printf '%-12s | %-44s | %-26s | %-40s | %s\n' goal target measured "same-run baseline" verdict
sed 's/^GOAL //' "$goals"
if [ -z "${BENCH_ONLY:-}" ]; then
	for id in lookup-c8 lookup-c64 lookup-p50 search-http batch verify sequencer \
	    index-bytes index-build index-p99; do
		if ! grep -q "^GOAL $id " "$goals"; then
			echo "MISSING FIGURE: $id" >&2
			fail=1
		fi
	done
fi
if [ $ran -eq 0 ]; then
	echo "NO BENCHMARK RAN (build them with make bench; BENCH_ONLY=${BENCH_ONLY:-})" >&2
	fail=1
fi
[ $fail -eq 0 ] && echo "all benchmarks produced their figures" || echo "BENCHMARKS FAILED" >&2
exit $fail
