/*
 * it_registry.c — integration tests of the registry core against a real msregd
 * and PostgreSQL: code allocation, firearm registration (single and batch, all
 * or nothing), replacement parts, first sales, exact lookup with Crockford
 * normalisation, every error case, a role × endpoint matrix, races between
 * parallel clients, the audit record of lookups, and a property check over a
 * large allocation (every code a distinct rs8 codeword).
 *
 * One msregd and database serve the whole suite (unchecked fixture); each test
 * uses its own serial prefix, so tests are independent of their order.
 * MSR_IT_ALLOC_TOTAL overrides the property check's size (default 1e6).
 */
#include <check.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "msreg/code.h"

#define FFL1 "1-23-456-07-6B-12345"
#define FFL2 "9-87-654-01-1A-54321"

static struct msr_it it;
static char k_acme[128], k_bolt[128], k_dealer[128], k_dealer2[128], k_inv[128],
    k_aud[128];

/* ---- helpers ------------------------------------------------------------- */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Send a request (body stolen, NULL for none), assert its status and, when
 * want_code is given, its error code; audited requests must name their audit
 * entry. Returns the parsed reply (caller decrefs; json_null() if not JSON).
 */
static json_t *
xreq(const char *method, const char *path, const char *key, json_t *body, long want,
    const char *want_code)
{
	struct msr_it_resp r;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_t *out;

	ck_assert_int_eq(msr_it_request(&it, method, path, key, NULL, text, &r), 0);
	ck_assert_msg(r.status == want, "%s %s: status %ld, want %ld: %s", method, path,
	    r.status, want, r.body);
	if (want_code != NULL)
		ck_assert_msg(strcmp(msr_it_error_code(&r), want_code) == 0,
		    "%s %s: error %s, want %s: %s", method, path, msr_it_error_code(&r),
		    want_code, r.body);
	if (key != NULL && r.status != 401 && strncmp(path, "/v1/", 4) == 0)
		ck_assert_msg(r.audit_index >= 0, "%s %s: no Audit-Index", method, path);
	out = r.json ? json_incref(r.json) : json_null();
	msr_it_resp_free(&r);
	free(text);
	json_decref(body);
	return out;
}

/* xreq, discarding the reply. */
static void
xcheck(const char *method, const char *path, const char *key, json_t *body, long want,
    const char *want_code)
{
	json_decref(xreq(method, path, key, body, want, want_code));
}

static const char *
err_message(json_t *reply)
{
	const char *s = json_string_value(json_object_get(json_object_get(reply, "error"),
	    "message"));

	return s ? s : "";
}

static json_int_t
err_index(json_t *reply)
{
	json_t *v = json_object_get(json_object_get(json_object_get(reply, "error"),
	    "detail"), "index");

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* First column of the first row of a query as the superuser (malloc'd; NULL if none). */
static char *
sql1(const char *fmt, ...)
{
	char sql[2048];
	va_list ap;
	PGconn *pg;
	PGresult *res;
	char *out = NULL;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	pg = PQconnectdb(it.url_super);
	ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "%s", PQerrorMessage(pg));
	res = PQexec(pg, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
	    PQresultErrorMessage(res));
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		out = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(pg);
	return out;
}

static long long
sql_int(const char *fmt, const char *arg)
{
	char *v = sql1(fmt, arg);
	long long n = v ? strtoll(v, NULL, 10) : -1;

	free(v);
	return n;
}

/* A random valid rs8 codeword (not allocated by anyone). */
static void
random_rs8(char out[MSR_RS8_LEN + 1])
{
	uint8_t sym[MSR_RS8_LEN];

	msr_rs8_from_data(randombytes_uniform(MSR_RS8_DATA_SPACE), sym);
	msr_code_format(sym, MSR_RS8_LEN, out);
}

/* A random free code of n symbols. */
static void
random_free(char *out, size_t n)
{
	uint8_t sym[MSR_CODE_MAX];

	for (size_t i = 0; i < n; i++)
		sym[i] = (uint8_t)randombytes_uniform(32);
	msr_code_format(sym, n, out);
}

/* Allocate n codes to key; returns the array (caller decrefs). */
static json_t *
allocate(const char *key, int n)
{
	json_t *reply = xreq("POST", "/v1/codes/allocate", key,
	    json_pack("{s:i}", "count", n), 201, NULL);
	json_t *codes = json_incref(json_object_get(reply, "codes"));

	ck_assert_int_eq((int)json_array_size(codes), n);
	json_decref(reply);
	return codes;
}

/* A firearm body with one code of the given scheme (NULL = default rs8). */
static json_t *
firearm(const char *serial, const char *code, const char *scheme)
{
	json_t *c = json_pack("{s:s, s:s}", "code", code, "component", "firing_pin");

	if (scheme != NULL)
		json_object_set_new(c, "scheme", json_string(scheme));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[o]}", "model", "P320",
	    "serial", serial, "type", "pistol", "caliber", "9mm",
	    "manufactured_on", "2026-01-15", "codes", c);
}

/* Register a firearm with one free code; returns its id. */
static json_int_t
register_free(const char *key, const char *serial, char code_out[17])
{
	json_t *reply;
	json_int_t id;

	random_free(code_out, 12);
	reply = xreq("POST", "/v1/firearms", key, firearm(serial, code_out, "free"), 201,
	    NULL);
	id = json_integer_value(json_object_get(reply, "id"));
	ck_assert_int_gt(id, 0);
	json_decref(reply);
	return id;
}

static void
lookup_path(char *buf, size_t len, const char *code)
{
	snprintf(buf, len, "/v1/codes/%s?case_number=HPD-2026-004211&purpose=homicide", code);
}

/* ---- fixture ------------------------------------------------------------- */

static void
setup(void)
{
	msr_it_setup(&it, "registry", NULL);
	if (sodium_init() < 0)
		abort();
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/manufacturers", it.admin_key,
	    "{\"id\":\"acme\",\"name\":\"Acme Arms\"}"), 201);
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/manufacturers", it.admin_key,
	    "{\"id\":\"bolt\",\"name\":\"Bolt Works\"}"), 201);
	msr_it_client(&it, "manufacturer", "acme line 1", "acme", k_acme, sizeof(k_acme));
	msr_it_client(&it, "manufacturer", "bolt line 1", "bolt", k_bolt, sizeof(k_bolt));
	msr_it_client(&it, "dealer", "gun shop", FFL1, k_dealer, sizeof(k_dealer));
	msr_it_client(&it, "dealer", "other shop", FFL2, k_dealer2, sizeof(k_dealer2));
	msr_it_client(&it, "investigator", "det. smith", "CA0194200", k_inv, sizeof(k_inv));
	msr_it_client(&it, "auditor", "auditor", NULL, k_aud, sizeof(k_aud));
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

/* ---- allocation ---------------------------------------------------------- */

START_TEST(allocate_codes)
{
	json_t *codes = allocate(k_acme, 50), *v;
	uint8_t sym[MSR_RS8_LEN];
	size_t i, n;
	char *owner;

	json_array_foreach(codes, i, v) {
		const char *c = json_string_value(v);
		ck_assert_int_eq(msr_code_normalize(c, sym, MSR_RS8_LEN, &n, NULL), 0);
		ck_assert_int_eq((int)n, 8);
		ck_assert_msg(msr_rs8_valid(sym), "%s is not a codeword", c);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(c, json_string_value(json_array_get(codes, j)));
		owner = sql1("SELECT manufacturer_id FROM code_allocations WHERE code = '%s'", c);
		ck_assert_str_eq(owner, "acme");
		free(owner);
	}
	json_decref(codes);

	xcheck("POST", "/v1/codes/allocate", k_acme, json_pack("{s:i}", "count", 0), 400,
	    "invalid_field");
	xcheck("POST", "/v1/codes/allocate", k_acme, json_pack("{s:i}", "count", 10001), 400,
	    "invalid_field");
	xcheck("POST", "/v1/codes/allocate", k_acme, json_pack("{s:s}", "count", "5"), 400,
	    "invalid_field");
	xcheck("POST", "/v1/codes/allocate", k_acme, json_object(), 400, "invalid_field");
	xcheck("POST", "/v1/codes/allocate", k_acme, json_pack("{s:i, s:i}", "count", 1,
	    "cnt", 1), 400, "invalid_field");
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/codes/allocate", k_acme, "{\"count\":"),
	    400);
	codes = allocate(k_acme, 10000);
	json_decref(codes);
}
END_TEST

