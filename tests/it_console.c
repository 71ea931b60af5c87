/*
 * it_console.c — integration tests of what msregd serves for the web console,
 * against a real msregd and PostgreSQL (the console itself is tested in
 * Chromium by tests/browser/):
 *   - the embedded files at /ui/: content types, versioned asset names that
 *     index.html refers to, 404 for anything else, the /ui redirect, and no
 *     audit entry for any of them;
 *   - GET /v1/me for every role (audited), 401 without a key;
 *   - GET /v1/clients (admin only): every client, revoked ones marked, no key
 *     material, pages by id;
 *   - GET /v1/firearms (manufacturers): only the caller's own firearms, pages
 *     by id, bad paging parameters 400.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct msr_it it;
static char k_inv[128], k_aud[128], k_acme[128], k_zeta[128], k_dealer[128];

/* Request; assert status; return the reply (response freed by the caller). */
static void
req(const char *method, const char *path, const char *key, const char *body, long want,
    struct msr_it_resp *r)
{
	ck_assert_int_eq(msr_it_request(&it, method, path, key, NULL, body, r), 0);
	ck_assert_msg(r->status == want, "%s %s: status %ld, want %ld: %.300s", method, path,
	    r->status, want, r->body);
}

static void
setup(void)
{
	struct msr_it_resp r;

	msr_it_setup(&it, "console", NULL);
	req("POST", "/v1/manufacturers", it.admin_key, "{\"id\":\"acme\",\"name\":\"Acme\"}", 201, &r);
	msr_it_resp_free(&r);
	req("POST", "/v1/manufacturers", it.admin_key, "{\"id\":\"zeta\",\"name\":\"Zeta\"}", 201, &r);
	msr_it_resp_free(&r);
	msr_it_client(&it, "investigator", "inv", "CA0194200", k_inv, sizeof(k_inv));
	msr_it_client(&it, "auditor", "aud", NULL, k_aud, sizeof(k_aud));
	msr_it_client(&it, "manufacturer", "acme office", "acme", k_acme, sizeof(k_acme));
	msr_it_client(&it, "manufacturer", "zeta office", "zeta", k_zeta, sizeof(k_zeta));
	msr_it_client(&it, "dealer", "dealer", "1-23-456-07-6B-12345", k_dealer, sizeof(k_dealer));
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

START_TEST(static_files)
{
	struct msr_it_resp r, a;
	const char *p, *q;
	char path[128];

	req("GET", "/ui/", NULL, NULL, 200, &r);
	ck_assert_str_eq(r.ctype, "text/html; charset=utf-8");
	ck_assert_int_eq(r.audit_index, -1);
	ck_assert_ptr_nonnull(strstr(r.body, "<!doctype html>"));
	/* index.html names app.<12 hex>.js; that name is served, the plain one is not */
	p = strstr(r.body, "/ui/app.");
	ck_assert_ptr_nonnull(p);
	q = strchr(p, '"');
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq((int)(q - p), (int)strlen("/ui/app.") + 12 + 3);
	snprintf(path, sizeof(path), "%.*s", (int)(q - p), p);
	req("GET", path, NULL, NULL, 200, &a);
	ck_assert_str_eq(a.ctype, "text/javascript; charset=utf-8");
	ck_assert_int_eq(a.audit_index, -1);
	/* its imports were rewritten to versioned names too */
	ck_assert_ptr_nonnull(strstr(a.body, "from './api."));
	ck_assert_ptr_null(strstr(a.body, "from './api.js'"));
	msr_it_resp_free(&a);
	msr_it_resp_free(&r);

	req("GET", "/ui/app.js", NULL, NULL, 404, &r);
	ck_assert_str_eq(msr_it_error_code(&r), "not_found");
	msr_it_resp_free(&r);
	req("GET", "/ui/..%2Fsql%2F001_schema.sql", NULL, NULL, 404, &r);
	msr_it_resp_free(&r);
	req("GET", "/ui/index.html", NULL, NULL, 200, &r);
	msr_it_resp_free(&r);
	req("GET", "/ui", NULL, NULL, 308, &r);
	msr_it_resp_free(&r);
	req("POST", "/ui/", NULL, "{}", 405, &r);
	msr_it_resp_free(&r);
	/* a key is not needed, and one that is given changes nothing */
	req("GET", "/ui/", k_inv, NULL, 200, &r);
	ck_assert_int_eq(r.audit_index, -1);
	msr_it_resp_free(&r);
}
END_TEST

START_TEST(me)
{
	struct { const char *key, *role, *name, *org; } c[] = {
		{ k_inv, "investigator", "inv", "CA0194200" },
		{ k_aud, "auditor", "aud", NULL },
		{ k_acme, "manufacturer", "acme office", "acme" },
		{ k_dealer, "dealer", "dealer", "1-23-456-07-6B-12345" },
		{ it.admin_key, "admin", "it-admin", NULL },
	};
	struct msr_it_resp r;

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		json_t *org;

		req("GET", "/v1/me", c[i].key, NULL, 200, &r);
		ck_assert_str_eq(json_string_value(json_object_get(r.json, "role")), c[i].role);
		ck_assert_str_eq(json_string_value(json_object_get(r.json, "name")), c[i].name);
		ck_assert(json_integer_value(json_object_get(r.json, "id")) > 0);
		org = json_object_get(r.json, "org");
		if (c[i].org == NULL)
			ck_assert(json_is_null(org));
		else
			ck_assert_str_eq(json_string_value(org), c[i].org);
		ck_assert_msg(r.audit_index >= 0, "GET /v1/me is audited");
		msr_it_resp_free(&r);
	}
	req("GET", "/v1/me", NULL, NULL, 401, &r);
	msr_it_resp_free(&r);
	req("GET", "/v1/me", "msr_0000000000000000000000000000000000000000000000000000000000000000",
	    NULL, 401, &r);
	msr_it_resp_free(&r);
}
END_TEST

