/*
 * check_metrics.c — the Prometheus exposition: per-route counters by status,
 * cumulative histogram buckets that never decrease and end in the count, the
 * unrouted bucket, and the extra text appended verbatim.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "msreg/http.h"
#include "msreg/metrics.h"

static unsigned long long
value_of(const char *text, const char *series)
{
	const char *p = strstr(text, series);

	ck_assert_msg(p != NULL, "series %s missing", series);
	return strtoull(p + strlen(series), NULL, 10);
}

START_TEST(counts_and_histograms)
{
	struct msr_metrics *m = msr_metrics_new(msr_routes_len);
	char series[512], *text;
	unsigned long long prev = 0, v;
	const char *le[] = { "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
	    "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf" };

	ck_assert_ptr_nonnull(m);
	msr_metrics_observe(m, 0, 200, 200000);          /* 0.2 ms */
	msr_metrics_observe(m, 0, 200, 3000000);         /* 3 ms */
	msr_metrics_observe(m, 0, 503, 20000000000ull);  /* 20 s: only +Inf */
	msr_metrics_observe(m, -1, 404, 100000);         /* unrouted */
	msr_metrics_observe(m, 0, 418, 100000);          /* an unlisted status */
	text = msr_metrics_render(m, "# extra\nmsreg_extra 1\n");
	ck_assert_ptr_nonnull(text);
	snprintf(series, sizeof(series), "msreg_http_requests_total{route=\"%s\",method=\"%s\","
	    "status=\"200\"} ", msr_routes[0].pattern, msr_routes[0].method);
	ck_assert_uint_eq(value_of(text, series), 2);
	snprintf(series, sizeof(series), "msreg_http_requests_total{route=\"%s\",method=\"%s\","
	    "status=\"other\"} ", msr_routes[0].pattern, msr_routes[0].method);
	ck_assert_uint_eq(value_of(text, series), 1);
	ck_assert_uint_eq(value_of(text,
	    "msreg_http_requests_total{route=\"unrouted\",method=\"\",status=\"404\"} "), 1);
	for (size_t i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
		snprintf(series, sizeof(series), "msreg_http_request_duration_seconds_bucket{"
		    "route=\"%s\",method=\"%s\",le=\"%s\"} ", msr_routes[0].pattern,
		    msr_routes[0].method, le[i]);
		v = value_of(text, series);
		ck_assert_uint_ge(v, prev);                  /* cumulative */
		prev = v;
	}
	ck_assert_uint_eq(prev, 4);                      /* +Inf == count */
	snprintf(series, sizeof(series), "msreg_http_request_duration_seconds_bucket{"
	    "route=\"%s\",method=\"%s\",le=\"0.0005\"} ", msr_routes[0].pattern,
	    msr_routes[0].method);
	ck_assert_uint_eq(value_of(text, series), 2);    /* 0.2 ms and the 418 */
	snprintf(series, sizeof(series), "msreg_http_request_duration_seconds_count{"
	    "route=\"%s\",method=\"%s\"} ", msr_routes[0].pattern, msr_routes[0].method);
	ck_assert_uint_eq(value_of(text, series), 4);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE msreg_http_requests_total counter\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "# TYPE msreg_http_request_duration_seconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(text, "\nmsreg_extra 1\n"));
	free(text);
	msr_metrics_free(m);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, counts_and_histograms);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
