/*
 * bench_audit.c — the audit log's cost, measured end to end on this machine,
 * each figure next to a baseline from the same run (issue 12's goals):
 *
 *   1. Audited exact lookups against plain PostgreSQL. A registry of NCODES
 *      generated rs8 codes (firearms by generate_series, codes by COPY), then
 *      for 8 and for 64 connections, ROUNDS alternating rounds of
 *        wrk -t2 -cN  GET /v1/codes/{code}?case_number&purpose  (investigator;
 *            random registered codes; every answer waits for its durable,
 *            signed audit entry)
 *        pgbench -cN  one transaction per lookup: the handler's own SELECT
 *            (code picked by a random integer through bench_codes) + INSERT of
 *            an audit-like row (~330-byte leaf, client id; same shape and
 *            indexes as audit_entries), synchronous_commit = on, COMMIT
 *      → median req/s and tps, the median of the rounds' ratios (the
 *      verdict, goal >= 1.0: each round pairs adjacent runs), wrk p50 at 8 (goal
 *      <= 1.5 ms). A one-second wrk warm-up per connection count is not
 *      counted. GET /healthz once for scale.
 *   2. The sequencer alone (in process, no HTTP): APPENDERS threads keeping
 *      INFLIGHT ~330-byte entries outstanding through msr_audit_append_async
 *      (batches of up to SEQ_MAX_BATCH), synchronous_commit=on → appends/s
 *      (goal 100,000), the batches and their mean size; then, for scale, the
 *      blocking msr_audit_append from BLOCKING_THREADS threads.
 *   3. On the log built by 1 and 2: `msreg audit verify --db` entries/s (goal
 *      2,000,000 on 2 cores; median of VERIFY_RUNS), next to one run of
 *      `--full` (every older signature and stored leaf hash too), and
 *      msregd's full start-up check.
 *
 * BENCH_SCALE=small: 1e5 codes, 1e5 appends, rounds of 2 s; full (default)
 * and large: 1e6 codes, 1e6 appends, rounds of 8 s. Exits 1 when a figure
 * could not be measured (wrk/pgbench errors, non-2xx, no output).
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "msreg/audit.h"
#include "msreg/code.h"
#include "msreg/config.h"

#define APPENDERS    4         /* threads submitting asynchronous appends */
#define INFLIGHT     4096      /* appends outstanding at once, all threads */
#define INFLIGHT_LOW (INFLIGHT * 3 / 4)  /* a full window refills from here */
#define SEQ_MAX_BATCH 4096     /* [audit] max_batch for the sequencer alone */
#define BLOCKING_THREADS 128   /* msr_audit_append, one entry per thread at a time */
#define ROUNDS       3
#define VERIFY_RUNS  3
#define SCRIPT_CODES 2000      /* distinct codes the wrk script cycles through */

static struct msr_it it;
static struct msr_audit *seq;
static atomic_long next_entry;
static long total_entries;
static atomic_long failed;
static atomic_long completed;
static atomic_long outstanding;  /* incremented under win_lock */
static pthread_mutex_t win_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t win_cond = PTHREAD_COND_INITIALIZER;
static char dir[] = "/tmp/bench_audit.XXXXXX";

static void __attribute__((noreturn))
fail(const char *what)
{
	fprintf(stderr, "bench_audit: %s\n", what);
	msr_it_teardown(&it);
	exit(1);
}

/* The i-th generated code (distinct for i < 2^30: odd multiplier mod 2^30). */
static void
gen_code(size_t i, char text[MSR_RS8_LEN + 1])
{
	uint8_t sym[MSR_RS8_LEN];

	msr_rs8_from_data((uint32_t)((i * UINT64_C(0x2c1b3c6d) + 12345) & ((1u << 30) - 1)),
	    sym);
	msr_code_format(sym, MSR_RS8_LEN, text);
}

static void
pg_exec(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(res));
		fail("SQL failed");
	}
	PQclear(res);
}

