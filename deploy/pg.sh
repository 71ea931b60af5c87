#!/usr/bin/env bash
# pg.sh — a throwaway PostgreSQL 15 cluster for development and tests.
#
#   deploy/pg.sh init  BASE          initdb into BASE/data (socket in BASE/run)
#   deploy/pg.sh start BASE          start it (init first if needed)
#   deploy/pg.sh stop  BASE          fast shutdown
#   deploy/pg.sh reset BASE          stop and delete everything under BASE
#   deploy/pg.sh createdb BASE NAME  create roles msreg_owner/msreg_app/msreg_schema
#                                    (NOLOGIN, owns the schema) and database NAME
#   deploy/pg.sh url BASE NAME [ROLE]  print a libpq URL for ROLE (default msreg_app)
#   deploy/pg.sh psql BASE NAME ...  psql as the cluster superuser
#   deploy/pg.sh replica BASE PRIMARY  a hot-standby streaming replica of the cluster
#                                    under PRIMARY (pg_basebackup -R), started
#
# The cluster listens only on a Unix socket in BASE/run (no TCP) and trusts local
# connections: it is reachable only through that directory. PostgreSQL refuses to
# run as root, so as root the server runs as the 'postgres' user; if that user
# cannot reach BASE (e.g. a checkout under /root), pick a BASE under /tmp.
set -euo pipefail

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v pg_ctl)")}
SUPERUSER=postgres

cmd=${1:?usage: pg.sh init|start|stop|reset|createdb|url|psql BASE ...}
BASE=${2:?BASE directory required}
mkdir -p "$BASE"
BASE=$(cd "$BASE" && pwd)
DATA=$BASE/data
RUN=$BASE/run

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

superuser() {
	if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

do_init() {
	[ -f "$DATA/PG_VERSION" ] && return 0
	mkdir -p "$DATA" "$RUN"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$BASE" "$DATA" "$RUN"
		if ! runuser -u postgres -- test -w "$DATA"; then
			echo "pg.sh: user postgres cannot write $DATA; use a BASE under /tmp" >&2
			exit 1
		fi
	fi
	chmod 700 "$DATA"
	as_pg "$PGBIN/initdb" -D "$DATA" -U "$(superuser)" --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 >"$BASE/initdb.log" 2>&1 || {
		cat "$BASE/initdb.log" >&2; exit 1; }
	cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$RUN'
unix_socket_permissions = 0770
max_connections = 200
shared_buffers = 512MB
synchronous_commit = on
fsync = on
logging_collector = off
log_min_messages = warning
CONF
}

do_start() {
	do_init
	if as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then return 0; fi
	as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 60 start >/dev/null || {
		tail -20 "$BASE/server.log" >&2; exit 1; }
}

do_stop() {
	[ -f "$DATA/PG_VERSION" ] || return 0
	if as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
		as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
	fi
}

psql_su() {
	local db=$1; shift
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN" -U "$(superuser)" -d "$db" "$@"
}

case "$cmd" in
init) do_init ;;
start) do_start ;;
stop) do_stop ;;
reset) do_stop; rm -rf "$BASE" ;;
createdb)
	name=${3:?database name}
	psql_su postgres <<SQL
SELECT 'CREATE ROLE msreg_owner LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_owner') \gexec
SELECT 'CREATE ROLE msreg_app LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_app') \gexec
SELECT 'CREATE ROLE msreg_schema NOLOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_schema') \gexec
GRANT msreg_schema TO msreg_owner;
SELECT format('CREATE DATABASE %I OWNER msreg_owner', '$name')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$name') \gexec
SQL
	psql_su "$name" -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC; ALTER SCHEMA public OWNER TO msreg_owner;"
	;;
url)
	name=${3:?database name}
	echo "postgresql://${4:-msreg_app}@/$name?host=$RUN"
	;;
psql)
	name=${3:?database name}; shift 3
	psql_su "$name" "$@"
	;;
replica)
	primary=$(cd "${3:?primary BASE}" && pwd)
	if [ ! -f "$DATA/PG_VERSION" ]; then
		mkdir -p "$RUN"
		[ "$(id -u)" -eq 0 ] && chown postgres: "$BASE" "$RUN"
		# -R writes primary_conninfo and standby.signal; -X stream copies the WAL too
		as_pg "$PGBIN/pg_basebackup" -D "$DATA" -h "$primary/run" -U "$(superuser)" \
			-R -X stream -c fast >"$BASE/basebackup.log" 2>&1 || {
			cat "$BASE/basebackup.log" >&2; exit 1; }
		cat >>"$DATA/postgresql.conf" <<CONF
unix_socket_directories = '$RUN'
shared_buffers = 128MB
hot_standby = on
CONF
	fi
	do_start
	;;
*) echo "pg.sh: unknown command $cmd" >&2; exit 2 ;;
esac
