/*
 * it_validate.c — the real validators against a live msregd (issue 11 item 6).
 *
 * Drives every route of the API with a main success and its main errors as
 * the role that would meet them, recording each response (route template,
 * status, content type, body) to responses.jsonl, then saves the OpenAPI
 * document msregd serves and a /metrics scrape, and runs tests/validate/run.sh
 * over them: redocly lint of the served document, every recorded response
 * checked against that document's schemas (ajv), promtool check metrics, and
 * systemd-analyze verify of deploy/msregd.service. The metrics families the
 * operator's guide promises are asserted here too.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define FFL1 "1-23-456-07-6B-12345"

static struct msr_it it;
static FILE *rec;
static char k_mfr[128], k_dealer[128], k_inv[128], k_aud[128];

/*
 * One request: assert its status, record it. route is the OpenAPI path
 * template. Returns the parsed JSON reply (caller decrefs) or NULL.
 */
static json_t *
call(const char *method, const char *route, const char *path, const char *key,
    const char *body, long want)
{
	struct msr_it_resp r;
	json_t *line, *out;
	char *text;
	int binary;

	ck_assert_int_eq(msr_it_request(&it, method, path, key, NULL, body, &r), 0);
	ck_assert_msg(r.status == want, "%s %s: status %ld, want %ld: %s", method, path,
	    r.status, want, r.body);
	/* binary bodies (tiles) are checked by media type only */
	binary = strncmp(r.ctype, "application/octet-stream", 24) == 0;
	line = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s%}", "method", method, "route", route,
	    "path", path, "status", (int)r.status, "content_type", r.ctype, "body",
	    r.body && !binary ? r.body : "", binary ? (size_t)0 : r.len);
	ck_assert_ptr_nonnull(line);
	text = json_dumps(line, JSON_COMPACT);
	fprintf(rec, "%s\n", text);
	free(text);
	json_decref(line);
	out = r.json ? json_incref(r.json) : NULL;
	msr_it_resp_free(&r);
	return out;
}

