/*
 * it_search.c — POST /v1/search against the real msregd and PostgreSQL.
 *
 * The oracle test registers random codes (allocated rs8 codes and free codes)
 * through the batch API, then sends seeded random queries — unknown positions,
 * ambiguous sets, injected misreads, 1–3 readings, text and gear, max_mismatches
 * 0..2 — and checks every answer against a brute-force sequential scan done by
 * PostgreSQL itself (SQL written independently of the C matcher). Also: input
 * errors, the enumeration guard, roles, auditing, retired codes, and a code
 * registered through one msregd instance becoming searchable on another.
 */
#include <check.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "msreg/code.h"

#define NFREE     400
#define NBATCHES  3        /* 3 x 5000 rs8 codes */
#define BATCH     5000
#define NQUERIES  400

static struct msr_it it;
static char mkey[128], ikey[128], akey[128], dkey[128];
static char **codes;       /* every registered code */
static size_t ncodes;
static uint64_t rng = 20261122;    /* the seed of every generated code and query */

static unsigned
rand_below(unsigned n)
{
	return msr_test_rand_below(&rng, n);
}

static void
add_code(const char *c)
{
	char **p = realloc(codes, (ncodes + 1) * sizeof(*codes));

	ck_assert_ptr_nonnull(p);
	codes = p;
	codes[ncodes++] = strdup(c);
}

/* Register firearms for the given codes (scheme rs8 or free) in one batch. */
static void
register_batch(char **list, size_t n, const char *scheme, int serial_base)
{
	json_t *arr = json_array(), *req;
	struct msr_it_resp r;
	char serial[32], *body;

	for (size_t i = 0; i < n; i++) {
		snprintf(serial, sizeof(serial), "S%08d", serial_base + (int)i);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}]}",
		    "model", "P320", "serial", serial, "type", "pistol", "caliber", "9mm",
		    "manufactured_on", "2026-01-15",
		    "codes", "code", list[i], "component", "firing_pin", "scheme", scheme));
	}
	req = json_pack("{s:o}", "firearms", arr);
	body = json_dumps(req, JSON_COMPACT);
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/firearms/batch", mkey, NULL, body, &r), 0);
	ck_assert_msg(r.status == 201, "batch: %ld %s", r.status, r.body);
	msr_it_resp_free(&r);
	free(body);
	json_decref(req);
}

static void
random_free_code(char *out)
{
	unsigned len = 6 + rand_below(11);      /* 6..16 */

	for (unsigned i = 0; i < len; i++)
		out[i] = MSR_ALPHABET[rand_below(32)];
	out[len] = '\0';
}

static json_t *
search(struct msr_it *inst, const char *key, json_t *readings, int mm, int limit,
    struct msr_it_resp *r)
{
	json_t *req = json_pack("{s:s, s:s, s:o, s:i, s:i}", "case_number", "HPD-2026-004211",
	    "purpose", "homicide", "readings", readings, "max_mismatches", mm, "limit", limit);
	char *body = json_dumps(req, JSON_COMPACT);

	ck_assert_int_eq(msr_it_request(inst, "POST", "/v1/search", key, NULL, body, r), 0);
	free(body);
	json_decref(req);
	return r->json;
}

/* Wait until code is searchable (the feed follows NOTIFY; allow 5 s). */
static void
wait_searchable(struct msr_it *inst, const char *code)
{
	for (int i = 0; i < 100; i++) {
		struct msr_it_resp r;
		json_t *req = json_pack("{s:s, s:s, s:[s]}", "case_number", "c", "purpose", "p",
		    "readings", code);
		char *body = json_dumps(req, JSON_COMPACT);
		long total = -1;
		struct timespec ts = { 0, 50 * 1000000L };

		ck_assert_int_eq(msr_it_request(inst, "POST", "/v1/search", ikey, NULL, body, &r), 0);
		if (r.status == 200)
			total = (long)json_integer_value(json_object_get(r.json, "total"));
		msr_it_resp_free(&r);
		free(body);
		json_decref(req);
		if (total == 1)
			return;
		nanosleep(&ts, NULL);
	}
	ck_abort_msg("code %s did not become searchable", code);
}