/* COPY rows produced by line(i, buf) for i in [0, n) into sql's table. */
static void
pg_copy(PGconn *pg, const char *sql, size_t n, int (*line)(size_t, char *, size_t))
{
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap + 256);
	PGresult *res = PQexec(pg, sql);

	if (buf == NULL || PQresultStatus(res) != PGRES_COPY_IN)
		fail("COPY did not start");
	PQclear(res);
	for (size_t i = 0; i < n; i++) {
		len += (size_t)line(i, buf + len, 256);
		if (len >= cap || i + 1 == n) {
			if (PQputCopyData(pg, buf, (int)len) != 1)
				fail("COPY data");
			len = 0;
		}
	}
	if (PQputCopyEnd(pg, NULL) != 1)
		fail("COPY end");
	res = PQgetResult(pg);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail(PQresultErrorMessage(res));
	PQclear(res);
	while ((res = PQgetResult(pg)) != NULL)
		PQclear(res);
	free(buf);
}

static int
code_line(size_t i, char *out, size_t cap)
{
	char code[MSR_RS8_LEN + 1];

	gen_code(i, code);
	return snprintf(out, cap, "%s\trs8\tfiring_pin\t%zu\n", code, i + 1);
}

static int
map_line(size_t i, char *out, size_t cap)
{
	char code[MSR_RS8_LEN + 1];

	gen_code(i, code);
	return snprintf(out, cap, "%zu\t%s\n", i + 1, code);
}

/* The registry of n codes, the pgbench code map and the audit-like table. */
static void
load_registry(size_t n)
{
	PGconn *pg = PQconnectdb(it.url_super);
	char sql[512];
	double t0 = msr_now_s();

	if (PQstatus(pg) != CONNECTION_OK)
		fail("cannot connect as superuser");
	pg_exec(pg, "SET client_min_messages = warning");
	pg_exec(pg, "SET session_replication_role = replica");
	pg_exec(pg, "INSERT INTO manufacturers (id, name) VALUES ('bench', 'Bench Arms')");
	snprintf(sql, sizeof(sql), "INSERT INTO firearms (id, manufacturer_id, model, serial,"
	    " type, caliber, manufactured_on) SELECT g, 'bench', 'P320', 'B' || g, 'pistol',"
	    " '9mm', '2026-01-15' FROM generate_series(1, %zu) g", n);
	pg_exec(pg, sql);
	snprintf(sql, sizeof(sql), "SELECT setval('firearms_id_seq', %zu)", n);
	pg_exec(pg, sql);
	pg_copy(pg, "COPY codes (code, scheme, component, firearm_id) FROM STDIN", n, code_line);
	pg_exec(pg, "CREATE TABLE bench_codes (i integer PRIMARY KEY, code text NOT NULL)");
	pg_copy(pg, "COPY bench_codes FROM STDIN", n, map_line);
	pg_exec(pg, "CREATE TABLE bench_audit_rows (idx bigserial PRIMARY KEY, leaf bytea NOT NULL,"
	    " client_id bigint, created_at timestamptz NOT NULL DEFAULT now())");
	pg_exec(pg, "CREATE INDEX ON bench_audit_rows (client_id)");
	pg_exec(pg, "VACUUM ANALYZE firearms");
	pg_exec(pg, "VACUUM ANALYZE codes");
	pg_exec(pg, "VACUUM ANALYZE bench_codes");
	pg_exec(pg, "CHECKPOINT");
	PQfinish(pg);
	printf("registry        %zu firearms and codes loaded in %.1f s\n", n, msr_now_s() - t0);
}

