/*
 * metrics.c — per-route request counts by status class and latency histograms,
 * rendered as Prometheus text exposition (version 0.0.4).
 *
 * Counters are C11 atomics updated with relaxed ordering on the request path;
 * a scrape may see a histogram whose buckets and count differ by in-flight
 * observations, which Prometheus tolerates.
 *
 * Process-wide families that other subsystems feed through small functions
 * (they do not hold the per-server struct msr_metrics), all rendered on every
 * scrape, zero until observed, so alerts never miss a series:
 *
 *   msreg_audit_batch_entries            histogram  entries per committed audit batch
 *   msreg_audit_batch_duration_seconds   histogram  one batch: hash, sign, commit
 *   msreg_db_pool_waiters                gauge      requests waiting for a connection
 *   msreg_db_pool_waits_total            counter    acquisitions that had to wait
 *   msreg_db_pool_timeouts_total         counter    acquisitions that gave up
 *   msreg_refusals_total{reason}         counter    refusals by error code: rate_limited,
 *                                                   disclosure_budget_exhausted,
 *                                                   query_too_broad, body_too_large,
 *                                                   unavailable
 *   msreg_request_phase_seconds{phase}   histogram  where a request's time goes, per phase:
 *                                                   receive (first byte to whole request:
 *                                                   head, key check, body), handler (JSON
 *                                                   parse, the handler and its queries),
 *                                                   audit (until the request's entry is
 *                                                   durable and signed: queue + group
 *                                                   commit; audited routes only), commit
 *                                                   (a write's own COMMIT after its
 *                                                   entry), send (reply queued to done)
 *   msreg_search_feed_lag_seconds        gauge      age of the search index: time since
 *                                                   the feed's last completed catch-up
 *                                                   (notifications trigger one at once,
 *                                                   the poll interval bounds it when idle)
 */
#include "msreg/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/common.h"
#include "msreg/routes.h"

#include <time.h>

static const double bucket_s[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
#define NBUCKETS MSR_ARRAY_LEN(bucket_s)
static const unsigned status_codes[] = {
	200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503,
};
#define NSTATUS (MSR_ARRAY_LEN(status_codes) + 1)   /* last = other */

static const double phase_s[] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5,
};
#define NPHASE_BUCKETS MSR_ARRAY_LEN(phase_s)
static const char *const phase_names[MSR_PHASES] = {
	"receive", "handler", "audit", "commit", "send",
};
static const double batch_le[] = {
	1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000,
};
#define NBATCH MSR_ARRAY_LEN(batch_le)
static const char *const refusal_reasons[] = {
	"rate_limited", "disclosure_budget_exhausted", "query_too_broad", "body_too_large",
	"unavailable",
};
#define NREFUSALS MSR_ARRAY_LEN(refusal_reasons)

struct hist {
	atomic_uint_fast64_t buckets[16];   /* >= NBUCKETS, NBATCH */
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum;           /* ns for durations, units otherwise */
};

static struct {
	struct hist          batch_entries, batch_ns;
	struct hist          phase[MSR_PHASES];
	atomic_int_fast64_t  pool_waiters;
	atomic_uint_fast64_t pool_waits, pool_timeouts;
	atomic_uint_fast64_t refusals[NREFUSALS];
	atomic_uint_fast64_t feed_catchup_ns;   /* CLOCK_MONOTONIC; 0 = never */
} g;

static void
hist_add(struct hist *h, const double *le, size_t n, double v, uint64_t sum)
{
	for (size_t i = 0; i < n; i++)
		if (v <= le[i]) {
			atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
			break;
		}
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, sum, memory_order_relaxed);
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
msr_metrics_audit_batch(size_t entries, uint64_t ns)
{
	hist_add(&g.batch_entries, batch_le, NBATCH, (double)entries, entries);
	hist_add(&g.batch_ns, bucket_s, NBUCKETS, (double)ns / 1e9, ns);
}

void
msr_metrics_phase(enum msr_phase p, uint64_t ns)
{
	if ((unsigned)p < MSR_PHASES)
		hist_add(&g.phase[p], phase_s, NPHASE_BUCKETS, (double)ns / 1e9, ns);
}

void
msr_metrics_pool_wait(int delta)
{
	atomic_fetch_add_explicit(&g.pool_waiters, delta, memory_order_relaxed);
	if (delta > 0)
		atomic_fetch_add_explicit(&g.pool_waits, 1, memory_order_relaxed);
}

void
msr_metrics_pool_timeout(void)
{
	atomic_fetch_add_explicit(&g.pool_timeouts, 1, memory_order_relaxed);
}

