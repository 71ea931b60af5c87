/*
 * bench_search.c — partial-code search: msregd's index against PostgreSQL's
 * pg_trgm on the same data and the same queries, plus audited searches over
 * HTTP (the benchmark requirement).
 *
 * For each size (BENCH_SCALE=full: 1e6 then 1e7 codes; small: 1e5):
 *
 *   1. Data. The registry and the query set come from bench_index's dumps
 *      (--dump-codes / --dump-queries, seed SEED), so this program, bench_index
 *      and any SQL replay see exactly the same codes and queries: classes by
 *      unknowns per reading (0, 3, 5; random or alternating positions),
 *      ambiguous sets, gear readings, 1-3 readings, max_mismatches 0..2, each
 *      query already accepted by the enumeration guard at that size.
 *   2. PostgreSQL. Into the harness's migrated database: one manufacturer,
 *      N firearms (INSERT ... generate_series), N codes by COPY into the real
 *      codes table (its unique btree is kept; foreign-key triggers are skipped
 *      with session_replication_role = replica, the ids are known to exist),
 *      then CREATE INDEX ... USING gin (code gin_trgm_ops) and VACUUM ANALYZE.
 *      Each query becomes one anchored regex (query_regex): per position the
 *      intersection of the readings' sets (literal, class, or '.'); for
 *      max_mismatches k > 0 an alternation of every way to relax k constrained
 *      positions to '.'. That is a superset of the exact answer (a code with
 *      at most k mismatching (reading, position) pairs falls outside the
 *      intersection at at most k positions): a fair baseline, since pg_trgm
 *      cannot count mismatches, but PostgreSQL returns more rows than the
 *      index for k > 0. Timed: PQexecPrepared("SELECT code FROM codes WHERE
 *      code ~ $1") round trips with custom plans, statement_timeout
 *      PG_TIMEOUT_MS (a timeout counts as that, shown with '>'), at most
 *      scale.pg_cap queries per class and scale.pg_budget_s seconds per class,
 *      so a full run stays around ten minutes.
 *   3. msregd. Restarted so its feed loads the N codes from PostgreSQL; the
 *      load time and index bytes come from /metrics. The same queries are then
 *      timed in process through msr_index_search (limit 20, as the daemon
 *      asks) on an index msr_index_build makes from the same codes: the
 *      daemon's index is the same code; timing it in process leaves HTTP and
 *      the audit log out of the comparison with the SQL round trip.
 *   4. Agreement. For every query PostgreSQL answered, the index's full answer
 *      must equal the regex rows whose true mismatch count is at most k
 *      (msr_query_mismatches). Any difference fails the run (exit 1).
 *
 * At the largest size, 5. HTTP: wrk against the running msregd with real
 * accepted queries (an investigator key; every answer durable in the audit log
 * before it is sent), alternating with audited exact lookups of registered
 * codes on the same daemon at the same concurrency (the baseline of the goal
 * "searches >= 0.8x lookups"), HTTP_ROUNDS rounds each whose medians count,
 * and GET /healthz for scale. A wrk run with socket errors or non-2xx answers
 * ends the benchmark with exit 1: the figure could not be measured.
 *
 * Speedup per class = PostgreSQL p50 / index p50; the index's percentiles are
 * over all the class's queries (up to IDX_PER_CLASS), PostgreSQL's over the
 * first ones it ran. The closing summary checks the targets at the
 * largest size; a missed target is reported, not fatal (this is a benchmark).
 */
#include <jansson.h>
#include <libgen.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "harness.h"
#include "msreg/code.h"
#include "msreg/pattern.h"
#include "msreg/search.h"

#define SEED            1
#define IDX_PER_CLASS   200     /* queries per class dumped and run in the index */
#define LIMIT           20      /* hits asked of the index, as msregd's default */
#define PG_TIMEOUT_MS   10000
#define MAX_CLASSES     32
#define HTTP_BODIES     400
#define HTTP_ROUNDS     3
#define HTTP_CONNS      32
#define LOOKUP_CODES    2000    /* registered codes the lookup script cycles through */
#define COPY_CHUNK      (1 << 20)

/* Per-size knobs. */
struct scale {
	size_t n;               /* codes */
	size_t pg_cap;          /* PostgreSQL queries per class at most */
	double pg_budget_s;     /* ... and at most this long per class */
};

struct bquery {
	unsigned cls;           /* index into classes[] */
	unsigned k;
	char *readings;         /* the readings as JSON text (HTTP bodies) */
	char *regex;            /* NULL: no code can match (too many conflicts) */
	struct msr_query q;
};

struct class_stat {
	char name[32];
	unsigned k;
	size_t n_idx, n_pg, pg_timeouts;
	double idx_p50, idx_p99, pg_p50, pg_p99;
};

/* The figures a size's run leaves for the summary. */
struct size_result {
	size_t n;
	size_t nclasses;
	struct class_stat cls[MAX_CLASSES];
	double daemon_load_s, daemon_bytes, daemon_codes, ready_s;
	double local_bytes;
	size_t checked, disagree;
};

static struct msr_it it;
static char inv_key[128];
static char dumper[PATH_MAX];
static char lookup_codes[LOOKUP_CODES][MSR_RS8_LEN + 1];

/* --- clock and statistics ------------------------------------------------ */

