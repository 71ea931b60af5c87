/*
 * bench_audit.c — the audit log's cost, measured end to end on this machine.
 *
 *   1. HTTP: wrk against a real msregd, same concurrency, same run:
 *        GET /healthz                       (baseline: no auth, no audit)
 *        GET /v1/codes/{code}?case_number&purpose   (investigator exact lookup,
 *            audited; falls back to an auditor's GET /v1/audit/entries?limit=1
 *            when the lookup route is not there)
 *      → req/s, p50/p99, ratio audited/healthz, entries per batch.
 *   2. The sequencer alone (in process, no HTTP): APPENDERS threads appending
 *      ~300-byte entries with synchronous_commit=on → appends/s.
 *   3. On the log built by 2: `msreg audit verify --db` entries/s, and msregd's
 *      full start-up check (restart until /readyz is 200).
 *
 * BENCH_SCALE=small builds 1e5 entries in step 2, full (default) 1e6.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "harness.h"
#include "msreg/audit.h"
#include "msreg/config.h"

#define APPENDERS 128

static struct msr_it it;
static struct msr_audit *seq;
static atomic_long next_entry;
static long total_entries;
static atomic_long failed;

/* Run wrk; fill req/s and latency percentiles (ms). 0 on success. */
static int
wrk(const char *path, const char *key, int secs, double *rps, double *p50, double *p99)
{
	char url[512], dur[16], hdr[256], wrkpath[64] = "/usr/bin/wrk";
	char *argv[16], *out = NULL, *p;
	int n = 0, rc;

	if (access(wrkpath, X_OK) != 0)
		snprintf(wrkpath, sizeof(wrkpath), "/usr/local/bin/wrk");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", it.port, path);
	snprintf(dur, sizeof(dur), "%ds", secs);
	argv[n++] = wrkpath;
	argv[n++] = "-t2";
	argv[n++] = "-c64";
	argv[n++] = "-d";
	argv[n++] = dur;
	argv[n++] = "--latency";
	if (key != NULL) {
		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", key);
		argv[n++] = "-H";
		argv[n++] = hdr;
	}
	argv[n++] = url;
	argv[n] = NULL;
	rc = msr_it_run(argv, &out);
	if (rc != 0 || out == NULL) {
		free(out);
		return -1;
	}
	*rps = *p50 = *p99 = 0;
	if ((p = strstr(out, "Requests/sec:")) != NULL)
		*rps = strtod(p + 13, NULL);
	if ((p = strstr(out, " 50%")) != NULL) {
		char *end;
		*p50 = strtod(p + 4, &end);
		if (strncmp(end, "us", 2) == 0) *p50 /= 1000;
		else if (end[0] == 's') *p50 *= 1000;
	}
	if ((p = strstr(out, " 99%")) != NULL) {
		char *end;
		*p99 = strtod(p + 4, &end);
		if (strncmp(end, "us", 2) == 0) *p99 /= 1000;
		else if (end[0] == 's') *p99 *= 1000;
	}
	if (strstr(out, "Non-2xx") != NULL && strstr(path, "/v1/codes/") == NULL)
		fprintf(stderr, "wrk %s: non-2xx responses:\n%s", path, out);
	free(out);
	return 0;
}

static long
tree_size(void)
{
	struct msr_it_resp r;
	long n = -1;

	if (msr_it_request(&it, "GET", "/v1/audit/checkpoint", NULL, NULL, NULL, &r) == 0 &&
	    r.status == 200) {
		char *nl = strchr(r.body, '\n');
		if (nl != NULL)
			n = strtol(nl + 1, NULL, 10);
	}
	msr_it_resp_free(&r);
	return n;
}

static void *
appender(void *arg)
{
	char entry[400];
	long i;
	int64_t idx;

	(void)arg;
	while ((i = atomic_fetch_add(&next_entry, 1)) < total_entries) {
		int n = snprintf(entry, sizeof(entry),
		    "{\"action\":\"code.lookup\",\"case_number\":\"HPD-2026-%06ld\",\"client\":7,"
		    "\"code\":\"0H5KB4M3\",\"firearm\":%ld,\"method\":\"GET\",\"org\":\"CA0190000\","
		    "\"path\":\"/v1/codes/0H5KB4M3\",\"purpose\":\"homicide investigation\","
		    "\"role\":\"investigator\",\"status\":200,\"time\":\"2026-11-22T04:07:25.%06ldZ\"}",
		    i, i * 7919 % 1000003, i % 1000000);
		if (msr_audit_append(seq, entry, (size_t)n, 7, &idx) != 0)
			atomic_fetch_add(&failed, 1);
	}
	return NULL;
}

