/*
 * it_seq.c — the sequencer's asynchronous append (msr_audit_append_async),
 * in process against a real PostgreSQL (the harness's database, msregd
 * stopped so that this process is the only sequencer):
 *
 *   - many appends in flight from several threads, small batches: every
 *     callback runs exactly once, with distinct indexes that are exactly the
 *     entries added to the log, each entry's stored bytes are the ones
 *     appended, and `msreg audit verify --db` passes;
 *   - a callback may append again (no deadlock; the chain completes);
 *   - blocking and asynchronous appends mixed share the batches;
 *   - the sequencer lock held elsewhere: every asynchronous append fails (-1)
 *     within about wait_ms, not the statement timeout; after the lock is
 *     released appends succeed again;
 *   - refusals are immediate (no callback);
 *   - over HTTP, msregd with only 2 worker threads: audited reads (GET
 *     /v1/me) wait for their entries suspended (http.c), so 16 of them in
 *     flight while the sequencer lock is held elsewhere do not keep /healthz
 *     from answering, and each gets 503 within about wait_ms; with the lock
 *     released, concurrent reads get 200 with distinct Audit-Index values.
 */
#include <check.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "msreg/audit.h"
#include "msreg/common.h"
#include "msreg/config.h"

#define THREADS   4
#define PER       500          /* appends per thread */
#define N         (THREADS * PER)
#define CHAIN     50

static struct msr_it it;
static struct msr_config cfg;
static struct msr_audit *seq;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int64_t got[N];          /* index per entry, -2 = no callback yet */
static int calls[N];
static int settled;

static void
setup(void)
{
	char err[256];

	msr_it_setup(&it, "seq", "[audit]\nmax_batch = 64\nwait_ms = 1000\n"
	    "[database]\nstatement_timeout_ms = 20000\n");
	msr_it_stop(&it, SIGTERM);
	msr_config_defaults(&cfg);
	ck_assert_msg(msr_config_load(&cfg, it.config, err, sizeof(err)) == 0, "%s", err);
	seq = msr_audit_start(&cfg);
	ck_assert_ptr_nonnull(seq);
	ck_assert(msr_audit_ready(seq));
}

static void
teardown(void)
{
	msr_audit_stop(seq);
	msr_config_free(&cfg);
	msr_it_teardown(&it);
}

static void
entry_text(long i, char *buf, size_t cap, int *len)
{
	*len = snprintf(buf, cap, "{\"action\":\"test.async\",\"i\":%ld}", i);
}

static void
done(void *arg, int64_t index)
{
	long i = (long)(intptr_t)arg;

	pthread_mutex_lock(&mu);
	got[i] = index;
	calls[i]++;
	settled++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Wait until `want` callbacks have run, at most ms. 0 when they did. */
static int
wait_settled(int want, int ms)
{
	struct timespec ts;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&mu);
	while (settled < want && ret == 0)
		ret = pthread_cond_timedwait(&cv, &mu, &ts);
	ret = settled >= want ? 0 : -1;
	pthread_mutex_unlock(&mu);
	return ret;
}

static void
reset(void)
{
	pthread_mutex_lock(&mu);
	for (int i = 0; i < N; i++) {
		got[i] = -2;
		calls[i] = 0;
	}
	settled = 0;
	pthread_mutex_unlock(&mu);
}

static void *
producer(void *arg)
{
	long t = (long)(intptr_t)arg;
	char buf[128];
	int len;

	for (long i = t * PER; i < (t + 1) * PER; i++) {
		entry_text(i, buf, sizeof(buf), &len);
		if (t == 0 && i % 10 == 0) {
			int64_t idx = -1;

			/* blocking appends share the batches */
			ck_assert_int_eq(msr_audit_append(seq, buf, (size_t)len, 7, &idx), 0);
			done((void *)(intptr_t)i, idx);
			continue;
		}
		ck_assert_int_eq(msr_audit_append_async(seq, buf, (size_t)len, 7, done,
		    (void *)(intptr_t)i), 0);
	}
	return NULL;
}

static long
log_size(void)
{
	char *v = msr_it_query(it.url_super, "SELECT count(*) FROM audit_entries");
	long n = v != NULL ? strtol(v, NULL, 10) : -1;

	free(v);
	return n;
}

static int
verify_db(void)
{
	char cli[600], *out = NULL;
	char *argv[] = { cli, "--config", it.config, "audit", "verify", "--db", NULL };
	int rc;

	snprintf(cli, sizeof(cli), "%s/msreg", it.bin);
	rc = msr_it_run(argv, &out);
	if (rc != 0)
		fprintf(stderr, "verify: %s\n", out != NULL ? out : "");
	free(out);
	return rc;
}