void
msr_metrics_refusal(const char *code)
{
	for (size_t i = 0; code != NULL && i < NREFUSALS; i++)
		if (strcmp(code, refusal_reasons[i]) == 0) {
			atomic_fetch_add_explicit(&g.refusals[i], 1, memory_order_relaxed);
			break;
		}
}

void
msr_metrics_feed_caught_up(void)
{
	atomic_store_explicit(&g.feed_catchup_ns, mono_ns(), memory_order_relaxed);
}

struct route_metrics {
	atomic_uint_fast64_t by_status[NSTATUS];
	atomic_uint_fast64_t buckets[NBUCKETS];
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum_ns;
};

struct msr_metrics {
	size_t               nroutes;
	struct route_metrics r[];   /* nroutes + 1: last = unrouted */
};

struct msr_metrics *
msr_metrics_new(size_t nroutes)
{
	struct msr_metrics *m = calloc(1, sizeof(*m) + (nroutes + 1) * sizeof(m->r[0]));

	if (m != NULL)
		m->nroutes = nroutes;
	return m;
}

void
msr_metrics_free(struct msr_metrics *m)
{
	free(m);
}

void
msr_metrics_observe(struct msr_metrics *m, int route, unsigned status, uint64_t ns)
{
	struct route_metrics *rm;
	size_t si = NSTATUS - 1;
	double s = (double)ns / 1e9;

	if (m == NULL)
		return;
	rm = &m->r[(route < 0 || (size_t)route >= m->nroutes) ? m->nroutes : (size_t)route];
	for (size_t i = 0; i < MSR_ARRAY_LEN(status_codes); i++)
		if (status_codes[i] == status) {
			si = i;
			break;
		}
	atomic_fetch_add_explicit(&rm->by_status[si], 1, memory_order_relaxed);
	for (size_t i = 0; i < NBUCKETS; i++)
		if (s <= bucket_s[i]) {
			atomic_fetch_add_explicit(&rm->buckets[i], 1, memory_order_relaxed);
			break;
		}
	atomic_fetch_add_explicit(&rm->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&rm->sum_ns, ns, memory_order_relaxed);
}

struct sbuf {
	char   *p;
	size_t  len, cap;
};

static void MSR_PRINTF(2, 3)
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->p != NULL && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 8192;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (np == NULL)
			return;
		b->p = np;
		b->cap = cap;
	}
}

static void
route_labels(const struct msr_metrics *m, size_t i, char *buf, size_t len)
{
	if (i == m->nroutes)
		snprintf(buf, len, "route=\"unrouted\",method=\"\"");
	else
		snprintf(buf, len, "route=\"%s\",method=\"%s\"", msr_route_pattern(i),
		    msr_route_method(i));
}

/* One histogram series; label is "" or `name="value",`; head 1 prints HELP/TYPE. */
static void
render_series(struct sbuf *b, const char *name, const char *help, const char *label,
    int head, const struct hist *h, const double *le, size_t n, double sum_scale)
{
	uint64_t cum = 0, count = atomic_load_explicit(&h->count, memory_order_relaxed);
	size_t ll = strlen(label);
	/* the label list of _sum/_count: without the trailing comma */
	int lw = ll > 0 ? (int)ll - 1 : 0;

	if (head)
		sb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t k = 0; k < n; k++) {
		cum += atomic_load_explicit(&h->buckets[k], memory_order_relaxed);
		sb_printf(b, "%s_bucket{%sle=\"%g\"} %llu\n", name, label, le[k],
		    (unsigned long long)cum);
	}
	sb_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, label, (unsigned long long)count);
	sb_printf(b, "%s_sum%s%.*s%s %.6f\n%s_count%s%.*s%s %llu\n", name, ll ? "{" : "", lw,
	    label, ll ? "}" : "",
	    (double)atomic_load_explicit(&h->sum, memory_order_relaxed) * sum_scale, name,
	    ll ? "{" : "", lw, label, ll ? "}" : "", (unsigned long long)count);
}

static void
render_hist(struct sbuf *b, const char *name, const char *help, const struct hist *h,
    const double *le, size_t n, double sum_scale)
{
	render_series(b, name, help, "", 1, h, le, n, sum_scale);
}