/* ---- registration -------------------------------------------------------- */

START_TEST(register_firearm)
{
	json_t *codes = allocate(k_acme, 2), *body, *reply, *got, *c;
	const char *rs8 = json_string_value(json_array_get(codes, 0));
	char path[128], lower[32], *v;
	json_int_t id;

	body = firearm("REG-1", rs8, NULL);
	json_array_append_new(json_object_get(body, "codes"), json_pack("{s:s, s:s, s:s}",
	    "code", "ax93-zz1q7", "component", "breech_face", "scheme", "free"));
	reply = xreq("POST", "/v1/firearms", k_acme, body, 201, NULL);
	id = json_integer_value(json_object_get(reply, "id"));
	ck_assert_int_gt(id, 0);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "manufacturer")), "acme");
	ck_assert_str_eq(json_string_value(json_object_get(reply, "serial")), "REG-1");
	ck_assert_str_eq(json_string_value(json_object_get(reply, "manufactured_on")),
	    "2026-01-15");
	ck_assert_int_eq((int)json_array_size(json_object_get(reply, "codes")), 2);
	ck_assert(json_is_null(json_object_get(reply, "first_sale")));

	/* GET returns the same firearm to its manufacturer only */
	snprintf(path, sizeof(path), "/v1/firearms/%lld", (long long)id);
	got = xreq("GET", path, k_acme, NULL, 200, NULL);
	ck_assert(json_equal(got, reply));
	{
		size_t i;
		int seen_free = 0;
		json_array_foreach(json_object_get(got, "codes"), i, c) {
			ck_assert_str_eq(json_string_value(json_object_get(c, "status")), "active");
			ck_assert(json_is_string(json_object_get(c, "registered_at")));
			ck_assert(json_is_null(json_object_get(c, "retired_at")));
			if (strcmp(json_string_value(json_object_get(c, "code")), "AX93ZZ1Q7") == 0) {
				seen_free = 1;
				ck_assert_str_eq(json_string_value(json_object_get(c, "scheme")), "free");
				ck_assert_str_eq(json_string_value(json_object_get(c, "component")),
				    "breech_face");
			}
		}
		ck_assert(seen_free);
	}
	json_decref(got);
	json_decref(reply);
	xcheck("GET", path, k_bolt, NULL, 404, "not_found");
	xcheck("GET", "/v1/firearms/99999999", k_acme, NULL, 404, "not_found");
	xcheck("GET", "/v1/firearms/abc", k_acme, NULL, 400, "invalid_field");
	xcheck("GET", "/v1/firearms/0", k_acme, NULL, 400, "invalid_field");

	/* duplicates: serial, code (any spelling), code already registered */
	xcheck("POST", "/v1/firearms", k_acme, firearm("REG-1",
	    json_string_value(json_array_get(codes, 1)), NULL), 409, "conflict");
	xcheck("POST", "/v1/firearms", k_acme, firearm("REG-2", "AX93-ZZ1Q7", "free"), 409,
	    "conflict");
	xcheck("POST", "/v1/firearms", k_acme, firearm("REG-2", "ax93zz1q7", "free"), 409,
	    "conflict");
	snprintf(lower, sizeof(lower), "%s", rs8);
	for (char *p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	reply = xreq("POST", "/v1/firearms", k_acme, firearm("REG-2", lower, NULL), 409,
	    "conflict");
	ck_assert_ptr_nonnull(strstr(err_message(reply), "already registered"));
	json_decref(reply);
	/* the same serial is fine for another manufacturer */
	{
		char code[17];
		register_free(k_bolt, "REG-1", code);
	}
	/* nothing of the refused requests was stored */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM firearms WHERE serial = '%s'", "REG-2"), 0);
	v = sql1("SELECT manufacturer_id FROM code_allocations WHERE code = '%s'",
	    json_string_value(json_array_get(codes, 1)));
	ck_assert_str_eq(v, "acme");
	free(v);
	json_decref(codes);
}
END_TEST

START_TEST(register_errors)
{
	json_t *body, *reply, *bolt_codes = allocate(k_bolt, 1);
	char rs8[9], bad[9], free8[9];

	random_rs8(rs8);
	/* rs8 rules */
	reply = xreq("POST", "/v1/firearms", k_acme, firearm("ERR-1", "0H5KB4M3Q", NULL), 400,
	    "invalid_code");
	ck_assert_str_eq(err_message(reply), "code has 9 symbols; rs8 codes have 8");
	json_decref(reply);
	memcpy(bad, rs8, sizeof(bad));
	bad[7] = bad[7] == '0' ? '1' : '0';
	reply = xreq("POST", "/v1/firearms", k_acme, firearm("ERR-1", bad, NULL), 400,
	    "invalid_code");
	ck_assert_ptr_nonnull(strstr(err_message(reply), "check symbols"));
	json_decref(reply);
	xcheck("POST", "/v1/firearms", k_acme, firearm("ERR-1", "0H5KU4M3", NULL), 400,
	    "invalid_code");
	xcheck("POST", "/v1/firearms", k_acme, firearm("ERR-1", "0H5K*4M3", NULL), 400,
	    "invalid_code");
	/* free rules */
	reply = xreq("POST", "/v1/firearms", k_acme, firearm("ERR-1", "ABCDE", "free"), 400,
	    "invalid_code");
	ck_assert_str_eq(err_message(reply), "code has 5 symbols; free codes have 6 to 16");
	json_decref(reply);
	xcheck("POST", "/v1/firearms", k_acme, firearm("ERR-1", "ABCDEFGHJKMNPQRST", "free"),
	    400, "invalid_code");
	/* a code reserved to another manufacturer: 409 conflict */
	reply = xreq("POST", "/v1/firearms", k_acme, firearm("ERR-1",
	    json_string_value(json_array_get(bolt_codes, 0)), NULL), 409, "conflict");
	ck_assert_ptr_nonnull(strstr(err_message(reply), "reserved to another manufacturer"));
	json_decref(reply);
	/* ... also when given as a free code */
	xcheck("POST", "/v1/firearms", k_acme, firearm("ERR-1",
	    json_string_value(json_array_get(bolt_codes, 0)), "free"), 409, "conflict");

	/* fields */
	body = firearm("ERR-1", rs8, NULL);
	json_object_set_new(json_array_get(json_object_get(body, "codes"), 0), "component",
	    json_string("trigger"));
	xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	body = firearm("ERR-1", rs8, "gear");
	xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	body = firearm("ERR-1", rs8, NULL);
	json_array_append_new(json_object_get(body, "codes"), json_pack("{s:s}", "code", "X"));
	xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	for (int i = 0; i < 4; i++) {
		static const char *const req[] = { "model", "serial", "type", "caliber" };
		body = firearm("ERR-1", rs8, NULL);
		json_object_del(body, req[i]);
		xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
		body = firearm("ERR-1", rs8, NULL);
		json_object_set_new(body, req[i], json_string(" "));
		xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
		body = firearm("ERR-1", rs8, NULL);
		json_object_set_new(body, req[i], json_integer(5));
		xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	}
	body = firearm("ERR-1", rs8, NULL);
	json_object_set_new(body, "model", json_string(
	    "MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM"));
	xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	body = firearm("ERR-1", rs8, NULL);
	json_object_set_new(body, "manufactured_on", json_string("2999-01-01"));
	reply = xreq("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	ck_assert_ptr_nonnull(strstr(err_message(reply), "future"));
	json_decref(reply);
	body = firearm("ERR-1", rs8, NULL);
	json_object_set_new(body, "manufactured_on", json_string("2026-02-30"));
	xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	body = firearm("ERR-1", rs8, NULL);
	json_object_set_new(body, "codes", json_array());
	xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	body = firearm("ERR-1", rs8, NULL);
	json_object_set_new(body, "codes", json_string(rs8));
	xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	body = firearm("ERR-1", rs8, NULL);
	json_object_set_new(body, "colour", json_string("black"));
	xcheck("POST", "/v1/firearms", k_acme, body, 400, "invalid_field");
	body = firearm("ERR-1", rs8, NULL);
	json_object_set_new(body, "manufacturer", json_string("bolt"));
	xcheck("POST", "/v1/firearms", k_acme, body, 403, "forbidden");
	/* duplicate code within one firearm */
	body = firearm("ERR-1", rs8, NULL);
	json_array_append_new(json_object_get(body, "codes"), json_pack("{s:s, s:s}",
	    "code", rs8, "component", "ejector"));
	xcheck("POST", "/v1/firearms", k_acme, body, 409, "conflict");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM firearms WHERE serial = '%s'", "ERR-1"), 0);

	/* an unallocated codeword is claimed by the registering manufacturer */
	xcheck("POST", "/v1/firearms", k_acme, firearm("ERR-1", rs8, NULL), 201, NULL);
	{
		char *owner = sql1("SELECT manufacturer_id FROM code_allocations WHERE code = '%s'",
		    rs8);
		ck_assert_str_eq(owner, "acme");
		free(owner);
	}
	/* an 8-symbol free code is claimed too, so it can never be allocated */
	random_free(free8, 8);
	xcheck("POST", "/v1/firearms", k_acme, firearm("ERR-2", free8, "free"), 201, NULL);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM code_allocations WHERE code = '%s'",
	    free8), 1);
	xcheck("POST", "/v1/firearms", k_bolt, firearm("ERR-3", free8, "free"), 409, "conflict");
	json_decref(bolt_codes);
}
END_TEST

