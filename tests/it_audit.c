/*
 * it_audit.c — integration tests of the audit log against a real msregd and
 * PostgreSQL: every Audit-Index is covered by the checkpoint and its receipt
 * verifies offline; entries, inclusion and consistency proofs match a local
 * RFC 9162 recomputation; role rules on proofs and receipts; the verifier in
 * both modes; tampering by a superuser is named by index and makes a restarted
 * msregd refuse to sequence; `audit verify --db` by default and with --full
 * (which damage each one reports); and kill -9 mid-traffic loses no answered
 * entry.
 */
#include <arpa/inet.h>
#include <check.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "msreg/audit_verify.h"
#include "msreg/merkle.h"
#include "msreg/note.h"

#define HLEN MSR_MERKLE_HASH_LEN

static struct msr_it it;
static char auditor[128], investigator[128], investigator2[128];
static struct msr_note_verifier vkey;

static void
setup_common(const char *name)
{
	ck_assert_int_ge(sodium_init(), 0);
	msr_it_setup(&it, name, "[audit]\nverify_on_start = full\nbatch_wait_us = 500\n");
	ck_assert_int_eq(msr_note_verifier_parse(&vkey, it.vkey, strlen(it.vkey)), 0);
	msr_it_client(&it, "auditor", "aud", NULL, auditor, sizeof(auditor));
	msr_it_client(&it, "investigator", "inv", "CA0190000", investigator, sizeof(investigator));
	msr_it_client(&it, "investigator", "inv2", "NY0300000", investigator2,
	    sizeof(investigator2));
}

static void
setup(void)
{
	setup_common("audit");
}

static void
setup_tamper(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	msr_it_setup(&it, "audit_tamper", "[audit]\nverify_on_start = full\nwait_ms = 1000\n");
	ck_assert_int_eq(msr_note_verifier_parse(&vkey, it.vkey, strlen(it.vkey)), 0);
	msr_it_client(&it, "auditor", "aud", NULL, auditor, sizeof(auditor));
}

static void
setup_modes(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	msr_it_setup(&it, "audit_modes", "[audit]\nverify_on_start = tail\n");
	ck_assert_int_eq(msr_note_verifier_parse(&vkey, it.vkey, strlen(it.vkey)), 0);
	msr_it_client(&it, "auditor", "aud", NULL, auditor, sizeof(auditor));
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

/* ---- helpers ---- */

/* Create manufacturer `id` as admin; returns its Audit-Index (or -1). */
static long
make_manufacturer(const char *id, long *status)
{
	struct msr_it_resp r;
	char body[160];
	long idx = -1;

	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"name\":\"Maker %s\"}", id, id);
	if (msr_it_request(&it, "POST", "/v1/manufacturers", it.admin_key, NULL, body, &r) != 0) {
		msr_it_resp_free(&r);
		*status = -1;
		return -1;
	}
	*status = r.status;
	idx = r.audit_index;
	msr_it_resp_free(&r);
	return idx;
}

static long
search(const char *key)
{
	struct msr_it_resp r;
	long idx;

	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", key, NULL,
	    "{\"case_number\":\"HPD-2026-1\",\"purpose\":\"test\",\"readings\":[\"0H5K?4M3\"]}",
	    &r), 0);
	ck_assert_msg(r.audit_index >= 0, "search not audited: %ld %s", r.status, r.body);
	idx = r.audit_index;
	msr_it_resp_free(&r);
	return idx;
}