static void
setup(void)
{
	struct msr_it_resp r;
	char *batch[BATCH], fc[20];

	msr_it_setup(&it, "search", "[search]\nmax_expected_matches = 20\n");
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/manufacturers", it.admin_key,
	    "{\"id\":\"acme\",\"name\":\"Acme Arms\"}"), 201);
	msr_it_client(&it, "manufacturer", "acme line", "acme", mkey, sizeof(mkey));
	msr_it_client(&it, "investigator", "lab", "CA0194200", ikey, sizeof(ikey));
	msr_it_client(&it, "auditor", "oversight", NULL, akey, sizeof(akey));
	msr_it_client(&it, "dealer", "shop", "1-23-456-07-6B-12345", dkey, sizeof(dkey));
	for (int b = 0; b < NBATCHES; b++) {
		json_t *list;
		size_t i;
		json_t *v;
		ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/codes/allocate", mkey, NULL,
		    "{\"count\": 5000}", &r), 0);
		ck_assert_int_eq(r.status, 201);
		list = json_object_get(r.json, "codes");
		json_array_foreach(list, i, v) {
			batch[i] = strdup(json_string_value(v));
			add_code(batch[i]);
		}
		register_batch(batch, json_array_size(list), "rs8", b * BATCH);
		for (i = 0; i < json_array_size(list); i++)
			free(batch[i]);
		msr_it_resp_free(&r);
	}
	for (int i = 0; i < NFREE; i++) {
		random_free_code(fc);
		batch[i] = strdup(fc);
		add_code(fc);
	}
	register_batch(batch, NFREE, "free", 900000);
	for (int i = 0; i < NFREE; i++)
		free(batch[i]);
	wait_searchable(&it, codes[ncodes - 1]);
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

/* ---- the oracle: a sequential scan in PostgreSQL ---- */

static const char *oracle_sql =
	"SELECT code, m FROM (SELECT code, (SELECT count(*) FROM"
	"  generate_series(0, $2::int * $3::int - 1) g"
	"  WHERE strpos(($1::text[])[g + 1], substr(code, (g % $3::int) + 1, 1)) = 0) AS m"
	"  FROM codes WHERE length(code) = $3::int) x"
	" WHERE m <= $4::int ORDER BY code";

struct query {
	unsigned nread, len, mm;
	uint32_t set[3][16];
	int gear[3];
};

static void
set_string(uint32_t set, char *out)
{
	int n = 0;

	for (int s = 0; s < 32; s++)
		if (set & (1u << s))
			out[n++] = MSR_ALPHABET[s];
	out[n] = '\0';
}

static json_t *
query_readings(const struct query *q)
{
	json_t *arr = json_array();
	char text[16 * 40], bits[16 * 5 + 1];

	for (unsigned r = 0; r < q->nread; r++) {
		if (q->gear[r]) {
			/* a gear reading: each symbol fully known or fully unknown */
			for (unsigned p = 0; p < q->len; p++) {
				uint32_t set = q->set[r][p];
				int sym = __builtin_ctz(set);
				for (int b = 0; b < 5; b++)
					bits[p * 5 + b] = set == 0xffffffffu ? '?' :
					    (char)('0' + ((sym >> (4 - b)) & 1));
			}
			bits[q->len * 5] = '\0';
			json_array_append_new(arr, json_pack("{s:s}", "gear", bits));
			continue;
		}
		size_t n = 0;
		for (unsigned p = 0; p < q->len; p++) {
			uint32_t set = q->set[r][p];
			if (set == 0xffffffffu) {
				text[n++] = '?';
			} else if ((set & (set - 1)) == 0) {
				text[n++] = MSR_ALPHABET[__builtin_ctz(set)];
			} else {
				char s[33];
				set_string(set, s);
				n += (size_t)sprintf(text + n, "[%s]", s);
			}
			if (p == 3 && rand_below(4) == 0)
				text[n++] = '-';        /* hyphens are ignored */
		}
		text[n] = '\0';
		json_array_append_new(arr, json_string(text));
	}
	return arr;
}

static PGresult *
oracle(PGconn *pg, const struct query *q)
{
	char slots[3 * 16 * 34 + 8], lenbuf[8], nbuf[8], mbuf[8];
	const char *values[4] = { slots, nbuf, lenbuf, mbuf };
	size_t n = 0;

	slots[n++] = '{';
	for (unsigned r = 0; r < q->nread; r++)
		for (unsigned p = 0; p < q->len; p++) {
			char s[33];
			set_string(q->set[r][p], s);
			n += (size_t)sprintf(slots + n, "%s%s", (r || p) ? "," : "", s);
		}
	slots[n++] = '}';
	slots[n] = '\0';
	snprintf(nbuf, sizeof(nbuf), "%u", q->nread);
	snprintf(lenbuf, sizeof(lenbuf), "%u", q->len);
	snprintf(mbuf, sizeof(mbuf), "%u", q->mm);
	return PQexecParams(pg, oracle_sql, 4, NULL, values, NULL, NULL, 0);
}

