#!/usr/bin/env bash
# run-integration.sh TEST... — run integration test binaries against one
# throwaway PostgreSQL cluster (in a temp dir), torn down on exit even on
# failure. Each test creates its own database and msregd (tests/harness.c).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
base=$(mktemp -d /tmp/msreg-it.XXXXXX)
chmod 755 "$base"
cleanup() {
	deploy/pg.sh stop "$base/pg" >/dev/null 2>&1 || true
	if [ "${MSR_IT_KEEP:-}" = "" ]; then rm -rf "$base"; else echo "kept $base" >&2; fi
}
trap cleanup EXIT INT TERM
deploy/pg.sh start "$base/pg" || { echo "cannot start PostgreSQL" >&2; exit 1; }
export MSR_IT_PGBASE=$base/pg MSR_IT_BIN=$root/bin MSR_TEST_DATA=$root/tests/data
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-300}
fail=0
for t in "$@"; do
	echo "== $t"
	if ! timeout 900 "$t"; then
		echo "FAILED: $t" >&2
		for log in "$base"/it-*/msregd.log; do
			[ -s "$log" ] && { echo "--- $log (tail)" >&2; tail -20 "$log" >&2; }
		done
		fail=1
	fi
done
# A sanitizer report from a daemon fails the run even if every test passed.
if grep -l -E 'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer' \
    "$base"/it-*/msregd.log >/dev/null 2>&1; then
	echo "FAILED: sanitizer reports in msregd logs:" >&2
	grep -h -A5 -E 'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer' \
	    "$base"/it-*/msregd.log | head -60 >&2
	fail=1
fi
exit $fail