/* p50 and p99 of a copy of v[0..n). */
static void
p50_p99(const double *v, size_t n, double *p50, double *p99)
{
	double *tmp = malloc((n ? n : 1) * sizeof(*tmp));

	*p50 = *p99 = 0.0;
	if (tmp == NULL || n == 0) {
		free(tmp);
		return;
	}
	memcpy(tmp, v, n * sizeof(*tmp));
	*p99 = bench_percentile(tmp, n, 99);
	*p50 = bench_percentile(tmp, n, 50);
	free(tmp);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench_search: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	msr_it_teardown(&it);
	exit(1);
}

/* --- the data set: bench_index's dumps ------------------------------------ */

static FILE *
dump_open(const char *what, size_t n, size_t per_class)
{
	char cmd[PATH_MAX + 128];
	FILE *f;

	if (per_class > 0)
		snprintf(cmd, sizeof(cmd), "'%s' --dump-%s %d %zu %zu", dumper, what, SEED,
		    n, per_class);
	else
		snprintf(cmd, sizeof(cmd), "'%s' --dump-%s %d %zu", dumper, what, SEED, n);
	f = popen(cmd, "r");
	if (f == NULL)
		fail("cannot run %s", cmd);
	return f;
}

/* The registry of n rs8 codes, packed (msr_rs8_pack). Caller frees. */
static uint64_t *
load_codes(size_t n)
{
	FILE *f = dump_open("codes", n, 0);
	uint64_t *codes = malloc(n * sizeof(*codes));
	char line[64];
	uint8_t sym[MSR_CODE_MAX];
	size_t got = 0, len;
	long bad;

	if (codes == NULL)
		fail("out of memory");
	while (got < n && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (msr_code_normalize(line, sym, sizeof(sym), &len, &bad) != 0 ||
		    len != MSR_RS8_LEN || !msr_rs8_valid(sym))
			fail("bad code in dump: %s", line);
		codes[got++] = msr_rs8_pack(sym);
	}
	if (pclose(f) != 0 || got != n)
		fail("code dump ended after %zu of %zu codes", got, n);
	return codes;
}

/* Class number of name, added to st->cls when new. */
static unsigned
class_of(struct size_result *st, const char *name, unsigned k)
{
	size_t c;

	for (c = 0; c < st->nclasses; c++)
		if (strcmp(st->cls[c].name, name) == 0)
			return (unsigned)c;
	if (st->nclasses == MAX_CLASSES)
		fail("more than %d query classes", MAX_CLASSES);
	snprintf(st->cls[c].name, sizeof(st->cls[c].name), "%s", name);
	st->cls[c].k = k;
	st->nclasses++;
	return (unsigned)c;
}

/* Build bq->q from a dump line's readings. 0, or -1 if a reading is refused. */
static int
build_query(struct bquery *bq, json_t *readings)
{
	struct msr_pattern_error err;
	json_t *v;
	size_t i;
	int rc;

	msr_query_init(&bq->q, NULL);
	json_array_foreach(readings, i, v) {
		if (json_is_string(v))
			rc = msr_query_add_text(&bq->q, json_string_value(v), &err);
		else
			rc = msr_query_add_gear(&bq->q,
			    json_string_value(json_object_get(v, "gear")), &err);
		if (rc != 0)
			return -1;
	}
	return msr_query_finish(&bq->q, bq->k, NULL, &err);
}

static char *query_regex(const struct msr_query *q);

/* The query set for n codes; *nq set to its size. Caller frees (queries_free). */
static struct bquery *
load_queries(struct size_result *st, size_t n, size_t *nq)
{
	FILE *f = dump_open("queries", n, IDX_PER_CLASS);
	struct bquery *qs = NULL;
	size_t cap = 0, len = 0;
	char line[1024];

	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *j = json_loads(line, 0, NULL);
		json_t *readings = json_object_get(j, "readings");
		const char *cls = json_string_value(json_object_get(j, "class"));
		struct bquery *bq;

		if (cls == NULL || !json_is_array(readings))
			fail("bad query in dump: %s", line);
		if (len == cap) {
			cap = cap ? 2 * cap : 1024;
			qs = realloc(qs, cap * sizeof(*qs));
			if (qs == NULL)
				fail("out of memory");
		}
		bq = &qs[len];
		memset(bq, 0, sizeof(*bq));
		bq->k = (unsigned)json_integer_value(json_object_get(j, "max_mismatches"));
		bq->cls = class_of(st, cls, bq->k);
		if (build_query(bq, readings) != 0)
			fail("dumped query refused by the parser: %s", line);
		bq->readings = json_dumps(readings, JSON_COMPACT);
		bq->regex = query_regex(&bq->q);
		json_decref(j);
		len++;
	}
	if (pclose(f) != 0 || len == 0)
		fail("query dump failed");
	*nq = len;
	return qs;
}

static void
queries_free(struct bquery *qs, size_t nq)
{
	size_t i;

	for (i = 0; i < nq; i++) {
		free(qs[i].readings);
		free(qs[i].regex);
	}
	free(qs);
}

/* --- queries as pg_trgm regexes ------------------------------------------- */

