/*
 * it_scale.c — several msregd on one PostgreSQL primary, under concurrent
 * mixed load on all of them.
 *
 * Two instances (A, B) on different ports share one database and one audit
 * signer key. Worker threads send a seeded mix of registrations, first sales,
 * exact lookups and partial searches for a bounded time (MSR_SCALE_SECONDS per
 * phase, default 10): first through A alone (2T threads), then through A and B
 * (T threads each, the same total concurrency), so the two figures compare
 * instances, not client counts. Every response's Audit-Index is recorded —
 * setup requests included — and a sampler thread reads the signed checkpoint
 * alternately from A and B. Afterwards:
 *  - every index in [0, size of the final checkpoint) was handed out exactly
 *    once (no duplicate, none missing) and `msreg audit verify --db` passes;
 *  - the sampled checkpoints are one chain: sizes never shrink, and each
 *    consecutive pair is proven consistent by /v1/audit/proof/consistency
 *    (verified locally, RFC 9162);
 *  - no response was a 5xx;
 *  - propagation: a prober registers a code through A and polls search on B
 *    until it is found (and checks lookup on B at once); p50/p99 printed, quiet
 *    and under the two-instance load.
 * A second test case: per-key rate limits are per instance (documented in
 * README "Scaling out"): with N instances a key gets at most N x (burst +
 * rate x t), and more than one instance's share.
 * Throughput figures are printed; they are not asserted (shared 2-core machine).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "it_ops.h"
#include "msreg/common.h"
#include "msreg/merkle.h"
#include "msreg/note.h"

#define THREADS     4            /* per instance in the two-instance phase */
#define MAX_THREADS 16           /* MSR_SCALE_THREADS may raise it to this */
#define PRELOAD     200
#define MAX_INDICES (1 << 21)
#define MAX_SAMPLES 4096
#define MAX_PROBES  4096

static struct msr_it a, b;
static char mkey[128], dkey[128], ikey[128];
static char preload[PRELOAD][13];
static struct msr_note_verifier vkey;

/* every Audit-Index any response carried */
static pthread_mutex_t idx_lock = PTHREAD_MUTEX_INITIALIZER;
static long *indices;
static size_t nindices;
static long n5xx;

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static double
now_s(void)
{
	return (double)msr_now_ns() / 1e9;
}

static void
record(const struct msr_it_resp *r)
{
	pthread_mutex_lock(&idx_lock);
	if (r->status >= 500)
		n5xx++;
	if (r->audit_index >= 0 && nindices < MAX_INDICES)
		indices[nindices++] = r->audit_index;
	pthread_mutex_unlock(&idx_lock);
}

/* A request whose Audit-Index is recorded; returns the status (-1: none). */
static long
req(struct msr_it *inst, const char *method, const char *path, const char *key,
    const char *body, struct msr_it_resp *keep)
{
	struct msr_it_resp r;
	long st;

	if (msr_it_request(inst, method, path, key, NULL, body, &r) != 0) {
		msr_it_resp_free(&r);
		return -1;
	}
	record(&r);
	st = r.status;
	if (keep != NULL)
		*keep = r;
	else
		msr_it_resp_free(&r);
	return st;
}

static void
client(const char *role, const char *name, const char *org, char *out, size_t len)
{
	struct msr_it_resp r;
	char body[256];

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"role\":\"%s\"%s%s%s}", name, role,
	    org ? ",\"org\":\"" : "", org ? org : "", org ? "\"" : "");
	ck_assert_int_eq(req(&a, "POST", "/v1/clients", a.admin_key, body, &r), 201);
	snprintf(out, len, "%s", json_string_value(json_object_get(r.json, "api_key")));
	msr_it_resp_free(&r);
}

/* ---- the operations, with recorded indices ---- */

static long
op_register(struct msr_it *inst, const char *code, const char *serial)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"model\":\"P320\",\"serial\":\"%.60s\",\"type\":\"pistol\","
	    "\"caliber\":\"9mm\",\"manufactured_on\":\"2026-01-15\",\"codes\":[{\"code\":\"%.60s\","
	    "\"component\":\"firing_pin\",\"scheme\":\"free\"}]}", serial, code);
	return req(inst, "POST", "/v1/firearms", mkey, body, NULL);
}

