/*
 * handlers_admin.c — API clients, manufacturers and disclosure-budget grants
 * (role admin).
 *
 * Client orgs are checked against their role: a manufacturer client names an
 * existing manufacturer, a dealer client a well-formed FFL, an investigator an
 * agency ORI (9 characters). The new key is returned once and never logged or
 * audited.
 *
 * A budget grant raises one investigator key's or one case's disclosure budget
 * for one window (24h or 30d) until it expires, for a reason the admin states;
 * the grant, its reason and who made it are in the audit entry and in
 * budget_grants, which the application role can only append to.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/auth.h"
#include "msreg/budget.h"
#include "msreg/db.h"
#include "msreg/handlers.h"
#include "msreg/jsonv.h"
#include "msreg/registry.h"
#include "msreg/server.h"

static const struct msr_db_stmt stmt_revoke = {
	"admin_revoke",
	"UPDATE api_clients SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1"
	" RETURNING id",
	1,
};

static const struct msr_db_stmt stmt_manufacturer_exists = {
	"admin_manufacturer_exists",
	"SELECT 1 FROM manufacturers WHERE id = $1",
	1,
};

static const struct msr_db_stmt stmt_manufacturer_create = {
	"admin_manufacturer_create",
	"INSERT INTO manufacturers (id, name, ffl) VALUES ($1, $2, $3)"
	" ON CONFLICT (id) DO NOTHING RETURNING id, name, ffl, created_at",
	3,
};

static const struct msr_db_stmt stmt_client_role = {
	"admin_client_role",
	"SELECT role, coalesce(org, '') FROM api_clients WHERE id = $1::bigint",
	1,
};

static const struct msr_db_stmt stmt_grant = {
	"admin_budget_grant",
	"INSERT INTO budget_grants (scope, subject, win, budget, reason, granted_by,"
	"  expires_at)"
	" VALUES ($1, $2, $3, $4::integer, $5, $6::bigint,"
	"  now() + make_interval(days => $7::integer))"
	" RETURNING id, to_json(granted_at) #>> '{}', to_json(expires_at) #>> '{}'",
	7,
};

static int
valid_manufacturer_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static int
valid_ori(const char *s)
{
	return strlen(s) == 9 &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == 9;
}

static int
check_org(struct msr_req *r, enum msr_role role, const char *org)
{
	const char *values[1] = { org };
	PGresult *res;
	int found;

	switch (role) {
	case MSR_ROLE_MANUFACTURER:
		if (org == NULL)
			break;
		res = msr_db_exec(r->db, &stmt_manufacturer_exists, values);
		if (!msr_db_ok(res)) {
			PQclear(res);
			msr_reply_unavailable(r, "the database is unavailable");
			return -1;
		}
		found = PQntuples(res) == 1;
		PQclear(res);
		if (!found) {
			msr_reply_error(r, 404, "not_found", json_pack("{s:s}", "org", org),
			    "no manufacturer %s", org);
			return -1;
		}
		return 0;
	case MSR_ROLE_DEALER:
		if (org == NULL)
			break;
		if (!msr_ffl_valid(org)) {
			msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "org"),
			    "org must be an FFL number in the form 1-23-456-07-6B-12345");
			return -1;
		}
		return 0;
	case MSR_ROLE_INVESTIGATOR:
		if (org == NULL)
			break;
		if (!valid_ori(org)) {
			msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "org"),
			    "org must be the agency's 9-character ORI (e.g. CA0194200)");
			return -1;
		}
		return 0;
	default:
		return 0;
	}
	msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "org"),
	    "role %s requires org", msr_role_name(role));
	return -1;
}

void
msr_h_client_create(struct msr_req *r)
{
	static const char *const keys[] = { "name", "role", "org", NULL };
	static const char *const roles[] = { "manufacturer", "dealer", "investigator",
	    "auditor", "admin", NULL };
	const char *name = NULL, *role_s = NULL, *org = NULL;
	char key[MSR_KEY_TEXT_LEN + 1], err[256];
	enum msr_role role;
	int64_t id;

	if (msr_jv_known_keys(r, r->json, keys) != 0 ||
	    msr_jv_string(r, r->json, "name", 1, 200, &name) != 0 ||
	    msr_jv_enum(r, r->json, "role", 1, roles, &role_s) != 0 ||
	    msr_jv_string(r, r->json, "org", 0, 200, &org) != 0)
		return;
	role = msr_role_parse(role_s);
	if (msr_req_begin(r) != 0 || check_org(r, role, org) != 0)
		return;
	if (msr_auth_create_client(r->db, r->srv->key_secret, name, role, org, key, &id,
	    err, sizeof(err)) != 0) {
		msr_reply_unavailable(r, "the database is unavailable");
		return;
	}
	msr_audit_note(r, "created_client", json_pack("{s:I, s:s, s:s, s:s?}",
	    "id", (json_int_t)id, "name", name, "role", role_s, "org", org));
	msr_reply_json(r, 201, json_pack("{s:I, s:s, s:s, s:s, s:s?}", "id", (json_int_t)id,
	    "api_key", key, "name", name, "role", role_s, "org", org));
	explicit_bzero(key, sizeof(key));
	msr_req_commit(r);
}

void
msr_h_client_revoke(struct msr_req *r)
{
	const char *values[1] = { r->capture[0] };
	PGresult *res;
	int64_t id;

	if (msr_parse_id(r->capture[0], &id) != 0) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "id"),
		    "client id must be a positive integer");
		return;
	}
	msr_audit_note(r, "revoked_client", json_integer(id));
	if (msr_req_begin(r) != 0)
		return;
	res = msr_db_exec(r->db, &stmt_revoke, values);
	if (!msr_db_ok(res)) {
		msr_reply_unavailable(r, "the database is unavailable");
	} else if (PQntuples(res) == 0) {
		msr_reply_error(r, 404, "not_found", NULL, "no client %lld", (long long)id);
	} else {
		msr_reply_text(r, 204, "application/json", NULL);
		msr_req_commit(r);
	}
	PQclear(res);
}

void
msr_h_manufacturer_create(struct msr_req *r)
{
	static const char *const keys[] = { "id", "name", "ffl", NULL };
	const char *id = NULL, *name = NULL, *ffl = NULL;
	const char *values[3];
	PGresult *res;

	if (msr_jv_known_keys(r, r->json, keys) != 0 ||
	    msr_jv_string(r, r->json, "id", 1, 64, &id) != 0 ||
	    msr_jv_string(r, r->json, "name", 1, 200, &name) != 0 ||
	    msr_jv_string(r, r->json, "ffl", 0, 32, &ffl) != 0)
		return;
	if (!valid_manufacturer_id(id)) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "id"),
		    "id must be 1-64 characters of a-z, 0-9, '.', '_' or '-', "
		    "starting with a letter or digit");
		return;
	}
	if (ffl != NULL && !msr_ffl_valid(ffl)) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "ffl"),
		    "ffl must be in the form 1-23-456-07-6B-12345");
		return;
	}
	msr_audit_note(r, "manufacturer", json_string(id));
	if (msr_req_begin(r) != 0)
		return;
	values[0] = id;
	values[1] = name;
	values[2] = ffl;
	res = msr_db_exec(r->db, &stmt_manufacturer_create, values);
	if (!msr_db_ok(res)) {
		msr_reply_unavailable(r, "the database is unavailable");
	} else if (PQntuples(res) == 0) {
		msr_reply_error(r, 409, "conflict", json_pack("{s:s}", "id", id),
		    "manufacturer %s already exists", id);
	} else {
		msr_reply_json(r, 201, json_pack("{s:s, s:s, s:s?, s:s}", "id", id,
		    "name", name, "ffl", ffl, "created_at", PQgetvalue(res, 0, 3)));
		msr_req_commit(r);
	}
	PQclear(res);
}

/* The grant's subject: a key's client id, or "<ORI>/<case number>". 0 or -1 after replying. */
static int
grant_subject(struct msr_req *r, const char *scope, char *subject, size_t len)
{
	const char *org = NULL, *case_number = NULL, *values[1];
	json_int_t client = 0;
	char idtext[24];
	PGresult *res;
	int ret = -1;

	if (strcmp(scope, "key") == 0) {
		if (msr_jv_int(r, r->json, "client", 1, 1, INT64_MAX, &client) != 0)
			return -1;
		if (json_object_get(r->json, "org") != NULL ||
		    json_object_get(r->json, "case_number") != NULL) {
			msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "scope"),
			    "a key grant names a client, not an org or case_number");
			return -1;
		}
		snprintf(idtext, sizeof(idtext), "%lld", (long long)client);
		values[0] = idtext;
		res = msr_db_exec(r->db, &stmt_client_role, values);
		if (!msr_db_ok(res))
			msr_reply_unavailable(r, "the database is unavailable");
		else if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "investigator") != 0)
			msr_reply_error(r, 404, "not_found", json_pack("{s:I}", "client", client),
			    "no investigator client %lld", (long long)client);
		else
			ret = 0;
		PQclear(res);
		msr_audit_note(r, "client", json_integer(client));
		snprintf(subject, len, "%s", idtext);
		return ret;
	}
	if (msr_jv_string(r, r->json, "org", 1, 9, &org) != 0 ||
	    msr_jv_string(r, r->json, "case_number", 1, 200, &case_number) != 0)
		return -1;
	if (!valid_ori(org)) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "org"),
		    "org must be the agency's 9-character ORI (e.g. CA0194200)");
		return -1;
	}
	if (json_object_get(r->json, "client") != NULL) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "client"),
		    "a case grant names an org and a case_number, not a client");
		return -1;
	}
	msr_audit_note(r, "org", json_string(org));
	msr_audit_note(r, "case_number", json_string(case_number));
	snprintf(subject, len, "%s/%s", org, case_number);
	return 0;
}