/* wrk script: random registered codes; pgbench script: the same work in SQL. */
static void
write_scripts(const char *key, size_t n, char *lua, char *sqlf, size_t len)
{
	char code[MSR_RS8_LEN + 1];
	FILE *f;

	snprintf(lua, len, "%s/lookup.lua", dir);
	snprintf(sqlf, len, "%s/lookup.sql", dir);
	f = fopen(lua, "w");
	if (f == NULL)
		fail("cannot write the wrk script");
	fputs("local codes = {\n", f);
	for (size_t i = 0; i < SCRIPT_CODES; i++) {
		gen_code((size_t)(((uint64_t)i * 7919u) % n), code);
		fprintf(f, "\"%s\",\n", code);
	}
	fprintf(f, "}\nlocal headers = { [\"Authorization\"] = \"Bearer %s\" }\n"
	    "local i = 0\n"
	    "function init(args) i = math.random(#codes) end\n"
	    "function request()\n"
	    "  i = i %% #codes + 1\n"
	    "  return wrk.format(\"GET\", \"/v1/codes/\" .. codes[i] .."
	    " \"?case_number=BENCH-1&purpose=benchmark\", headers)\n"
	    "end\n%s", key, bench_wrk_done);
	fclose(f);
	f = fopen(sqlf, "w");
	if (f == NULL)
		fail("cannot write the pgbench script");
	fprintf(f, "\\set k random(1, %zu)\n"
	    "BEGIN;\n"
	    "SELECT c.code, c.status, c.component, c.scheme,"
	    " to_json(c.registered_at) #>> '{}', to_json(c.retired_at) #>> '{}', c.replaces,"
	    " (SELECT n.code FROM codes n WHERE n.firearm_id = c.firearm_id"
	    " AND n.replaces = c.code LIMIT 1),"
	    " f.id, f.manufacturer_id, f.model, f.serial, f.type, f.caliber, f.manufactured_on,"
	    " s.firearm_id IS NOT NULL, s.dealer_ffl, s.sold_on, s.transaction_ref, s.state"
	    " FROM codes c JOIN firearms f ON f.id = c.firearm_id"
	    " LEFT JOIN first_sales s ON s.firearm_id = f.id"
	    " WHERE c.code = (SELECT code FROM bench_codes WHERE i = :k);\n"
	    "INSERT INTO bench_audit_rows (leaf, client_id) VALUES (convert_to("
	    "'{\"action\":\"code.lookup\",\"case_number\":\"BENCH-1\",\"client\":7,"
	    "\"code\":\"0H5KB4M3\",\"firearm\":' || :k || ',\"method\":\"GET\","
	    "\"org\":\"CA0190000\",\"path\":\"/v1/codes/0H5KB4M3\","
	    "\"purpose\":\"benchmark\",\"role\":\"investigator\",\"status\":200,"
	    "\"time\":\"' || clock_timestamp() || '\"}', 'UTF8'), 7);\n"
	    "COMMIT;\n", n);
	fclose(f);
}

struct lookup_result {
	int              conns;
	struct bench_wrk http;      /* median round */
	double           tps, lat_ms;   /* pgbench, median round */
	double           ratio;         /* median of the rounds' msregd / pgbench */
};

static void
bench_lookups(const char *lua, const char *sqlf, int conns, int secs,
    struct lookup_result *out)
{
	struct bench_wrk w[ROUNDS];
	double tps[ROUNDS], lat[ROUNDS], ratio[ROUNDS];

