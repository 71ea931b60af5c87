#!/usr/bin/env bash
# install.sh — install the pinned validators (package-lock.json) into the
# gitignored tests/validate/node_modules; does nothing when they are current.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.msreg-lock
if [ -x node_modules/.bin/redocly ] && [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
	exit 0
fi
command -v npm >/dev/null || { echo "install.sh: npm is missing (deploy/install-deps.sh)" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error >&2
cp package-lock.json "$stamp"
