#!/usr/bin/env bash
# run.sh DRIVER — the web console's browser tests (make browser, part of make
# check): installs playwright-core from the lock file into
# tests/browser/node_modules when it is missing or stale (npm ci; it downloads
# no browser), then runs the driver (tests/browser/driver.c) under
# tests/run-integration.sh, which starts a throwaway PostgreSQL. The driver
# starts msregd, sets the stage and runs console.test.mjs in Debian's
# Chromium (/usr/bin/chromium, or MSR_CHROMIUM). Screenshots of every view go
# to tests/browser/out/.
set -euo pipefail
cd "$(dirname "$0")"
chromium=${MSR_CHROMIUM:-/usr/bin/chromium}
for tool in node npm "$chromium"; do
	command -v "$tool" >/dev/null || { echo "browser tests: $tool is missing (deploy/install-deps.sh installs it)" >&2; exit 1; }
done
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
mkdir -p out
cd ../..
export MSR_CHROMIUM=$chromium
exec tests/run-integration.sh "$@"
