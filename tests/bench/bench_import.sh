#!/usr/bin/env bash
# bench_import.sh [LINES] — `msreg import` of a generated production file
# (default 200,000 lines, two per firearm, batches of 1000 firearms) against
# the batch API driven directly with the same batches, on a throwaway cluster
# and msregd (the bench case of tests/it_cli.c). Prints lines/s and the ratio.
# Not part of make check or make bench (its owner runs it by hand); bounded by
# the test timeout. The machine is shared: compare the ratio, not the absolutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s all build/tests/it_cli
MSR_BENCH_IMPORT_LINES=${1:-200000} CK_RUN_CASE=bench CK_DEFAULT_TIMEOUT=1800 \
    tests/run-integration.sh build/tests/it_cli