START_TEST(many_in_flight_each_settled_once)
{
	pthread_t th[THREADS];
	long before = log_size(), min = -1;
	char *seen;

	reset();
	for (long t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, producer, (void *)(intptr_t)t);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	ck_assert_int_eq(wait_settled(N, 30000), 0);
	ck_assert_int_eq(log_size() - before, N);
	seen = calloc(N, 1);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(calls[i], 1);
		ck_assert_int_ge(got[i], before);
		ck_assert_int_lt(got[i], before + N);
		ck_assert_int_eq(seen[got[i] - before], 0);
		seen[got[i] - before] = 1;
		if (min < 0 || got[i] < min)
			min = got[i];
	}
	free(seen);
	/* the bytes at each index are the entry appended with it */
	for (int i = 0; i < N; i += 97) {
		char sql[160], want[128], *v;
		int len;

		entry_text(i, want, sizeof(want), &len);
		snprintf(sql, sizeof(sql), "SELECT convert_from(leaf, 'UTF8') FROM audit_entries"
		    " WHERE idx = %lld", (long long)got[i]);
		v = msr_it_query(it.url_super, sql);
		ck_assert_ptr_nonnull(v);
		ck_assert_str_eq(v, want);
		free(v);
	}
	ck_assert_int_eq(verify_db(), 0);
}
END_TEST

static atomic_int chained;

static void
chain(void *arg, int64_t index)
{
	(void)arg;
	if (index < 0 || atomic_fetch_add(&chained, 1) + 1 >= CHAIN) {
		done((void *)(intptr_t)0, index);
		return;
	}
	/* from the sequencer's thread, inside a callback */
	if (msr_audit_append_async(seq, "{\"action\":\"test.chain\"}", 23, 7, chain, NULL) != 0)
		done((void *)(intptr_t)0, -1);
}

START_TEST(callback_may_append_again)
{
	reset();
	atomic_store(&chained, 0);
	ck_assert_int_eq(msr_audit_append_async(seq, "{\"action\":\"test.chain\"}", 23, 7,
	    chain, NULL), 0);
	ck_assert_int_eq(wait_settled(1, 30000), 0);
	ck_assert_int_ge(got[0], 0);
	ck_assert_int_eq(atomic_load(&chained), CHAIN);
}
END_TEST

START_TEST(lock_held_elsewhere_fails_within_wait_ms)
{
	PGconn *pg = PQconnectdb(it.url_super);
	PGresult *res;
	double t0;
	int n = 20;

	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	reset();
	res = PQexec(pg, "BEGIN; SELECT pg_advisory_xact_lock(7239017265103447401)");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	t0 = msr_now_s();
	for (long i = 0; i < n; i++) {
		char buf[128];
		int len;

		entry_text(i, buf, sizeof(buf), &len);
		ck_assert_int_eq(msr_audit_append_async(seq, buf, (size_t)len, 7, done,
		    (void *)(intptr_t)i), 0);
	}
	/* wait_ms is 1 s, the statement timeout 20 s */
	ck_assert_int_eq(wait_settled(n, 30000), 0);
	/* well under the 20 s statement timeout (a loaded machine is slow) */
	ck_assert_double_lt(msr_now_s() - t0, 15.0);
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(got[i], -1);
		ck_assert_int_eq(calls[i], 1);
	}
	res = PQexec(pg, "COMMIT");
	PQclear(res);
	PQfinish(pg);
	/* the sequencer recovers; appends succeed again */
	reset();
	for (int tries = 0; tries < 300; tries++) {
		if (msr_audit_ready(seq) && msr_audit_append_async(seq, "{\"action\":\"test.after\"}",
		    23, 7, done, (void *)(intptr_t)0) == 0) {
			ck_assert_int_eq(wait_settled(1, 30000), 0);
			if (got[0] >= 0)
				break;
			reset();
		}
		nanosleep(&(struct timespec){ 0, 100 * 1000000L }, NULL);
	}
	ck_assert_int_ge(got[0], 0);
	ck_assert_int_eq(verify_db(), 0);
}
END_TEST

START_TEST(refused_at_once_without_callback)
{
	struct msr_audit *s2;

	msr_audit_stop(seq);
	seq = NULL;
	reset();
	/* a second sequencer, stopped at once */
	s2 = msr_audit_start(&cfg);
	ck_assert_ptr_nonnull(s2);
	msr_audit_stop(s2);
	ck_assert_int_eq(msr_audit_append_async(NULL, "{}", 2, 7, done, NULL), -1);
	seq = msr_audit_start(&cfg);
	ck_assert_ptr_nonnull(seq);
	ck_assert_int_eq(msr_audit_append_async(seq, "{}", 2, 7, NULL, NULL), -1);
	ck_assert_int_eq(settled, 0);
}
END_TEST

/* ---- over HTTP: suspended reads ---- */

static struct msr_it web;