	out->conns = conns;
	/* warm-up, not counted: connections, plans and caches */
	if (bench_wrk_run(it.port, "/v1/codes/", lua, 2, conns, 1, &w[0]) != 0)
		fail("audited lookups could not be measured");
	for (int r = 0; r < ROUNDS; r++) {
		if (bench_pgbench(it.url_super, sqlf, conns, secs, &tps[r], &lat[r]) != 0)
			fail("pgbench baseline could not be measured");
		if (bench_wrk_run(it.port, "/v1/codes/", lua, 2, conns, secs, &w[r]) != 0)
			fail("audited lookups could not be measured");
		ratio[r] = w[r].rps / tps[r];
		printf("  %2d connections round %d: msregd %7.0f lookups/s p50 %6.2f ms "
		    "p99 %6.2f ms | pgbench %7.0f tps, latency avg %.2f ms\n", conns, r + 1,
		    w[r].rps, w[r].p50_ms, w[r].p99_ms, tps[r], lat[r]);
	}
	out->http = bench_wrk_median(w, ROUNDS);
	out->tps = bench_percentile(tps, ROUNDS, 50);
	out->lat_ms = bench_percentile(lat, ROUNDS, 50);
	/* each round pairs adjacent runs: the median of their ratios is the verdict */
	out->ratio = bench_percentile(ratio, ROUNDS, 50);
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

static int
make_entry(long i, char *entry, size_t cap)
{
	return snprintf(entry, cap,
	    "{\"action\":\"code.lookup\",\"case_number\":\"HPD-2026-%06ld\",\"client\":7,"
	    "\"code\":\"0H5KB4M3\",\"firearm\":%ld,\"method\":\"GET\",\"org\":\"CA0190000\","
	    "\"path\":\"/v1/codes/0H5KB4M3\",\"purpose\":\"homicide investigation\","
	    "\"role\":\"investigator\",\"status\":200,\"time\":\"2026-11-22T04:07:25.%06ldZ\"}",
	    i, i * 7919 % 1000003, i % 1000000);
}

/* msregd's own account of where the lookups' time went (msreg_request_phase_seconds). */
static void
print_phases(void)
{
	static const char *const phases[] = { "receive", "handler", "audit", "commit", "send" };
	struct msr_it_resp r;

	if (msr_it_request(&it, "GET", "/metrics", NULL, NULL, NULL, &r) != 0 || r.status != 200)
		fail("GET /metrics failed");
	printf("  msregd's phases over all requests so far (mean per request):");
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		char k1[96], k2[96];
		const char *c, *sm;

		snprintf(k1, sizeof(k1), "msreg_request_phase_seconds_count{phase=\"%s\"} ", phases[i]);
		snprintf(k2, sizeof(k2), "msreg_request_phase_seconds_sum{phase=\"%s\"} ", phases[i]);
		c = strstr(r.body, k1);
		sm = strstr(r.body, k2);
		if (c == NULL || sm == NULL)
			fail("/metrics has no msreg_request_phase_seconds");
		{
			double n = strtod(c + strlen(k1), NULL), sum = strtod(sm + strlen(k2), NULL);

			printf(" %s %.3f ms", phases[i], n > 0 ? sum / n * 1e3 : 0.0);
		}
	}
	printf("\n");
	msr_it_resp_free(&r);
}

/* Batches the sequencer committed so far (its msreg_audit_batches_total). */
static long
audit_batches(struct msr_audit *a)
{
	char buf[4096] = "";
	const char *p;

	msr_audit_metrics(a, buf, sizeof(buf));
	p = strstr(buf, "\nmsreg_audit_batches_total ");
	return p != NULL ? strtol(p + 27, NULL, 10) : -1;
}

/* Sequencer thread: one append settled; free its slot in the window. */
static void
appended(void *arg, int64_t index)
{
	long left;

	(void)arg;
	if (index < 0)
		atomic_fetch_add(&failed, 1);
	atomic_fetch_add(&completed, 1);
	/* wake the producers only when the window is down to LOW, or empty */
	left = atomic_fetch_sub(&outstanding, 1) - 1;
	if (left == INFLIGHT_LOW || left == 0) {
		pthread_mutex_lock(&win_lock);
		pthread_cond_broadcast(&win_cond);
		pthread_mutex_unlock(&win_lock);
	}
}

/* Keep the window of INFLIGHT asynchronous appends full. */
static void *
appender(void *arg)
{
	char entry[400];
	long i;

	(void)arg;
	while ((i = atomic_fetch_add(&next_entry, 1)) < total_entries) {
		int n = make_entry(i, entry, sizeof(entry));

		pthread_mutex_lock(&win_lock);
		if (atomic_load(&outstanding) >= INFLIGHT)
			while (atomic_load(&outstanding) > INFLIGHT_LOW)
				pthread_cond_wait(&win_cond, &win_lock);
		atomic_fetch_add(&outstanding, 1);
		pthread_mutex_unlock(&win_lock);
		if (msr_audit_append_async(seq, entry, (size_t)n, 7, appended, NULL) != 0) {
			atomic_fetch_add(&failed, 1);
			appended(NULL, 0);
			atomic_fetch_sub(&completed, 1);
		}
	}
	return NULL;
}