/* A batch of n firearms "<prefix>-<i>", each with one allocated code from codes. */
static json_t *
batch(const char *prefix, json_t *codes, size_t n)
{
	json_t *list = json_array();
	char serial[64];

	for (size_t i = 0; i < n; i++) {
		snprintf(serial, sizeof(serial), "%s-%zu", prefix, i);
		json_array_append_new(list, firearm(serial,
		    json_string_value(json_array_get(codes, i)), NULL));
	}
	return json_pack("{s:o}", "firearms", list);
}

static void
expect_batch_error(json_t *body, long status, const char *code, json_int_t index,
    const char *prefix)
{
	json_t *reply = xreq("POST", "/v1/firearms/batch", k_acme, body, status, code);
	char like[80];

	ck_assert_msg(err_index(reply) == index, "detail.index %lld, want %lld: %s",
	    (long long)err_index(reply), (long long)index, err_message(reply));
	json_decref(reply);
	snprintf(like, sizeof(like), "%s-%%", prefix);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM firearms WHERE serial LIKE '%s'", like), 0);
}

START_TEST(batch_all_or_nothing)
{
	json_t *codes = allocate(k_acme, 400), *bolt_codes = allocate(k_bolt, 1), *body,
	    *reply, *ids, *list, *one, *taken;
	json_t *rest = json_array();
	char path[64], *v;

	for (size_t i = 100; i < 400; i++)
		json_array_append(rest, json_array_get(codes, i));
	/* success: 100 firearms, ids in request order, the audit entry names them */
	{
		struct msr_it_resp r;
		json_t *b = batch("B1", codes, 100), *e, *runs, *run;
		char *text = json_dumps(b, JSON_COMPACT), *entry;
		json_int_t covered = 0;
		size_t i;

		ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/firearms/batch", k_acme, NULL,
		    text, &r), 0);
		ck_assert_int_eq(r.status, 201);
		ck_assert_int_ge(r.audit_index, 0);
		reply = json_incref(r.json);
		entry = sql1("SELECT convert_from(leaf, 'UTF8') FROM audit_entries WHERE idx = %ld",
		    r.audit_index);
		e = json_loads(entry, 0, NULL);
		ck_assert_int_eq(json_integer_value(json_object_get(e, "created")), 100);
		runs = json_object_get(e, "firearm_id_ranges");
		json_array_foreach(runs, i, run) {
			json_int_t lo = json_integer_value(json_array_get(run, 0));
			json_int_t hi = json_integer_value(json_array_get(run, 1));
			ck_assert_int_le(lo, hi);
			covered += hi - lo + 1;
		}
		ck_assert_int_eq(covered, 100);
		ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(runs, 0), 0)),
		    json_integer_value(json_array_get(json_object_get(reply, "ids"), 0)));
		json_decref(e);
		json_decref(b);
		free(entry);
		free(text);
		msr_it_resp_free(&r);
	}
	ck_assert_int_eq((int)json_integer_value(json_object_get(reply, "created")), 100);
	ids = json_object_get(reply, "ids");
	ck_assert_int_eq((int)json_array_size(ids), 100);
	snprintf(path, sizeof(path), "/v1/firearms/%lld",
	    (long long)json_integer_value(json_array_get(ids, 42)));
	one = xreq("GET", path, k_acme, NULL, 200, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(one, "serial")), "B1-42");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(one, "codes"), 0), "code")),
	    json_string_value(json_array_get(codes, 42)));
	json_decref(one);
	json_decref(reply);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM firearms WHERE serial LIKE '%s'", "B1-%"),
	    100);

	/* a bad code at item 37 */
	body = batch("B2", rest, 50);
	json_object_set_new(json_array_get(json_object_get(json_array_get(json_object_get(body,
	    "firearms"), 37), "codes"), 0), "code", json_string("0H5KB4M3Q"));
	expect_batch_error(body, 400, "invalid_code", 37, "B2");
	/* a serial registered before, at item 20 */
	body = batch("B2", rest, 50);
	json_object_set_new(json_array_get(json_object_get(body, "firearms"), 20), "serial",
	    json_string("B1-7"));
	expect_batch_error(body, 409, "conflict", 20, "B2");
	/* a code registered before, at item 12 */
	body = batch("B2", rest, 50);
	taken = json_array_get(codes, 3);
	json_object_set(json_array_get(json_object_get(json_array_get(json_object_get(body,
	    "firearms"), 12), "codes"), 0), "code", taken);
	expect_batch_error(body, 409, "conflict", 12, "B2");
	/* the same code on items 3 and 9 */
	body = batch("B2", rest, 50);
	list = json_object_get(body, "firearms");
	json_object_set(json_array_get(json_object_get(json_array_get(list, 9), "codes"), 0),
	    "code", json_array_get(rest, 3));
	expect_batch_error(body, 409, "conflict", 9, "B2");
	/* the same serial on items 4 and 6 */
	body = batch("B2", rest, 50);
	json_object_set_new(json_array_get(json_object_get(body, "firearms"), 6), "serial",
	    json_string("B2-4"));
	expect_batch_error(body, 409, "conflict", 6, "B2");
	/* a code reserved to another manufacturer at item 5 */
	body = batch("B2", rest, 50);
	json_object_set(json_array_get(json_object_get(json_array_get(json_object_get(body,
	    "firearms"), 5), "codes"), 0), "code", json_array_get(bolt_codes, 0));
	expect_batch_error(body, 409, "conflict", 5, "B2");
	/* a missing field at item 49, an item that is not an object at item 2 */
	body = batch("B2", rest, 50);
	json_object_del(json_array_get(json_object_get(body, "firearms"), 49), "caliber");
	expect_batch_error(body, 400, "invalid_field", 49, "B2");
	body = batch("B2", rest, 50);
	json_array_set_new(json_object_get(body, "firearms"), 2, json_string("x"));
	expect_batch_error(body, 400, "invalid_field", 2, "B2");
	/* none of the refused batches claimed or registered anything */
	v = sql1("SELECT count(*) FROM codes WHERE code = '%s'",
	    json_string_value(json_array_get(rest, 0)));
	ck_assert_str_eq(v, "0");
	free(v);

	/* shape of the batch itself */
	xcheck("POST", "/v1/firearms/batch", k_acme, json_pack("{s:[]}", "firearms"), 400,
	    "invalid_field");
	xcheck("POST", "/v1/firearms/batch", k_acme, json_object(), 400, "invalid_field");
	xcheck("POST", "/v1/firearms/batch", k_acme, json_pack("{s:{}}", "firearms"), 400,
	    "invalid_field");
	list = json_array();
	for (int i = 0; i < 10001; i++)
		json_array_append_new(list, json_object());
	xcheck("POST", "/v1/firearms/batch", k_acme, json_pack("{s:o}", "firearms", list), 400,
	    "invalid_field");

	/* after all that, the untouched batch goes through */
	reply = xreq("POST", "/v1/firearms/batch", k_acme, batch("B2", rest, 50), 201, NULL);
	ck_assert_int_eq((int)json_integer_value(json_object_get(reply, "created")), 50);
	json_decref(reply);
	json_decref(rest);
	json_decref(codes);
	json_decref(bolt_codes);
}
END_TEST

/*
 * The batch route reads its usual shape without a JSON tree and hands anything
 * else to the full parser (handlers_firearms.c): both must store the same
 * rows, and every refusal must be the full path's.
 */