/* A query derived from a registered code: unknowns, sets, misreads. */
static void
make_query(struct query *q)
{
	const char *target = codes[rand_below((unsigned)ncodes)];
	unsigned len = (unsigned)strlen(target);
	unsigned unknown_pct = (unsigned[]){ 0, 20, 40, 60 }[rand_below(4)];
	unsigned misreads;

	memset(q, 0, sizeof(*q));
	q->len = len;
	q->nread = 1 + rand_below(3);
	q->mm = rand_below(3);
	for (unsigned r = 0; r < q->nread; r++) {
		q->gear[r] = len == 8 && rand_below(5) == 0;
		for (unsigned p = 0; p < len; p++) {
			int sym = msr_sym_value(target[p]);
			unsigned x = rand_below(100);
			if (x < unknown_pct) {
				q->set[r][p] = 0xffffffffu;
			} else if (!q->gear[r] && x < unknown_pct + 10) {
				q->set[r][p] = (1u << sym) | (1u << rand_below(32)) | (1u << rand_below(32));
			} else {
				q->set[r][p] = 1u << sym;
			}
		}
	}
	/* misreads: sometimes within max_mismatches, sometimes one more */
	misreads = rand_below(q->mm + 2);
	for (unsigned k = 0; k < misreads; k++) {
		unsigned r = rand_below(q->nread), p = rand_below(len);
		q->set[r][p] = 1u << rand_below(32);
	}
}

/* nq seeded queries through inst, each checked against the PostgreSQL oracle. */
static void
oracle_round(struct msr_it *inst, int nq)
{
	PGconn *pg = PQconnectdb(it.url_app);
	int answered = 0, refused = 0, nonempty = 0;

	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	for (int i = 0; i < nq; i++) {
		struct msr_it_resp r;
		struct query q;
		PGresult *res;
		json_t *cands;
		long total;

		make_query(&q);
		search(inst, ikey, query_readings(&q), (int)q.mm, 100, &r);
		if (r.status == 422) {
			ck_assert_str_eq(msr_it_error_code(&r), "query_too_broad");
			refused++;
			msr_it_resp_free(&r);
			continue;
		}
		ck_assert_msg(r.status == 200, "query %d: %ld %s", i, r.status, r.body);
		res = oracle(pg, &q);
		ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
		total = (long)json_integer_value(json_object_get(r.json, "total"));
		ck_assert_msg(total == PQntuples(res), "query %d: msregd total %ld, oracle %d (%s)",
		    i, total, PQntuples(res), r.body);
		cands = json_object_get(r.json, "candidates");
		ck_assert_int_eq(json_array_size(cands), total < 100 ? (size_t)total : 100);
		ck_assert(json_is_true(json_object_get(r.json, "truncated")) == (total > 100));
		unsigned prev = 0;
		for (size_t k = 0; k < json_array_size(cands); k++) {
			json_t *c = json_array_get(cands, k);
			const char *code = json_string_value(json_object_get(c, "code"));
			unsigned mm = (unsigned)json_integer_value(json_object_get(c, "mismatches"));
			int found = 0;
			ck_assert_uint_ge(mm, prev);        /* ranked by mismatches first */
			prev = mm;
			for (int row = 0; row < PQntuples(res); row++)
				if (strcmp(PQgetvalue(res, row, 0), code) == 0) {
					ck_assert_uint_eq(mm, (unsigned)atoi(PQgetvalue(res, row, 1)));
					found = 1;
				}
			ck_assert_msg(found, "query %d: %s not in the oracle's answer", i, code);
			ck_assert_ptr_nonnull(json_object_get(json_object_get(c, "firearm"), "serial"));
		}
		nonempty += total > 0;
		answered++;
		PQclear(res);
		msr_it_resp_free(&r);
	}
	PQfinish(pg);
	fprintf(stderr, "search oracle: %d answered (%d with matches), %d refused as too broad\n",
	    answered, nonempty, refused);
	ck_assert_int_ge(answered, nq / 2);
	ck_assert_int_ge(nonempty, nq / 4);
}

START_TEST(oracle_agreement)
{
	oracle_round(&it, NQUERIES);
}
END_TEST

static void
expect(const char *key, const char *body, long status, const char *code)
{
	struct msr_it_resp r;

	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", key, NULL, body, &r), 0);
	ck_assert_msg(r.status == status, "%s: %ld %s", body, r.status, r.body);
	if (code != NULL)
		ck_assert_str_eq(msr_it_error_code(&r), code);
	msr_it_resp_free(&r);
}

