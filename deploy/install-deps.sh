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
  nodejs npm          # runs those tests; npm ci installs playwright-core into tests/browser/
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
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