/* The blocking API, one entry at a time per thread. */
static void *
blocking_appender(void *arg)
{
	char entry[400];
	long i, end = *(long *)arg;
	int64_t idx;

	while ((i = atomic_fetch_add(&next_entry, 1)) < end) {
		int n = make_entry(i, entry, sizeof(entry));

		if (msr_audit_append(seq, entry, (size_t)n, 7, &idx) != 0)
			atomic_fetch_add(&failed, 1);
	}
	return NULL;
}

/*
 * The floor under the verifier: PostgreSQL streaming the same entries to a
 * client that only counts them (binary COPY in index order, what verify reads).
 */
static double
copy_entries_rate(void)
{
	PGconn *pg = PQconnectdb(it.url_super);
	PGresult *res;
	char *row = NULL;
	long rows = 0;
	int n;
	double t0, t;

	if (PQstatus(pg) != CONNECTION_OK)
		fail("cannot connect as superuser");
	/* verify's own plan (audit_store.c): index order, no sort, no JIT, no workers */
	pg_exec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	pg_exec(pg, "SET LOCAL jit = off");
	pg_exec(pg, "SET LOCAL enable_seqscan = off");
	pg_exec(pg, "SET LOCAL enable_sort = off");
	pg_exec(pg, "SET LOCAL enable_bitmapscan = off");
	pg_exec(pg, "SET LOCAL max_parallel_workers_per_gather = 0");
	t0 = msr_now_s();
	res = PQexec(pg, "COPY (SELECT idx, leaf FROM audit_entries ORDER BY idx) TO STDOUT"
	    " (FORMAT binary)");
	if (PQresultStatus(res) != PGRES_COPY_OUT)
		fail("COPY of the entries did not start");
	PQclear(res);
	while ((n = PQgetCopyData(pg, &row, 0)) > 0) {
		rows++;
		PQfreemem(row);
	}
	t = msr_now_s() - t0;
	res = PQgetResult(pg);
	if (n != -1 || PQresultStatus(res) != PGRES_COMMAND_OK || rows < 2)
		fail("COPY of the entries failed");
	PQclear(res);
	pg_exec(pg, "COMMIT");
	PQfinish(pg);
	rows -= 1;		/* the last message is the trailer (the header rides with row 1) */
	printf("  PostgreSQL alone: COPY of the same %ld entries to a client that counts "
	    "them: %.2f s (%.0f entries/s)\n", rows, t, (double)rows / t);
	return (double)rows / t;
}

/* One `msreg audit verify --db [--full]` over the bench's log: its entries/s. */
static double
run_verify(int full)
{
	char cli[600], *out = NULL, *p;
	char *argv[] = { cli, "--config", it.config, "audit", "verify", "--db",
	    full ? "--full" : NULL, NULL };
	double t0 = msr_now_s(), t, rate = 0;

	snprintf(cli, sizeof(cli), "%s/msreg", it.bin);
	if (msr_it_run(argv, &out) != 0 || out == NULL) {
		fprintf(stderr, "verify --db FAILED: %s", out ? out : "");
		fail("audit verify --db failed");
	}
	t = msr_now_s() - t0;
	printf("  %s", out);
	p = strrchr(out, '(');
	if (p != NULL)
		rate = strtod(p + 1, NULL);
	free(out);
	if (rate <= 0)
		fail("audit verify --db printed no entries/s");
	printf("    wall time including process start: %.2f s\n", t);
	return rate;
}