/* The current checkpoint, verified. */
static void
checkpoint(struct msr_note_checkpoint *cp, char **note)
{
	struct msr_it_resp r;

	ck_assert_int_eq(msr_it_request(&it, "GET", "/v1/audit/checkpoint", NULL, NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(msr_audit_open_checkpoint(&vkey, r.body, cp), 0);
	if (note != NULL)
		*note = strdup(r.body);
	msr_it_resp_free(&r);
}

static int
b64(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	return sodium_base642bin(out, cap, s, strlen(s), NULL, len, NULL,
	    sodium_base64_VARIANT_ORIGINAL);
}

/* All entries [0, n) via the API, as leaf hashes; raw leaves optional. */
static uint8_t (*fetch_leaves(uint64_t n, json_t **all))[HLEN]
{
	uint8_t (*h)[HLEN] = calloc(n + 1, HLEN);
	static uint8_t leaf[1 << 16];
	uint64_t i = 0;

	if (all != NULL)
		*all = json_array();
	while (i < n) {
		struct msr_it_resp r;
		char path[96];
		json_t *e;
		size_t k;

		snprintf(path, sizeof(path), "/v1/audit/entries?start=%llu&limit=1000",
		    (unsigned long long)i);
		ck_assert_int_eq(msr_it_request(&it, "GET", path, auditor, NULL, NULL, &r), 0);
		ck_assert_int_eq(r.status, 200);
		json_array_foreach(json_object_get(r.json, "entries"), k, e) {
			size_t len;

			if (i >= n)
				break;
			ck_assert_int_eq(json_integer_value(json_object_get(e, "index")), (json_int_t)i);
			ck_assert_int_eq(b64(json_string_value(json_object_get(e, "leaf")), leaf,
			    sizeof(leaf), &len), 0);
			msr_merkle_leaf_hash(leaf, len, h[i]);
			if (all != NULL)
				json_array_append(*all, e);
			i++;
		}
		msr_it_resp_free(&r);
	}
	return h;
}

/* A getter over in-memory leaf hashes: node (level, index) by recursion. */
struct leaves {
	uint8_t (*h)[HLEN];
};

static int
leaves_get(void *ctx, unsigned level, uint64_t index, uint8_t out[HLEN])
{
	struct leaves *l = ctx;
	uint8_t a[HLEN], b[HLEN];

	if (level == 0) {
		memcpy(out, l->h[index], HLEN);
		return 0;
	}
	leaves_get(ctx, level - 1, 2 * index, a);
	leaves_get(ctx, level - 1, 2 * index + 1, b);
	msr_merkle_node_hash(a, b, out);
	return 0;
}

static void
root_at(uint8_t (*h)[HLEN], uint64_t size, uint8_t out[HLEN])
{
	struct leaves l = { h };

	ck_assert_int_eq(msr_merkle_root(size, leaves_get, &l, out), 0);
}

/* Parse a JSON array of base64 hashes. */
static size_t
hashes(json_t *a, uint8_t (*out)[HLEN])
{
	size_t i, len;
	json_t *v;

	json_array_foreach(a, i, v) {
		ck_assert_int_eq(b64(json_string_value(v), out[i], HLEN, &len), 0);
		ck_assert_uint_eq(len, HLEN);
	}
	return json_array_size(a);
}

static int
run_cli(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
    const char *a5, const char *a6, const char *a7, const char *a8)
{
	char path[600];
	char *argv[10] = { path, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5,
	    (char *)a6, (char *)a7, (char *)a8, NULL };

	snprintf(path, sizeof(path), "%s/msreg", it.bin);
	return msr_it_run(argv, out);
}

static int
verify_db_cli(char **out)
{
	return run_cli(out, "--config", it.config, "audit", "verify", "--db", NULL, NULL, NULL);
}

static int
verify_url_cli(char **out)
{
	char url[64], key[160];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	snprintf(key, sizeof(key), "%s", auditor);
	return run_cli(out, "audit", "verify", "--url", url, "--key", key, "--vkey", it.vkey);
}

static long
get_status(const char *path, const char *key, const char **code, struct msr_it_resp *keep)
{
	static char last[64];
	struct msr_it_resp r;
	long st;

	ck_assert_int_eq(msr_it_request(&it, "GET", path, key, NULL, NULL, &r), 0);
	st = r.status;
	snprintf(last, sizeof(last), "%s", msr_it_error_code(&r));
	if (code != NULL)
		*code = last;
	if (keep != NULL)
		*keep = r;
	else
		msr_it_resp_free(&r);
	return st;
}

/* ---- tests ---- */

START_TEST(receipts_cover_every_index)
{
	struct msr_note_checkpoint cp;
	long idx[40];
	size_t n = 0;
	char *out = NULL;

	for (int i = 0; i < 12; i++) {
		char id[32];
		long st;

		snprintf(id, sizeof(id), "rc%d", i);
		idx[n++] = make_manufacturer(id, &st);
		ck_assert_int_eq(st, 201);
		idx[n++] = search(i % 2 ? investigator : investigator2);
	}
	for (size_t i = 0; i < n; i++) {
		struct msr_audit_report rep;
		struct msr_it_resp r;
		char path[64], file[700], wrong[700];
		FILE *f;

		ck_assert_int_ge(idx[i], 0);
		/* zero merge delay: the newest checkpoint already covers the index */
		checkpoint(&cp, NULL);
		ck_assert_uint_gt(cp.size, (uint64_t)idx[i]);
		snprintf(path, sizeof(path), "/v1/audit/receipt/%ld", idx[i]);
		ck_assert_int_eq(get_status(path, auditor, NULL, &r), 200);
		ck_assert_ptr_nonnull(strstr(r.ctype, "text/plain"));
		ck_assert_msg(msr_audit_receipt_verify(r.body, &vkey, NULL, 0, &rep) == 0,
		    "receipt %ld: %s", idx[i], rep.message);
		if (i == 0) {
			/* the CLI, offline; and a wrong --leaf is refused */
			snprintf(file, sizeof(file), "%s/receipt.tlog-proof", it.dir);
			f = fopen(file, "w");
			fputs(r.body, f);
			fclose(f);
			ck_assert_int_eq(run_cli(&out, "audit", "receipt", "verify", file, "--vkey",
			    it.vkey, NULL, NULL), 0);
			ck_assert_ptr_nonnull(strstr(out, "OK"));
			free(out);
			snprintf(wrong, sizeof(wrong), "%s/wrong.json", it.dir);
			f = fopen(wrong, "w");
			fputs("{\"action\":\"forged\"}", f);
			fclose(f);
			ck_assert_int_ne(run_cli(NULL, "audit", "receipt", "verify", file, "--vkey",
			    it.vkey, "--leaf", wrong), 0);
		}
		msr_it_resp_free(&r);
	}
	ck_assert_int_eq(verify_db_cli(&out), 0);
	ck_assert_ptr_nonnull(strstr(out, "OK"));
	free(out);
	ck_assert_int_eq(verify_url_cli(&out), 0);
	ck_assert_ptr_nonnull(strstr(out, "OK"));
	free(out);
}
END_TEST

START_TEST(proofs_match_local_recomputation)
{
	struct msr_note_checkpoint cp;
	uint8_t (*h)[HLEN], root[HLEN], root2[HLEN];
	uint8_t proof[MSR_MERKLE_PROOF_MAX][HLEN], mine[MSR_MERKLE_PROOF_MAX][HLEN];
	struct leaves l;
	json_t *all;
	size_t n, m;
	uint64_t size;

	for (int i = 0; i < 20; i++)
		search(investigator);
	checkpoint(&cp, NULL);
	size = cp.size;
	h = fetch_leaves(size, &all);
	l.h = h;
	/* every entry's leaf bytes parse to the served JSON entry */
	for (size_t i = 0; i < json_array_size(all); i++) {
		json_t *e = json_array_get(all, i);

		ck_assert_ptr_nonnull(json_object_get(e, "entry"));
		ck_assert(json_is_object(json_object_get(e, "entry")));
	}
	root_at(h, size, root);
	ck_assert_mem_eq(root, cp.root, HLEN);

	for (uint64_t ts = 1; ts <= size; ts += (ts < 8 ? 1 : 7)) {
		for (uint64_t i = 0; i < ts; i += (ts < 16 ? 1 : 5)) {
			struct msr_it_resp r;
			char path[128];

			snprintf(path, sizeof(path), "/v1/audit/proof/inclusion?index=%llu&tree_size=%llu",
			    (unsigned long long)i, (unsigned long long)ts);
			ck_assert_int_eq(get_status(path, auditor, NULL, &r), 200);
			n = hashes(json_object_get(r.json, "hashes"), proof);
			ck_assert_int_eq(msr_merkle_prove_inclusion(i, ts, leaves_get, &l, mine,
			    MSR_MERKLE_PROOF_MAX, &m), 0);
			ck_assert_uint_eq(n, m);
			if (n > 0)
				ck_assert_mem_eq(proof, mine, n * HLEN);
			root_at(h, ts, root2);
			ck_assert_int_eq(msr_merkle_verify_inclusion(h[i], i, ts,
			    (const uint8_t (*)[HLEN])proof, n, root2), 0);
			msr_it_resp_free(&r);
		}
	}
	for (uint64_t a = 0; a <= size; a += 3) {
		for (uint64_t b = a; b <= size; b += (b < 10 ? 1 : 9)) {
			struct msr_it_resp r;
			char path[128];

			snprintf(path, sizeof(path), "/v1/audit/proof/consistency?first=%llu&second=%llu",
			    (unsigned long long)a, (unsigned long long)b);
			ck_assert_int_eq(get_status(path, NULL, NULL, &r), 200);
			n = hashes(json_object_get(r.json, "hashes"), proof);
			ck_assert_int_eq(msr_merkle_prove_consistency(a, b, leaves_get, &l, mine,
			    MSR_MERKLE_PROOF_MAX, &m), 0);
			ck_assert_uint_eq(n, m);
			if (n > 0)
				ck_assert_mem_eq(proof, mine, n * HLEN);
			if (a > 0) {
				root_at(h, a, root);
				root_at(h, b, root2);
				ck_assert_int_eq(msr_merkle_verify_consistency(a, b,
				    (const uint8_t (*)[HLEN])proof, n, root, root2), 0);
			}
			msr_it_resp_free(&r);
		}
	}
	json_decref(all);
	free(h);
}
END_TEST

START_TEST(roles_and_errors)
{
	const char *code;
	char path[96];
	long mine, other, adm, st;

	mine = search(investigator);
	other = search(investigator2);
	adm = make_manufacturer("roles1", &st);
	ck_assert_int_ge(adm, 0);

	/* the entry's own client may get its proof and receipt */
	snprintf(path, sizeof(path), "/v1/audit/proof/inclusion?index=%ld", mine);
	ck_assert_int_eq(get_status(path, investigator, NULL, NULL), 200);
	snprintf(path, sizeof(path), "/v1/audit/receipt/%ld", mine);
	ck_assert_int_eq(get_status(path, investigator, NULL, NULL), 200);
	/* ... but not someone else's */
	snprintf(path, sizeof(path), "/v1/audit/proof/inclusion?index=%ld", other);
	ck_assert_int_eq(get_status(path, investigator, &code, NULL), 403);
	ck_assert_str_eq(code, "forbidden");
	snprintf(path, sizeof(path), "/v1/audit/receipt/%ld", adm);
	ck_assert_int_eq(get_status(path, investigator, NULL, NULL), 403);
	snprintf(path, sizeof(path), "/v1/audit/receipt/%ld", mine);
	ck_assert_int_eq(get_status(path, it.admin_key, NULL, NULL), 403);
	/* auditors may read everything; others may not list entries */
	snprintf(path, sizeof(path), "/v1/audit/receipt/%ld", other);
	ck_assert_int_eq(get_status(path, auditor, NULL, NULL), 200);
	ck_assert_int_eq(get_status("/v1/audit/entries?start=0&limit=5", investigator, NULL, NULL),
	    403);
	ck_assert_int_eq(get_status("/v1/audit/entries?start=0&limit=5", it.admin_key, NULL, NULL),
	    403);
	ck_assert_int_eq(get_status("/v1/audit/entries", NULL, &code, NULL), 401);
	ck_assert_int_eq(get_status("/v1/audit/receipt/0", NULL, NULL, NULL), 401);
	/* public endpoints */
	ck_assert_int_eq(get_status("/v1/audit/checkpoint", NULL, NULL, NULL), 200);
	ck_assert_int_eq(get_status("/v1/audit/key", NULL, NULL, NULL), 200);
	ck_assert_int_eq(get_status("/v1/audit/proof/consistency?first=1&second=2", NULL, NULL,
	    NULL), 200);

	/* parameters */
	ck_assert_int_eq(get_status("/v1/audit/proof/inclusion", auditor, &code, NULL), 400);
	ck_assert_str_eq(code, "invalid_field");
	ck_assert_int_eq(get_status("/v1/audit/proof/inclusion?index=abc", auditor, &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/proof/inclusion?index=-1", auditor, &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/proof/inclusion?index=99999999", auditor, &code,
	    NULL), 404);
	ck_assert_str_eq(code, "not_found");
	ck_assert_int_eq(get_status("/v1/audit/proof/inclusion?index=3&tree_size=2", auditor,
	    &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/proof/inclusion?index=0&tree_size=99999999",
	    auditor, &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/entries?limit=0", auditor, &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/entries?limit=1001", auditor, &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/entries?start=x", auditor, &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/proof/consistency?first=5&second=2", NULL, &code,
	    NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/proof/consistency?second=2", NULL, &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/proof/consistency?first=1&second=99999999", NULL,
	    &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/receipt/12x", auditor, &code, NULL), 400);
	ck_assert_int_eq(get_status("/v1/audit/receipt/99999999", auditor, &code, NULL), 404);
	ck_assert_str_eq(code, "not_found");
}
END_TEST

/* ---- kill -9 ---- */

#define KILL_THREADS 4
#define KILL_MAX     4000

struct worker {
	int		 id;
	long		 idx[KILL_MAX];
	int		 seq[KILL_MAX];	/* which manufacturer id the entry names */
	int		 n;
	volatile int	*stop;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < KILL_MAX && !*w->stop; i++) {
		char id[32];
		long st, idx;

		snprintf(id, sizeof(id), "k%d-%d", w->id, i);
		idx = make_manufacturer(id, &st);
		if (st < 0)
			break;		/* msregd is gone */
		if (st == 201) {
			ck_assert_int_ge(idx, 0);
			w->seq[w->n] = i;
			w->idx[w->n++] = idx;
		}
	}
	return NULL;
}

START_TEST(kill9_loses_no_answered_entry)
{
	static struct worker w[KILL_THREADS];
	pthread_t t[KILL_THREADS];
	volatile int stop = 0;
	struct timespec ts = { 1, 500 * 1000000L };
	struct msr_note_checkpoint cp;
	char *out = NULL;
	int total = 0;

	for (int i = 0; i < KILL_THREADS; i++) {
		w[i].id = i;
		w[i].n = 0;
		w[i].stop = &stop;
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	/* at least 1.5 s and more than 20 answered writes, however slow the
	 * machine (up to 60 s), so the kill lands among answered writes */
	nanosleep(&ts, NULL);
	for (int waited = 0; waited < 585; waited++) {
		int sum = 0;
		for (int i = 0; i < KILL_THREADS; i++)
			sum += __atomic_load_n(&w[i].n, __ATOMIC_RELAXED);
		if (sum > 20)
			break;
		nanosleep(&(struct timespec){ 0, 100 * 1000000L }, NULL);
	}
	msr_it_stop(&it, SIGKILL);
	stop = 1;
	for (int i = 0; i < KILL_THREADS; i++) {
		pthread_join(t[i], NULL);
		total += w[i].n;
	}
	ck_assert_int_gt(total, 20);
	ck_assert_int_eq(msr_it_start(&it), 0);
	/* verify_on_start = full: up to 60 s on a loaded machine */
	for (int i = 0; i < 600 && msr_it_status(&it, "GET", "/readyz", NULL, NULL) != 200; i++)
		nanosleep(&(struct timespec){ 0, 100 * 1000000L }, NULL);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/readyz", NULL, NULL), 200);
	ck_assert_msg(verify_db_cli(&out) == 0, "verify after kill -9: %s", out);
	free(out);
	checkpoint(&cp, NULL);
	for (int i = 0; i < KILL_THREADS; i++) {
		for (int k = 0; k < w[i].n; k++) {
			struct msr_it_resp r;
			char path[96], want[32];
			json_t *e;

			ck_assert_uint_gt(cp.size, (uint64_t)w[i].idx[k]);
			snprintf(path, sizeof(path), "/v1/audit/entries?start=%ld&limit=1", w[i].idx[k]);
			ck_assert_int_eq(get_status(path, auditor, NULL, &r), 200);
			e = json_object_get(json_array_get(json_object_get(r.json, "entries"), 0), "entry");
			snprintf(want, sizeof(want), "k%d-%d", i, w[i].seq[k]);
			ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "manufacturer")));
			ck_assert_str_eq(json_string_value(json_object_get(e, "manufacturer")), want);
			ck_assert_int_eq(json_integer_value(json_object_get(e, "status")), 201);
			msr_it_resp_free(&r);
		}
	}
	fprintf(stderr, "kill -9: %d answered entries all present after restart\n", total);
}
END_TEST


/* ---- two msregd instances, one database ---- */

struct duo {
	struct msr_it	*inst;
	int		 id;
	long		 idx[200];
	int		 n;
};

static void *
duo_main(void *arg)
{
	struct duo *d = arg;

	for (int i = 0; i < 200; i++) {
		struct msr_it_resp r;
		char body[96];

		snprintf(body, sizeof(body), "{\"id\":\"duo%d-%d\",\"name\":\"Duo\"}", d->id, i);
		if (msr_it_request(d->inst, "POST", "/v1/manufacturers", it.admin_key, NULL, body,
		    &r) == 0 && r.status == 201)
			d->idx[d->n++] = r.audit_index;
		msr_it_resp_free(&r);
	}
	return NULL;
}

START_TEST(two_instances_share_one_log)
{
	static struct msr_it it2;
	static struct duo d[4];
	pthread_t t[4];
	static char seen[1 << 16];
	struct msr_note_checkpoint cp;
	char *out = NULL;

	msr_it_instance(&it, &it2, "b", NULL);
	for (int i = 0; i < 4; i++) {
		d[i].inst = i % 2 ? &it2 : &it;
		d[i].id = i;
		d[i].n = 0;
		pthread_create(&t[i], NULL, duo_main, &d[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	msr_it_stop(&it2, SIGTERM);
	checkpoint(&cp, NULL);
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(d[i].n, 200);
		for (int k = 0; k < d[i].n; k++) {
			ck_assert_int_ge(d[i].idx[k], 0);
			ck_assert_uint_gt(cp.size, (uint64_t)d[i].idx[k]);
			ck_assert_int_lt(d[i].idx[k], (long)sizeof(seen));
			ck_assert_msg(!seen[d[i].idx[k]], "index %ld handed out twice", d[i].idx[k]);
			seen[d[i].idx[k]] = 1;
		}
	}
	ck_assert_msg(verify_db_cli(&out) == 0, "verify: %s", out);
	free(out);
}
END_TEST

/* ---- the sequencer lock held elsewhere: requests time out with 503 ---- */

START_TEST(lock_held_elsewhere_times_out)
{
	PGconn *pg = PQconnectdb(it.url_super);
	struct msr_it_resp r;
	PGresult *res;
	char *out = NULL;
	time_t t0;

	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/manufacturers", it.admin_key,
	    "{\"id\":\"lock0\",\"name\":\"Lock\"}"), 201);
	res = PQexec(pg, "BEGIN; SELECT pg_advisory_xact_lock(7239017265103447401)");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	t0 = time(NULL);
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/manufacturers", it.admin_key, NULL,
	    "{\"id\":\"lock1\",\"name\":\"Lock\"}", &r), 0);
	ck_assert_int_eq(r.status, 503);
	ck_assert_int_eq(r.audit_index, -1);
	ck_assert_int_le(time(NULL) - t0, 5);
	msr_it_resp_free(&r);
	/* the write whose entry could not be made durable was rolled back */
	res = PQexec(pg, "SELECT count(*) FROM manufacturers WHERE id = 'lock1'");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "0");
	PQclear(res);
	res = PQexec(pg, "COMMIT");
	PQclear(res);
	PQfinish(pg);
	for (int i = 0; i < 300; i++) {      /* up to 30 s on a loaded machine */
		long st = msr_it_status(&it, "POST", "/v1/manufacturers", it.admin_key,
		    "{\"id\":\"lock1\",\"name\":\"Lock\"}");
		ck_assert_int_ne(st, 409);    /* lock1 was never stored */
		if (st == 201)
			break;
		nanosleep(&(struct timespec){ 0, 100 * 1000000L }, NULL);
	}
	ck_assert_int_eq(msr_it_status(&it, "GET", "/readyz", NULL, NULL), 200);
	ck_assert_msg(verify_db_cli(&out) == 0, "verify: %s", out);
	free(out);
}
END_TEST