/* One position: '.' for every symbol, a literal, or a class "[8B3]". */
static size_t
regex_position(uint32_t set, char *out)
{
	size_t n = 0;
	unsigned s;

	if (set == MSR_SET_ALL) {
		out[n++] = '.';
	} else if (__builtin_popcount(set) == 1) {
		out[n++] = msr_sym_char((uint8_t)__builtin_ctz(set));
	} else {
		out[n++] = '[';
		for (s = 0; s < MSR_SYMBOLS; s++)
			if (set & (UINT32_C(1) << s))
				out[n++] = msr_sym_char((uint8_t)s);
		out[n++] = ']';
	}
	return n;
}

/*
 * The anchored regex for q (see the top of the file), malloc'd; NULL when
 * more positions have readings that contradict each other than q allows
 * mismatches (no code can match). Positions whose intersection is empty are
 * always relaxed; of the other constrained positions every choice of the
 * remaining budget is relaxed in one alternative (choices of fewer are
 * subsets of these).
 */
static char *
query_regex(const struct msr_query *q)
{
	uint32_t set[MSR_CODE_MAX];
	unsigned cons[MSR_CODE_MAX], ncons = 0, forced = 0, relax, p, r;
	size_t cap, len = 0, alts = 0;
	uint32_t m;
	char *re;

	for (p = 0; p < q->len; p++) {
		set[p] = MSR_SET_ALL;
		for (r = 0; r < q->nreadings; r++)
			set[p] &= q->reading[r].set[p];
		if (set[p] == 0) {
			forced++;
			set[p] = MSR_SET_ALL;
		} else if (set[p] != MSR_SET_ALL) {
			cons[ncons++] = p;
		}
	}
	if (forced > q->max_mismatches)
		return NULL;
	relax = q->max_mismatches - forced;
	if (relax > ncons)
		relax = ncons;
	/* at most C(16, 2) alternatives of 16 positions of at most 34 chars */
	cap = 8 + 121 * (MSR_CODE_MAX * (MSR_SYMBOLS + 2) + 1);
	re = malloc(cap);
	if (re == NULL)
		fail("out of memory");
	len += (size_t)sprintf(re, relax ? "^(?:" : "^");
	for (m = 0; m < (UINT32_C(1) << ncons); m++) {
		unsigned i;

		if ((unsigned)__builtin_popcount(m) != relax)
			continue;
		if (alts++ > 0)
			re[len++] = '|';
		for (p = 0, i = 0; p < q->len; p++) {
			uint32_t s = set[p];

			if (i < ncons && cons[i] == p) {
				if (m & (UINT32_C(1) << i))
					s = MSR_SET_ALL;
				i++;
			}
			len += regex_position(s, re + len);
		}
	}
	len += (size_t)sprintf(re + len, relax ? ")$" : "$");
	return re;
}

/* --- PostgreSQL ------------------------------------------------------------ */

static PGconn *
pg_connect(const char *url)
{
	PGconn *pg = PQconnectdb(url);

	if (PQstatus(pg) != CONNECTION_OK)
		fail("cannot connect: %s", PQerrorMessage(pg));
	return pg;
}

static void
pg_exec(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
}

static double
pg_timed(PGconn *pg, const char *sql)
{
	double t0 = msr_now_s();

	pg_exec(pg, sql);
	return msr_now_s() - t0;
}

