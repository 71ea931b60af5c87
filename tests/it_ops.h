/*
 * it_ops.h — registry operations over HTTP for the operations tests
 * (it_scale, it_replica, it_backup): one firearm with one free code, a first
 * sale, an exact lookup, a search, a metric. Header-only (static), built on
 * harness.h; every function returns the HTTP status (-1 when no response came)
 * and never asserts, so callers running in worker threads can count outcomes.
 */
#ifndef MSREG_TEST_IT_OPS_H
#define MSREG_TEST_IT_OPS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "msreg/code.h"

/* A random free code of 12 symbols (2^60 of them: collisions do not happen). */
static inline void
ops_free_code(uint64_t *rng, char out[13])
{
	for (int i = 0; i < 12; i++)
		out[i] = MSR_ALPHABET[msr_test_rand_below(rng, 32)];
	out[12] = '\0';
}

/* POST /v1/firearms: one pistol with code (scheme free) and serial. */
static inline long
ops_register(struct msr_it *inst, const char *mkey, const char *code, const char *serial)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"model\":\"P320\",\"serial\":\"%.60s\",\"type\":\"pistol\","
	    "\"caliber\":\"9mm\",\"manufactured_on\":\"2026-01-15\",\"codes\":[{\"code\":\"%.60s\","
	    "\"component\":\"firing_pin\",\"scheme\":\"free\"}]}", serial, code);
	return msr_it_status(inst, "POST", "/v1/firearms", mkey, body);
}

/* POST /v1/sales for manufacturer's serial. */
static inline long
ops_sale(struct msr_it *inst, const char *dkey, const char *manufacturer, const char *serial)
{
	char body[640];

	snprintf(body, sizeof(body), "{\"manufacturer\":\"%s\",\"serial\":\"%s\","
	    "\"sold_on\":\"2026-11-02\",\"transaction_ref\":\"T-%.60s\",\"state\":\"CA\"}",
	    manufacturer, serial, serial);
	return msr_it_status(inst, "POST", "/v1/sales", dkey, body);
}

/*
 * GET /v1/codes/{code}. *sold (may be NULL) is 1 when the answer shows a first
 * sale, 0 when it shows none.
 */
static inline long
ops_lookup(struct msr_it *inst, const char *ikey, const char *code, int *sold)
{
	struct msr_it_resp r;
	char path[160];
	long st;

	snprintf(path, sizeof(path), "/v1/codes/%.60s?case_number=OPS-1&purpose=ops-test", code);
	if (msr_it_request(inst, "GET", path, ikey, NULL, NULL, &r) != 0) {
		msr_it_resp_free(&r);
		return -1;
	}
	st = r.status;
	if (sold != NULL)
		*sold = st == 200 && json_is_object(json_object_get(r.json, "first_sale"));
	msr_it_resp_free(&r);
	return st;
}

/*
 * POST /v1/search for one reading (exact code or pattern); *total gets the
 * answer's total (may be NULL). *codes_out (may be NULL) gets the candidate
 * codes joined by ',' in answer order (malloc'd).
 */
static inline long
ops_search(struct msr_it *inst, const char *ikey, const char *reading, int max_mismatches,
    long *total, char **codes_out)
{
	struct msr_it_resp r;
	char body[640];
	long st;

	snprintf(body, sizeof(body), "{\"case_number\":\"OPS-1\",\"purpose\":\"ops-test\","
	    "\"readings\":[\"%.60s\"],\"max_mismatches\":%d,\"limit\":100}", reading,
	    max_mismatches);
	if (msr_it_request(inst, "POST", "/v1/search", ikey, NULL, body, &r) != 0) {
		msr_it_resp_free(&r);
		return -1;
	}
	st = r.status;
	if (total != NULL)
		*total = st == 200 ? (long)json_integer_value(json_object_get(r.json, "total")) : -1;
	if (codes_out != NULL) {
		json_t *c = json_object_get(r.json, "candidates");
		size_t cap = 16 + json_array_size(c) * 64, len = 0;
		char *s = malloc(cap);

		if (s != NULL) {
			s[0] = '\0';
			for (size_t i = 0; i < json_array_size(c); i++) {
				json_t *e = json_array_get(c, i);
				const char *code = json_string_value(json_object_get(e, "code"));
				json_t *fa = json_object_get(e, "firearm");
				json_t *sale = json_object_get(e, "first_sale");
				len += (size_t)snprintf(s + len, cap - len, "%s%s/%s/%d", i ? "," : "",
				    code ? code : "?",
				    json_string_value(json_object_get(fa, "serial")) ?
				    json_string_value(json_object_get(fa, "serial")) : "?",
				    json_is_object(sale));
			}
		}
		*codes_out = s;
	}
	msr_it_resp_free(&r);
	return st;
}

/* The value of one exposition line of /metrics ("name{labels}"), or -1. */
static inline double
ops_metric(struct msr_it *inst, const char *series)
{
	struct msr_it_resp r;
	double v = -1;
	size_t n = strlen(series);

	if (msr_it_request(inst, "GET", "/metrics", NULL, NULL, NULL, &r) == 0 && r.status == 200)
		for (const char *p = r.body; p != NULL && *p != '\0'; ) {
			if (strncmp(p, series, n) == 0 && p[n] == ' ') {
				v = strtod(p + n + 1, NULL);
				break;
			}
			p = strchr(p, '\n');
			if (p != NULL)
				p++;
		}
	msr_it_resp_free(&r);
	return v;
}

#endif