static long
raw_batch(const char *ctype, const char *body, json_t **reply)
{
	struct msr_it_resp r;
	long status;

	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/firearms/batch", k_acme, ctype, body,
	    &r), 0);
	status = r.status;
	*reply = json_incref(r.json);
	msr_it_resp_free(&r);
	return status;
}

START_TEST(batch_fast_and_full_paths)
{
	json_t *codes = allocate(k_acme, 6), *reply = NULL;
	const char *c[6];
	char body[2048], lower[16], *v;

	for (int i = 0; i < 6; i++)
		c[i] = json_string_value(json_array_get(codes, i));
	/* the fast shape, spaced out, with a code typed in lower case with a hyphen */
	for (int i = 0; i < 8; i++)
		lower[i + (i >= 4)] = (char)(c[0][i] >= 'A' && c[0][i] <= 'Z' ? c[0][i] + 32 : c[0][i]);
	lower[4] = '-';
	lower[9] = '\0';
	snprintf(body, sizeof(body), "{ \"firearms\" :\n [ {\"model\":\"P320\", \"serial\":\"F-1\","
	    "\"type\":\"pistol\",\"caliber\":\"9mm\",\"manufactured_on\":\"2026-01-15\",\r\n"
	    "\"codes\":[ {\"code\":\"%s\",\"component\":\"firing_pin\",\"scheme\":\"rs8\"} ],"
	    "\"manufacturer\":\"acme\"} ] }\n", lower);
	ck_assert_int_eq(raw_batch(NULL, body, &reply), 201);
	json_decref(reply);
	/* the same firearm through the full parser: a JSON escape in the model */
	snprintf(body, sizeof(body), "{\"firearms\":[{\"model\":\"P\\u0033""20\",\"serial\":\"F-2\","
	    "\"type\":\"pistol\",\"caliber\":\"9mm\",\"manufactured_on\":\"2026-01-15\","
	    "\"codes\":[{\"code\":\"%s\",\"component\":\"firing_pin\"}]}]}", c[1]);
	ck_assert_int_eq(raw_batch(NULL, body, &reply), 201);
	json_decref(reply);
	v = sql1("SELECT count(DISTINCT (model, type, caliber, manufactured_on, created_by,"
	    " manufacturer_id)) || '/' || count(*) FROM firearms WHERE serial IN ('F-1', 'F-2')");
	ck_assert_str_eq(v, "1/2");
	free(v);
	v = sql1("SELECT c.code FROM codes c JOIN firearms f ON f.id = c.firearm_id"
	    " WHERE f.serial = 'F-1'");
	ck_assert_str_eq(v, c[0]);
	free(v);
	/* null for an optional field: full path, stored as NULL */
	snprintf(body, sizeof(body), "{\"firearms\":[{\"model\":\"P320\",\"serial\":\"F-3\","
	    "\"type\":\"pistol\",\"caliber\":\"9mm\",\"manufactured_on\":null,"
	    "\"codes\":[{\"code\":\"%s\",\"component\":\"firing_pin\"}]}]}", c[2]);
	ck_assert_int_eq(raw_batch(NULL, body, &reply), 201);
	json_decref(reply);
	v = sql1("SELECT coalesce(manufactured_on::text, 'null') FROM firearms WHERE serial = 'F-3'");
	ck_assert_str_eq(v, "null");
	free(v);
	/* refusals are the full path's: duplicate key, trailing text, media type, field */
	snprintf(body, sizeof(body), "{\"firearms\":[{\"model\":\"P320\",\"model\":\"P320\","
	    "\"serial\":\"F-4\",\"type\":\"pistol\",\"caliber\":\"9mm\","
	    "\"codes\":[{\"code\":\"%s\",\"component\":\"firing_pin\"}]}]}", c[3]);
	ck_assert_int_eq(raw_batch(NULL, body, &reply), 400);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(reply, "error"),
	    "code")), "invalid_json");
	json_decref(reply);
	snprintf(body, sizeof(body), "{\"firearms\":[{\"model\":\"P320\",\"serial\":\"F-4\","
	    "\"type\":\"pistol\",\"caliber\":\"9mm\","
	    "\"codes\":[{\"code\":\"%s\",\"component\":\"firing_pin\"}]}]} x", c[3]);
	ck_assert_int_eq(raw_batch(NULL, body, &reply), 400);
	json_decref(reply);
	snprintf(body, sizeof(body), "{\"firearms\":[{\"model\":\"P320\",\"serial\":\"F-4\","
	    "\"type\":\"pistol\",\"caliber\":\"9mm\","
	    "\"codes\":[{\"code\":\"%s\",\"component\":\"firing_pin\"}]}]}", c[3]);
	ck_assert_int_eq(raw_batch("text/plain", body, &reply), 415);
	json_decref(reply);
	snprintf(body, sizeof(body), "{\"firearms\":[{\"model\":\"P320\",\"serial\":\"F-4\","
	    "\"type\":\"pistol\",\"caliber\":\"9mm\",\"codes\":[{\"code\":\"%s\","
	    "\"component\":\"firing_pin\"}]},{\"model\":\"P320\",\"serial\":\"F-5\","
	    "\"type\":\"pistol\",\"caliber\":\"9mm\",\"codes\":[{\"code\":\"%s\","
	    "\"component\":\"trigger\"}]}]}", c[3], c[4]);
	ck_assert_int_eq(raw_batch(NULL, body, &reply), 400);
	ck_assert_int_eq(err_index(reply), 1);
	json_decref(reply);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM firearms WHERE serial LIKE '%s'", "F-_"),
	    3);
	json_decref(codes);
}
END_TEST

/* ---- replacement parts --------------------------------------------------- */

static json_t *
code_entry(json_t *firearm_json, const char *code)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(firearm_json, "codes"), i, c)
		if (strcmp(json_string_value(json_object_get(c, "code")), code) == 0)
			return c;
	return NULL;
}

START_TEST(replacement)
{
	json_t *codes = allocate(k_acme, 4), *reply, *c;
	const char *a = json_string_value(json_array_get(codes, 0));
	const char *b = json_string_value(json_array_get(codes, 1));
	const char *e = json_string_value(json_array_get(codes, 2));
	char path[96], lpath[160], other[17];
	long long seq_before, seq_after;
	json_int_t id, id2;

	reply = xreq("POST", "/v1/firearms", k_acme, firearm("REP-1", a, NULL), 201, NULL);
	id = json_integer_value(json_object_get(reply, "id"));
	json_decref(reply);
	id2 = register_free(k_acme, "REP-2", other);
	seq_before = sql_int("SELECT change_seq FROM codes WHERE code = '%s'", a);
	snprintf(path, sizeof(path), "/v1/firearms/%lld/codes", (long long)id);

	reply = xreq("POST", path, k_acme, json_pack("{s:s, s:s, s:s}", "code", b,
	    "component", "firing_pin", "replaces", a), 201, NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(reply, "id")), id);
	c = code_entry(reply, a);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(json_string_value(json_object_get(c, "status")), "retired");
	ck_assert(json_is_string(json_object_get(c, "retired_at")));
	ck_assert_str_eq(json_string_value(json_object_get(c, "replaced_by")), b);
	c = code_entry(reply, b);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(json_string_value(json_object_get(c, "status")), "active");
	ck_assert_str_eq(json_string_value(json_object_get(c, "replaces")), a);
	json_decref(reply);
	seq_after = sql_int("SELECT change_seq FROM codes WHERE code = '%s'", a);
	ck_assert_int_gt(seq_after, seq_before);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM codes n WHERE n.code = '%s'"
	    " AND n.change_xid = (SELECT o.change_xid FROM codes o WHERE o.code = n.replaces)", b), 1);

	/* the retired code is still found, as retired, with its firearm */
	lookup_path(lpath, sizeof(lpath), a);
	reply = xreq("GET", lpath, k_inv, NULL, 200, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "status")), "retired");
	ck_assert_str_eq(json_string_value(json_object_get(reply, "replaced_by")), b);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(reply, "firearm"),
	    "id")), id);
	json_decref(reply);
	lookup_path(lpath, sizeof(lpath), b);
	reply = xreq("GET", lpath, k_inv, NULL, 200, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "status")), "active");
	json_decref(reply);

	/* errors */
	xcheck("POST", path, k_acme, json_pack("{s:s, s:s, s:s}", "code", e, "component",
	    "firing_pin", "replaces", a), 409, "conflict");          /* already retired */
	xcheck("POST", path, k_acme, json_pack("{s:s, s:s, s:s}", "code", e, "component",
	    "firing_pin", "replaces", other), 400, "invalid_field");  /* not this firearm's */
	xcheck("POST", path, k_acme, json_pack("{s:s, s:s, s:s}", "code", e, "component",
	    "firing_pin", "replaces", "#!"), 400, "invalid_code");
	xcheck("POST", path, k_acme, json_pack("{s:s, s:s, s:s}", "code", b, "component",
	    "firing_pin", "replaces", b), 400, "invalid_field");      /* itself */
	xcheck("POST", path, k_acme, json_pack("{s:s, s:s, s:s}", "code", other,
	    "component", "ejector", "scheme", "free"), 409, "conflict");           /* registered */
	xcheck("POST", path, k_acme, json_pack("{s:s, s:s}", "code", "0H5KB4M3Q",
	    "component", "ejector"), 400, "invalid_code");
	xcheck("POST", path, k_acme, json_pack("{s:s}", "code", e), 400, "invalid_field");
	xcheck("POST", path, k_bolt, json_pack("{s:s, s:s}", "code", e, "component", "ejector"),
	    404, "not_found");                                        /* not bolt's */
	xcheck("POST", "/v1/firearms/99999999/codes", k_acme, json_pack("{s:s, s:s}", "code", e,
	    "component", "ejector"), 404, "not_found");
	xcheck("POST", "/v1/firearms/x/codes", k_acme, json_pack("{s:s, s:s}", "code", e,
	    "component", "ejector"), 400, "invalid_field");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM codes WHERE code = '%s'", e), 0);

	/* a new component without retiring anything */
	reply = xreq("POST", path, k_acme, json_pack("{s:s, s:s}", "code", e, "component",
	    "ejector"), 201, NULL);
	ck_assert_int_eq((int)json_array_size(json_object_get(reply, "codes")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(code_entry(reply, b), "status")),
	    "active");
	json_decref(reply);
	(void)id2;
	json_decref(codes);
}
END_TEST