void
msr_h_budget_grant(struct msr_req *r)
{
	static const char *const keys[] = { "scope", "client", "org", "case_number", "window",
	    "budget", "reason", "days", NULL };
	static const char *const scopes[] = { "key", "case", NULL };
	static const char *const wins[] = { "24h", "30d", NULL };
	const char *scope = NULL, *win = NULL, *reason = NULL, *values[7];
	char subject[MSR_BUDGET_SUBJECT], budget_s[24], by[24], days_s[24];
	json_int_t budget = 0, days = 30;
	PGresult *res = NULL;
	json_t *grant;

	/* parse */
	if (msr_jv_known_keys(r, r->json, keys) != 0 ||
	    msr_jv_enum(r, r->json, "scope", 1, scopes, &scope) != 0 ||
	    msr_jv_enum(r, r->json, "window", 1, wins, &win) != 0 ||
	    msr_jv_int(r, r->json, "budget", 1, 1, 100000000, &budget) != 0 ||
	    msr_jv_string(r, r->json, "reason", 1, 500, &reason) != 0 ||
	    msr_jv_int(r, r->json, "days", 0, 1, 365, &days) != 0)
		return;
	msr_audit_note(r, "scope", json_string(scope));
	msr_audit_note(r, "window", json_string(win));
	msr_audit_note(r, "budget", json_integer(budget));
	msr_audit_note(r, "reason", json_string(reason));
	msr_audit_note(r, "days", json_integer(days));
	/* do: check the subject, then append the grant, committed with its audit entry */
	if (msr_req_begin(r) != 0 || grant_subject(r, scope, subject, sizeof(subject)) != 0)
		return;
	snprintf(budget_s, sizeof(budget_s), "%lld", (long long)budget);
	snprintf(by, sizeof(by), "%lld", (long long)r->client.id);
	snprintf(days_s, sizeof(days_s), "%lld", (long long)days);
	values[0] = scope;
	values[1] = subject;
	values[2] = win;
	values[3] = budget_s;
	values[4] = reason;
	values[5] = by;
	values[6] = days_s;
	res = msr_db_exec(r->db, &stmt_grant, values);
	if (!msr_db_ok(res) || PQntuples(res) != 1) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	/* reply */
	grant = json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:s}",
	    "id", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10), "scope", scope,
	    "window", win, "budget", budget, "reason", reason,
	    "granted_at", PQgetvalue(res, 0, 1), "expires_at", PQgetvalue(res, 0, 2));
	if (strcmp(scope, "key") == 0) {
		json_object_set(grant, "client", json_object_get(r->json, "client"));
	} else {
		json_object_set(grant, "org", json_object_get(r->json, "org"));
		json_object_set(grant, "case_number", json_object_get(r->json, "case_number"));
	}
	msr_audit_note(r, "grant_id", json_integer(json_integer_value(json_object_get(grant,
	    "id"))));
	msr_reply_json(r, 201, grant);
	msr_req_commit(r);
done:
	PQclear(res);
}
