/*
 * metrics.c — per-route request counts by status class and latency histograms,
 * rendered as Prometheus text exposition (version 0.0.4).
 *
 * Counters are C11 atomics updated with relaxed ordering on the request path;
 * a scrape may see a histogram whose buckets and count differ by in-flight
 * observations, which Prometheus tolerates.
 */
#include "msreg/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/common.h"
#include "msreg/routes.h"

static const double bucket_s[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
#define NBUCKETS MSR_ARRAY_LEN(bucket_s)
static const unsigned status_codes[] = {
	200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503,
};
#define NSTATUS (MSR_ARRAY_LEN(status_codes) + 1)   /* last = other */

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
	if (extra != NULL)
		sb_printf(&b, "%s", extra);
	return b.p;
}