/* The process-wide families (design comment). */
static void
render_global(struct sbuf *b)
{
	uint64_t fed = atomic_load_explicit(&g.feed_catchup_ns, memory_order_relaxed);
	int_fast64_t waiters = atomic_load_explicit(&g.pool_waiters, memory_order_relaxed);

	render_hist(b, "msreg_audit_batch_entries", "Entries per committed audit log batch.",
	    &g.batch_entries, batch_le, NBATCH, 1);
	render_hist(b, "msreg_audit_batch_duration_seconds",
	    "Time to sequence, sign and commit one audit log batch.", &g.batch_ns, bucket_s,
	    NBUCKETS, 1e-9);
	for (int p = 0; p < MSR_PHASES; p++) {
		char label[32];

		snprintf(label, sizeof(label), "phase=\"%s\",", phase_names[p]);
		render_series(b, "msreg_request_phase_seconds", "Time a request spends in each "
		    "phase: receive, handler, audit (entry durable), commit, send.", label,
		    p == 0, &g.phase[p], phase_s, NPHASE_BUCKETS, 1e-9);
	}
	sb_printf(b, "# HELP msreg_db_pool_waiters Requests waiting for a database connection.\n"
	    "# TYPE msreg_db_pool_waiters gauge\nmsreg_db_pool_waiters %lld\n",
	    (long long)(waiters > 0 ? waiters : 0));
	sb_printf(b, "# HELP msreg_db_pool_waits_total Connection acquisitions that had to wait.\n"
	    "# TYPE msreg_db_pool_waits_total counter\nmsreg_db_pool_waits_total %llu\n",
	    (unsigned long long)atomic_load_explicit(&g.pool_waits, memory_order_relaxed));
	sb_printf(b, "# HELP msreg_db_pool_timeouts_total Connection acquisitions that gave up "
	    "(answered 503).\n# TYPE msreg_db_pool_timeouts_total counter\n"
	    "msreg_db_pool_timeouts_total %llu\n",
	    (unsigned long long)atomic_load_explicit(&g.pool_timeouts, memory_order_relaxed));
	sb_printf(b, "# HELP msreg_refusals_total Requests refused by a limit, by error code.\n"
	    "# TYPE msreg_refusals_total counter\n");
	for (size_t i = 0; i < NREFUSALS; i++)
		sb_printf(b, "msreg_refusals_total{reason=\"%s\"} %llu\n", refusal_reasons[i],
		    (unsigned long long)atomic_load_explicit(&g.refusals[i], memory_order_relaxed));
	if (fed != 0)
		sb_printf(b, "# HELP msreg_search_feed_lag_seconds Time since the search feed last "
		    "caught up with the database.\n# TYPE msreg_search_feed_lag_seconds gauge\n"
		    "msreg_search_feed_lag_seconds %.3f\n", (double)(mono_ns() - fed) / 1e9);
}

char *
msr_metrics_render(struct msr_metrics *m, const char *extra)
{
	struct sbuf b = { 0 };
	char labels[256];

	sb_printf(&b, "# HELP msreg_http_requests_total HTTP requests by route and status.\n"
	    "# TYPE msreg_http_requests_total counter\n");
	for (size_t i = 0; i <= m->nroutes; i++) {
		route_labels(m, i, labels, sizeof(labels));
		for (size_t s = 0; s < NSTATUS; s++) {
			uint64_t v = atomic_load_explicit(&m->r[i].by_status[s], memory_order_relaxed);
			if (v == 0)
				continue;
			if (s == NSTATUS - 1)
				sb_printf(&b, "msreg_http_requests_total{%s,status=\"other\"} %llu\n",
				    labels, (unsigned long long)v);
			else
				sb_printf(&b, "msreg_http_requests_total{%s,status=\"%u\"} %llu\n",
				    labels, status_codes[s], (unsigned long long)v);
		}
	}
	sb_printf(&b, "# HELP msreg_http_request_duration_seconds Request latency by route.\n"
	    "# TYPE msreg_http_request_duration_seconds histogram\n");
	for (size_t i = 0; i <= m->nroutes; i++) {
		uint64_t count = atomic_load_explicit(&m->r[i].count, memory_order_relaxed);
		uint64_t cum = 0;
		if (count == 0)
			continue;
		route_labels(m, i, labels, sizeof(labels));
		for (size_t k = 0; k < NBUCKETS; k++) {
			cum += atomic_load_explicit(&m->r[i].buckets[k], memory_order_relaxed);
			sb_printf(&b, "msreg_http_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n",
			    labels, bucket_s[k], (unsigned long long)cum);
		}
		sb_printf(&b, "msreg_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n",
		    labels, (unsigned long long)count);
		sb_printf(&b, "msreg_http_request_duration_seconds_sum{%s} %.6f\n", labels,
		    (double)atomic_load_explicit(&m->r[i].sum_ns, memory_order_relaxed) / 1e9);
		sb_printf(&b, "msreg_http_request_duration_seconds_count{%s} %llu\n", labels,
		    (unsigned long long)count);
	}
	render_global(&b);
	if (extra != NULL)
		sb_printf(&b, "%s", extra);
	return b.p;
}
