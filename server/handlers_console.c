/*
 * handlers_console.c — the small read endpoints the web console needs, usable
 * by any API client:
 *
 *   GET /v1/me                    any role      who this key is: {id, name, role, org}
 *   GET /v1/clients?limit&after   admin         API clients, revoked ones included
 *   GET /v1/firearms?limit&after  manufacturer  the caller's own firearms
 *
 * All three are audited like every authenticated request: /v1/me is what a
 * console does at sign-in, so the log shows when and by whom a key was used
 * there; the lists say in their entry how many rows they returned.
 *
 * Lists are pages in id order: `after` (default 0) is the last id of the
 * previous page, `limit` is 1..1000 (default 100); `next_after` is the id to
 * pass for the next page, or null on the last page. Keys and key hashes are
 * never selected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/db.h"
#include "msreg/handlers.h"

#define LIST_DEFAULT 100
#define LIST_MAX     1000

#define ISO_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const struct msr_db_stmt stmt_clients = {
	"console_clients",
	"SELECT id, name, role, org, " ISO_TIME("created_at") ", " ISO_TIME("revoked_at")
	" FROM api_clients WHERE id > $1::bigint ORDER BY id LIMIT $2::integer",
	2,
};

static const struct msr_db_stmt stmt_firearms = {
	"console_firearms",
	"SELECT f.id, f.model, f.serial, f.type, f.caliber, f.manufactured_on::text,"
	"  " ISO_TIME("f.created_at") ","
	"  (SELECT count(*) FROM codes c WHERE c.firearm_id = f.id AND c.status = 'active')"
	" FROM firearms f WHERE f.manufacturer_id = $1 AND f.id > $2::bigint"
	" ORDER BY f.id LIMIT $3::integer",
	3,
};

/* Parse ?name= as an integer in [lo, hi]; dflt if absent. 0, or -1 after replying. */
static int
arg_int(struct msr_req *r, const char *name, long long lo, long long hi, long long dflt,
    long long *out)
{
	const char *s = msr_req_arg(r, name);
	char *end = NULL;
	long long v;

	if (s == NULL || s[0] == '\0') {
		*out = dflt;
		return 0;
	}
	v = strtoll(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || strlen(s) > 18 || v < lo || v > hi) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", name),
		    "%s must be an integer from %lld to %lld", name, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static json_t *
text_or_null(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

/* {list: rows, next_after} from a page query whose first column is the id. */
static void
reply_page(struct msr_req *r, const char *list, json_t *rows, PGresult *res,
    long long limit)
{
	int n = PQntuples(res);
	json_t *next = json_null();

	if (n > 0 && n == limit)
		next = json_integer(strtoll(PQgetvalue(res, n - 1, 0), NULL, 10));
	msr_audit_note(r, "returned", json_integer(n));
	msr_reply_json(r, 200, json_pack("{s:o, s:o}", list, rows, "next_after", next));
}

void
msr_h_me(struct msr_req *r)
{
	msr_reply_json(r, 200, json_pack("{s:I, s:s, s:s, s:o}",
	    "id", (json_int_t)r->client.id, "name", r->client.name,
	    "role", msr_role_name(r->client.role),
	    "org", r->client.org[0] ? json_string(r->client.org) : json_null()));
}

void
msr_h_client_list(struct msr_req *r)
{
	char after_s[24], limit_s[24];
	const char *values[2] = { after_s, limit_s };
	long long after, limit;
	PGresult *res = NULL;
	json_t *rows;

	/* parse */
	if (arg_int(r, "after", 0, (long long)1e18, 0, &after) != 0 ||
	    arg_int(r, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit) != 0)
		return;
	snprintf(after_s, sizeof(after_s), "%lld", after);
	snprintf(limit_s, sizeof(limit_s), "%lld", limit);
	/* do */
	if (msr_req_db(r) == NULL)
		return;
	res = msr_db_exec(r->db, &stmt_clients, values);
	if (!msr_db_ok(res)) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	rows = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(rows, json_pack("{s:I, s:s, s:s, s:o, s:o, s:o}",
		    "id", (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
		    "name", PQgetvalue(res, i, 1), "role", PQgetvalue(res, i, 2),
		    "org", text_or_null(res, i, 3), "created_at", text_or_null(res, i, 4),
		    "revoked_at", text_or_null(res, i, 5)));
	/* reply */
	reply_page(r, "clients", rows, res, limit);
done:
	PQclear(res);
}

void
msr_h_firearm_list(struct msr_req *r)
{
	char after_s[24], limit_s[24];
	const char *values[3] = { r->client.org, after_s, limit_s };
	long long after, limit;
	PGresult *res = NULL;
	json_t *rows;

	/* parse */
	if (arg_int(r, "after", 0, (long long)1e18, 0, &after) != 0 ||
	    arg_int(r, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit) != 0)
		return;
	snprintf(after_s, sizeof(after_s), "%lld", after);
	snprintf(limit_s, sizeof(limit_s), "%lld", limit);
	/* authorize */
	if (r->client.org[0] == '\0') {
		msr_reply_error(r, 403, "forbidden", NULL,
		    "this manufacturer key is not bound to a manufacturer");
		return;
	}
	/* do */
	if (msr_req_db(r) == NULL)
		return;
	res = msr_db_exec(r->db, &stmt_firearms, values);
	if (!msr_db_ok(res)) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	rows = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(rows, json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:I}",
		    "id", (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
		    "model", PQgetvalue(res, i, 1), "serial", PQgetvalue(res, i, 2),
		    "type", PQgetvalue(res, i, 3), "caliber", PQgetvalue(res, i, 4),
		    "manufactured_on", text_or_null(res, i, 5),
		    "created_at", text_or_null(res, i, 6),
		    "active_codes", (json_int_t)strtoll(PQgetvalue(res, i, 7), NULL, 10)));
	/* reply */
	reply_page(r, "firearms", rows, res, limit);
done:
	PQclear(res);
}