static void
pg_copy_codes(PGconn *pg, const uint64_t *codes, size_t n)
{
	char *buf = malloc(COPY_CHUNK + 64), text[MSR_RS8_LEN + 1];
	uint8_t sym[MSR_RS8_LEN];
	PGresult *res;
	size_t i, len = 0;

	if (buf == NULL)
		fail("out of memory");
	res = PQexec(pg, "COPY codes (code, scheme, component, firearm_id) FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN)
		fail("COPY codes: %s", PQresultErrorMessage(res));
	PQclear(res);
	for (i = 0; i < n; i++) {
		msr_rs8_unpack(codes[i], sym);
		msr_code_format(sym, MSR_RS8_LEN, text);
		len += (size_t)sprintf(buf + len, "%s\trs8\tfiring_pin\t%zu\n", text, i + 1);
		if (len >= COPY_CHUNK || i + 1 == n) {
			if (PQputCopyData(pg, buf, (int)len) != 1)
				fail("COPY codes: %s", PQerrorMessage(pg));
			len = 0;
		}
	}
	if (PQputCopyEnd(pg, NULL) != 1)
		fail("COPY codes: %s", PQerrorMessage(pg));
	res = PQgetResult(pg);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail("COPY codes: %s", PQresultErrorMessage(res));
	PQclear(res);
	while ((res = PQgetResult(pg)) != NULL)
		PQclear(res);
	free(buf);
}

static void
pg_print_sizes(PGconn *pg, size_t n)
{
	PGresult *res = PQexec(pg, "SELECT pg_table_size('codes'),"
	    " pg_relation_size('codes_pkey'), pg_relation_size('codes_code_trgm')");

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		printf("  sizes          table %.0f MB, unique btree %.1f bytes/code, "
		    "GIN %.1f bytes/code\n", strtod(PQgetvalue(res, 0, 0), NULL) / 1e6,
		    strtod(PQgetvalue(res, 0, 1), NULL) / (double)n,
		    strtod(PQgetvalue(res, 0, 2), NULL) / (double)n);
	PQclear(res);
}

/* Replace the registry's codes with codes[0..n) and index them with pg_trgm. */
static void
pg_load(const uint64_t *codes, size_t n)
{
	PGconn *pg = pg_connect(it.url_super);
	char sql[512];
	double t_f, t_c, t_g, t_v, t_k;

	pg_exec(pg, "SET client_min_messages = warning");
	pg_exec(pg, "SET maintenance_work_mem = '1GB'");
	pg_exec(pg, "SET session_replication_role = replica");
	pg_exec(pg, "DROP INDEX IF EXISTS codes_code_trgm");
	pg_exec(pg, "TRUNCATE codes, firearms CASCADE");
	pg_exec(pg, "INSERT INTO manufacturers (id, name) VALUES ('bench', 'Bench Arms')"
	    " ON CONFLICT DO NOTHING");
	snprintf(sql, sizeof(sql), "INSERT INTO firearms (id, manufacturer_id, model,"
	    " serial, type, caliber, manufactured_on) SELECT g, 'bench', 'P320',"
	    " 'B' || g, 'pistol', '9mm', '2026-01-15' FROM generate_series(1, %zu) g", n);
	t_f = pg_timed(pg, sql);
	snprintf(sql, sizeof(sql), "SELECT setval('firearms_id_seq', %zu)", n);
	pg_exec(pg, sql);
	t_c = msr_now_s();
	pg_copy_codes(pg, codes, n);
	t_c = msr_now_s() - t_c;
	t_g = pg_timed(pg, "CREATE INDEX codes_code_trgm ON codes USING gin"
	    " (code gin_trgm_ops)");
	t_v = pg_timed(pg, "VACUUM ANALYZE firearms");
	t_v += pg_timed(pg, "VACUUM ANALYZE codes");
	t_k = pg_timed(pg, "CHECKPOINT");      /* settle: no writes behind later phases */
	printf("PostgreSQL load  firearms %.1f s, COPY codes (unique btree kept) %.1f s "
	    "(%.0f codes/s), GIN gin_trgm_ops %.1f s, VACUUM ANALYZE %.1f s, "
	    "CHECKPOINT %.1f s\n", t_f, t_c, (double)n / t_c, t_g, t_v, t_k);
	pg_print_sizes(pg, n);
	PQfinish(pg);
}

/* The connection queries are timed on: custom plans, bounded statements. */
static PGconn *
pg_query_conn(void)
{
	PGconn *pg = pg_connect(it.url_app);
	char sql[64];
	PGresult *res;

	pg_exec(pg, "SET plan_cache_mode = force_custom_plan");
	snprintf(sql, sizeof(sql), "SET statement_timeout = %d", PG_TIMEOUT_MS);
	pg_exec(pg, sql);
	res = PQprepare(pg, "search", "SELECT code FROM codes WHERE code ~ $1", 1, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail("prepare: %s", PQresultErrorMessage(res));
	PQclear(res);
	return pg;
}

/* --- agreement ------------------------------------------------------------- */

/*
 * The index's full answer to bq must be exactly the regex rows whose mismatch
 * count is at most k. 0 when it is.
 */
static int
agree(struct msr_index *idx, const struct bquery *bq, PGresult *res)
{
	struct msr_search_result sr;
	struct msr_hit *hits = NULL;
	char text[MSR_CODE_MAX + 1];
	uint8_t sym[MSR_CODE_MAX];
	size_t exact = 0, i, len;
	int rows = PQntuples(res), row, ret = -1;
	long bad;

	for (row = 0; row < rows; row++)
		if (msr_code_normalize(PQgetvalue(res, row, 0), sym, sizeof(sym), &len,
		    &bad) == 0 && len == bq->q.len &&
		    msr_query_mismatches(&bq->q, sym) <= bq->k)
			exact++;
	if (msr_index_search(idx, &bq->q, NULL, 0, &sr) != 0)
		goto done;
	if (sr.total != exact) {
		fprintf(stderr, "DISAGREE %s: index %llu codes, PostgreSQL %zu (of %d "
		    "regex rows)\n", bq->readings, (unsigned long long)sr.total, exact, rows);
		goto done;
	}
	hits = calloc(exact ? exact : 1, sizeof(*hits));
	if (hits == NULL || msr_index_search(idx, &bq->q, hits, exact, &sr) != 0)
		goto done;
	for (i = 0; i < sr.nhits; i++) {
		msr_code_format(hits[i].code.sym, hits[i].code.len, text);
		for (row = 0; row < rows; row++)
			if (strcmp(PQgetvalue(res, row, 0), text) == 0)
				break;
		if (row == rows) {
			fprintf(stderr, "DISAGREE %s: index code %s not in the regex rows\n",
			    bq->readings, text);
			goto done;
		}
	}
	ret = 0;
done:
	free(hits);
	return ret;
}

/* --- timing the two sides -------------------------------------------------- */

/* Index time (s) of every query; one untimed pass first warms the caches. */
static void
time_index(struct msr_index *idx, const struct bquery *qs, size_t nq, double *t)
{
	struct msr_hit hits[LIMIT];
	struct msr_search_result sr;
	size_t i;
	int pass;

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < nq; i++) {
			double t0 = msr_now_s();

			if (msr_index_search(idx, &qs[i].q, hits, LIMIT, &sr) != 0)
				fail("index search failed");
			t[i] = msr_now_s() - t0;
		}
}

/*
 * PostgreSQL time (s) of the first queries of each class, within the scale's
 * cap and budget; t[i] < 0 for queries not run. Checks agreement on each.
 */
static void
time_pg(const struct scale *sc, struct size_result *st, struct msr_index *idx,
    const struct bquery *qs, size_t nq, double *t)
{
	PGconn *pg = pg_query_conn();
	double spent[MAX_CLASSES] = { 0 };
	size_t ran[MAX_CLASSES] = { 0 }, i;

	for (i = 0; i < nq; i++) {
		const struct bquery *bq = &qs[i];
		const char *values[1] = { bq->regex };
		struct class_stat *cs = &st->cls[bq->cls];
		PGresult *res;
		double t0;

		t[i] = -1.0;
		if (bq->regex == NULL || ran[bq->cls] >= sc->pg_cap ||
		    spent[bq->cls] >= sc->pg_budget_s)
			continue;
		t0 = msr_now_s();
		res = PQexecPrepared(pg, "search", 1, values, NULL, NULL, 0);
		t[i] = msr_now_s() - t0;
		ran[bq->cls]++;
		spent[bq->cls] += t[i];
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			st->checked++;
			if (agree(idx, bq, res) != 0)
				st->disagree++;
		} else if (strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?
		    PQresultErrorField(res, PG_DIAG_SQLSTATE) : "", "57014") == 0) {
			t[i] = PG_TIMEOUT_MS / 1e3;
			cs->pg_timeouts++;
		} else {
			fail("query %s: %s", bq->regex, PQresultErrorMessage(res));
		}
		PQclear(res);
	}
	PQfinish(pg);
}

