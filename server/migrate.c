/*
 * migrate.c — schema migrations (see migrate.h).
 *
 * The migration files are compiled into the binary (deploy/embed.sh), so an
 * installed msreg needs no sql/ directory. Versions are the file names.
 * Statements here are fixed text, never built from input.
 *
 * Ownership (sql/008_privilege.sql): once schema public belongs to the NOLOGIN
 * role msreg_schema, every later migration runs under SET ROLE msreg_schema,
 * so the objects it creates belong to that role and not to the login role
 * that ran `msreg migrate` (a member of msreg_schema).
 */
#include "msreg/migrate.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "msreg/embedded.h"
#include "msreg/log.h"

#define MIGRATE_LOCK_KEY 7316001

const char *
msr_embedded_get(const char *path)
{
	for (unsigned long i = 0; i < msr_embedded_len; i++)
		if (strcmp(msr_embedded[i].path, path) == 0)
			return msr_embedded[i].text;
	return NULL;
}

static int
exec_ok(PGconn *pg, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);
	int ret = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		ret = -1;
	}
	PQclear(res);
	return ret;
}

static int
applied(PGconn *pg, const char *version, char *err, size_t errlen)
{
	const char *values[1] = { version };
	PGresult *res = PQexecParams(pg,
	    "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL, values,
	    NULL, NULL, 0);
	int ret;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
		ret = -1;
	} else {
		ret = PQntuples(res) > 0;
	}
	PQclear(res);
	return ret;
}

static int
ensure_secret(PGconn *pg, char *err, size_t errlen)
{
	uint8_t secret[32];
	const char *values[1] = { (const char *)secret };
	const int lengths[1] = { 32 };
	const int formats[1] = { 1 };
	PGresult *res;
	int ret = 0;

	randombytes_buf(secret, sizeof(secret));
	res = PQexecParams(pg, "INSERT INTO server_secrets (name, value)"
	    " VALUES ('api_key_hash', $1) ON CONFLICT (name) DO NOTHING",
	    1, NULL, values, lengths, formats, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
		ret = -1;
	}
	PQclear(res);
	sodium_memzero(secret, sizeof(secret));
	return ret;
}

int
msr_migrate(PGconn *pg, char *err, size_t errlen)
{
	char lock[96];
	int count = 0, ret = -1, a;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	if (exec_ok(pg, "SET client_min_messages = warning", err, errlen) != 0 ||
	    exec_ok(pg, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    " version text PRIMARY KEY,"
	    " applied_at timestamptz NOT NULL DEFAULT now())", err, errlen) != 0)
		return -1;
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%d)", MIGRATE_LOCK_KEY);
	if (exec_ok(pg, lock, err, errlen) != 0)
		return -1;
	for (unsigned long i = 0; i < msr_embedded_len; i++) {
		const char *path = msr_embedded[i].path;
		const char *values[1] = { path };
		PGresult *res;

		if (strncmp(path, "sql/", 4) != 0)
			continue;
		a = applied(pg, path, err, errlen);
		if (a < 0)
			goto done;
		if (a)
			continue;
		if (exec_ok(pg, "BEGIN", err, errlen) != 0 ||
		    exec_ok(pg, "SELECT set_config('role', 'msreg_schema', true)"
		    " FROM pg_namespace WHERE nspname = 'public'"
		    " AND nspowner = (SELECT oid FROM pg_roles WHERE rolname = 'msreg_schema')",
		    err, errlen) != 0)
			goto done;
		if (exec_ok(pg, msr_embedded[i].text, err, errlen) != 0) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s: %s", path, err);
			snprintf(err, errlen, "%s", msg);
			exec_ok(pg, "ROLLBACK", msg, sizeof(msg));
			goto done;
		}
		res = PQexecParams(pg, "INSERT INTO schema_migrations (version) VALUES ($1)",
		    1, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			snprintf(err, errlen, "%s", PQresultErrorMessage(res));
			PQclear(res);
			exec_ok(pg, "ROLLBACK", lock, sizeof(lock));
			goto done;
		}
		PQclear(res);
		if (exec_ok(pg, "COMMIT", err, errlen) != 0)
			goto done;
		log_info("applied migration %s", path);
		count++;
	}
	if (ensure_secret(pg, err, errlen) != 0)
		goto done;
	ret = count;
done:
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_unlock(%d)", MIGRATE_LOCK_KEY);
	PQclear(PQexec(pg, lock));
	return ret;
}