int
main(void)
{
	enum bench_scale scale = bench_scale();
	size_t ncodes = scale == BENCH_SMALL ? 100000 : 1000000;
	int secs = scale == BENCH_SMALL ? 2 : 8;
	struct msr_config cfg;
	char inv[128], err[256], lua[128], sqlf[128], m[64], b[96];
	struct lookup_result lk[2];
	struct bench_wrk health;
	double t0, t, appends, blocking, verify_rate = 0;
	long size0, size1, nblocking, batches0, batches1;
	pthread_t th[BLOCKING_THREADS];

	setvbuf(stdout, NULL, _IOLBF, 0);
	total_entries = scale == BENCH_SMALL ? 100000 : 1000000;
	if (mkdtemp(dir) == NULL)
		fail("mkdtemp");
	msr_it_setup(&it, "bench_audit", "[http]\nthreads = 64\n[database]\npool_size = 24\n"
	    "[audit]\nverify_on_start = full\n" BENCH_INI);
	msr_it_client(&it, "investigator", "bench-inv", "CA0190000", inv, sizeof(inv));
	load_registry(ncodes);
	msr_it_stop(&it, SIGTERM);      /* restart: the index loads the registry at start */
	if (msr_it_start(&it) != 0 || msr_it_wait_ready(&it, 120000) != 0)
		fail("msregd did not restart");
	write_scripts(inv, ncodes, lua, sqlf, sizeof(lua));

	/* 1. audited lookups vs PostgreSQL */
	{
		char hl[160];
		FILE *f;

		snprintf(hl, sizeof(hl), "%s/healthz.lua", dir);
		f = fopen(hl, "w");
		if (f == NULL)
			fail("cannot write the wrk script");
		fputs(bench_wrk_done, f);
		fclose(f);
		if (bench_wrk_run(it.port, "/healthz", hl, 2, 64, secs, &health) != 0)
			fail("GET /healthz could not be measured");
		unlink(hl);
	}
	printf("\nexact lookups, %zu codes, synchronous_commit=on (medians of %d rounds of %d s)\n"
	    "  GET /healthz, 64 connections (scale): %.0f req/s p50 %.2f ms\n", ncodes, ROUNDS,
	    secs, health.rps, health.p50_ms);
	size0 = tree_size();
	t0 = msr_now_s();
	bench_lookups(lua, sqlf, 8, secs, &lk[0]);
	bench_lookups(lua, sqlf, 64, secs, &lk[1]);
	t = msr_now_s() - t0;
	size1 = tree_size();
	printf("  log entries appended during the lookups: %ld\n", size1 - size0);
	print_phases();
	if (size0 < 0 || size1 - size0 < lk[0].http.requests)
		fail("the audit log did not grow by the lookups answered");
	(void)t;
	for (int i = 0; i < 2; i++) {
		char id[16], goal[64];

		snprintf(id, sizeof(id), "lookup-c%d", lk[i].conns);
		snprintf(goal, sizeof(goal), "audited lookups, %d conns >= 1.0x pgbench", lk[i].conns);
		snprintf(m, sizeof(m), "%.0f/s (%.2fx)", lk[i].http.rps, lk[i].ratio);
		snprintf(b, sizeof(b), "pgbench SELECT+INSERT %.0f tps", lk[i].tps);
		bench_goal(id, goal, m, b, lk[i].ratio >= 1.0);
	}
	snprintf(m, sizeof(m), "p50 %.2f ms", lk[0].http.p50_ms);
	snprintf(b, sizeof(b), "pgbench latency avg %.2f ms", lk[0].lat_ms);
	bench_goal("lookup-p50", "audited lookup p50 at 8 conns <= 1.5 ms", m, b,
	    lk[0].http.p50_ms <= 1.5);
	unlink(lua);
	unlink(sqlf);
	rmdir(dir);
	msr_it_stop(&it, SIGTERM);

	/* 2. the sequencer alone */
	msr_config_defaults(&cfg);
	if (msr_config_load(&cfg, it.config, err, sizeof(err)) != 0)
		fail(err);
	cfg.audit_max_batch = SEQ_MAX_BATCH;
	seq = msr_audit_start(&cfg);
	if (seq == NULL || !msr_audit_ready(seq))
		fail("sequencer did not start");
	batches0 = audit_batches(seq);
	atomic_store(&next_entry, 0);
	t0 = msr_now_s();
	for (int i = 0; i < APPENDERS; i++)
		pthread_create(&th[i], NULL, appender, NULL);
	for (int i = 0; i < APPENDERS; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_lock(&win_lock);
	while (atomic_load(&outstanding) > 0)
		pthread_cond_wait(&win_cond, &win_lock);
	pthread_mutex_unlock(&win_lock);
	t = msr_now_s() - t0;
	batches1 = audit_batches(seq);
	appends = (double)total_entries / t;
	printf("\nsequencer alone, msr_audit_append_async from %d threads, %d in flight, "
	    "max_batch %d, ~330-byte entries\n", APPENDERS, INFLIGHT, SEQ_MAX_BATCH);
	printf("  %ld appends in %.2f s: %.0f appends/s (%ld failed); %ld batches, "
	    "mean %.0f entries\n", total_entries, t, appends, (long)atomic_load(&failed),
	    batches1 - batches0, batches1 > batches0 ?
	    (double)total_entries / (double)(batches1 - batches0) : 0.0);
	if (atomic_load(&failed) != 0 || atomic_load(&completed) != total_entries)
		fail("appends failed");
	/* for scale: the blocking API, capped by its threads */
	nblocking = total_entries + total_entries / 5;
	atomic_store(&next_entry, total_entries);
	t0 = msr_now_s();
	for (int i = 0; i < BLOCKING_THREADS; i++)
		pthread_create(&th[i], NULL, blocking_appender, &nblocking);
	for (int i = 0; i < BLOCKING_THREADS; i++)
		pthread_join(th[i], NULL);
	t = msr_now_s() - t0;
	blocking = (double)(nblocking - total_entries) / t;
	msr_audit_stop(seq);
	printf("  blocking msr_audit_append, %d threads: %ld appends in %.2f s: %.0f "
	    "appends/s\n", BLOCKING_THREADS, nblocking - total_entries, t, blocking);
	if (atomic_load(&failed) != 0)
		fail("appends failed");
	snprintf(m, sizeof(m), "%.0f/s", appends);
	snprintf(b, sizeof(b), "blocking, %d threads: %.0f/s", BLOCKING_THREADS, blocking);
	bench_goal("sequencer", "sequencer appends >= 100,000/s", m, b, appends >= 100000);

	/* 3. verification: the default (what tamper-evidence needs), then --full */
	{
		double rate[VERIFY_RUNS], full_rate, copy_rate;

		printf("\nmsreg audit verify --db: every entry and checkpoint root recomputed, "
		    "the newest signature verified (median of %d runs)\n", VERIFY_RUNS);
		for (int r = 0; r < VERIFY_RUNS; r++)
			rate[r] = run_verify(0);
		verify_rate = bench_percentile(rate, VERIFY_RUNS, 50);
		printf("msreg audit verify --db --full: also every older signature and every "
		    "stored leaf hash\n");
		full_rate = run_verify(1);
		{
			double c[VERIFY_RUNS];

			for (int r = 0; r < VERIFY_RUNS; r++)
				c[r] = copy_entries_rate();
			copy_rate = bench_percentile(c, VERIFY_RUNS, 50);
		}
		snprintf(m, sizeof(m), "%.0f entries/s", verify_rate);
		snprintf(b, sizeof(b), "COPY alone %.0f/s; --full %.0f/s", copy_rate, full_rate);
		bench_goal("verify", "audit verify --db >= 2,000,000 entries/s", m, b,
		    verify_rate >= 2e6);
	}
	t0 = msr_now_s();
	if (msr_it_start(&it) != 0 || msr_it_wait_ready(&it, 120000) != 0)
		fail("msregd did not restart");
	printf("\nmsregd restart with verify_on_start=full over %ld+ entries: ready in %.2f s\n",
	    total_entries, msr_now_s() - t0);
	msr_it_teardown(&it);
	msr_config_free(&cfg);
	return 0;
}