static long
op_sale(struct msr_it *inst, const char *serial)
{
	char body[384];

	snprintf(body, sizeof(body), "{\"manufacturer\":\"acme\",\"serial\":\"%s\","
	    "\"sold_on\":\"2026-11-02\",\"transaction_ref\":\"T-%.60s\",\"state\":\"CA\"}",
	    serial, serial);
	return req(inst, "POST", "/v1/sales", dkey, body, NULL);
}

static long
op_lookup(struct msr_it *inst, const char *code)
{
	char path[160];

	snprintf(path, sizeof(path), "/v1/codes/%.60s?case_number=SCALE-1&purpose=load", code);
	return req(inst, "GET", path, ikey, NULL, NULL);
}

/* Search for reading; *total gets the answer's total (-1 unless 200). */
static long
op_search(struct msr_it *inst, const char *reading, long *total)
{
	struct msr_it_resp r;
	char body[256];
	long st;

	snprintf(body, sizeof(body), "{\"case_number\":\"SCALE-1\",\"purpose\":\"load\","
	    "\"readings\":[\"%.60s\"],\"max_mismatches\":0}", reading);
	st = req(inst, "POST", "/v1/search", ikey, body, &r);
	if (st >= 0) {
		if (total != NULL)
			*total = st == 200 ?
			    (long)json_integer_value(json_object_get(r.json, "total")) : -1;
		msr_it_resp_free(&r);
	}
	return st;
}

/* ---- mixed load ---- */

struct worker {
	pthread_t      t;
	struct msr_it *inst;
	int            id, phase;
	double         until;
	uint64_t       rng;
	long           ops[4], fail;      /* register, sale, lookup, search */
	char         (*mine)[13];         /* codes this worker registered */
	int            nmine, nsold;
};

static int lookups_only;

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char code[13], serial[32], reading[13];

	w->mine = calloc(100000, sizeof(*w->mine));
	while (now_s() < w->until && w->mine != NULL) {
		/* MSR_SCALE_MIX=lookup: exact lookups only (dice 35..74) */
		unsigned dice = lookups_only ? 35 + msr_test_rand_below(&w->rng, 40) :
		    msr_test_rand_below(&w->rng, 100);
		long st, total = -1;

		if (dice < 25 && w->nmine < 100000) {
			ops_free_code(&w->rng, code);
			snprintf(serial, sizeof(serial), "L%d-%d-%d", w->phase, w->id, w->nmine);
			st = op_register(w->inst, code, serial);
			if (st == 201)
				memcpy(w->mine[w->nmine++], code, 13);
			w->ops[0]++;
			w->fail += st != 201;
		} else if (dice < 35 && w->nsold < w->nmine) {
			snprintf(serial, sizeof(serial), "L%d-%d-%d", w->phase, w->id, w->nsold++);
			st = op_sale(w->inst, serial);
			w->ops[1]++;
			w->fail += st != 201;
		} else if (dice < 75) {
			const char *c = w->nmine > 0 && dice % 2 ?
			    w->mine[msr_test_rand_below(&w->rng, (unsigned)w->nmine)] :
			    preload[msr_test_rand_below(&w->rng, PRELOAD)];
			st = op_lookup(w->inst, c);
			w->ops[2]++;
			w->fail += st != 200;
		} else {
			memcpy(reading, preload[msr_test_rand_below(&w->rng, PRELOAD)], 13);
			reading[msr_test_rand_below(&w->rng, 12)] = '?';
			st = op_search(w->inst, reading, &total);
			w->ops[3]++;
			w->fail += st != 200 || total < 1;
		}
	}
	free(w->mine);
	w->mine = NULL;
	return NULL;
}