static void
save(const char *name, const char *path)
{
	struct msr_it_resp r;
	char file[700];
	FILE *f;

	snprintf(file, sizeof(file), "%s/%s", it.dir, name);
	ck_assert_int_eq(msr_it_request(&it, "GET", path, NULL, NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fwrite(r.body, 1, r.len, f), r.len);
	fclose(f);
	msr_it_resp_free(&r);
}

START_TEST(live_responses_match_the_document)
{
	char path[700], body[1024], code[3][9], newcode[9], lookup[128], search[256];
	long fid, client_id, size;
	json_t *j;

	snprintf(path, sizeof(path), "%s/responses.jsonl", it.dir);
	rec = fopen(path, "w");
	ck_assert_ptr_nonnull(rec);

	/* health and meta */
	json_decref(call("GET", "/healthz", "/healthz", NULL, NULL, 200));
	json_decref(call("GET", "/readyz", "/readyz", NULL, NULL, 200));
	json_decref(call("GET", "/v1/openapi.json", "/v1/openapi.json", NULL, NULL, 200));

	/* admin */
	json_decref(call("POST", "/v1/manufacturers", "/v1/manufacturers", it.admin_key,
	    "{\"id\":\"acme\",\"name\":\"Acme Arms\"}", 201));
	json_decref(call("POST", "/v1/manufacturers", "/v1/manufacturers", it.admin_key,
	    "{\"id\":\"acme\",\"name\":\"Acme again\"}", 409));
	json_decref(call("POST", "/v1/manufacturers", "/v1/manufacturers", it.admin_key,
	    "{\"id\":7}", 400));
	json_decref(call("POST", "/v1/manufacturers", "/v1/manufacturers", NULL,
	    "{\"id\":\"x\",\"name\":\"x\"}", 401));
	j = call("POST", "/v1/clients", "/v1/clients", it.admin_key,
	    "{\"name\":\"temp\",\"role\":\"auditor\"}", 201);
	client_id = (long)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	json_decref(call("POST", "/v1/clients", "/v1/clients", it.admin_key,
	    "{\"name\":\"x\",\"role\":\"emperor\"}", 400));
	snprintf(path, sizeof(path), "/v1/clients/%ld", client_id);
	json_decref(call("DELETE", "/v1/clients/{id}", path, it.admin_key, NULL, 204));
	json_decref(call("DELETE", "/v1/clients/{id}", "/v1/clients/999999", it.admin_key,
	    NULL, 404));
	msr_it_client(&it, "manufacturer", "acme line", "acme", k_mfr, sizeof(k_mfr));
	msr_it_client(&it, "dealer", "gun shop", FFL1, k_dealer, sizeof(k_dealer));
	msr_it_client(&it, "investigator", "det. smith", "CA0194200", k_inv, sizeof(k_inv));
	msr_it_client(&it, "auditor", "auditor", NULL, k_aud, sizeof(k_aud));

	/* manufacturers */
	j = call("POST", "/v1/codes/allocate", "/v1/codes/allocate", k_mfr, "{\"count\":4}", 201);
	for (int i = 0; i < 3; i++)
		snprintf(code[i], 9, "%s", json_string_value(json_array_get(json_object_get(j,
		    "codes"), (size_t)i)));
	snprintf(newcode, sizeof(newcode), "%s",
	    json_string_value(json_array_get(json_object_get(j, "codes"), 3)));
	json_decref(j);
	json_decref(call("POST", "/v1/codes/allocate", "/v1/codes/allocate", k_mfr,
	    "{\"count\":0}", 400));
	json_decref(call("POST", "/v1/codes/allocate", "/v1/codes/allocate", k_inv,
	    "{\"count\":1}", 403));
	snprintf(body, sizeof(body), "{\"model\":\"P320\",\"serial\":\"V-1\",\"type\":\"pistol\","
	    "\"caliber\":\"9mm\",\"manufactured_on\":\"2026-10-01\",\"codes\":["
	    "{\"code\":\"%s\",\"component\":\"firing_pin\"},"
	    "{\"code\":\"AX93ZZ1Q7\",\"component\":\"breech_face\",\"scheme\":\"free\"}]}", code[0]);
	j = call("POST", "/v1/firearms", "/v1/firearms", k_mfr, body, 201);
	fid = (long)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	json_decref(call("POST", "/v1/firearms", "/v1/firearms", k_mfr, body, 409));
	json_decref(call("POST", "/v1/firearms", "/v1/firearms", k_mfr, "{\"model\":1}", 400));
	snprintf(body, sizeof(body), "{\"firearms\":[{\"model\":\"P320\",\"serial\":\"V-2\","
	    "\"type\":\"pistol\",\"caliber\":\"9mm\",\"manufactured_on\":\"2026-10-01\","
	    "\"codes\":[{\"code\":\"%s\",\"component\":\"firing_pin\"}]},{\"model\":\"P320\","
	    "\"serial\":\"V-3\",\"type\":\"pistol\",\"caliber\":\"9mm\",\"manufactured_on\":"
	    "\"2026-10-01\",\"codes\":[{\"code\":\"%s\",\"component\":\"firing_pin\"}]}]}",
	    code[1], code[2]);
	json_decref(call("POST", "/v1/firearms/batch", "/v1/firearms/batch", k_mfr, body, 201));
	json_decref(call("POST", "/v1/firearms/batch", "/v1/firearms/batch", k_mfr, body, 409));
	json_decref(call("POST", "/v1/firearms/batch", "/v1/firearms/batch", k_mfr,
	    "{\"firearms\":[{}]}", 400));
	snprintf(path, sizeof(path), "/v1/firearms/%ld", fid);
	json_decref(call("GET", "/v1/firearms/{id}", path, k_mfr, NULL, 200));
	json_decref(call("GET", "/v1/firearms/{id}", "/v1/firearms/999999", k_mfr, NULL, 404));
	json_decref(call("GET", "/v1/firearms/{id}", "/v1/firearms/abc", k_mfr, NULL, 400));
	snprintf(path, sizeof(path), "/v1/firearms/%ld/codes", fid);
	snprintf(body, sizeof(body), "{\"code\":\"%s\",\"component\":\"firing_pin\","
	    "\"replaces\":\"%s\"}", newcode, code[0]);
	json_decref(call("POST", "/v1/firearms/{id}/codes", path, k_mfr, body, 201));
	json_decref(call("POST", "/v1/firearms/{id}/codes", path, k_mfr, body, 409));
	json_decref(call("POST", "/v1/firearms/{id}/codes", "/v1/firearms/999999/codes", k_mfr,
	    body, 404));
	json_decref(call("POST", "/v1/firearms/{id}/codes", path, k_mfr, "{\"code\":5}", 400));

	/* dealers */
	snprintf(body, sizeof(body), "{\"manufacturer\":\"acme\",\"serial\":\"V-1\",\"sold_on\":"
	    "\"2026-11-02\",\"transaction_ref\":\"2026-000187\",\"state\":\"CA\"}");
	json_decref(call("POST", "/v1/sales", "/v1/sales", k_dealer, body, 201));
	json_decref(call("POST", "/v1/sales", "/v1/sales", k_dealer, body, 409));
	json_decref(call("POST", "/v1/sales", "/v1/sales", k_dealer,
	    "{\"manufacturer\":\"acme\",\"serial\":\"NOPE\",\"sold_on\":\"2026-11-02\","
	    "\"transaction_ref\":\"1\",\"state\":\"CA\"}", 404));
	json_decref(call("POST", "/v1/sales", "/v1/sales", k_dealer, "{\"serial\":[]}", 400));

	/* investigators */
	snprintf(lookup, sizeof(lookup), "/v1/codes/%s?case_number=HPD-1&purpose=homicide",
	    newcode);
	json_decref(call("GET", "/v1/codes/{code}", lookup, k_inv, NULL, 200));
	snprintf(lookup, sizeof(lookup), "/v1/codes/%s?case_number=HPD-1&purpose=homicide",
	    code[0]);   /* retired, still found */
	json_decref(call("GET", "/v1/codes/{code}", lookup, k_inv, NULL, 200));
	json_decref(call("GET", "/v1/codes/{code}",
	    "/v1/codes/ZZZZZZZZZZ?case_number=HPD-1&purpose=homicide", k_inv, NULL, 404));
	json_decref(call("GET", "/v1/codes/{code}", "/v1/codes/ZZZZZZZZZZ", k_inv, NULL, 400));
	json_decref(call("GET", "/v1/codes/{code}", "/v1/codes/ZZZZZZZZZZ?case_number=1&purpose=x",
	    k_mfr, NULL, 403));
	snprintf(search, sizeof(search), "{\"case_number\":\"HPD-2\",\"purpose\":\"robbery\","
	    "\"readings\":[\"%.3s?%s\"],\"max_mismatches\":0}", code[1], code[1] + 4);
	json_decref(call("POST", "/v1/search", "/v1/search", k_inv, search, 200));
	json_decref(call("POST", "/v1/search", "/v1/search", k_inv,
	    "{\"case_number\":\"HPD-2\",\"purpose\":\"robbery\",\"readings\":[\"????????\"]}", 422));
	json_decref(call("POST", "/v1/search", "/v1/search", k_inv, "{\"readings\":3}", 400));

	/* auditors */
	json_decref(call("GET", "/v1/audit/checkpoint", "/v1/audit/checkpoint", NULL, NULL, 200));
	json_decref(call("GET", "/v1/audit/key", "/v1/audit/key", NULL, NULL, 200));
	j = call("GET", "/v1/audit/entries", "/v1/audit/entries?start=0&limit=5", k_aud, NULL, 200);
	json_decref(j);
	json_decref(call("GET", "/v1/audit/entries", "/v1/audit/entries?start=x", k_aud, NULL,
	    400));
	json_decref(call("GET", "/v1/audit/entries", "/v1/audit/entries?start=0", k_mfr, NULL,
	    403));
	{
		struct msr_it_resp r;

		ck_assert_int_eq(msr_it_request(&it, "GET", "/v1/audit/checkpoint", NULL, NULL,
		    NULL, &r), 0);
		size = strtol(strchr(r.body, '\n') + 1, NULL, 10);
		msr_it_resp_free(&r);
		ck_assert_int_gt(size, 2);
	}
	snprintf(path, sizeof(path), "/v1/audit/proof/inclusion?index=1&tree_size=%ld", size);
	json_decref(call("GET", "/v1/audit/proof/inclusion", path, k_aud, NULL, 200));
	json_decref(call("GET", "/v1/audit/proof/inclusion",
	    "/v1/audit/proof/inclusion?index=x&tree_size=2", k_aud, NULL, 400));
	snprintf(path, sizeof(path), "/v1/audit/proof/consistency?first=1&second=%ld", size);
	json_decref(call("GET", "/v1/audit/proof/consistency", path, NULL, NULL, 200));
	json_decref(call("GET", "/v1/audit/proof/consistency",
	    "/v1/audit/proof/consistency?first=9&second=2", NULL, NULL, 400));
	json_decref(call("GET", "/v1/audit/receipt/{index}", "/v1/audit/receipt/1", k_aud, NULL,
	    200));
	json_decref(call("GET", "/v1/audit/receipt/{index}", "/v1/audit/receipt/99999999", k_aud,
	    NULL, 404));
	json_decref(call("GET", "/v1/audit/receipt/{index}", "/v1/audit/receipt/x", k_aud, NULL,
	    400));
	json_decref(call("GET", "/v1/audit/receipt/{index}", "/v1/audit/receipt/1", NULL, NULL,
	    401));

	/* disclosure budgets (admin) */
	json_decref(call("POST", "/v1/budgets/grants", "/v1/budgets/grants", it.admin_key,
	    "{\"scope\":\"case\",\"org\":\"CA0194200\",\"case_number\":\"HPD-1\","
	    "\"window\":\"24h\",\"budget\":1000,\"reason\":\"validator\"}", 201));
	json_decref(call("POST", "/v1/budgets/grants", "/v1/budgets/grants", it.admin_key,
	    "{\"scope\":\"planet\"}", 400));
	json_decref(call("POST", "/v1/budgets/grants", "/v1/budgets/grants", k_mfr,
	    "{\"scope\":\"case\"}", 403));

	/* listings, the caller, tiles */
	json_decref(call("GET", "/v1/firearms", "/v1/firearms?limit=2", k_mfr, NULL, 200));
	json_decref(call("GET", "/v1/firearms", "/v1/firearms?limit=x", k_mfr, NULL, 400));
	json_decref(call("GET", "/v1/firearms", "/v1/firearms", k_inv, NULL, 403));
	json_decref(call("GET", "/v1/clients", "/v1/clients", it.admin_key, NULL, 200));
	json_decref(call("GET", "/v1/clients", "/v1/clients", k_mfr, NULL, 403));
	json_decref(call("GET", "/v1/me", "/v1/me", k_dealer, NULL, 200));
	json_decref(call("GET", "/v1/me", "/v1/me", NULL, NULL, 401));
	json_decref(call("GET", "/checkpoint", "/checkpoint", NULL, NULL, 200));
	snprintf(path, sizeof(path), "/tile/0/000.p/%ld", size);
	json_decref(call("GET", "/tile/{L}/{N}", path, NULL, NULL, 200));
	json_decref(call("GET", "/tile/{L}/{N}", "/tile/0/999", NULL, NULL, 404));
	snprintf(path, sizeof(path), "/tile/entries/000.p/%ld", size);
	json_decref(call("GET", "/tile/entries/{N}", path, k_aud, NULL, 200));
	json_decref(call("GET", "/tile/entries/{N}", path, k_mfr, NULL, 403));

	/* the scrape last, so every family has observations */
	json_decref(call("GET", "/metrics", "/metrics", NULL, NULL, 200));
	fclose(rec);
	save("openapi.json", "/v1/openapi.json");
	save("metrics.txt", "/metrics");
	{
		char file[700], *text;
		FILE *f;
		long n;
		static const char *const families[] = {
			"msreg_http_request_duration_seconds_bucket{route=\"/v1/search\",method=\"POST\"",
			"msreg_http_request_duration_seconds_bucket{route=\"/v1/firearms/batch\"",
			"\nmsreg_audit_batch_entries_bucket{",
			"\nmsreg_audit_batch_duration_seconds_bucket{",
			"\nmsreg_db_pool_waiters ",
			"\nmsreg_db_pool_timeouts_total ",
			"\nmsreg_refusals_total{reason=\"rate_limited\"} ",
			"\nmsreg_refusals_total{reason=\"disclosure_budget_exhausted\"} ",
			"\nmsreg_refusals_total{reason=\"query_too_broad\"} 1\n",
			"\nmsreg_search_feed_lag_seconds ",
		};

		snprintf(file, sizeof(file), "%s/metrics.txt", it.dir);
		f = fopen(file, "r");
		ck_assert_ptr_nonnull(f);
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		text = calloc(1, (size_t)n + 1);
		ck_assert_int_eq(fread(text, 1, (size_t)n, f), (size_t)n);
		fclose(f);
		for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
			ck_assert_msg(strstr(text, families[i]) != NULL, "/metrics lacks %s",
			    families[i]);
		ck_assert_msg(strstr(text, "\nmsreg_audit_batch_entries_count 0\n") == NULL,
		    "no audit batch observed");
		free(text);
	}
	{
		char *argv[] = { "tests/validate/run.sh", it.dir, NULL };
		char *out = NULL;
		int rc = msr_it_run(argv, &out);

		printf("%s", out ? out : "");
		ck_assert_msg(rc == 0, "tests/validate/run.sh failed (%d)", rc);
		free(out);
	}
}
END_TEST

static void
setup(void)
{
	msr_it_setup(&it, "validate", "[search]\nmax_expected_matches = 1\n");
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

int
main(void)
{
	Suite *s = suite_create("validate");
	TCase *tc = tcase_create("validate");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, live_responses_match_the_document);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