START_TEST(clients)
{
	struct msr_it_resp r;
	json_t *list, *c;
	size_t i;
	char key[128], path[64];
	json_int_t id, revoked = 0;

	msr_it_client(&it, "investigator", "to revoke", "TX0000000", key, sizeof(key));
	req("GET", "/v1/me", key, NULL, 200, &r);
	id = json_integer_value(json_object_get(r.json, "id"));
	msr_it_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/clients/%lld", (long long)id);
	req("DELETE", path, it.admin_key, NULL, 204, &r);
	msr_it_resp_free(&r);

	req("GET", "/v1/clients?limit=1000", it.admin_key, NULL, 200, &r);
	ck_assert_msg(r.audit_index >= 0, "GET /v1/clients is audited");
	ck_assert_ptr_null(strstr(r.body, "msr_"));
	ck_assert_ptr_null(strstr(r.body, "key"));
	list = json_object_get(r.json, "clients");
	ck_assert(json_array_size(list) >= 7);
	ck_assert(json_is_null(json_object_get(r.json, "next_after")));
	json_array_foreach(list, i, c) {
		ck_assert(i == 0 || json_integer_value(json_object_get(c, "id")) >
		    json_integer_value(json_object_get(json_array_get(list, i - 1), "id")));
		if (json_integer_value(json_object_get(c, "id")) == id) {
			ck_assert(json_is_string(json_object_get(c, "revoked_at")));
			revoked = 1;
		} else {
			ck_assert(json_is_null(json_object_get(c, "revoked_at")));
		}
	}
	ck_assert(revoked);
	msr_it_resp_free(&r);

	/* pages */
	req("GET", "/v1/clients?limit=2", it.admin_key, NULL, 200, &r);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "clients")), 2);
	id = json_integer_value(json_object_get(r.json, "next_after"));
	ck_assert_int_eq(id, json_integer_value(json_object_get(json_array_get(
	    json_object_get(r.json, "clients"), 1), "id")));
	msr_it_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/clients?limit=2&after=%lld", (long long)id);
	req("GET", path, it.admin_key, NULL, 200, &r);
	ck_assert(json_integer_value(json_object_get(json_array_get(
	    json_object_get(r.json, "clients"), 0), "id")) > id);
	msr_it_resp_free(&r);

	/* refusals */
	const char *bad[] = { "limit=0", "limit=1001", "limit=x", "after=-1", "after=1e3",
	    "limit=99999999999999999999" };
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(path, sizeof(path), "/v1/clients?%s", bad[i]);
		req("GET", path, it.admin_key, NULL, 400, &r);
		ck_assert_str_eq(msr_it_error_code(&r), "invalid_field");
		msr_it_resp_free(&r);
	}
	req("GET", "/v1/clients", k_inv, NULL, 403, &r);
	msr_it_resp_free(&r);
	req("GET", "/v1/clients", k_aud, NULL, 403, &r);
	msr_it_resp_free(&r);
	req("GET", "/v1/clients", NULL, NULL, 401, &r);
	msr_it_resp_free(&r);
}
END_TEST