/* Run nthreads workers spread over insts for seconds; returns requests/s. */
static double
run_load(struct msr_it **insts, int ninst, int nthreads, int phase, double seconds,
    long *fails)
{
	static struct worker w[2 * MAX_THREADS];
	double t0 = now_s(), t1;
	long total = 0, per[4] = { 0, 0, 0, 0 };

	*fails = 0;
	for (int i = 0; i < nthreads; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].inst = insts[i % ninst];
		w[i].id = i;
		w[i].phase = phase;
		w[i].until = t0 + seconds;
		w[i].rng = 0x5ca1e000u + (uint64_t)(phase * 100 + i);
		pthread_create(&w[i].t, NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].t, NULL);
		for (int k = 0; k < 4; k++) {
			total += w[i].ops[k];
			per[k] += w[i].ops[k];
		}
		*fails += w[i].fail;
	}
	t1 = now_s();
	printf("scale: phase %d, %d instance(s), %d threads, %.1f s: %ld requests "
	    "(register %ld, sale %ld, lookup %ld, search %ld), %ld unexpected\n",
	    phase, ninst, nthreads, t1 - t0, total, per[0], per[1], per[2], per[3], *fails);
	return (double)total / (t1 - t0);
}

/* Audit batches so far: "count entries" from audit_tree_state (one row per batch). */
static void
batches(long *count, long *entries)
{
	char *v = msr_it_query(a.url_super,
	    "SELECT count(*) || ' ' || coalesce(max(tree_size), 0) FROM audit_tree_state");

	*count = *entries = 0;
	if (v != NULL && sscanf(v, "%ld %ld", count, entries) != 2)
		*count = *entries = 0;
	free(v);
}

static const char *
loadavg(void)
{
	static char buf[64];
	FILE *f = fopen("/proc/loadavg", "r");

	snprintf(buf, sizeof(buf), "?");
	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) == NULL)
			snprintf(buf, sizeof(buf), "?");
		fclose(f);
	}
	{
		char *p = buf;               /* the three averages only */
		for (int k = 0; k < 3 && p != NULL; k++)
			p = strchr(p + 1, ' ');
		if (p != NULL)
			*p = '\0';
	}
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* ---- checkpoint sampler ---- */

struct sample {
	uint64_t size;
	uint8_t  root[MSR_MERKLE_HASH_LEN];
};
static struct sample samples[MAX_SAMPLES];
static int nsamples;
static volatile int sampling;

static int
read_checkpoint(struct msr_it *inst, struct sample *out)
{
	struct msr_it_resp r;
	struct msr_note_checkpoint cp;
	size_t tlen;
	const char *why;
	int ok = 0;

	if (msr_it_request(inst, "GET", "/v1/audit/checkpoint", NULL, NULL, NULL, &r) == 0 &&
	    r.status == 200 && msr_note_open(&vkey, r.body, r.len, &tlen, &why) == 0 &&
	    msr_note_checkpoint_parse(&cp, r.body, tlen) == 0) {
		out->size = cp.size;
		memcpy(out->root, cp.root, sizeof(out->root));
		ok = 1;
	}
	msr_it_resp_free(&r);
	return ok;
}

static void *
sampler_main(void *arg)
{
	(void)arg;
	for (int i = 0; sampling && nsamples < MAX_SAMPLES; i++) {
		if (read_checkpoint(i % 2 ? &b : &a, &samples[nsamples]))
			nsamples++;
		sleep_ms(100);
	}
	return NULL;
}

