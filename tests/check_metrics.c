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

/* The process-wide families: present before any observation, then counted. */
START_TEST(global_families)
{
	struct msr_metrics *m = msr_metrics_new(msr_routes_len);
	char *text = msr_metrics_render(m, NULL);

	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(value_of(text, "msreg_audit_batch_entries_count "), 0);
	ck_assert_uint_eq(value_of(text, "msreg_refusals_total{reason=\"rate_limited\"} "), 0);
	ck_assert_ptr_null(strstr(text, "msreg_search_feed_lag_seconds"));
	free(text);
	msr_metrics_audit_batch(3, 2000000);          /* 3 entries, 2 ms */
	msr_metrics_audit_batch(700, 40000000);       /* 700 entries, 40 ms */
	msr_metrics_pool_wait(1);
	msr_metrics_pool_wait(1);
	msr_metrics_pool_wait(-1);
	msr_metrics_pool_timeout();
	msr_metrics_refusal("rate_limited");
	msr_metrics_refusal("disclosure_budget_exhausted");
	msr_metrics_refusal("disclosure_budget_exhausted");
	msr_metrics_refusal("invalid_json");          /* not a refusal: ignored */
	msr_metrics_feed_caught_up();
	msr_metrics_phase(MSR_PHASE_AUDIT, 1500000);   /* 1.5 ms waiting for the entry */
	msr_metrics_phase(MSR_PHASE_AUDIT, 30000);     /* 30 us */
	msr_metrics_phase(MSR_PHASE_HANDLER, 200000);
	text = msr_metrics_render(m, NULL);
	ck_assert_uint_eq(value_of(text,
	    "msreg_request_phase_seconds_bucket{phase=\"audit\",le=\"5e-05\"} "), 1);
	ck_assert_uint_eq(value_of(text,
	    "msreg_request_phase_seconds_bucket{phase=\"audit\",le=\"0.001\"} "), 1);
	ck_assert_uint_eq(value_of(text,
	    "msreg_request_phase_seconds_bucket{phase=\"audit\",le=\"0.0025\"} "), 2);
	ck_assert_uint_eq(value_of(text, "msreg_request_phase_seconds_count{phase=\"audit\"} "), 2);
	ck_assert_uint_eq(value_of(text,
	    "msreg_request_phase_seconds_count{phase=\"handler\"} "), 1);
	ck_assert_uint_eq(value_of(text, "msreg_request_phase_seconds_count{phase=\"send\"} "), 0);
	/* one HELP/TYPE for the family, before its first series */
	{
		const char *t = strstr(text, "# TYPE msreg_request_phase_seconds histogram\n");

		ck_assert_ptr_nonnull(t);
		ck_assert_ptr_null(strstr(t + 1, "# TYPE msreg_request_phase_seconds"));
		ck_assert(t < strstr(text, "msreg_request_phase_seconds_bucket{"));
	}
	ck_assert_uint_eq(value_of(text, "msreg_audit_batch_entries_bucket{le=\"2\"} "), 0);
	ck_assert_uint_eq(value_of(text, "msreg_audit_batch_entries_bucket{le=\"5\"} "), 1);
	ck_assert_uint_eq(value_of(text, "msreg_audit_batch_entries_bucket{le=\"1000\"} "), 2);
	ck_assert_uint_eq(value_of(text, "msreg_audit_batch_entries_sum "), 703);
	ck_assert_uint_eq(value_of(text,
	    "msreg_audit_batch_duration_seconds_bucket{le=\"0.0025\"} "), 1);
	ck_assert_uint_eq(value_of(text, "msreg_audit_batch_duration_seconds_count "), 2);
	ck_assert_uint_eq(value_of(text, "\nmsreg_db_pool_waiters "), 1);
	ck_assert_uint_eq(value_of(text, "\nmsreg_db_pool_waits_total "), 2);
	ck_assert_uint_eq(value_of(text, "\nmsreg_db_pool_timeouts_total "), 1);
	ck_assert_uint_eq(value_of(text, "msreg_refusals_total{reason=\"rate_limited\"} "), 1);
	ck_assert_uint_eq(value_of(text,
	    "msreg_refusals_total{reason=\"disclosure_budget_exhausted\"} "), 2);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE msreg_search_feed_lag_seconds gauge\n"));
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
	tcase_add_test(tc, global_families);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