/* Register n firearms "<prefix>-<i>" for key (codes allocated to it). */
static void
register_n(const char *key, const char *prefix, int n)
{
	struct msr_it_resp r;
	char body[256];
	json_t *codes;

	snprintf(body, sizeof(body), "{\"count\":%d}", n);
	req("POST", "/v1/codes/allocate", key, body, 201, &r);
	codes = json_incref(json_object_get(r.json, "codes"));
	msr_it_resp_free(&r);
	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "{\"model\":\"M\",\"serial\":\"%s-%d\",\"type\":\"pistol\","
		    "\"caliber\":\"9mm\",\"codes\":[{\"code\":\"%s\",\"component\":\"firing_pin\"}]}",
		    prefix, i, json_string_value(json_array_get(codes, (size_t)i)));
		req("POST", "/v1/firearms", key, body, 201, &r);
		msr_it_resp_free(&r);
	}
	json_decref(codes);
}

START_TEST(firearms)
{
	struct msr_it_resp r;
	json_t *list, *f;
	size_t i;
	int seen = 0, last;
	json_int_t after = 0;
	char path[64];

	register_n(k_acme, "A", 5);
	register_n(k_zeta, "Z", 3);
	/* acme's firearms in pages of 2: all five, in id order, none of zeta's */
	do {
		snprintf(path, sizeof(path), "/v1/firearms?limit=2&after=%lld", (long long)after);
		req("GET", path, k_acme, NULL, 200, &r);
		ck_assert(r.audit_index >= 0);
		list = json_object_get(r.json, "firearms");
		json_array_foreach(list, i, f) {
			ck_assert_msg(strncmp(json_string_value(json_object_get(f, "serial")), "A-", 2) == 0,
			    "acme sees only its own firearms: %s", r.body);
			ck_assert(json_integer_value(json_object_get(f, "id")) > after);
			after = json_integer_value(json_object_get(f, "id"));
			ck_assert_int_eq(json_integer_value(json_object_get(f, "active_codes")), 1);
			seen++;
		}
		f = json_object_get(r.json, "next_after");
		last = json_is_null(f);
		if (!last)
			ck_assert_int_eq(json_integer_value(f), after);
		msr_it_resp_free(&r);
	} while (!last && seen < 100);
	ck_assert_int_eq(seen, 5);
	req("GET", "/v1/firearms", k_zeta, NULL, 200, &r);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "firearms")), 3);
	msr_it_resp_free(&r);

	req("GET", "/v1/firearms?limit=0", k_acme, NULL, 400, &r);
	msr_it_resp_free(&r);
	req("GET", "/v1/firearms", k_dealer, NULL, 403, &r);
	msr_it_resp_free(&r);
	req("GET", "/v1/firearms", k_inv, NULL, 403, &r);
	msr_it_resp_free(&r);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("console");
	TCase *tc = tcase_create("console");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, static_files);
	tcase_add_test(tc, me);
	tcase_add_test(tc, clients);
	tcase_add_test(tc, firearms);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