START_TEST(input_errors)
{
	struct msr_it_resp r;
	json_t *d;

	expect(ikey, "{\"purpose\":\"p\",\"readings\":[\"0H5KB4M3\"]}", 400, "invalid_field");
	expect(ikey, "{\"case_number\":\"c\",\"readings\":[\"0H5KB4M3\"]}", 400, "invalid_field");
	expect(ikey, "{\"case_number\":\"\",\"purpose\":\"p\",\"readings\":[\"0H5KB4M3\"]}", 400,
	    "invalid_field");
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[]}", 400,
	    "invalid_pattern");
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":\"0H5KB4M3\"}", 400,
	    "invalid_pattern");
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[5]}", 400,
	    "invalid_pattern");
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[\"0H5K[B4M3\"]}", 400,
	    "invalid_pattern");
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[\"0H5KB4M3\",\"0H5KB4M\"]}",
	    400, "invalid_pattern");
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[{\"gear\":\"0101\"}]}",
	    400, "invalid_pattern");
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[\"0H5KB4M3\"],"
	    "\"max_mismatches\":3}", 400, "invalid_field");
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[\"0H5KB4M3\"],"
	    "\"limit\":0}", 400, "invalid_field");
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[\"0H5KB4M3\"],"
	    "\"limit\":101}", 400, "invalid_field");
	/* the error names the reading and the position */
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", ikey, NULL,
	    "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[\"0H5KB4M3\",\"0H5U!4M3\"]}",
	    &r), 0);
	ck_assert_int_eq(r.status, 400);
	d = json_object_get(json_object_get(r.json, "error"), "detail");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "reading")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(d, "position")), 4);
	msr_it_resp_free(&r);
}
END_TEST

START_TEST(guard)
{
	struct msr_it_resp r;
	json_t *d;

	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", ikey, NULL,
	    "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[\"0???????\"]}", &r), 0);
	ck_assert_int_eq(r.status, 422);
	ck_assert_str_eq(msr_it_error_code(&r), "query_too_broad");
	d = json_object_get(json_object_get(r.json, "error"), "detail");
	ck_assert(json_real_value(json_object_get(d, "expected_matches")) > 20);
	ck_assert(json_real_value(json_object_get(d, "max_expected_matches")) == 20);
	ck_assert_int_ge(r.audit_index, 0);     /* refusals are audited too */
	msr_it_resp_free(&r);
	/* 3 known positions of 15,000 codes: about 0.5 expected at random — answered */
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", ikey, NULL,
	    "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[\"0H5?????\"]}", &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert(json_is_real(json_object_get(r.json, "expected_random_matches")));
	ck_assert(json_real_value(json_object_get(r.json, "expected_random_matches")) < 1);
	msr_it_resp_free(&r);
	/* allowing one misread among them widens it past the bound (~43) */
	expect(ikey, "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":[\"0H5?????\"],"
	    "\"max_mismatches\":1}", 422, "query_too_broad");
}
END_TEST

START_TEST(roles_and_audit)
{
	char buf[256], path[128];
	struct msr_it_resp r, e;
	json_t *entry;

	snprintf(buf, sizeof(buf),
	    "{\"case_number\":\"HPD-1\",\"purpose\":\"homicide\",\"readings\":[\"%s\"]}",
	    codes[0]);
	expect(NULL, buf, 401, "unauthenticated");
	expect(mkey, buf, 403, "forbidden");
	expect(dkey, buf, 403, "forbidden");
	expect(akey, buf, 403, "forbidden");
	expect(it.admin_key, buf, 403, "forbidden");
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", ikey, NULL, buf, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 1);
	ck_assert_int_ge(r.audit_index, 0);
	/* the audit entry names the case, the purpose, the query and what was returned */
	snprintf(path, sizeof(path), "/v1/audit/entries?start=%ld&limit=1", r.audit_index);
	ck_assert_int_eq(msr_it_request(&it, "GET", path, akey, NULL, NULL, &e), 0);
	ck_assert_int_eq(e.status, 200);
	entry = json_object_get(json_array_get(json_object_get(e.json, "entries"), 0), "entry");
	ck_assert_str_eq(json_string_value(json_object_get(entry, "case_number")), "HPD-1");
	ck_assert_str_eq(json_string_value(json_object_get(entry, "purpose")), "homicide");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(entry, "readings"), 0)),
	    codes[0]);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(entry,
	    "result"), "codes"), 0)), codes[0]);
	msr_it_resp_free(&e);
	msr_it_resp_free(&r);

	/* nothing found (answered without a database round trip): still audited */
	{
		uint8_t sym[MSR_RS8_LEN];
		char none[MSR_RS8_LEN + 1];
		uint32_t d = 0x15a5a5a;
		int registered;

		do {
			msr_rs8_from_data(d++ & ((UINT32_C(1) << 30) - 1), sym);
			msr_code_format(sym, MSR_RS8_LEN, none);
			registered = 0;
			for (size_t i = 0; i < ncodes; i++)
				registered |= strcmp(codes[i], none) == 0;
		} while (registered);
		snprintf(buf, sizeof(buf), "{\"case_number\":\"HPD-2\",\"purpose\":\"homicide\","
		    "\"readings\":[\"%s\"]}", none);
		ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", ikey, NULL, buf, &r), 0);
		ck_assert_int_eq(r.status, 200);
		ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 0);
		ck_assert(json_is_array(json_object_get(r.json, "candidates")));
		ck_assert_int_eq(json_array_size(json_object_get(r.json, "candidates")), 0);
		ck_assert_int_ge(r.audit_index, 0);
		snprintf(path, sizeof(path), "/v1/audit/entries?start=%ld&limit=1", r.audit_index);
		ck_assert_int_eq(msr_it_request(&it, "GET", path, akey, NULL, NULL, &e), 0);
		entry = json_object_get(json_array_get(json_object_get(e.json, "entries"), 0),
		    "entry");
		ck_assert_str_eq(json_string_value(json_object_get(entry, "case_number")), "HPD-2");
		ck_assert_str_eq(json_string_value(json_array_get(json_object_get(entry,
		    "readings"), 0)), none);
		msr_it_resp_free(&e);
		msr_it_resp_free(&r);
	}
}
END_TEST

