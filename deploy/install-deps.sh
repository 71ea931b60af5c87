#!/usr/bin/env bash
# Installs exactly what msreg's build, tests and `make run` need, from Debian.
# Idempotent: does nothing when every package is already present.
set -euo pipefail

PKGS=(
  pkg-config
  libmicrohttpd-dev   # HTTP server
  libpq-dev           # PostgreSQL client
  libjansson-dev      # JSON
  libsodium-dev       # BLAKE2b, SHA-256, Ed25519, randomness
  libinih-dev         # INI config parser
  libsystemd-dev      # sd_notify
  check               # unit-test framework
  libcurl4-openssl-dev # integration-test HTTP client
  curl
  openssl             # test certificates for the TLS integration test
  postgresql-15       # server binaries for the throwaway cluster (includes pg_trgm)
  chromium            # the web console's browser tests (headless, driven by playwright-core)
  golang-go           # tests/go/tilecheck: the reference tlog tile client (it_tiles)
  golang-golang-x-mod-dev # golang.org/x/mod/sumdb/tlog and sumdb/note, no network needed
  prometheus systemd  # validators in make check: promtool, systemd-analyze (tests/validate; nodejs/npm above run redocly and ajv)
)
BENCH_PKGS=(wrk)

want=("${PKGS[@]}")
if [ "${1:-}" = "--bench" ]; then want+=("${BENCH_PKGS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js and npm run the browser tests and the validators (npm ci installs
# playwright-core, @redocly/cli and ajv under tests/). Machines often have them
# from elsewhere (NodeSource's nodejs provides npm and conflicts with Debian's
# npm package), so they are asked for by command, not by package.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