/* Per-class percentiles from the two time arrays. */
static void
class_stats(struct size_result *st, const struct bquery *qs, size_t nq,
    const double *ti, const double *tp)
{
	double *a = malloc(nq * sizeof(*a)), *b = malloc(nq * sizeof(*b));
	size_t c, i;

	if (a == NULL || b == NULL)
		fail("out of memory");
	for (c = 0; c < st->nclasses; c++) {
		struct class_stat *cs = &st->cls[c];

		cs->n_idx = cs->n_pg = 0;
		for (i = 0; i < nq; i++) {
			if (qs[i].cls != c)
				continue;
			a[cs->n_idx++] = ti[i];
			if (tp[i] >= 0)
				b[cs->n_pg++] = tp[i];
		}
		p50_p99(a, cs->n_idx, &cs->idx_p50, &cs->idx_p99);
		p50_p99(b, cs->n_pg, &cs->pg_p50, &cs->pg_p99);
	}
	free(a);
	free(b);
}

/* --- msregd ----------------------------------------------------------------- */

/* Value of a metric line "name value" in text, or -1. */
static double
metric(const char *text, const char *name)
{
	size_t len = strlen(name);
	const char *p = text;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[len] == ' ')
			return strtod(p + len + 1, NULL);
		p += len;
	}
	return -1.0;
}

/* Restart msregd so its feed loads the registry; wait for /readyz. */
static void
daemon_reload(struct size_result *st)
{
	struct msr_it_resp r;
	double t0 = msr_now_s();
	struct timespec ts = { 0, 100 * 1000000L };

	msr_it_stop(&it, SIGTERM);
	if (msr_it_start(&it) != 0)
		fail("msregd did not restart");
	while (msr_it_status(&it, "GET", "/readyz", NULL, NULL) != 200) {
		if (msr_now_s() - t0 > 300)
			fail("msregd not ready after 300 s");
		nanosleep(&ts, NULL);
	}
	st->ready_s = msr_now_s() - t0;
	if (msr_it_request(&it, "GET", "/metrics", NULL, NULL, NULL, &r) != 0 ||
	    r.status != 200)
		fail("GET /metrics failed");
	st->daemon_load_s = metric(r.body, "msreg_search_index_load_seconds");
	st->daemon_bytes = metric(r.body, "msreg_search_index_bytes");
	st->daemon_codes = metric(r.body, "msreg_search_index_codes");
	msr_it_resp_free(&r);
	printf("msregd           restart to /readyz %.1f s; index load from PostgreSQL "
	    "%.2f s (target < 15 s); %.0f codes, %.0f bytes = %.2f bytes/code "
	    "(target <= 32)\n", st->ready_s, st->daemon_load_s, st->daemon_codes,
	    st->daemon_bytes, st->daemon_codes > 0 ? st->daemon_bytes / st->daemon_codes : 0);
}

/* --- one size ---------------------------------------------------------------- */

static const char *
fmt_ms(double s, int timed_out, char *buf, size_t len)
{
	if (timed_out)
		snprintf(buf, len, ">%.0f s", s);
	else if (s >= 1.0)
		snprintf(buf, len, "%.2f s", s);
	else
		snprintf(buf, len, "%.3f", s * 1e3);
	return buf;
}