int
main(void)
{
	struct msr_config cfg;
	const char *scale = getenv("BENCH_SCALE");
	char inv[128], aud[128], err[256], path[256], *out = NULL;
	double h_rps, h50, h99, a_rps, a50, a99, t0, t;
	long size0, size1;
	const char *what;
	pthread_t th[APPENDERS];
	struct msr_it_resp r;

	total_entries = scale != NULL && strcmp(scale, "small") == 0 ? 100000 : 1000000;
	msr_it_setup(&it, "bench_audit", "[http]\nthreads = 64\n[database]\npool_size = 24\n"
	    "[audit]\nverify_on_start = full\n");
	msr_it_client(&it, "investigator", "bench-inv", "CA0190000", inv, sizeof(inv));
	msr_it_client(&it, "auditor", "bench-aud", NULL, aud, sizeof(aud));

	/* Which audited read to drive: the exact lookup if it exists. */
	snprintf(path, sizeof(path), "/v1/codes/0H5KB4M3?case_number=BENCH-1&purpose=benchmark");
	what = "exact lookup GET /v1/codes/{code} (investigator)";
	if (msr_it_request(&it, "GET", path, inv, NULL, NULL, &r) != 0 || r.audit_index < 0) {
		snprintf(path, sizeof(path), "/v1/audit/entries?start=0&limit=1");
		what = "GET /v1/audit/entries?limit=1 (auditor; lookup route not present)";
	}
	msr_it_resp_free(&r);

	printf("HTTP, wrk -t2 -c64, synchronous_commit=on\n");
	if (wrk("/healthz", NULL, 5, &h_rps, &h50, &h99) != 0) {
		printf("wrk failed (is it installed?)\n");
		return 1;
	}
	printf("  GET /healthz (baseline)          %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n",
	    h_rps, h50, h99);
	size0 = tree_size();
	t0 = msr_now_s();
	if (wrk(path, strstr(what, "auditor") ? aud : inv, 10, &a_rps, &a50, &a99) != 0)
		return 1;
	t = msr_now_s() - t0;
	size1 = tree_size();
	printf("  audited: %s\n", what);
	printf("                                   %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n",
	    a_rps, a50, a99);
	printf("  audited / healthz                %9.3f\n", h_rps > 0 ? a_rps / h_rps : 0);
	printf("  log entries appended             %9ld (%.0f/s)\n", size1 - size0,
	    (double)(size1 - size0) / t);
	msr_it_stop(&it, SIGTERM);

	/* 2. the sequencer alone */
	msr_config_defaults(&cfg);
	if (msr_config_load(&cfg, it.config, err, sizeof(err)) != 0) {
		printf("config: %s\n", err);
		return 1;
	}
	seq = msr_audit_start(&cfg);
	if (seq == NULL || !msr_audit_ready(seq)) {
		printf("sequencer did not start\n");
		return 1;
	}
	atomic_store(&next_entry, 0);
	t0 = msr_now_s();
	for (int i = 0; i < APPENDERS; i++)
		pthread_create(&th[i], NULL, appender, NULL);
	for (int i = 0; i < APPENDERS; i++)
		pthread_join(th[i], NULL);
	t = msr_now_s() - t0;
	msr_audit_stop(seq);
	printf("\nsequencer alone, %d appending threads, ~330-byte entries\n", APPENDERS);
	printf("  %ld appends in %.2f s         %9.0f appends/s (%ld failed)\n",
	    total_entries, t, (double)total_entries / t, (long)atomic_load(&failed));

	/* 3. verification */
	{
		char cli[600];
		char *argv[] = { cli, "--config", it.config, "audit", "verify", "--db", NULL };

		snprintf(cli, sizeof(cli), "%s/msreg", it.bin);
		t0 = msr_now_s();
		if (msr_it_run(argv, &out) != 0)
			printf("verify --db FAILED: %s", out ? out : "");
		t = msr_now_s() - t0;
		printf("\nmsreg audit verify --db (every leaf, every checkpoint signature)\n  %s",
		    out ? out : "");
		printf("  wall time including process start: %.2f s\n", t);
		free(out);
	}
	t0 = msr_now_s();
	if (msr_it_start(&it) != 0) {
		printf("msregd did not restart\n");
		return 1;
	}
	while (msr_it_status(&it, "GET", "/readyz", NULL, NULL) != 200 && msr_now_s() - t0 < 120) {
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	t = msr_now_s() - t0;
	printf("\nmsregd restart with verify_on_start=full over %ld+ entries: ready in %.2f s\n",
	    total_entries, t);
	msr_it_teardown(&it);
	msr_config_free(&cfg);
	return 0;
}
