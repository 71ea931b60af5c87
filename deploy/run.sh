#!/usr/bin/env bash
# run.sh — `make run`: a local msregd on a throwaway PostgreSQL cluster.
#
# First run: creates the cluster under var/pg (or a /tmp dir when the postgres
# user cannot reach the checkout), database "msreg", var/msreg.ini, the audit
# signer key var/audit.key, migrates, creates an admin API key (printed once,
# also saved to var/admin.key with mode 0600). Later runs reuse all of it.
# Ctrl-C stops msregd and the cluster. MSREG_PORT overrides the port (8080).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mkdir -p var
chmod 755 var

pgbase=$root/var/pg
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$root/var"; then
	pgbase=/tmp/msreg-run-$(echo -n "$root" | sha256sum | cut -c1-12)
fi
deploy/pg.sh start "$pgbase"
trap 'deploy/pg.sh stop "$pgbase"' EXIT
deploy/pg.sh createdb "$pgbase" msreg >/dev/null

cfg=var/msreg.ini
if [ ! -f "$cfg" ]; then
	sed -e "s|^port = 8080|port = ${MSREG_PORT:-8080}|" \
	    -e "s|^url = postgresql:///msreg|url = $(deploy/pg.sh url "$pgbase" msreg msreg_app)|" \
	    -e "s|^;owner_url = .*|owner_url = $(deploy/pg.sh url "$pgbase" msreg msreg_owner)|" \
	    -e "s|^origin = msreg.example/log|origin = localhost/msreg-dev|" \
	    -e "s|^key_file = var/audit.key|key_file = $root/var/audit.key|" \
	    config.example.ini >"$cfg"
fi
if [ ! -f var/audit.key ]; then
	bin/msreg keygen --name localhost/msreg-dev --out var/audit.key >var/audit.vkey
fi
bin/msreg --config "$cfg" migrate
if [ ! -f var/admin.key ]; then
	(umask 077; bin/msreg --config "$cfg" client create --role admin --name local-admin >var/admin.key)
	echo "admin API key (also in var/admin.key): $(cat var/admin.key)"
fi
port=$(sed -n 's/^port = //p' "$cfg" | head -1)
echo "msregd: http://127.0.0.1:$port  (config $cfg; Ctrl-C stops it and the cluster)"
bin/msregd --config "$cfg" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; deploy/pg.sh stop "$pgbase"' EXIT INT TERM
wait $pid || true