START_TEST(retired_and_second_instance)
{
	struct msr_it it2;
	struct msr_it_resp r;
	char body[512], path[64], newcode[16];
	json_t *c;
	long fid;

	/*
	 * A second instance loads the registry at start in chunks of 1,000 rs8
	 * codes (one sorted run each, as a 1e9 registry is loaded) and answers like
	 * the oracle; then a code registered through it is searchable on the first
	 * instance within a second.
	 */
	msr_it_instance(&it, &it2, "b", "[search]\nload_chunk = 1000\n");
	ck_assert_int_eq(msr_it_wait_ready(&it2, 30000), 0);
	oracle_round(&it2, 100);
	ck_assert_int_eq(msr_it_request(&it2, "POST", "/v1/codes/allocate", mkey, NULL,
	    "{\"count\": 2}", &r), 0);
	ck_assert_int_eq(r.status, 201);
	snprintf(newcode, sizeof(newcode), "%s",
	    json_string_value(json_array_get(json_object_get(r.json, "codes"), 0)));
	msr_it_resp_free(&r);
	snprintf(body, sizeof(body), "{\"model\":\"G19\",\"serial\":\"X-2\",\"type\":\"pistol\","
	    "\"caliber\":\"9mm\",\"codes\":[{\"code\":\"%s\",\"component\":\"firing_pin\"}]}",
	    newcode);
	ck_assert_int_eq(msr_it_request(&it2, "POST", "/v1/firearms", mkey, NULL, body, &r), 0);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	fid = (long)json_integer_value(json_object_get(r.json, "id"));
	msr_it_resp_free(&r);
	{
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		wait_searchable(&it, newcode);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ck_assert_msg((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000
		    < 1500, "cross-instance visibility took too long");
	}
	msr_it_teardown(&it2);

	/* a retired code stays searchable, with its status */
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/codes/allocate", mkey, NULL,
	    "{\"count\": 1}", &r), 0);
	snprintf(body, sizeof(body), "{\"code\":\"%s\",\"component\":\"firing_pin\","
	    "\"replaces\":\"%s\"}",
	    json_string_value(json_array_get(json_object_get(r.json, "codes"), 0)), newcode);
	msr_it_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/firearms/%ld/codes", fid);
	ck_assert_int_eq(msr_it_status(&it, "POST", path, mkey, body), 201);
	snprintf(body, sizeof(body), "{\"case_number\":\"c\",\"purpose\":\"p\",\"readings\":"
	    "[\"%.4s??%s\"]}", newcode, newcode + 6);
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", ikey, NULL, body, &r), 0);
	ck_assert_int_eq(r.status, 200);
	c = json_array_get(json_object_get(r.json, "candidates"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "code")), newcode);
	ck_assert_str_eq(json_string_value(json_object_get(c, "status")), "retired");
	msr_it_resp_free(&r);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("search");
	TCase *tc = tcase_create("search");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, oracle_agreement);
	tcase_add_test(tc, input_errors);
	tcase_add_test(tc, guard);
	tcase_add_test(tc, roles_and_audit);
	tcase_add_test(tc, retired_and_second_instance);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