/* ---- tampering ---- */

static void
restart(void)
{
	msr_it_stop(&it, SIGTERM);
	ck_assert_int_eq(msr_it_start(&it), 0);
}

static int
log_mentions(const char *needle)
{
	char path[600];
	size_t len;
	FILE *f;
	char *buf;
	int found;

	snprintf(path, sizeof(path), "%s/msregd.log", it.dir);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	buf = calloc(1, 1 << 22);
	len = fread(buf, 1, (1 << 22) - 1, f);
	buf[len] = '\0';
	fclose(f);
	found = strstr(buf, needle) != NULL;
	free(buf);
	return found;
}

START_TEST(tampering_is_named_and_refused)
{
	struct msr_it_resp r;
	char *out = NULL, sql[1200], want[32];
	long st, idx[10];

	for (int i = 0; i < 10; i++) {
		char id[16];

		snprintf(id, sizeof(id), "t%d", i);
		idx[i] = make_manufacturer(id, &st);
		ck_assert_int_eq(st, 201);
	}
	ck_assert_int_eq(verify_db_cli(&out), 0);
	free(out);

	/* a superuser rewrites t2's entry behind the triggers' back */
	snprintf(sql, sizeof(sql),
	    "ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only;"
	    "CREATE TABLE saved AS SELECT * FROM audit_entries WHERE idx = %ld;"
	    "UPDATE audit_entries SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'),"
	    " '\"status\":201', '\"status\":404'), 'UTF8') WHERE idx = %ld;"
	    "ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_append_only", idx[2], idx[2]);
	ck_assert_int_eq(msr_it_sql(&it, sql), 0);
	snprintf(want, sizeof(want), "entry %ld", idx[2]);
	ck_assert_int_ne(verify_db_cli(&out), 0);
	ck_assert_msg(strstr(out, want) != NULL, "verifier output: %s", out);
	free(out);
	ck_assert_int_ne(verify_url_cli(&out), 0);
	free(out);
	restart();
	ck_assert_int_eq(msr_it_status(&it, "GET", "/readyz", NULL, NULL), 503);
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/manufacturers", it.admin_key, NULL,
	    "{\"id\":\"after\",\"name\":\"After\"}", &r), 0);
	ck_assert_int_eq(r.status, 503);
	ck_assert_str_eq(msr_it_error_code(&r), "unavailable");
	ck_assert_int_eq(r.audit_index, -1);
	msr_it_resp_free(&r);
	ck_assert(log_mentions(want));

	/* restore it; now delete t5's entry instead */
	snprintf(sql, sizeof(sql),
	    "ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only;"
	    "UPDATE audit_entries e SET leaf = s.leaf FROM saved s WHERE e.idx = s.idx;"
	    "DELETE FROM audit_entries WHERE idx = %ld;"
	    "ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_append_only", idx[5]);
	ck_assert_int_eq(msr_it_sql(&it, sql), 0);
	snprintf(want, sizeof(want), "entry %ld", idx[5]);
	ck_assert_int_ne(verify_db_cli(&out), 0);
	ck_assert_msg(strstr(out, want) != NULL, "verifier output: %s", out);
	free(out);
	restart();
	ck_assert_int_eq(msr_it_status(&it, "GET", "/readyz", NULL, NULL), 503);
	ck_assert(log_mentions(want));
}
END_TEST