static void
print_classes(const struct size_result *st)
{
	char a[32], b[32];
	size_t c;

	printf("\n%-12s %4s %4s | %9s %9s | %9s %9s | %9s %9s\n", "class", "n", "n",
	    "index p50", "index p99", "pg p50", "pg p99", "speedup", "speedup");
	printf("%-12s %4s %4s | %9s %9s | %9s %9s | %9s %9s\n", "", "idx", "pg",
	    "(ms)", "(ms)", "(ms)", "(ms)", "p50", "p99");
	for (c = 0; c < st->nclasses; c++) {
		const struct class_stat *cs = &st->cls[c];
		int to50 = cs->pg_p50 * 1e3 >= PG_TIMEOUT_MS && cs->pg_timeouts > 0;
		int to99 = cs->pg_p99 * 1e3 >= PG_TIMEOUT_MS && cs->pg_timeouts > 0;

		printf("%-12s %4zu %4zu | %9.3f %9.3f | %9s %9s | %8.0fx %8.0fx\n",
		    cs->name, cs->n_idx, cs->n_pg, cs->idx_p50 * 1e3, cs->idx_p99 * 1e3,
		    fmt_ms(cs->pg_p50, to50, a, sizeof(a)),
		    fmt_ms(cs->pg_p99, to99, b, sizeof(b)),
		    cs->idx_p50 > 0 ? cs->pg_p50 / cs->idx_p50 : 0,
		    cs->idx_p99 > 0 ? cs->pg_p99 / cs->idx_p99 : 0);
	}
}

static void
run_size(const struct scale *sc, struct size_result *st, struct bquery **qs_out,
    size_t *nq_out)
{
	struct msr_index_stats ist;
	struct msr_index *idx;
	struct bquery *qs;
	uint64_t *codes;
	double t0, *ti, *tp;
	size_t nq;

	printf("\n--- %zu codes (seed %d) ---\n", sc->n, SEED);
	memset(st, 0, sizeof(*st));
	st->n = sc->n;
	codes = load_codes(sc->n);
	qs = load_queries(st, sc->n, &nq);
	pg_load(codes, sc->n);
	daemon_reload(st);

	t0 = msr_now_s();
	idx = msr_index_build(codes, sc->n, NULL, 0, NULL);
	if (idx == NULL)
		fail("index build failed");
	msr_index_stats(idx, &ist);
	st->local_bytes = (double)ist.memory / (double)ist.codes;
	printf("in-process index msr_index_build %.2f s, %.2f bytes/code\n",
	    msr_now_s() - t0, st->local_bytes);
	for (size_t i = 0; i < LOOKUP_CODES; i++) {   /* spread over the registry */
		uint8_t sym[MSR_RS8_LEN];

		msr_rs8_unpack(codes[(i * 7919u) % sc->n], sym);
		msr_code_format(sym, MSR_RS8_LEN, lookup_codes[i]);
	}
	free(codes);

	ti = calloc(nq, sizeof(*ti));
	tp = calloc(nq, sizeof(*tp));
	if (ti == NULL || tp == NULL)
		fail("out of memory");
	time_index(idx, qs, nq, ti);
	t0 = msr_now_s();
	time_pg(sc, st, idx, qs, nq, tp);
	printf("pg_trgm queries  %.0f s (at most %zu per class, %.0f s budget per class, "
	    "statement_timeout %d s)\n", msr_now_s() - t0, sc->pg_cap, sc->pg_budget_s,
	    PG_TIMEOUT_MS / 1000);
	class_stats(st, qs, nq, ti, tp);
	print_classes(st);
	printf("\nresults %s: %zu queries answered by PostgreSQL checked against the "
	    "index (regex rows with mismatches <= k == index answer)\n",
	    st->disagree ? "DISAGREE" : "agree", st->checked);
	msr_index_free(idx);
	free(ti);
	free(tp);
	*qs_out = qs;
	*nq_out = nq;
}

/* --- HTTP --------------------------------------------------------------------- */

/* A search request body for bq (malloc'd). */
static char *
search_body(const struct bquery *bq, size_t i)
{
	char *body = NULL;

	if (asprintf(&body, "{\"case_number\":\"BENCH-%zu\",\"purpose\":\"benchmark\","
	    "\"readings\":%s,\"max_mismatches\":%u}", i, bq->readings, bq->k) < 0)
		fail("out of memory");
	return body;
}

/* Check that one query of each class is answered 200 over HTTP. */
static void
http_check(const struct bquery *qs, size_t nq)
{
	int seen[MAX_CLASSES] = { 0 };
	size_t i;

	for (i = 0; i < nq; i++) {
		struct msr_it_resp r;
		char *body;

		if (seen[qs[i].cls])
			continue;
		seen[qs[i].cls] = 1;
		body = search_body(&qs[i], i);
		if (msr_it_request(&it, "POST", "/v1/search", inv_key, NULL, body, &r) != 0 ||
		    r.status != 200 || json_object_get(r.json, "candidates") == NULL ||
		    r.audit_index < 0)
			fail("search %s: %ld %s", body, r.status, r.body);
		msr_it_resp_free(&r);
		free(body);
	}
}

/*
 * Lua for wrk: cycling through search bodies (qs), through exact lookups of
 * registered codes (lookup_codes, LOOKUP_CODES of them), or GET only.
 */