/* ---- sales --------------------------------------------------------------- */

static json_t *
sale(const char *manufacturer, const char *serial, const char *sold_on, const char *state)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "manufacturer", manufacturer,
	    "serial", serial, "sold_on", sold_on, "transaction_ref", "2026-000187",
	    "state", state);
}

START_TEST(sales)
{
	char code[17], path[64], lpath[160];
	json_t *reply, *s;
	json_int_t id = register_free(k_acme, "SALE-1", code);

	random_free(code, 12);
	reply = xreq("POST", "/v1/firearms", k_acme, firearm("SALE-3", code, "free"), 201, NULL);
	json_decref(reply);

	reply = xreq("POST", "/v1/sales", k_dealer, sale("acme", "SALE-3", "2026-02-01", "CA"),
	    201, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "dealer_ffl")), FFL1);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "state")), "CA");
	ck_assert(json_is_integer(json_object_get(reply, "firearm_id")));
	json_decref(reply);
	/* second sale of the same firearm, by any dealer */
	xcheck("POST", "/v1/sales", k_dealer, sale("acme", "SALE-3", "2026-02-02", "CA"), 409,
	    "conflict");
	xcheck("POST", "/v1/sales", k_dealer2, sale("acme", "SALE-3", "2026-02-02", "NY"), 409,
	    "conflict");
	/* unknown firearm */
	xcheck("POST", "/v1/sales", k_dealer, sale("acme", "NOPE-1", "2026-02-01", "CA"), 404,
	    "not_found");
	xcheck("POST", "/v1/sales", k_dealer, sale("bolt", "SALE-1", "2026-02-01", "CA"), 404,
	    "not_found");
	/* field rules */
	xcheck("POST", "/v1/sales", k_dealer, sale("acme", "SALE-1", "2999-01-01", "CA"), 400,
	    "invalid_field");
	xcheck("POST", "/v1/sales", k_dealer, sale("acme", "SALE-1", "2026-13-01", "CA"), 400,
	    "invalid_field");
	xcheck("POST", "/v1/sales", k_dealer, sale("acme", "SALE-1", "2025-12-31", "CA"), 400,
	    "invalid_field");                         /* before manufacture (2026-01-15) */
	xcheck("POST", "/v1/sales", k_dealer, sale("acme", "SALE-1", "2026-02-01", "ZZ"), 400,
	    "invalid_field");
	xcheck("POST", "/v1/sales", k_dealer, sale("acme", "SALE-1", "2026-02-01", "ca"), 400,
	    "invalid_field");
	s = sale("acme", "SALE-1", "2026-02-01", "CA");
	json_object_del(s, "transaction_ref");
	xcheck("POST", "/v1/sales", k_dealer, s, 400, "invalid_field");
	s = sale("acme", "SALE-1", "2026-02-01", "CA");
	json_object_set_new(s, "dealer_ffl", json_string(FFL2));
	xcheck("POST", "/v1/sales", k_dealer, s, 400, "invalid_field");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM first_sales s JOIN firearms f"
	    " ON f.id = s.firearm_id WHERE f.serial = '%s'", "SALE-1"), 0);

	/* recorded: seen by the manufacturer and in lookups */
	xcheck("POST", "/v1/sales", k_dealer2, sale("acme", "SALE-1", "2026-03-01", "PR"), 201,
	    NULL);
	snprintf(path, sizeof(path), "/v1/firearms/%lld", (long long)id);
	reply = xreq("GET", path, k_acme, NULL, 200, NULL);
	s = json_object_get(reply, "first_sale");
	ck_assert_str_eq(json_string_value(json_object_get(s, "dealer_ffl")), FFL2);
	ck_assert_str_eq(json_string_value(json_object_get(s, "sold_on")), "2026-03-01");
	ck_assert_str_eq(json_string_value(json_object_get(s, "state")), "PR");
	ck_assert_str_eq(json_string_value(json_object_get(s, "transaction_ref")),
	    "2026-000187");
	lookup_path(lpath, sizeof(lpath), json_string_value(json_object_get(json_array_get(
	    json_object_get(reply, "codes"), 0), "code")));
	json_decref(reply);
	reply = xreq("GET", lpath, k_inv, NULL, 200, NULL);
	s = json_object_get(reply, "first_sale");
	ck_assert_str_eq(json_string_value(json_object_get(s, "dealer_ffl")), FFL2);
	ck_assert_str_eq(json_string_value(json_object_get(s, "sold_on")), "2026-03-01");
	json_decref(reply);
}
END_TEST

/* ---- lookup -------------------------------------------------------------- */