/*
 * What `audit verify --db` checks by default and what --full adds: the newest
 * signature authenticates every recomputed root, so an older note's garbled
 * signature or a wrong stored leaf hash (the proof cache) fails only --full;
 * a note whose body disagrees with its row, or an altered entry, fails both,
 * and an altered entry inside a multi-entry checkpoint is still named.
 */
static void __attribute__((format(printf, 1, 2)))
tamper_sql(const char *fmt, ...)
{
	char body[1000], sql[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	snprintf(sql, sizeof(sql), "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER;"
	    "ALTER TABLE audit_hashes DISABLE TRIGGER USER;"
	    "ALTER TABLE audit_entries DISABLE TRIGGER USER;%s;"
	    "ALTER TABLE audit_checkpoints ENABLE TRIGGER USER;"
	    "ALTER TABLE audit_hashes ENABLE TRIGGER USER;"
	    "ALTER TABLE audit_entries ENABLE TRIGGER USER", body);
	ck_assert_msg(msr_it_sql(&it, sql) == 0, "%s", body);
}

static int
verify_full_cli(char **out)
{
	return run_cli(out, "--config", it.config, "audit", "verify", "--db", "--full", NULL,
	    NULL);
}

START_TEST(verify_default_and_full)
{
	char *out = NULL, want[64];
	long st, idx[10];

	for (int i = 0; i < 10; i++) {
		char id[16];

		snprintf(id, sizeof(id), "m%d", i);
		idx[i] = make_manufacturer(id, &st);
		ck_assert_int_eq(st, 201);
	}
	ck_assert_msg(verify_db_cli(&out) == 0, "%s", out);
	ck_assert_msg(strstr(out, "(1 signatures verified)") != NULL, "%s", out);
	free(out);
	ck_assert_msg(verify_full_cli(&out) == 0, "%s", out);
	ck_assert_msg(strstr(out, "(1 signatures verified)") == NULL, "%s", out);
	free(out);

	/* an older note's signature garbled past its key id: only --full sees it */
	tamper_sql("CREATE TABLE saved_cp AS SELECT * FROM audit_checkpoints WHERE tree_size = %ld;"
	    "UPDATE audit_checkpoints SET note = regexp_replace(note, E'(\\n\u2014 [^ ]+ .{12}).{4}',"
	    " '\\1AAAA') WHERE tree_size = %ld", idx[4] + 1, idx[4] + 1);
	ck_assert_msg(verify_db_cli(&out) == 0, "%s", out);
	free(out);
	ck_assert_int_ne(verify_full_cli(&out), 0);
	ck_assert_msg(strstr(out, "signature does not verify") != NULL, "%s", out);
	free(out);
	/* its body no longer matching its row fails both */
	tamper_sql("UPDATE audit_checkpoints c SET note = replace(s.note, E'\n%ld\n', E'\n%ld\n')"
	    " FROM saved_cp s WHERE c.tree_size = s.tree_size", idx[4] + 1, idx[4] + 2);
	ck_assert_int_ne(verify_db_cli(&out), 0);
	ck_assert_msg(strstr(out, "disagrees with its row") != NULL, "%s", out);
	free(out);
	tamper_sql("UPDATE audit_checkpoints c SET note = s.note FROM saved_cp s"
	    " WHERE c.tree_size = s.tree_size");
	ck_assert_msg(verify_full_cli(&out) == 0, "%s", out);
	free(out);

	/* a wrong stored leaf hash: the proof cache, named by --full */
	tamper_sql("CREATE TABLE saved_h AS SELECT * FROM audit_hashes WHERE level = 0 AND idx = %ld;"
	    "UPDATE audit_hashes SET hash = sha256('x') WHERE level = 0 AND idx = %ld",
	    idx[7], idx[7]);
	ck_assert_msg(verify_db_cli(&out) == 0, "%s", out);
	free(out);
	snprintf(want, sizeof(want), "entry %ld", idx[7]);
	ck_assert_int_ne(verify_full_cli(&out), 0);
	ck_assert_msg(strstr(out, want) != NULL, "%s", out);
	free(out);
	tamper_sql("UPDATE audit_hashes h SET hash = s.hash FROM saved_h s"
	    " WHERE h.level = 0 AND h.idx = s.idx");

	/* an altered entry inside a checkpoint of several entries is still named */
	tamper_sql("DELETE FROM audit_checkpoints WHERE tree_size > %ld AND tree_size <= %ld",
	    idx[3] + 1, idx[6]);
	ck_assert_msg(verify_full_cli(&out) == 0, "%s", out);
	free(out);
	tamper_sql("UPDATE audit_entries SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'),"
	    " '\"status\":201', '\"status\":404'), 'UTF8') WHERE idx = %ld", idx[5]);
	snprintf(want, sizeof(want), "entry %ld", idx[5]);
	ck_assert_int_ne(verify_db_cli(&out), 0);
	ck_assert_msg(strstr(out, want) != NULL, "%s", out);
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("audit");
	TCase *tm = tcase_create("modes");
	TCase *tc = tcase_create("log");
	TCase *tt = tcase_create("tamper");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, receipts_cover_every_index);
	tcase_add_test(tc, proofs_match_local_recomputation);
	tcase_add_test(tc, roles_and_errors);
	tcase_add_test(tc, kill9_loses_no_answered_entry);
	tcase_add_test(tc, two_instances_share_one_log);
	suite_add_tcase(s, tc);
	tcase_add_unchecked_fixture(tt, setup_tamper, teardown);
	tcase_set_timeout(tt, 300);
	tcase_add_test(tt, lock_held_elsewhere_times_out);
	tcase_add_test(tt, tampering_is_named_and_refused);
	suite_add_tcase(s, tt);
	tcase_add_unchecked_fixture(tm, setup_modes, teardown);
	tcase_set_timeout(tm, 300);
	tcase_add_test(tm, verify_default_and_full);
	suite_add_tcase(s, tm);
	return msr_test_run(s, 1);
}
