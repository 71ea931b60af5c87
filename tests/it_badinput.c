/*
 * it_badinput.c — hostile input against every route of the real daemon.
 *
 * For every route in the route table (linked from the server itself, so a new
 * route is covered without editing this file) and every role's key, send
 * seeded mutations of a plausible request: wrong types, missing and unknown
 * fields, huge and negative numbers, long and odd strings, deep nesting,
 * truncated and bit-flipped JSON, odd path segments and query strings. Every
 * answer must be a 2xx/4xx with a JSON body — errors with a stable code — and
 * never a 5xx, a hang or a crash; afterwards the daemon still serves.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "msreg/http.h"


static struct msr_it it;
static char keys[6][128];     /* indexed by enum msr_role; [0] = no key */
static uint64_t rng = 0x5DEECE66Du;   /* seed of the hostile inputs */

static unsigned
rnd(unsigned n)
{
	return msr_test_rand_below(&rng, n);
}

static void
setup(void)
{
	msr_it_setup(&it, "badinput", NULL);
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/manufacturers", it.admin_key,
	    "{\"id\":\"acme\",\"name\":\"Acme\"}"), 201);
	msr_it_client(&it, "manufacturer", "m", "acme", keys[MSR_ROLE_MANUFACTURER], 128);
	msr_it_client(&it, "dealer", "d", "1-23-456-07-6B-12345", keys[MSR_ROLE_DEALER], 128);
	msr_it_client(&it, "investigator", "i", "CA0194200", keys[MSR_ROLE_INVESTIGATOR], 128);
	msr_it_client(&it, "auditor", "a", NULL, keys[MSR_ROLE_AUDITOR], 128);
	snprintf(keys[MSR_ROLE_ADMIN], 128, "%s", it.admin_key);
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

static const char *const odd_strings[] = {
	"", " ", "\\u0000", "\\u00e9t\\u00e9", "\\ud83d\\ude00", "'; DROP TABLE codes; --",
	"%00", "../../etc/passwd", "0H5KB4M3", "[8B]??????", "1-23-456-07-6B-12345",
	"2026-02-30", "9999-12-31", "-1", "1e309", "<script>", "\\n\\t",
};

static void
odd_value(char *buf, size_t len)
{
	switch (rnd(10)) {
	case 0: snprintf(buf, len, "null"); break;
	case 1: snprintf(buf, len, "%s", rnd(2) ? "true" : "false"); break;
	case 2: snprintf(buf, len, "%d", (int)rnd(200000) - 100000); break;
	case 3: snprintf(buf, len, "99999999999999999999999"); break;
	case 4: snprintf(buf, len, "-0.5e3"); break;
	case 5: snprintf(buf, len, "[]"); break;
	case 6: snprintf(buf, len, "{\"gear\":\"01?\"}"); break;
	case 7: {
		size_t n = 300 + rnd(5000);
		if (n > len - 3)
			n = len - 3;
		buf[0] = '"';
		memset(buf + 1, 'A' + (int)rnd(26), n);
		buf[n + 1] = '"';
		buf[n + 2] = '\0';
		break;
	}
	default:
		snprintf(buf, len, "\"%s\"", odd_strings[rnd(MSR_ARRAY_LEN(odd_strings))]);
	}
}

static const char *const fields[] = {
	"count", "model", "serial", "type", "caliber", "manufactured_on", "codes", "code",
	"component", "scheme", "replaces", "firearms", "manufacturer", "sold_on",
	"transaction_ref", "state", "case_number", "purpose", "readings", "max_mismatches",
	"limit", "name", "role", "org", "id", "ffl", "bogus",
};