START_TEST(lookup)
{
	char code[9], spelled[64], path[256], *entry;
	uint8_t sym[MSR_RS8_LEN];
	json_t *reply, *fa, *e, *result;
	json_int_t id;
	long idx;

	/* a codeword holding both a 0 and a 1, to exercise O -> 0 and I/L -> 1 */
	do {
		msr_rs8_from_data(randombytes_uniform(MSR_RS8_DATA_SPACE), sym);
		msr_code_format(sym, MSR_RS8_LEN, code);
	} while (strchr(code, '0') == NULL || strchr(code, '1') == NULL);
	reply = xreq("POST", "/v1/firearms", k_acme, firearm("LOOK-1", code, NULL), 201, NULL);
	id = json_integer_value(json_object_get(reply, "id"));
	json_decref(reply);

	/* lower case, O for 0, I and L for 1, hyphens and (encoded) spaces */
	{
		size_t k = 0;
		int ones = 0;
		for (size_t i = 0; i < 8; i++) {
			char ch = code[i];
			if (i == 4) {
				spelled[k++] = '-';
				memcpy(spelled + k, "%20", 3);
				k += 3;
			}
			if (ch == '0')
				ch = 'o';
			else if (ch == '1')
				ch = ones++ % 2 ? 'I' : 'l';
			else if (ch >= 'A' && ch <= 'Z')
				ch = (char)(ch - 'A' + 'a');
			spelled[k++] = ch;
		}
		spelled[k] = '\0';
	}
	lookup_path(path, sizeof(path), spelled);
	reply = xreq("GET", path, k_inv, NULL, 200, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "code")), code);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "status")), "active");
	ck_assert_str_eq(json_string_value(json_object_get(reply, "component")), "firing_pin");
	ck_assert_str_eq(json_string_value(json_object_get(reply, "scheme")), "rs8");
	ck_assert(json_is_null(json_object_get(reply, "first_sale")));
	fa = json_object_get(reply, "firearm");
	ck_assert_int_eq(json_integer_value(json_object_get(fa, "id")), id);
	ck_assert_str_eq(json_string_value(json_object_get(fa, "manufacturer")), "acme");
	ck_assert_str_eq(json_string_value(json_object_get(fa, "model")), "P320");
	ck_assert_str_eq(json_string_value(json_object_get(fa, "serial")), "LOOK-1");
	ck_assert_str_eq(json_string_value(json_object_get(fa, "type")), "pistol");
	ck_assert_str_eq(json_string_value(json_object_get(fa, "caliber")), "9mm");
	ck_assert_str_eq(json_string_value(json_object_get(fa, "manufactured_on")),
	    "2026-01-15");
	json_decref(reply);

	/* the audit entry names the case, the purpose, the query and the result */
	{
		struct msr_it_resp r;
		ck_assert_int_eq(msr_it_request(&it, "GET", path, k_inv, NULL, NULL, &r), 0);
		ck_assert_int_eq(r.status, 200);
		idx = r.audit_index;
		msr_it_resp_free(&r);
	}
	ck_assert_int_ge(idx, 0);
	entry = sql1("SELECT convert_from(leaf, 'UTF8') FROM audit_entries WHERE idx = %ld", idx);
	ck_assert_ptr_nonnull(entry);
	e = json_loads(entry, 0, NULL);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(json_string_value(json_object_get(e, "case_number")), "HPD-2026-004211");
	ck_assert_str_eq(json_string_value(json_object_get(e, "purpose")), "homicide");
	ck_assert_str_eq(json_string_value(json_object_get(e, "query")), code);
	ck_assert_str_eq(json_string_value(json_object_get(e, "action")), "code.lookup");
	result = json_object_get(e, "result");
	ck_assert_int_eq(json_integer_value(json_object_get(result, "count")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(result, "code")), code);
	ck_assert_int_eq(json_integer_value(json_object_get(result, "firearm_id")), id);
	json_decref(e);
	free(entry);

	/* not registered: 404, still audited with the query and count 0 */
	{
		char other[9];
		struct msr_it_resp r;
		random_rs8(other);
		lookup_path(path, sizeof(path), other);
		ck_assert_int_eq(msr_it_request(&it, "GET", path, k_inv, NULL, NULL, &r), 0);
		ck_assert_int_eq(r.status, 404);
		ck_assert_str_eq(msr_it_error_code(&r), "not_found");
		ck_assert_int_ge(r.audit_index, 0);
		entry = sql1("SELECT convert_from(leaf, 'UTF8') FROM audit_entries WHERE idx = %ld",
		    r.audit_index);
		msr_it_resp_free(&r);
		e = json_loads(entry, 0, NULL);
		ck_assert_str_eq(json_string_value(json_object_get(e, "query")), other);
		ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(e, "result"),
		    "count")), 0);
		ck_assert_int_eq(json_integer_value(json_object_get(e, "status")), 404);
		json_decref(e);
		free(entry);
	}
	/* a misread rs8 code gets a hint */
	{
		char bad[9];
		memcpy(bad, code, sizeof(bad));
		bad[2] = bad[2] == 'A' ? 'B' : 'A';
		lookup_path(path, sizeof(path), bad);
		reply = xreq("GET", path, k_inv, NULL, 404, "not_found");
		ck_assert(json_is_string(json_object_get(json_object_get(json_object_get(reply,
		    "error"), "detail"), "hint")));
		json_decref(reply);
	}

	/* input errors */
	lookup_path(path, sizeof(path), "0H5KU4M3");
	xcheck("GET", path, k_inv, NULL, 400, "invalid_code");
	lookup_path(path, sizeof(path), "0H5K%2A4M3");
	xcheck("GET", path, k_inv, NULL, 400, "invalid_code");
	lookup_path(path, sizeof(path), "0H5K4");
	xcheck("GET", path, k_inv, NULL, 400, "invalid_code");
	lookup_path(path, sizeof(path), "0H5K40H5K40H5K40H");
	xcheck("GET", path, k_inv, NULL, 400, "invalid_code");
	snprintf(path, sizeof(path), "/v1/codes/%s?purpose=homicide", code);
	xcheck("GET", path, k_inv, NULL, 400, "invalid_field");
	snprintf(path, sizeof(path), "/v1/codes/%s?case_number=HPD-1", code);
	xcheck("GET", path, k_inv, NULL, 400, "invalid_field");
	snprintf(path, sizeof(path), "/v1/codes/%s?case_number=&purpose=homicide", code);
	xcheck("GET", path, k_inv, NULL, 400, "invalid_field");
	snprintf(path, sizeof(path), "/v1/codes/%s?case_number=HPD-1&purpose=%%20%%20", code);
	xcheck("GET", path, k_inv, NULL, 400, "invalid_field");
	snprintf(path, sizeof(path), "/v1/codes/%s?case_number=HPD%%01&purpose=x", code);
	xcheck("GET", path, k_inv, NULL, 400, "invalid_field");
	snprintf(path, sizeof(path), "/v1/codes/%s", code);
	xcheck("GET", path, k_inv, NULL, 400, "invalid_field");
}
END_TEST

/* ---- role × endpoint matrix --------------------------------------------- */

enum { NONE, MFR, DEALER, INV, AUD, ADMIN, NROLES };

struct matrix_row {
	const char *method;
	char        path[160];
	json_t     *body;           /* template, copied per request */
	int         allowed;        /* the one role the endpoint serves */
	long        ok;             /* its status for this request */
};

START_TEST(role_matrix)
{
	static const char *const role_names[] = { "none", "manufacturer", "dealer",
	    "investigator", "auditor", "admin" };
	const char *keys[NROLES] = { NULL, k_acme, k_dealer, k_inv, k_aud, it.admin_key };
	struct matrix_row rows[7];
	char code[17], code2[17], serial[32];
	json_int_t id;
	size_t n = 0;

	id = register_free(k_acme, "MX-1", code);
	random_free(code2, 12);
	rows[n] = (struct matrix_row){ "POST", "/v1/codes/allocate",
	    json_pack("{s:i}", "count", 3), MFR, 201 };
	n++;
	random_free(serial, 10);
	rows[n] = (struct matrix_row){ "POST", "/v1/firearms", firearm("MX-2", code2, "free"),
	    MFR, 201 };
	n++;
	random_free(code2, 12);
	rows[n] = (struct matrix_row){ "POST", "/v1/firearms/batch",
	    json_pack("{s:[o]}", "firearms", firearm("MX-3", code2, "free")), MFR, 201 };
	n++;
	random_free(code2, 12);
	rows[n] = (struct matrix_row){ "POST", "", json_pack("{s:s, s:s, s:s}", "code", code2,
	    "component", "ejector", "scheme", "free"), MFR, 201 };
	snprintf(rows[n].path, sizeof(rows[n].path), "/v1/firearms/%lld/codes", (long long)id);
	n++;
	rows[n] = (struct matrix_row){ "GET", "", NULL, MFR, 200 };
	snprintf(rows[n].path, sizeof(rows[n].path), "/v1/firearms/%lld", (long long)id);
	n++;
	rows[n] = (struct matrix_row){ "POST", "/v1/sales",
	    sale("acme", "MX-1", "2026-02-01", "TX"), DEALER, 201 };
	n++;
	rows[n] = (struct matrix_row){ "GET", "", NULL, INV, 200 };
	lookup_path(rows[n].path, sizeof(rows[n].path), code);
	n++;

	for (size_t i = 0; i < n; i++) {
		for (int role = 0; role < NROLES; role++) {
			long want = role == NONE ? 401 : role == rows[i].allowed ? rows[i].ok : 403;
			const char *err = role == NONE ? "unauthenticated" :
			    role == rows[i].allowed ? NULL : "forbidden";
			json_t *body = rows[i].body ? json_deep_copy(rows[i].body) : NULL;
			struct msr_it_resp r;
			char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

			ck_assert_int_eq(msr_it_request(&it, rows[i].method, rows[i].path, keys[role],
			    NULL, text, &r), 0);
			ck_assert_msg(r.status == want, "%s %s as %s: %ld, want %ld: %s",
			    rows[i].method, rows[i].path, role_names[role], r.status, want, r.body);
			if (err != NULL)
				ck_assert_str_eq(msr_it_error_code(&r), err);
			/* every authenticated request to a registry route is audited */
			if (role != NONE)
				ck_assert_msg(r.audit_index >= 0, "%s %s as %s: no Audit-Index",
				    rows[i].method, rows[i].path, role_names[role]);
			msr_it_resp_free(&r);
			free(text);
			json_decref(body);
		}
		json_decref(rows[i].body);
	}
	/* a manufacturer key is confined to its own firearms */
	{
		char path[96];
		snprintf(path, sizeof(path), "/v1/firearms/%lld", (long long)id);
		xcheck("GET", path, k_bolt, NULL, 404, "not_found");
		snprintf(path, sizeof(path), "/v1/firearms/%lld/codes", (long long)id);
		random_free(code2, 12);
		xcheck("POST", path, k_bolt, json_pack("{s:s, s:s, s:s}", "code", code2,
		    "component", "ejector", "scheme", "free"), 404, "not_found");
	}
}
END_TEST