static void
write_wrk_script(const char *path, const struct bquery *qs, size_t nq)
{
	FILE *f = fopen(path, "w");
	size_t i, step;

	if (f == NULL)
		fail("cannot write %s", path);
	fputs("-- generated by bench_search\n", f);
	if (qs != NULL) {
		/* spread the bodies over every class */
		step = nq > HTTP_BODIES ? nq / HTTP_BODIES : 1;
		fputs("local bodies = {\n", f);
		for (i = 0; i < nq; i += step) {
			char *body = search_body(&qs[i], i);

			fprintf(f, "[==[%s]==],\n", body);
			free(body);
		}
		fprintf(f, "}\nlocal headers = { [\"Content-Type\"] = \"application/json\",\n"
		    "  [\"Authorization\"] = \"Bearer %s\" }\n"
		    "local i = 0\n"
		    "function init(args) i = math.random(#bodies) end\n"
		    "function request()\n"
		    "  i = i %% #bodies + 1\n"
		    "  return wrk.format(\"POST\", \"/v1/search\", headers, bodies[i])\n"
		    "end\n", inv_key);
	} else if (nq > 0) {
		fputs("local codes = {\n", f);
		for (i = 0; i < LOOKUP_CODES; i++)
			fprintf(f, "\"%s\",\n", lookup_codes[i]);
		fprintf(f, "}\nlocal headers = { [\"Authorization\"] = \"Bearer %s\" }\n"
		    "local i = 0\n"
		    "function init(args) i = math.random(#codes) end\n"
		    "function request()\n"
		    "  i = i %% #codes + 1\n"
		    "  return wrk.format(\"GET\", \"/v1/codes/\" .. codes[i] .."
		    " \"?case_number=BENCH-1&purpose=benchmark\", headers)\n"
		    "end\n", inv_key);
	}
	fputs(bench_wrk_done, f);
	fclose(f);
}

/* One line of wrk figures. */
static void
print_wrk(const char *what, const struct bench_wrk *w)
{
	printf("  %-24s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  (%ld requests)\n", what,
	    w->rps, w->p50_ms, w->p99_ms, w->requests);
}

static double
loadavg(void)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double l = -1.0;

	if (f != NULL) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1.0;
		fclose(f);
	}
	return l;
}

/*
 * Audited searches/s against audited exact lookups of registered codes on
 * the same daemon at the same concurrency, and /healthz for scale. Searches
 * and lookups alternate for HTTP_ROUNDS rounds (the machine is shared; one
 * burst from elsewhere should not decide the figure); each figure is its
 * median round. Any round that cannot be measured ends the run (exit 1).
 */
static void
bench_http(const struct bquery *qs, size_t nq, int secs, struct bench_wrk *search,
    struct bench_wrk *lookup, struct bench_wrk *health, double *ratio_m)
{
	char dir[] = "/tmp/bench_search.XXXXXX", s1[64], s2[64], s3[64], what[32];
	struct bench_wrk rs[HTTP_ROUNDS], rl[HTTP_ROUNDS];
	double ratio[HTTP_ROUNDS];
	int i;

	http_check(qs, nq);
	if (mkdtemp(dir) == NULL)
		fail("mkdtemp failed");
	snprintf(s1, sizeof(s1), "%s/search.lua", dir);
	snprintf(s2, sizeof(s2), "%s/healthz.lua", dir);
	snprintf(s3, sizeof(s3), "%s/lookup.lua", dir);
	write_wrk_script(s1, qs, nq);
	write_wrk_script(s2, NULL, 0);
	write_wrk_script(s3, NULL, 1);
	printf("\nHTTP (wrk -t2 -c%d, loopback, investigator key, synchronous_commit=on; "
	    "load average %.2f before)\n", HTTP_CONNS, loadavg());
	if (bench_wrk_run(it.port, "/healthz", s2, 2, HTTP_CONNS, secs, health) != 0)
		fail("GET /healthz could not be measured");
	print_wrk("GET /healthz", health);
	/* warm-up, not counted */
	if (bench_wrk_run(it.port, "/v1/search", s1, 2, HTTP_CONNS, 1, &rs[0]) != 0 ||
	    bench_wrk_run(it.port, "/v1/codes/", s3, 2, HTTP_CONNS, 1, &rl[0]) != 0)
		fail("audited searches or lookups could not be measured");
	for (i = 0; i < HTTP_ROUNDS; i++) {
		if (bench_wrk_run(it.port, "/v1/search", s1, 2, HTTP_CONNS, secs, &rs[i]) != 0)
			fail("audited searches could not be measured");
		snprintf(what, sizeof(what), "POST /v1/search #%d", i + 1);
		print_wrk(what, &rs[i]);
		if (bench_wrk_run(it.port, "/v1/codes/", s3, 2, HTTP_CONNS, secs, &rl[i]) != 0)
			fail("audited lookups could not be measured");
		snprintf(what, sizeof(what), "GET /v1/codes/{code} #%d", i + 1);
		print_wrk(what, &rl[i]);
	}
	for (i = 0; i < HTTP_ROUNDS; i++)
		ratio[i] = rs[i].rps / rl[i].rps;
	*ratio_m = bench_percentile(ratio, HTTP_ROUNDS, 50);
	*search = bench_wrk_median(rs, HTTP_ROUNDS);
	*lookup = bench_wrk_median(rl, HTTP_ROUNDS);
	printf("  audited searches (median of %d rounds) %.0f req/s; audited lookups %.0f "
	    "req/s; searches / lookups: median of round ratios %.2f\n", HTTP_ROUNDS,
	    search->rps, lookup->rps, *ratio_m);
	unlink(s1);
	unlink(s2);
	unlink(s3);
	rmdir(dir);
}

/* --- summary ---------------------------------------------------------------- */

static void
verdict(const char *target, const char *measured, int pass)
{
	printf("  %-48s %-22s %s\n", target, measured, pass ? "PASS" : "FAIL");
}