static void
setup_http(void)
{
	msr_it_setup(&web, "seq_http", "[http]\nthreads = 2\n[audit]\nwait_ms = 1500\n"
	    "[database]\nstatement_timeout_ms = 20000\n");
}

static void
teardown_http(void)
{
	msr_it_teardown(&web);
}

#define READERS 16

struct reader {
	pthread_t	th;
	long		status;
	long		index;
	double		secs;
};

static void *
reader_main(void *arg)
{
	struct reader *rd = arg;
	struct msr_it_resp r;
	double t0 = msr_now_s();

	rd->status = -1;
	rd->index = -1;
	if (msr_it_request(&web, "GET", "/v1/me", web.admin_key, NULL, NULL, &r) == 0) {
		rd->status = r.status;
		rd->index = r.audit_index;
		msr_it_resp_free(&r);
	}
	rd->secs = msr_now_s() - t0;
	return NULL;
}

START_TEST(suspended_reads_hold_no_worker)
{
	PGconn *pg = PQconnectdb(web.url_super);
	struct reader rd[READERS];
	PGresult *res;
	double t0;
	long st;

	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	ck_assert_int_eq(msr_it_status(&web, "GET", "/v1/me", web.admin_key, NULL), 200);
	res = PQexec(pg, "BEGIN; SELECT pg_advisory_xact_lock(7239017265103447401)");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	for (int i = 0; i < READERS; i++)
		pthread_create(&rd[i].th, NULL, reader_main, &rd[i]);
	nanosleep(&(struct timespec){ 0, 300 * 1000000L }, NULL);
	/* 16 reads wait for the log; the 2 workers are free */
	t0 = msr_now_s();
	st = msr_it_status(&web, "GET", "/healthz", NULL, NULL);
	ck_assert_int_eq(st, 200);
	/* blocking workers would take 16 x 1.5 s / 2 = 12 s; margin for a loaded machine */
	ck_assert_double_lt(msr_now_s() - t0, 4.0);
	for (int i = 0; i < READERS; i++) {
		pthread_join(rd[i].th, NULL);
		ck_assert_int_eq(rd[i].status, 503);
		ck_assert_int_eq(rd[i].index, -1);
		ck_assert_double_lt(rd[i].secs, 8.0);
	}
	res = PQexec(pg, "COMMIT");
	PQclear(res);
	PQfinish(pg);
	ck_assert_int_eq(msr_it_wait_ready(&web, 30000), 0);
	for (int tries = 0; tries < 100; tries++) {
		if (msr_it_status(&web, "GET", "/v1/me", web.admin_key, NULL) == 200)
			break;
		nanosleep(&(struct timespec){ 0, 100 * 1000000L }, NULL);
	}
	/* released: concurrent reads, each its own durable entry */
	for (int i = 0; i < READERS; i++)
		pthread_create(&rd[i].th, NULL, reader_main, &rd[i]);
	for (int i = 0; i < READERS; i++)
		pthread_join(rd[i].th, NULL);
	for (int i = 0; i < READERS; i++) {
		ck_assert_int_eq(rd[i].status, 200);
		ck_assert_int_ge(rd[i].index, 0);
		for (int j = 0; j < i; j++)
			ck_assert_int_ne(rd[i].index, rd[j].index);
	}
	/* /metrics says where the time went: the held reads' seconds were the audit phase */
	{
		struct msr_it_resp r;
		const char *c, *sum;

		ck_assert_int_eq(msr_it_request(&web, "GET", "/metrics", NULL, NULL, NULL, &r), 0);
		c = strstr(r.body, "msreg_request_phase_seconds_count{phase=\"audit\"} ");
		sum = strstr(r.body, "msreg_request_phase_seconds_sum{phase=\"audit\"} ");
		ck_assert_ptr_nonnull(c);
		ck_assert_ptr_nonnull(sum);
		ck_assert_int_ge(strtol(strchr(c, ' ') + 1, NULL, 10), 2 * READERS);
		/* 16 reads each held about wait_ms by the lock */
		ck_assert_double_ge(strtod(strchr(sum, ' ') + 1, NULL), READERS * 0.5);
		msr_it_resp_free(&r);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("seq");
	TCase *tc = tcase_create("async"), *th;

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, many_in_flight_each_settled_once);
	tcase_add_test(tc, callback_may_append_again);
	tcase_add_test(tc, lock_held_elsewhere_fails_within_wait_ms);
	tcase_add_test(tc, refused_at_once_without_callback);
	suite_add_tcase(s, tc);
	th = tcase_create("http");
	tcase_add_unchecked_fixture(th, setup_http, teardown_http);
	tcase_set_timeout(th, 300);
	tcase_add_test(th, suspended_reads_hold_no_worker);
	suite_add_tcase(s, th);
	return msr_test_run(s, 1);
}