/* ---- races --------------------------------------------------------------- */

#define NTHREADS 8

struct race {
	pthread_barrier_t *barrier;
	const char        *key;
	const char        *method, *path;
	char              *body;          /* owned */
	long               status;
	json_t            *reply;
	int                repeat;        /* requests to make (allocation) */
	json_t            *collected;     /* allocation: every code returned */
};

static void *
race_thread(void *arg)
{
	struct race *r = arg;
	struct msr_it_resp resp;

	pthread_barrier_wait(r->barrier);
	for (int i = 0; i < (r->repeat ? r->repeat : 1); i++) {
		if (msr_it_request(&it, r->method, r->path, r->key, NULL, r->body, &resp) != 0) {
			r->status = -1;
			msr_it_resp_free(&resp);
			break;
		}
		r->status = resp.status;
		if (r->collected != NULL && resp.status == 201)
			json_array_extend(r->collected, json_object_get(resp.json, "codes"));
		json_decref(r->reply);
		r->reply = resp.json ? json_incref(resp.json) : NULL;
		msr_it_resp_free(&resp);
		if (r->status != 201)
			break;
	}
	return NULL;
}

/* Run NTHREADS requests at once; returns how many answered 201 and 409. */
static void
race_run(struct race *rs, int *created, int *conflicts)
{
	pthread_t th[NTHREADS];
	pthread_barrier_t barrier;

	pthread_barrier_init(&barrier, NULL, NTHREADS);
	*created = *conflicts = 0;
	for (int i = 0; i < NTHREADS; i++) {
		rs[i].barrier = &barrier;
		pthread_create(&th[i], NULL, race_thread, &rs[i]);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		if (rs[i].status == 201)
			(*created)++;
		else if (rs[i].status == 409)
			(*conflicts)++;
		else
			ck_abort_msg("racing request answered %ld", rs[i].status);
	}
	pthread_barrier_destroy(&barrier);
}

static void
race_free(struct race *rs)
{
	for (int i = 0; i < NTHREADS; i++) {
		free(rs[i].body);
		json_decref(rs[i].reply);
		json_decref(rs[i].collected);
	}
}

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

START_TEST(concurrent_allocation)
{
	struct race rs[NTHREADS];
	const char **all;
	size_t total = 0, k = 0, i;
	int created, conflicts;
	json_t *v;
	char *count;

	memset(rs, 0, sizeof(rs));
	for (i = 0; i < NTHREADS; i++) {
		rs[i].key = i % 2 ? k_bolt : k_acme;
		rs[i].method = "POST";
		rs[i].path = "/v1/codes/allocate";
		rs[i].body = strdup("{\"count\":1000}");
		rs[i].repeat = 10;
		rs[i].collected = json_array();
	}
	race_run(rs, &created, &conflicts);
	ck_assert_int_eq(created, NTHREADS);
	for (i = 0; i < NTHREADS; i++)
		total += json_array_size(rs[i].collected);
	ck_assert_int_eq((int)total, NTHREADS * 10 * 1000);
	all = calloc(total, sizeof(*all));
	for (i = 0; i < NTHREADS; i++) {
		size_t j;
		json_array_foreach(rs[i].collected, j, v)
			all[k++] = json_string_value(v);
	}
	qsort(all, total, sizeof(*all), cmp_cstr);
	for (k = 1; k < total; k++)
		ck_assert_msg(strcmp(all[k - 1], all[k]) != 0, "code %s issued twice", all[k]);
	free(all);
	count = sql1("SELECT count(*) = count(DISTINCT code) FROM code_allocations");
	ck_assert_str_eq(count, "t");
	free(count);
	race_free(rs);
}
END_TEST

START_TEST(racing_registrations)
{
	struct race rs[NTHREADS];
	int created, conflicts;
	char serial[32], code[17], rs8[9];
	json_t *b;

	for (int round = 0; round < 10; round++) {
		/* the same serial, different codes: one wins */
		memset(rs, 0, sizeof(rs));
		snprintf(serial, sizeof(serial), "RACE-S-%d", round);
		for (int i = 0; i < NTHREADS; i++) {
			random_free(code, 12);
			b = firearm(serial, code, "free");
			rs[i].key = k_acme;
			rs[i].method = "POST";
			rs[i].path = "/v1/firearms";
			rs[i].body = json_dumps(b, JSON_COMPACT);
			json_decref(b);
		}
		race_run(rs, &created, &conflicts);
		ck_assert_int_eq(created, 1);
		ck_assert_int_eq(conflicts, NTHREADS - 1);
		race_free(rs);
		ck_assert_int_eq(sql_int("SELECT count(*) FROM firearms WHERE serial = '%s'",
		    serial), 1);

		/* the same unallocated codeword, two manufacturers, different serials */
		memset(rs, 0, sizeof(rs));
		random_rs8(rs8);
		for (int i = 0; i < NTHREADS; i++) {
			snprintf(serial, sizeof(serial), "RACE-C-%d-%d", round, i);
			b = firearm(serial, rs8, NULL);
			rs[i].key = i % 2 ? k_bolt : k_acme;
			rs[i].method = "POST";
			rs[i].path = "/v1/firearms";
			rs[i].body = json_dumps(b, JSON_COMPACT);
			json_decref(b);
		}
		race_run(rs, &created, &conflicts);
		ck_assert_int_eq(created, 1);
		ck_assert_int_eq(conflicts, NTHREADS - 1);
		race_free(rs);
		ck_assert_int_eq(sql_int("SELECT count(*) FROM codes WHERE code = '%s'", rs8), 1);
		ck_assert_int_eq(sql_int("SELECT count(*) FROM codes c JOIN firearms f"
		    " ON f.id = c.firearm_id JOIN code_allocations a ON a.code = c.code"
		    " WHERE c.code = '%s' AND a.manufacturer_id = f.manufacturer_id", rs8), 1);

		/* racing batches sharing one code in reverse orders: one wins, no deadlock */
		memset(rs, 0, sizeof(rs));
		random_free(code, 12);
		for (int i = 0; i < NTHREADS; i++) {
			json_t *list = json_array();
			char mine[17];
			for (int j = 0; j < 20; j++) {
				snprintf(serial, sizeof(serial), "RACE-B-%d-%d-%d", round, i, j);
				random_free(mine, 12);
				json_array_append_new(list, firearm(serial, j == (i % 2 ? 19 : 0) ?
				    code : mine, "free"));
			}
			b = json_pack("{s:o}", "firearms", list);
			rs[i].key = k_acme;
			rs[i].method = "POST";
			rs[i].path = "/v1/firearms/batch";
			rs[i].body = json_dumps(b, JSON_COMPACT);
			json_decref(b);
		}
		race_run(rs, &created, &conflicts);
		ck_assert_int_eq(created, 1);
		ck_assert_int_eq(conflicts, NTHREADS - 1);
		race_free(rs);
	}
	/* the sale of one firearm by several dealers at once: one wins */
	memset(rs, 0, sizeof(rs));
	register_free(k_acme, "RACE-SALE", code);
	for (int i = 0; i < NTHREADS; i++) {
		b = sale("acme", "RACE-SALE", "2026-02-01", "CA");
		rs[i].key = i % 2 ? k_dealer2 : k_dealer;
		rs[i].method = "POST";
		rs[i].path = "/v1/sales";
		rs[i].body = json_dumps(b, JSON_COMPACT);
		json_decref(b);
	}
	race_run(rs, &created, &conflicts);
	ck_assert_int_eq(created, 1);
	race_free(rs);
	/* replacing one code from several threads: one retires it */
	{
		json_t *codes = allocate(k_acme, NTHREADS + 1), *reply;
		char path[96];
		reply = xreq("POST", "/v1/firearms", k_acme, firearm("RACE-REP",
		    json_string_value(json_array_get(codes, 0)), NULL), 201, NULL);
		snprintf(path, sizeof(path), "/v1/firearms/%lld/codes",
		    (long long)json_integer_value(json_object_get(reply, "id")));
		json_decref(reply);
		memset(rs, 0, sizeof(rs));
		for (int i = 0; i < NTHREADS; i++) {
			b = json_pack("{s:O, s:s, s:O}", "code", json_array_get(codes, i + 1),
			    "component", "firing_pin", "replaces", json_array_get(codes, 0));
			rs[i].key = k_acme;
			rs[i].method = "POST";
			rs[i].path = path;
			rs[i].body = json_dumps(b, JSON_COMPACT);
			json_decref(b);
		}
		race_run(rs, &created, &conflicts);
		ck_assert_int_eq(created, 1);
		race_free(rs);
		json_decref(codes);
	}
}
END_TEST