static void
check_chain(void)
{
	static uint8_t proof[MSR_MERKLE_PROOF_MAX][MSR_MERKLE_HASH_LEN];
	int proven = 0;

	ck_assert_int_ge(nsamples, 2);
	for (int i = 1; i < nsamples; i++) {
		const struct sample *p = &samples[i - 1], *q = &samples[i];
		struct msr_it_resp r;
		char path[128];
		size_t n = 0, len;
		json_t *h;

		ck_assert_msg(q->size >= p->size, "checkpoint %d shrank: %llu after %llu", i,
		    (unsigned long long)q->size, (unsigned long long)p->size);
		if (q->size == p->size) {
			ck_assert_mem_eq(q->root, p->root, MSR_MERKLE_HASH_LEN);
			continue;
		}
		snprintf(path, sizeof(path), "/v1/audit/proof/consistency?first=%llu&second=%llu",
		    (unsigned long long)p->size, (unsigned long long)q->size);
		ck_assert_int_eq(msr_it_request(i % 2 ? &a : &b, "GET", path, NULL, NULL, NULL, &r),
		    0);
		ck_assert_msg(r.status == 200, "%s: %ld %s", path, r.status, r.body);
		h = json_object_get(r.json, "hashes");
		for (size_t k = 0; k < json_array_size(h) && k < MSR_MERKLE_PROOF_MAX; k++) {
			const char *s = json_string_value(json_array_get(h, k));
			ck_assert_int_eq(sodium_base642bin(proof[k], MSR_MERKLE_HASH_LEN, s, strlen(s),
			    NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
			n++;
		}
		ck_assert_msg(p->size == 0 || msr_merkle_verify_consistency(p->size, q->size,
		    (const uint8_t (*)[MSR_MERKLE_HASH_LEN])proof, n, p->root, q->root) == 0,
		    "checkpoints %llu -> %llu are not consistent",
		    (unsigned long long)p->size, (unsigned long long)q->size);
		msr_it_resp_free(&r);
		proven++;
	}
	printf("scale: %d checkpoints sampled from both instances, sizes %llu..%llu, "
	    "%d consecutive pairs proven consistent\n", nsamples,
	    (unsigned long long)samples[0].size, (unsigned long long)samples[nsamples - 1].size,
	    proven);
}

/* ---- propagation prober ---- */

static double probes[MAX_PROBES];
static int nprobes;
static volatile int probing, stop_probing;
static long probe_lookup_misses, probe_failures;
/* a propagation slower than this is a failure; generous: a loaded 2-core machine */
#define PROBE_DEADLINE_S 60

static int
cmp_double(const void *x, const void *y)
{
	double p = *(const double *)x, q = *(const double *)y;

	return p < q ? -1 : p > q;
}

static double
pct(double *v, int n, double p)
{
	int k;

	if (n == 0)
		return -1;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	k = (int)(p * (n - 1) + 0.5);
	return v[k];
}

/* The median (the mean of the middle two for an even count); sorts v. */
static double
median(double *v, int n)
{
	if (n == 0)
		return -1;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One probe: register through A, poll search on B. Delay in ms, -1 on failure. */
static double
probe_once(uint64_t *rng, int n)
{
	char code[13], serial[32];
	double t0, t;
	long total = -1;

	ops_free_code(rng, code);
	snprintf(serial, sizeof(serial), "P%d", n);
	if (op_register(&a, code, serial) != 201)
		return -1;
	t0 = now_s();
	if (op_lookup(&b, code) != 200)      /* same database: at once */
		__atomic_add_fetch(&probe_lookup_misses, 1, __ATOMIC_RELAXED);
	for (;;) {
		if (op_search(&b, code, &total) == 200 && total == 1)
			return (now_s() - t0) * 1000.0;
		t = now_s();
		if (t - t0 > PROBE_DEADLINE_S)
			return -1;
		sleep_ms(2);
	}
}

static void *
prober_main(void *arg)
{
	static uint64_t rng = 20261125;

	/* at least one probe per load phase, however slow the machine: the count
	 * of probes is not asserted, their success is */
	(void)arg;
	do {
		double d = probe_once(&rng, 100000 + nprobes);
		if (d < 0) {
			probe_failures++;
			break;
		}
		probes[nprobes++] = d;
		sleep_ms(20);
	} while (probing && !stop_probing && nprobes < MAX_PROBES);
	return NULL;
}

static void
setup(void)
{
	char serial[32], path[64];
	uint64_t rng = 1125;

	indices = calloc(MAX_INDICES, sizeof(*indices));
	ck_assert_ptr_nonnull(indices);
	/* the harness turns [rate] off: the throughput phases measure instances,
	 * not refusals (budgets: see SCALE_BUDGET_INI below) */
	msr_it_setup(&a, "scale", "[http]\nthreads = 32\n");
	msr_it_instance(&a, &b, "b", NULL);
	ck_assert_int_eq(msr_it_wait_ready(&b, 60000), 0);
	ck_assert_int_eq(msr_note_verifier_parse(&vkey, a.vkey, strlen(a.vkey)), 0);
	ck_assert_int_eq(req(&a, "POST", "/v1/manufacturers", a.admin_key,
	    "{\"id\":\"acme\",\"name\":\"Acme Arms\"}", NULL), 201);
	client("manufacturer", "acme line", "acme", mkey, sizeof(mkey));
	client("dealer", "shop", "1-23-456-07-6B-12345", dkey, sizeof(dkey));
	client("investigator", "lab", "CA0194200", ikey, sizeof(ikey));
	for (int i = 0; i < PRELOAD; i++) {
		ops_free_code(&rng, preload[i]);
		snprintf(serial, sizeof(serial), "PRE%04d", i);
		ck_assert_int_eq(op_register(i % 2 ? &b : &a, preload[i], serial), 201);
	}
	/* both indexes hold the preload before the load starts */
	for (int i = 0; i < 200; i++) {
		long ta = -1, tb = -1;
		snprintf(path, sizeof(path), "%s", preload[PRELOAD - 1]);
		op_search(&a, path, &ta);
		op_search(&b, path, &tb);
		if (ta == 1 && tb == 1)
			break;
		sleep_ms(50);
	}
}

static void
teardown(void)
{
	msr_it_teardown(&b);
	msr_it_teardown(&a);
	free(indices);
}

static int
cmp_long(const void *x, const void *y)
{
	long p = *(const long *)x, q = *(const long *)y;

	return p < q ? -1 : p > q;
}

START_TEST(mixed_load_on_two_instances)
{
	struct msr_it *one[1] = { &a }, *two[2] = { &a, &b };
	const char *env = getenv("MSR_SCALE_SECONDS"), *renv = getenv("MSR_SCALE_ROUNDS");
	double seconds = env ? atof(env) : 5, tp1[8], tp2[8], ratio[8], quiet[64];
	int rounds = renv ? atoi(renv) : 2;
	int threads = getenv("MSR_SCALE_THREADS") ? atoi(getenv("MSR_SCALE_THREADS")) : THREADS;
	pthread_t sampler, prober;
	struct sample last;
	long fails = 0, f, bc[3], be[3];
	int nquiet = 0;
	char *out = NULL, path[600];
	uint64_t rng = 77;

	ck_assert(rounds >= 1 && rounds <= 8);
	ck_assert(threads >= 1 && threads <= MAX_THREADS);
	lookups_only = getenv("MSR_SCALE_MIX") != NULL && strcmp(getenv("MSR_SCALE_MIX"), "lookup") == 0;
	/* propagation, quiet */
	for (int i = 0; i < 40; i++) {
		double d = probe_once(&rng, i);
		ck_assert_msg(d >= 0, "a code registered through A never became searchable on B");
		quiet[nquiet++] = d;
	}

	sampling = 1;
	pthread_create(&sampler, NULL, sampler_main, NULL);
	probing = 1;
	/* alternate one / two instances so drifting machine load hits both alike */
	for (int round = 0; round < rounds; round++) {
		batches(&bc[0], &be[0]);
		tp1[round] = run_load(one, 1, 2 * threads, 1 + 2 * round, seconds, &f);
		fails += f;
		batches(&bc[1], &be[1]);
		pthread_create(&prober, NULL, prober_main, NULL);
		tp2[round] = run_load(two, 2, 2 * threads, 2 + 2 * round, seconds, &f);
		fails += f;
		stop_probing = 1;
		pthread_join(prober, NULL);
		stop_probing = 0;
		batches(&bc[2], &be[2]);
		printf("scale: round %d: audit group commits: one instance %.0f batches/s, %.2f"
		    " entries/batch; two instances %.0f batches/s, %.2f entries/batch\n", round + 1,
		    (double)(bc[1] - bc[0]) / seconds,
		    (double)(be[1] - be[0]) / (double)(bc[1] - bc[0] ? bc[1] - bc[0] : 1),
		    (double)(bc[2] - bc[1]) / seconds,
		    (double)(be[2] - be[1]) / (double)(bc[2] - bc[1] ? bc[2] - bc[1] : 1));
		ratio[round] = tp2[round] / tp1[round];
	}
	probing = 0;
	sampling = 0;
	pthread_join(sampler, NULL);
	printf("scale: throughput, %s, median of %d rounds: one instance %.0f req/s, two"
	    " instances %.0f req/s, ratio %.2fx (%d client threads both ways; 2-core shared"
	    " machine, load average %s)\n", lookups_only ? "lookups only" : "mixed load", rounds, median(tp1, rounds), median(tp2, rounds),
	    median(ratio, rounds), 2 * threads, loadavg());
	ck_assert(read_checkpoint(&b, &samples[nsamples]));
	last = samples[nsamples++];

	printf("scale: propagation A->B (register 201 -> found by search on B): quiet p50 %.1f ms"
	    " p99 %.1f ms (n=%d); under load p50 %.1f ms p99 %.1f ms (n=%d); lookups on B"
	    " missing right after the 201: %ld\n",
	    pct(quiet, nquiet, 0.5), pct(quiet, nquiet, 0.99), nquiet,
	    pct(probes, nprobes, 0.5), pct(probes, nprobes, 0.99), nprobes, probe_lookup_misses);
	ck_assert_int_eq(probe_lookup_misses, 0);
	ck_assert_msg(probe_failures == 0, "a code registered through A under load was not"
	    " searchable on B within %d s", PROBE_DEADLINE_S);
	ck_assert_int_ge(nprobes, rounds);
	ck_assert_int_eq(n5xx, 0);
	ck_assert_msg(fails == 0, "unexpected answers: %ld", fails);

	/* one log: every index in [0, size) handed out exactly once */
	qsort(indices, nindices, sizeof(*indices), cmp_long);
	for (size_t i = 0; i < nindices; i++)
		ck_assert_msg(indices[i] == (long)i, "audit index %zu: got %ld (%s)", i, indices[i],
		    i > 0 && indices[i] == indices[i - 1] ? "duplicate" : "missing");
	printf("scale: %zu audited responses carried indices 0..%zu, each once; final"
	    " checkpoint size %llu\n", nindices, nindices - 1, (unsigned long long)last.size);
	ck_assert_uint_ge(last.size, nindices);
	check_chain();

	snprintf(path, sizeof(path), "%s/msreg", a.bin);
	{
		char *argv[] = { path, "--config", a.config, "audit", "verify", "--db", NULL };
		int rc = msr_it_run(argv, &out);
		ck_assert_msg(rc == 0, "audit verify --db: %d %s", rc, out);
	}
	free(out);
}
END_TEST

/*
 * Per-key rate limits are per instance: each msregd keeps its own buckets
 * (README "Scaling out"). A key hammering two instances for t seconds gets at
 * most 2 x (burst + rate x t) answers, and more than one instance would give.
 *
 * Nothing here depends on how fast the machine is: each hammer runs until its
 * instance has refused it a few times (bounded by a deadline), so each
 * instance hands out its whole burst whatever the request latency; the rate is
 * low enough that one shared bucket (burst + rate x t) stays below the two
 * bursts unless a request took more than a second on average.
 */
struct hammer {
	pthread_t      t;
	struct msr_it *inst;
	double         until, deadline, elapsed;
	long           ok, limited, other;
};

#define HAMMER_REFUSALS 3

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	double t0 = now_s(), t;

	while ((t = now_s()) < h->deadline && (t < h->until || h->limited < HAMMER_REFUSALS)) {
		long st = ops_lookup(h->inst, ikey, preload[0], NULL);
		if (st == 200)
			h->ok++;
		else if (st == 429)
			h->limited++;
		else
			h->other++;
	}
	h->elapsed = now_s() - t0;
	return NULL;
}

START_TEST(rate_limits_per_instance)
{
	static struct msr_it ra, rb;
	static struct hammer h[2];
	const double rate = 0.5, burst = 20, secs = 1, deadline = 120;
	double t0, elapsed;
	char ini[96];
	long ok;

	snprintf(ini, sizeof(ini), "[rate]\nenabled = true\nper_second = %g\nburst = %g\n", rate, burst);
	msr_it_instance(&a, &ra, "ra", ini);
	msr_it_instance(&a, &rb, "rb", ini);
	ck_assert_int_eq(msr_it_wait_ready(&ra, 60000), 0);
	ck_assert_int_eq(msr_it_wait_ready(&rb, 60000), 0);
	t0 = now_s();
	for (int i = 0; i < 2; i++) {
		h[i].inst = i ? &rb : &ra;
		h[i].until = t0 + secs;
		h[i].deadline = t0 + deadline;
		pthread_create(&h[i].t, NULL, hammer_main, &h[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(h[i].t, NULL);
	elapsed = now_s() - t0;
	ok = h[0].ok + h[1].ok;
	printf("scale: one key, rate %g/s burst %g on each of 2 instances, %.1f s: %ld + %ld"
	    " answered, %ld + %ld refused (429), %ld + %ld other; bound 2 x %.1f\n", rate, burst,
	    elapsed, h[0].ok, h[1].ok, h[0].limited, h[1].limited, h[0].other, h[1].other,
	    burst + rate * elapsed);
	msr_it_teardown(&rb);
	msr_it_teardown(&ra);
	ck_assert_msg(h[0].limited > 0 && h[1].limited > 0, "an instance never refused the key"
	    " in %.0f s", deadline);
	ck_assert_msg(h[0].other == 0 && h[1].other == 0, "answers other than 200/429");
	/* each instance: at most its own bucket over the time its hammer ran */
	for (int i = 0; i < 2; i++)
		ck_assert_msg(h[i].ok <= (long)(burst + rate * h[i].elapsed) + 1,
		    "instance %d answered %ld in %.1f s", i, h[i].ok, h[i].elapsed);
	ck_assert(ok <= (long)(2 * (burst + rate * elapsed)) + 2);
	/* ... and together more than one shared bucket could have given */
	ck_assert_msg(ok > (long)(burst + rate * elapsed), "%ld answers in %.1f s: one bucket"
	    " for both instances?", ok, elapsed);
}
END_TEST

/*
 * TODO(lead): disclosure budgets live in PostgreSQL (issue 8, "budget"), so
 * they are shared by construction. Once main has them, set SCALE_BUDGET_INI
 * to a config that gives the investigator a small budget (with [rate] off) and
 * this test checks that exhausting it through A refuses the next lookup
 * through B with 429 disclosure_budget_exhausted.
 */
#define SCALE_BUDGET_INI "[budget]\nenabled = true\nkey_24h = 20\nkey_30d = 100\n"
#ifdef SCALE_BUDGET_INI
START_TEST(budget_shared_across_instances)
{
	static struct msr_it ba, bb;
	long st = 0;
	int i;

	msr_it_instance(&a, &ba, "ba", SCALE_BUDGET_INI);
	msr_it_instance(&a, &bb, "bb", SCALE_BUDGET_INI);
	for (i = 0; i < 10000; i++) {
		st = ops_lookup(&ba, ikey, preload[i % PRELOAD], NULL);
		if (st == 429)
			break;
	}
	ck_assert_int_eq(st, 429);
	{
		struct msr_it_resp r;
		char p[160];
		/* the firearm A refused: one already disclosed would not count again */
		snprintf(p, sizeof(p), "/v1/codes/%s?case_number=X&purpose=y", preload[i % PRELOAD]);
		ck_assert_int_eq(msr_it_request(&bb, "GET", p, ikey, NULL, NULL, &r), 0);
		ck_assert_int_eq(r.status, 429);
		ck_assert_str_eq(msr_it_error_code(&r), "disclosure_budget_exhausted");
		msr_it_resp_free(&r);
	}
	msr_it_teardown(&bb);
	msr_it_teardown(&ba);
}
END_TEST
#endif

int
main(void)
{
	Suite *s = suite_create("scale");
	TCase *tc = tcase_create("scale");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, mixed_load_on_two_instances);
	tcase_add_test(tc, rate_limits_per_instance);
#ifdef SCALE_BUDGET_INI
	tcase_add_test(tc, budget_shared_across_instances);
#endif
	suite_add_tcase(s, tc);
	return msr_test_run(s, 1);
}