static int
summary(const struct size_result *st, const struct bench_wrk *search,
    const struct bench_wrk *lookup, double ratio_m)
{
	double speed[MAX_CLASSES], worst0 = 0, worst = 0, med, bpc;
	size_t c, ns = 0, slower = 0;
	char m[64];

	for (c = 0; c < st->nclasses; c++) {
		const struct class_stat *cs = &st->cls[c];

		if (cs->k == 0 && cs->idx_p99 > worst0)
			worst0 = cs->idx_p99;
		if (cs->idx_p99 > worst)
			worst = cs->idx_p99;
		if (cs->n_pg == 0)
			continue;
		speed[ns++] = cs->pg_p50 / cs->idx_p50;
		if (cs->idx_p50 >= cs->pg_p50 || cs->idx_p99 >= cs->pg_p99)
			slower++;
	}
	med = bench_percentile(speed, ns, 50);
	bpc = st->daemon_codes > 0 ? st->daemon_bytes / st->daemon_codes : 0;
	printf("\nSUMMARY at %zu codes%s\n", st->n,
	    st->n < 10000000 ? " (the targets are stated for 1e7)" : "");
	snprintf(m, sizeof(m), "%.0fx over %zu classes", med, ns);
	verdict("median speedup over pg_trgm (p50) >= 100x", m, ns > 0 && med >= 100);
	snprintf(m, sizeof(m), "%zu slower", slower);
	verdict("no class slower than pg_trgm (p50 and p99)", m, ns > 0 && slower == 0);
	snprintf(m, sizeof(m), "worst %.3f ms", worst0 * 1e3);
	verdict("index p99 < 1 ms, max_mismatches 0", m, worst0 < 1e-3);
	snprintf(m, sizeof(m), "worst %.3f ms", worst * 1e3);
	verdict("index p99 < 20 ms, every class", m, worst < 20e-3);
	snprintf(m, sizeof(m), "%.2f bytes/code", bpc);
	verdict("msregd index memory <= 32 bytes/code", m, bpc > 0 && bpc <= 32);
	snprintf(m, sizeof(m), "%.2f s", st->daemon_load_s);
	verdict("msregd index build from PostgreSQL < 15 s", m,
	    st->daemon_load_s >= 0 && st->daemon_load_s < 15);
	snprintf(m, sizeof(m), "%.0f/s", search->rps);
	verdict("audited searches over HTTP >= 2000/s", m, search->rps >= 2000);
	snprintf(m, sizeof(m), "%zu checked", st->checked);
	verdict("index answers == pg_trgm rows within k", m, st->disagree == 0);
	{
		char b[96];

		snprintf(m, sizeof(m), "%.0f/s (%.2fx)", search->rps, ratio_m);
		snprintf(b, sizeof(b), "audited lookups %.0f/s, same daemon, c%d", lookup->rps,
		    HTTP_CONNS);
		bench_goal("search-http", "audited searches >= 0.8x audited lookups", m, b,
		    ratio_m >= 0.8);
	}
	return st->disagree == 0 ? 0 : 1;
}

/* --- main ------------------------------------------------------------------ */

static void
find_dumper(const char *argv0)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		snprintf(self, sizeof(self), "%s", argv0);
	else
		self[n] = '\0';
	snprintf(dumper, sizeof(dumper), "%s/bench_index", dirname(self));
	if (access(dumper, X_OK) != 0)
		fail("%s not found (make build/bench/bench_index)", dumper);
}

int
main(int argc, char **argv)
{
	static const struct scale full[] = {
		{ 1000000, 30, 10.0 },
		{ 10000000, 30, 20.0 },
	};
	static const struct scale small[] = { { 100000, 10, 3.0 } };
	const char *scale = getenv("BENCH_SCALE");
	int is_small = scale != NULL && strcmp(scale, "small") == 0;
	const struct scale *sizes = is_small ? small : full;
	size_t nsizes = is_small ? 1 : 2, i, nq = 0;
	struct size_result *st = calloc(nsizes, sizeof(*st));
	struct bench_wrk search, lookup, health;
	double ratio_m = 0;
	struct bquery *qs = NULL;
	int ret;

	(void)argc;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (st == NULL)
		return 1;
	find_dumper(argv[0]);
	msr_it_setup(&it, "bench_search", "[http]\nthreads = 64\n[database]\n"
	    "pool_size = 24\n" BENCH_INI);
	if (msr_it_sql(&it, "CREATE EXTENSION IF NOT EXISTS pg_trgm") != 0)
		fail("cannot create extension pg_trgm");
	msr_it_client(&it, "investigator", "bench-inv", "CA0190000", inv_key,
	    sizeof(inv_key));
	printf("search bench: pg_trgm GIN regex vs msregd's index; seed %d, up to %d "
	    "queries per class in the index\n", SEED, IDX_PER_CLASS);
	for (i = 0; i < nsizes; i++) {
		queries_free(qs, nq);
		run_size(&sizes[i], &st[i], &qs, &nq);
	}
	bench_http(qs, nq, is_small ? 2 : 8, &search, &lookup, &health, &ratio_m);
	ret = summary(&st[nsizes - 1], &search, &lookup, ratio_m);
	for (i = 0; i + 1 < nsizes; i++)
		ret |= st[i].disagree != 0;
	queries_free(qs, nq);
	free(st);
	msr_it_teardown(&it);
	return ret;
}