/* ---- property: a large allocation ---------------------------------------- */

START_TEST(allocation_property)
{
	const char *env = getenv("MSR_IT_ALLOC_TOTAL");
	long total = env ? atol(env) : 1000000;
	long before, n = 0, invalid = 0;
	double t0, t1;
	PGconn *pg;
	PGresult *res;
	char *v;

	v = sql1("SELECT count(*) FROM code_allocations");
	before = atol(v);
	free(v);
	t0 = now_s();
	{
		struct race rs[NTHREADS];
		int created, conflicts;
		memset(rs, 0, sizeof(rs));
		for (int i = 0; i < NTHREADS; i++) {
			rs[i].key = k_acme;
			rs[i].method = "POST";
			rs[i].path = "/v1/codes/allocate";
			rs[i].body = strdup("{\"count\":10000}");
			rs[i].repeat = (int)((total + 10000 * NTHREADS - 1) / (10000 * NTHREADS));
		}
		race_run(rs, &created, &conflicts);
		ck_assert_int_eq(created, NTHREADS);
		race_free(rs);
		total = (long)rs[0].repeat * 10000 * NTHREADS;
	}
	t1 = now_s();
	fprintf(stderr, "it_registry: allocated %ld codes in %.2f s (%.0f codes/s)\n", total,
	    t1 - t0, (double)total / (t1 - t0));

	pg = PQconnectdb(it.url_super);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	res = PQexec(pg, "SELECT count(*), count(DISTINCT code) FROM code_allocations");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	ck_assert_int_eq(atol(PQgetvalue(res, 0, 0)), before + total);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	PQclear(res);
	/* every code except the claims of 8-symbol free codes is an rs8 codeword */
	res = PQexec(pg, "SELECT code FROM code_allocations a WHERE NOT EXISTS"
	    " (SELECT 1 FROM codes c WHERE c.code = a.code AND c.scheme = 'free')");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	for (int i = 0; i < PQntuples(res); i++) {
		uint8_t sym[MSR_RS8_LEN];
		size_t len;
		if (msr_code_normalize(PQgetvalue(res, i, 0), sym, MSR_RS8_LEN, &len, NULL) != 0 ||
		    len != MSR_RS8_LEN || !msr_rs8_valid(sym))
			invalid++;
		n++;
	}
	PQclear(res);
	PQfinish(pg);
	ck_assert_int_ge(n, total);
	ck_assert_int_eq(invalid, 0);
	fprintf(stderr, "it_registry: checked %ld codes in %.2f s\n", n, now_s() - t1);
}
END_TEST

/* ---- database failures ---------------------------------------------------- */

static void
expect_unavailable(const char *method, const char *path, const char *key, json_t *body)
{
	struct msr_it_resp r;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	ck_assert_int_eq(msr_it_request(&it, method, path, key, NULL, text, &r), 0);
	ck_assert_msg(r.status == 503, "%s %s: %ld, want 503: %s", method, path, r.status,
	    r.body);
	ck_assert_str_eq(msr_it_error_code(&r), "unavailable");
	ck_assert_str_eq(r.retry_after, "1");
	msr_it_resp_free(&r);
	free(text);
	json_decref(body);
}

START_TEST(database_errors_are_503)
{
	char code[17], code2[17], path[96], lpath[160];
	json_int_t id = register_free(k_acme, "DBERR-1", code);

	/* a failing statement (here: a privilege taken away) is 503, never 500 */
	ck_assert_int_eq(msr_it_sql(&it, "REVOKE INSERT ON firearms FROM msreg_app"), 0);
	random_free(code2, 12);
	expect_unavailable("POST", "/v1/firearms", k_acme, firearm("DBERR-2", code2, "free"));
	expect_unavailable("POST", "/v1/firearms/batch", k_acme, json_pack("{s:[o]}",
	    "firearms", firearm("DBERR-2", code2, "free")));
	ck_assert_int_eq(msr_it_sql(&it, "GRANT INSERT ON firearms TO msreg_app"), 0);

	ck_assert_int_eq(msr_it_sql(&it, "REVOKE INSERT ON code_allocations FROM msreg_app"), 0);
	expect_unavailable("POST", "/v1/codes/allocate", k_acme, json_pack("{s:i}", "count", 5));
	ck_assert_int_eq(msr_it_sql(&it, "GRANT INSERT ON code_allocations TO msreg_app"), 0);

	ck_assert_int_eq(msr_it_sql(&it, "REVOKE UPDATE ON codes FROM msreg_app"), 0);
	snprintf(path, sizeof(path), "/v1/firearms/%lld/codes", (long long)id);
	expect_unavailable("POST", path, k_acme, json_pack("{s:s, s:s, s:s, s:s}", "code",
	    code2, "component", "firing_pin", "scheme", "free", "replaces", code));
	ck_assert_int_eq(msr_it_sql(&it, "GRANT UPDATE ON codes TO msreg_app"), 0);

	ck_assert_int_eq(msr_it_sql(&it, "REVOKE SELECT, INSERT ON first_sales FROM msreg_app"),
	    0);
	snprintf(path, sizeof(path), "/v1/firearms/%lld", (long long)id);
	expect_unavailable("GET", path, k_acme, NULL);
	lookup_path(lpath, sizeof(lpath), code);
	expect_unavailable("GET", lpath, k_inv, NULL);
	expect_unavailable("POST", "/v1/sales", k_dealer, sale("acme", "DBERR-1", "2026-02-01",
	    "CA"));
	ck_assert_int_eq(msr_it_sql(&it, "GRANT SELECT, INSERT ON first_sales TO msreg_app"), 0);

	/* nothing half-done, and everything works again */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM codes WHERE code = '%s'", code2), 0);
	xcheck("GET", lpath, k_inv, NULL, 200, NULL);
	xcheck("POST", "/v1/firearms/batch", k_acme, json_pack("{s:[o]}", "firearms",
	    firearm("DBERR-2", code2, "free")), 201, NULL);
	xcheck("POST", "/v1/sales", k_dealer, sale("acme", "DBERR-1", "2026-02-01", "CA"), 201,
	    NULL);
}
END_TEST

START_TEST(openapi_documents_registry)
{
	static const char *const paths[] = { "/v1/codes/allocate", "/v1/codes/{code}",
	    "/v1/firearms", "/v1/firearms/batch", "/v1/firearms/{id}",
	    "/v1/firearms/{id}/codes", "/v1/sales", NULL };
	json_t *doc = xreq("GET", "/v1/openapi.json", NULL, NULL, 200, NULL);

	for (int i = 0; paths[i] != NULL; i++)
		ck_assert_msg(json_object_get(json_object_get(doc, "paths"), paths[i]) != NULL,
		    "openapi.json lacks %s", paths[i]);
	ck_assert_ptr_nonnull(json_object_get(json_object_get(json_object_get(doc,
	    "components"), "schemas"), "Firearm"));
	json_decref(doc);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("registry");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, allocate_codes);
	tcase_add_test(tc, register_firearm);
	tcase_add_test(tc, register_errors);
	tcase_add_test(tc, batch_all_or_nothing);
	tcase_add_test(tc, batch_fast_and_full_paths);
	tcase_add_test(tc, replacement);
	tcase_add_test(tc, sales);
	tcase_add_test(tc, lookup);
	tcase_add_test(tc, role_matrix);
	tcase_add_test(tc, concurrent_allocation);
	tcase_add_test(tc, racing_registrations);
	tcase_add_test(tc, allocation_property);
	tcase_add_test(tc, database_errors_are_503);
	tcase_add_test(tc, openapi_documents_registry);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
