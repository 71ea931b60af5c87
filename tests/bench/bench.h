/*
 * bench.h — what every benchmark shares: the clock (msr_now_s/msr_now_ns from
 * msreg/common.h), percentiles by nearest rank, the scale, the msregd config
 * switches, wrk and pgbench runs that fail loudly, and the GOAL lines
 * tests/bench/run.sh collects into its closing table.
 *
 * A benchmark never reports a figure it could not measure: a wrk run with
 * socket errors, non-2xx answers, no requests or no parsable figures, or a
 * pgbench run without a tps line, returns -1 and the benchmark exits 1.
 * Missing a goal's threshold is a FAIL in the table, not an error.
 */
#ifndef MSREG_BENCH_H
#define MSREG_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "msreg/common.h"

/*
 * Appended to every benchmark's msregd config: rate limits and disclosure
 * budgets off (a benchmark measures the path, not the limits; the config
 * parser refuses unknown keys, so a switch is listed once main has it).
 */
#define BENCH_INI "[rate]\nenabled = false\n[budget]\nenabled = false\n"

enum bench_scale { BENCH_SMALL, BENCH_FULL, BENCH_LARGE };

/* BENCH_SCALE: small, full (default) or large. */
static inline enum bench_scale
bench_scale(void)
{
	const char *s = getenv("BENCH_SCALE");

	if (s != NULL && strcmp(s, "small") == 0)
		return BENCH_SMALL;
	if (s != NULL && strcmp(s, "large") == 0)
		return BENCH_LARGE;
	return BENCH_FULL;
}

static inline int
bench_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The pct-th percentile (nearest rank) of v[0..n); v is sorted in place. */
static inline double
bench_percentile(double *v, size_t n, double pct)
{
	size_t i;

	if (n == 0)
		return 0.0;
	qsort(v, n, sizeof(*v), bench_dbl_cmp);
	i = (size_t)(pct / 100.0 * (double)n + 0.999999);
	if (i > 0)
		i--;
	return v[i < n ? i : n - 1];
}

/*
 * One goal of issue 12 with its same-run baseline, as one line run.sh
 * collects ("GOAL id | goal | measured | baseline | verdict").
 */
static inline void
bench_goal(const char *id, const char *goal, const char *measured, const char *baseline,
    int pass)
{
	printf("GOAL %-12s | %-44s | %-26s | %-40s | %s\n", id, goal, measured, baseline,
	    pass ? "PASS" : "FAIL");
	fflush(stdout);
}

/* ---- wrk ------------------------------------------------------------------ */

struct bench_wrk {
	double rps, p50_ms, p99_ms;
	long   requests, non2xx, errors;
};

/*
 * The done() every wrk script must end with: one machine-readable line
 * (latency:percentile is wrk's API, in microseconds).
 */
static const char bench_wrk_done[] =
    "function done(summary, latency, requests)\n"
    "  local e = summary.errors\n"
    "  io.write(string.format(\"WRK %d %d %d %d %d %d\\n\", summary.requests,\n"
    "    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,\n"
    "    latency:percentile(50), latency:percentile(99)))\n"
    "end\n";

/*
 * wrk -t threads -c conns -d secs -s script against http://127.0.0.1:port/path.
 * 0 with *w filled when every request was answered 2xx without socket errors;
 * -1 (wrk's output on stderr) when the figures could not be taken.
 */
static inline int
bench_wrk_run(int port, const char *path, const char *script, int threads, int conns,
    int secs, struct bench_wrk *w)
{
	char url[256], dur[16], t[16], c[16], wrkpath[64] = "/usr/bin/wrk", *out = NULL, *p;
	char *argv[] = { wrkpath, t, c, "-d", dur, "-s", (char *)script, url, NULL };
	long dur_us = 0, p50 = 0, p99 = 0;
	int ret = -1;

	if (access(wrkpath, X_OK) != 0)
		snprintf(wrkpath, sizeof(wrkpath), "/usr/local/bin/wrk");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	snprintf(dur, sizeof(dur), "%ds", secs);
	snprintf(t, sizeof(t), "-t%d", threads);
	snprintf(c, sizeof(c), "-c%d", conns);
	memset(w, 0, sizeof(*w));
	if (msr_it_run(argv, &out) != 0 || out == NULL)
		goto done;
	p = strstr(out, "\nWRK ");
	if (p == NULL || sscanf(p, "\nWRK %ld %ld %ld %ld %ld %ld", &w->requests, &dur_us,
	    &w->non2xx, &w->errors, &p50, &p99) != 6 || dur_us <= 0)
		goto done;
	w->rps = (double)w->requests / ((double)dur_us / 1e6);
	w->p50_ms = (double)p50 / 1e3;
	w->p99_ms = (double)p99 / 1e3;
	if (w->requests > 0 && w->rps > 0 && w->non2xx == 0 && w->errors == 0 && p50 > 0)
		ret = 0;
done:
	if (ret != 0)
		fprintf(stderr, "BENCH: wrk %s %s failed (%ld requests, %ld non-2xx, %ld socket "
		    "errors):\n%s\n", c, path, w->requests, w->non2xx, w->errors,
		    out ? out : "(no output)");
	free(out);
	return ret;
}

/* Sort rounds by req/s and return the median one. */
static inline struct bench_wrk
bench_wrk_median(struct bench_wrk *r, int n)
{
	struct bench_wrk tmp;

	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && r[j].rps < r[j - 1].rps; j--) {
			tmp = r[j];
			r[j] = r[j - 1];
			r[j - 1] = tmp;
		}
	return r[n / 2];
}

/* ---- pgbench -------------------------------------------------------------- */

/*
 * pgbench -n -f script -c clients -j 2 -T secs url (the server's own
 * pgbench: $PGBIN or PostgreSQL 15's). 0 with *tps and *lat_ms (average
 * latency) filled; -1 (its output on stderr) when it failed or printed no tps.
 */
static inline int
bench_pgbench(const char *url, const char *script, int clients, int secs, double *tps,
    double *lat_ms)
{
	char bin[512], c[16], j[16], dur[16], *out = NULL, *p;
	char *argv[] = { bin, "-n", "-f", (char *)script, c, j, dur, (char *)url, NULL };
	const char *dir = getenv("PGBIN");
	int ret = -1;

	snprintf(bin, sizeof(bin), "%s/pgbench", dir ? dir : "/usr/lib/postgresql/15/bin");
	snprintf(c, sizeof(c), "-c%d", clients);
	snprintf(j, sizeof(j), "-j%d", clients < 2 ? 1 : 2);
	snprintf(dur, sizeof(dur), "-T%d", secs);
	*tps = *lat_ms = 0;
	if (msr_it_run(argv, &out) != 0 || out == NULL)
		goto done;
	if ((p = strstr(out, "latency average = ")) != NULL)
		*lat_ms = strtod(p + 18, NULL);
	if ((p = strstr(out, "\ntps = ")) != NULL)
		*tps = strtod(p + 7, NULL);
	if (*tps > 0 && strstr(out, "number of failed transactions: 0") != NULL)
		ret = 0;
	if (strstr(out, "number of failed transactions") == NULL && *tps > 0)
		ret = 0;	/* older pgbench: failures abort the run instead */
done:
	if (ret != 0)
		fprintf(stderr, "BENCH: pgbench -c%d failed:\n%s\n", clients,
		    out ? out : "(no output)");
	free(out);
	return ret;
}

#endif
