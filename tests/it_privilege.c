/*
 * it_privilege.c — least privilege in SQL (issue 8 item 6, sql/008_privilege.sql).
 *
 * Connects as the roles themselves, after msregd has written through every kind
 * of statement (registration, replacement, sale, key creation and revocation,
 * a budgeted lookup), and checks:
 *  - msreg_app holds exactly the column privileges the migration lists, and no
 *    table-level privilege at all;
 *  - msreg_app cannot change a recorded sale, a firearm, a key's role or hash,
 *    cannot un-revoke a key, cannot un-retire a code, cannot delete anything,
 *    cannot read or reset the disclosure counters, cannot setval a sequence;
 *  - the triggers refuse the same changes to the owner role too;
 *  - every object belongs to msreg_schema, which cannot log in.
 */
#include <check.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct msr_it it;
static char mkey[128], dkey[128], ikey[128];
static long revoked_id, sold_firearm;
static char retired_code[24];

/* 1 if sql succeeds as the role of url. */
static int
sql_ok(const char *url, const char *sql)
{
	PGconn *pg = PQconnectdb(url);
	PGresult *res;
	int ok;

	ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "%s", PQerrorMessage(pg));
	res = PQexec(pg, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	PQfinish(pg);
	return ok;
}

/* The single value of a query as the superuser (caller frees). */
static char *
super1(const char *sql)
{
	char url[800];
	PGconn *pg;
	PGresult *res;
	char *v;

	snprintf(url, sizeof(url), "%s", it.url_super);
	pg = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	res = PQexec(pg, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
	    PQresultErrorMessage(res));
	v = strdup(PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	PQfinish(pg);
	return v;
}

static json_t *
post(const char *path, const char *key, const char *body, long want)
{
	struct msr_it_resp r;
	json_t *j;

	ck_assert_int_eq(msr_it_request(&it, "POST", path, key, NULL, body, &r), 0);
	ck_assert_msg(r.status == want, "%s: %ld %s", path, r.status, r.body);
	j = json_incref(r.json);
	msr_it_resp_free(&r);
	return j;
}

static void
setup(void)
{
	char body[512], code[2][16], path[96], victim[128];
	json_t *j;

	msr_it_setup(&it, "privilege", "[budget]\nenabled = true\n");
	json_decref(post("/v1/manufacturers", it.admin_key,
	    "{\"id\":\"acme\",\"name\":\"Acme Arms\"}", 201));
	msr_it_client(&it, "manufacturer", "line", "acme", mkey, sizeof(mkey));
	msr_it_client(&it, "dealer", "shop", "1-23-456-07-6B-12345", dkey, sizeof(dkey));
	msr_it_client(&it, "investigator", "lab", "CA0194200", ikey, sizeof(ikey));
	msr_it_client(&it, "auditor", "victim", NULL, victim, sizeof(victim));
	/* every kind of write msregd makes: allocation, registration, replacement,
	 * sale, client creation and revocation, a counted lookup, a grant */
	j = post("/v1/codes/allocate", mkey, "{\"count\": 2}", 201);
	for (int i = 0; i < 2; i++)
		snprintf(code[i], sizeof(code[i]), "%s",
		    json_string_value(json_array_get(json_object_get(j, "codes"), (size_t)i)));
	json_decref(j);
	snprintf(body, sizeof(body), "{\"model\":\"P320\",\"serial\":\"P-1\",\"type\":\"pistol\","
	    "\"caliber\":\"9mm\",\"manufactured_on\":\"2026-01-15\",\"codes\":[{\"code\":\"%s\","
	    "\"component\":\"firing_pin\"}]}", code[0]);
	j = post("/v1/firearms", mkey, body, 201);
	sold_firearm = (long)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/firearms/%ld/codes", sold_firearm);
	snprintf(body, sizeof(body), "{\"code\":\"%s\",\"component\":\"firing_pin\","
	    "\"replaces\":\"%s\"}", code[1], code[0]);
	json_decref(post(path, mkey, body, 201));
	snprintf(retired_code, sizeof(retired_code), "%s", code[0]);
	json_decref(post("/v1/sales", dkey, "{\"manufacturer\":\"acme\",\"serial\":\"P-1\","
	    "\"sold_on\":\"2026-02-01\",\"transaction_ref\":\"T-1\",\"state\":\"CA\"}", 201));
	snprintf(path, sizeof(path), "/v1/codes/%s?case_number=C-1&purpose=p", code[1]);
	ck_assert_int_eq(msr_it_status(&it, "GET", path, ikey, NULL), 200);
	json_decref(post("/v1/budgets/grants", it.admin_key, "{\"scope\":\"case\",\"org\":"
	    "\"CA0194200\",\"case_number\":\"C-1\",\"window\":\"24h\",\"budget\":200,"
	    "\"reason\":\"test\"}", 201));
	{
		char *id = super1("SELECT max(id) FROM api_clients WHERE name = 'victim'");
		revoked_id = atol(id);
		free(id);
	}
	snprintf(path, sizeof(path), "/v1/clients/%ld", revoked_id);
	ck_assert_int_eq(msr_it_status(&it, "DELETE", path, it.admin_key, NULL), 204);
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

/* The column privileges sql/008_privilege.sql lists, and nothing else. */
static const char *const expected_columns =
	"api_clients.created_at:SELECT,api_clients.id:SELECT,api_clients.key_hash:INSERT,"
	"api_clients.key_hash:SELECT,api_clients.name:INSERT,api_clients.name:SELECT,"
	"api_clients.org:INSERT,api_clients.org:SELECT,api_clients.revoked_at:SELECT,"
	"api_clients.revoked_at:UPDATE,api_clients.role:INSERT,api_clients.role:SELECT,"
	"audit_checkpoints.created_at:SELECT,audit_checkpoints.note:INSERT,"
	"audit_checkpoints.note:SELECT,audit_checkpoints.root:INSERT,audit_checkpoints.root:SELECT,"
	"audit_checkpoints.tree_size:INSERT,audit_checkpoints.tree_size:SELECT,"
	"audit_entries.client_id:INSERT,audit_entries.client_id:SELECT,"
	"audit_entries.created_at:SELECT,audit_entries.idx:INSERT,audit_entries.idx:SELECT,"
	"audit_entries.leaf:INSERT,audit_entries.leaf:SELECT,audit_hashes.hash:INSERT,"
	"audit_hashes.hash:SELECT,audit_hashes.idx:INSERT,audit_hashes.idx:SELECT,"
	"audit_hashes.level:INSERT,audit_hashes.level:SELECT,audit_pending.idx:INSERT,audit_tree_state.batch_size:INSERT,"
	"audit_tree_state.batch_size:SELECT,audit_tree_state.root:INSERT,"
	"audit_tree_state.root:SELECT,audit_tree_state.sequenced_at:SELECT,"
	"audit_tree_state.tree_size:INSERT,audit_tree_state.tree_size:SELECT,"
	"budget_grants.budget:INSERT,budget_grants.budget:SELECT,"
	"budget_grants.expires_at:INSERT,budget_grants.expires_at:SELECT,"
	"budget_grants.granted_at:SELECT,budget_grants.granted_by:INSERT,"
	"budget_grants.granted_by:SELECT,budget_grants.id:SELECT,budget_grants.reason:INSERT,"
	"budget_grants.reason:SELECT,budget_grants.scope:INSERT,budget_grants.scope:SELECT,"
	"budget_grants.subject:INSERT,budget_grants.subject:SELECT,budget_grants.win:INSERT,"
	"budget_grants.win:SELECT,"
	"code_allocations.allocated_at:SELECT,code_allocations.code:INSERT,"
	"code_allocations.code:SELECT,code_allocations.manufacturer_id:INSERT,"
	"code_allocations.manufacturer_id:SELECT,"
	"codes.change_seq:SELECT,codes.change_seq:UPDATE,codes.change_xid:SELECT,"
	"codes.change_xid:UPDATE,codes.code:INSERT,codes.code:SELECT,codes.component:INSERT,"
	"codes.component:SELECT,codes.firearm_id:INSERT,codes.firearm_id:SELECT,"
	"codes.registered_at:SELECT,codes.replaces:INSERT,codes.replaces:SELECT,"
	"codes.retired_at:SELECT,codes.retired_at:UPDATE,codes.scheme:INSERT,"
	"codes.scheme:SELECT,codes.status:SELECT,codes.status:UPDATE,"
	"firearms.caliber:INSERT,firearms.caliber:SELECT,firearms.created_at:SELECT,"
	"firearms.created_by:INSERT,firearms.created_by:SELECT,firearms.id:INSERT,"
	"firearms.id:SELECT,firearms.manufactured_on:INSERT,firearms.manufactured_on:SELECT,"
	"firearms.manufacturer_id:INSERT,firearms.manufacturer_id:SELECT,firearms.model:INSERT,"
	"firearms.model:SELECT,firearms.serial:INSERT,firearms.serial:SELECT,"
	"firearms.type:INSERT,firearms.type:SELECT,"
	"first_sales.dealer_ffl:INSERT,first_sales.dealer_ffl:SELECT,first_sales.firearm_id:INSERT,"
	"first_sales.firearm_id:SELECT,first_sales.recorded_at:SELECT,"
	"first_sales.recorded_by:INSERT,first_sales.recorded_by:SELECT,"
	"first_sales.sold_on:INSERT,first_sales.sold_on:SELECT,"
	"first_sales.state:INSERT,first_sales.state:SELECT,"
	"first_sales.transaction_ref:INSERT,first_sales.transaction_ref:SELECT,"
	"manufacturers.created_at:SELECT,manufacturers.ffl:INSERT,manufacturers.ffl:SELECT,"
	"manufacturers.id:INSERT,manufacturers.id:SELECT,manufacturers.name:INSERT,"
	"manufacturers.name:SELECT,"
	"schema_migrations.applied_at:SELECT,schema_migrations.version:SELECT,"
	"server_secrets.name:SELECT,server_secrets.value:SELECT";

START_TEST(exact_column_privileges)
{
	/*
	 * Column privileges held directly (grantee msreg_app), not through
	 * PUBLIC; information_schema would also list the columns of table-level
	 * grants, so those are checked to be absent separately.
	 */
	char *cols = super1("SELECT string_agg(c.relname || '.' || a.attname || ':' ||"
	    "  p.privilege_type, ',' ORDER BY c.relname || '.' || a.attname || ':' ||"
	    "  p.privilege_type COLLATE \"C\")"
	    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	    " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped,"
	    " LATERAL aclexplode(a.attacl) p"
	    " WHERE n.nspname = 'public' AND p.grantee = 'msreg_app'::regrole");
	char *tables = super1("SELECT coalesce(string_agg(c.relname || ':' || p.privilege_type,"
	    " ','), '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,"
	    " LATERAL aclexplode(c.relacl) p"
	    " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
	    " AND p.grantee = 'msreg_app'::regrole");
	char *seqs = super1("SELECT string_agg(c.relname || ':' || p.privilege_type, ','"
	    " ORDER BY c.relname COLLATE \"C\") FROM pg_class c"
	    " JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL aclexplode(c.relacl) p"
	    " WHERE n.nspname = 'public' AND c.relkind = 'S' AND p.grantee = 'msreg_app'::regrole");

	ck_assert_str_eq(cols, expected_columns);
	ck_assert_str_eq(tables, "");
	ck_assert_str_eq(seqs, "api_clients_id_seq:USAGE,budget_grants_id_seq:USAGE,"
	    "change_seq:USAGE,firearms_id_seq:USAGE");
	free(cols);
	free(tables);
	free(seqs);
}
END_TEST

START_TEST(app_cannot_rewrite_the_registry)
{
	char sql[256];

	/* reads it needs still work */
	ck_assert(sql_ok(it.url_app, "SELECT dealer_ffl, sold_on FROM first_sales"));
	/* a recorded sale, a firearm: no UPDATE, no DELETE */
	ck_assert(!sql_ok(it.url_app, "UPDATE first_sales SET dealer_ffl = 'x'"));
	ck_assert(!sql_ok(it.url_app, "UPDATE first_sales SET sold_on = '2020-01-01'"));
	ck_assert(!sql_ok(it.url_app, "DELETE FROM first_sales"));
	ck_assert(!sql_ok(it.url_app, "UPDATE firearms SET serial = 'x'"));
	ck_assert(!sql_ok(it.url_app, "DELETE FROM firearms"));
	ck_assert(!sql_ok(it.url_app, "UPDATE manufacturers SET name = 'x'"));
	ck_assert(!sql_ok(it.url_app, "UPDATE code_allocations SET manufacturer_id = 'x'"));
	/* a key's role, hash and identity */
	ck_assert(!sql_ok(it.url_app, "UPDATE api_clients SET role = 'admin'"));
	ck_assert(!sql_ok(it.url_app, "UPDATE api_clients SET key_hash = key_hash"));
	ck_assert(!sql_ok(it.url_app, "UPDATE api_clients SET org = 'x'"));
	ck_assert(!sql_ok(it.url_app, "DELETE FROM api_clients"));
	/* revocation is one-way: not cleared, not moved */
	snprintf(sql, sizeof(sql), "UPDATE api_clients SET revoked_at = NULL WHERE id = %ld",
	    revoked_id);
	ck_assert(!sql_ok(it.url_app, sql));
	ck_assert(!sql_ok(it.url_owner, sql));
	snprintf(sql, sizeof(sql), "UPDATE api_clients SET revoked_at = now() + interval '1 year'"
	    " WHERE id = %ld", revoked_id);
	ck_assert(!sql_ok(it.url_app, sql));
	/* codes: only retiring; nothing moves to another firearm, nothing comes back */
	snprintf(sql, sizeof(sql), "UPDATE codes SET status = 'active', retired_at = NULL"
	    " WHERE code = '%s'", retired_code);
	ck_assert(!sql_ok(it.url_app, sql));
	ck_assert(!sql_ok(it.url_owner, sql));
	ck_assert(!sql_ok(it.url_app, "UPDATE codes SET firearm_id = firearm_id + 1"));
	ck_assert(!sql_ok(it.url_app, "UPDATE codes SET component = 'other'"));
	ck_assert(!sql_ok(it.url_app, "DELETE FROM codes"));
	/* the triggers hold for the owner role too */
	ck_assert(!sql_ok(it.url_owner, "UPDATE first_sales SET dealer_ffl = 'x'"));
	ck_assert(!sql_ok(it.url_owner, "DELETE FROM first_sales"));
	ck_assert(!sql_ok(it.url_owner, "UPDATE api_clients SET role = 'admin'"));
	ck_assert(!sql_ok(it.url_owner, "UPDATE firearms SET serial = 'x'"));
	/* disclosure counters: only through msreg_disclose() */
	ck_assert(!sql_ok(it.url_app, "SELECT count(*) FROM budget_disclosures"));
	ck_assert(!sql_ok(it.url_app, "DELETE FROM budget_disclosures"));
	ck_assert(!sql_ok(it.url_app, "INSERT INTO budget_disclosures VALUES"
	    " ('key', '1', 1, now())"));
	ck_assert(!sql_ok(it.url_app, "UPDATE budget_grants SET budget = 100000000"));
	ck_assert(!sql_ok(it.url_app, "DELETE FROM budget_grants"));
	ck_assert(sql_ok(it.url_app, "SELECT * FROM msreg_disclose(1, NULL, '{}', NULL)"));
	/* sequences: nextval, never setval */
	ck_assert(!sql_ok(it.url_app, "SELECT setval('change_seq', 1)"));
	ck_assert(!sql_ok(it.url_app, "SELECT setval('firearms_id_seq', 1)"));
	/* schema */
	ck_assert(!sql_ok(it.url_app, "ALTER TABLE first_sales DISABLE TRIGGER USER"));
	ck_assert(!sql_ok(it.url_app, "CREATE TABLE x (a int)"));
	ck_assert(!sql_ok(it.url_app, "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS"
	    " 'SELECT 1'"));
	/* and the data is as msregd wrote it */
	{
		char q[160], *v;
		snprintf(q, sizeof(q), "SELECT dealer_ffl || ' ' || sold_on FROM first_sales"
		    " WHERE firearm_id = %ld", sold_firearm);
		v = super1(q);
		ck_assert_str_eq(v, "1-23-456-07-6B-12345 2026-02-01");
		free(v);
	}
}
END_TEST

START_TEST(objects_belong_to_a_nologin_role)
{
	char *v;

	v = super1("SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'msreg_schema'");
	ck_assert_str_eq(v, "false");
	free(v);
	v = super1("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	    " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v', 'm', 'p', 'i')"
	    " AND c.relowner <> 'msreg_schema'::regrole");
	ck_assert_str_eq(v, "0");
	free(v);
	v = super1("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
	    " WHERE n.nspname = 'public' AND p.proowner <> 'msreg_schema'::regrole");
	ck_assert_str_eq(v, "0");
	free(v);
	v = super1("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'");
	ck_assert_str_eq(v, "msreg_schema");
	free(v);
	/* nobody connects as the owner */
	{
		char url[800];
		PGconn *pg;
		snprintf(url, sizeof(url), "postgresql://msreg_schema@%s",
		    strchr(it.url_app, '@') + 1);
		pg = PQconnectdb(url);
		ck_assert_int_ne(PQstatus(pg), CONNECTION_OK);
		ck_assert_ptr_nonnull(strstr(PQerrorMessage(pg), "not permitted to log in"));
		PQfinish(pg);
	}
	/* a later migration's objects belong to it as well: re-running migrate is a no-op,
	 * and the login role that migrates owns nothing */
	{
		char path[600];
		snprintf(path, sizeof(path), "%s/msreg", it.bin);
		char *argv[] = { path, "--config", it.config, "migrate", NULL };
		ck_assert_int_eq(msr_it_run(argv, NULL), 0);
	}
	v = super1("SELECT count(*) FROM pg_class WHERE relowner = 'msreg_owner'::regrole");
	ck_assert_str_eq(v, "0");
	free(v);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("privilege");
	TCase *tc = tcase_create("privilege");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, exact_column_privileges);
	tcase_add_test(tc, app_cannot_rewrite_the_registry);
	tcase_add_test(tc, objects_belong_to_a_nologin_role);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 1);
}