/* A JSON body: an object of random known fields with odd values, sometimes broken. */
static char *
make_body(void)
{
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap), v[6000];
	unsigned k = rnd(6);

	switch (rnd(8)) {
	case 0: {                         /* deep nesting */
		unsigned depth = 100 + rnd(5000);
		for (unsigned i = 0; i < depth && n < cap - 2; i++)
			b[n++] = '[';
		b[n] = '\0';
		return b;
	}
	case 1:
		snprintf(b, cap, "%s", rnd(2) ? "[1,2,3]" : "\"just a string\"");
		return b;
	default:
		break;
	}
	b[n++] = '{';
	for (unsigned i = 0; i < k; i++) {
		odd_value(v, sizeof(v));
		n += (size_t)snprintf(b + n, cap - n, "%s\"%s\":%s", i ? "," : "",
		    fields[rnd(MSR_ARRAY_LEN(fields))], v);
		if (n > cap - 7000)
			break;
	}
	if (rnd(3) == 0) {                /* an array of such objects */
		n += (size_t)snprintf(b + n, cap - n, "%s\"%s\":[{\"code\":%s,\"component\":"
		    "\"firing_pin\"},7,null]", k ? "," : "", rnd(2) ? "codes" : "firearms",
		    rnd(2) ? "\"0H5KB4M3\"" : "12");
	}
	b[n++] = '}';
	b[n] = '\0';
	if (rnd(5) == 0 && n > 2)         /* truncate */
		b[rnd((unsigned)n)] = '\0';
	if (rnd(5) == 0 && n > 2)         /* flip a byte */
		b[rnd((unsigned)n)] ^= (char)(1 << rnd(8));
	return b;
}

static const char *const segments[] = {
	"1", "0", "-1", "99999999999999999999", "abc", "0H5KB4M3", "0h5k-b4m3", "%00",
	"%2e%2e", "????????", "1.5", "",
};

static void
make_path(const struct msr_route *rt, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = rt->pattern; *p != '\0' && n < len - 64; p++) {
		if (p[0] == '{' && p[1] == '}') {
			n += (size_t)snprintf(out + n, len - n, "%s",
			    segments[rnd(MSR_ARRAY_LEN(segments))]);
			p++;
			continue;
		}
		out[n++] = *p;
	}
	out[n] = '\0';
	if (rnd(2))
		snprintf(out + n, len - n, "?case_number=%s&purpose=x&start=%d&limit=%d&index=%d"
		    "&tree_size=%d&first=%d&second=%d", rnd(2) ? "c" : "", (int)rnd(20) - 5,
		    (int)rnd(3000) - 5, (int)rnd(50) - 5, (int)rnd(50) - 5, (int)rnd(50),
		    (int)rnd(50));
}

START_TEST(every_route_every_role)
{
	const char *env = getenv("MSR_BADINPUT_ROUNDS");   /* default 12 per route and role */
	int rounds = env != NULL ? atoi(env) : 12;
	unsigned sent = 0;

	for (size_t i = 0; i < msr_routes_len; i++) {
		const struct msr_route *rt = &msr_routes[i];
		for (int role = 0; role <= MSR_ROLE_ADMIN; role++) {
			for (int round = 0; round < rounds; round++) {
				struct msr_it_resp r;
				char path[512];
				char *body = strcmp(rt->method, "GET") == 0 ||
				    strcmp(rt->method, "DELETE") == 0 ? NULL : make_body();
				const char *ctype = rnd(10) == 0 ? "text/plain" : NULL;

				make_path(rt, path, sizeof(path));
				ck_assert_int_eq(msr_it_request(&it, rt->method, path,
				    role ? keys[role] : NULL, ctype, body, &r), 0);
				ck_assert_msg(r.status >= 200 && r.status < 500,
				    "%s %s as %s answered %ld: %s (body %.200s)", rt->method, path,
				    msr_role_name((enum msr_role)role), r.status, r.body,
				    body ? body : "");
				if (r.status >= 400) {
					ck_assert_msg(r.json != NULL && msr_it_error_code(&r)[0] != '\0',
					    "%s %s: error without a JSON code: %s", rt->method, path,
					    r.body);
				}
				msr_it_resp_free(&r);
				free(body);
				sent++;
			}
		}
	}
	ck_assert_int_eq(msr_it_status(&it, "GET", "/healthz", NULL, NULL), 200);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/readyz", NULL, NULL), 200);
	fprintf(stderr, "bad input: %u requests over %zu routes, no 5xx\n", sent, msr_routes_len);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("badinput");
	TCase *tc = tcase_create("badinput");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, every_route_every_role);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
