/*
 * check_merkle.c — unit tests for server/merkle.c.
 *
 * 1. The Go sumdb/tlog vectors (tests/data/tlog-vectors.json): every leaf hash,
 *    every root, every inclusion and consistency proof generated and verified.
 * 2. Properties for every tree size 1..300: roots, inclusion proofs (every index)
 *    and consistency proofs (every m <= n) computed from the nodes the frontier
 *    reported, through the getter, equal a naive recursive RFC 9162 MTH / PATH /
 *    PROOF written here; every proof verifies; mutated proofs do not; the getter
 *    is only asked for complete nodes, and exactly for the planned ones.
 * 3. 64-bit edges on a virtual tree of identical leaves (a complete node's hash
 *    then depends only on its level), sizes up to 2^64 - 1.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "msreg/common.h"
#include "msreg/merkle.h"

#define HLEN	MSR_MERKLE_HASH_LEN

/*
 * ck_assert* records the location of every check that passes (a write to a
 * temporary file per call); the property tests make millions of checks, so
 * they only call into Check when something fails.
 */
#define CHECK(c) do {							\
	if (!(c))							\
		ck_abort_msg("check failed: %s", #c);			\
} while (0)
#define CHECK_MSG(c, ...) do {						\
	if (!(c))							\
		ck_abort_msg(__VA_ARGS__);				\
} while (0)
#define NMAX	300		/* property tests: sizes 1..NMAX */
#define LVMAX	9		/* levels of a 300-leaf tree: 0..8 */

/* ---- helpers ---------------------------------------------------------- */

static void
b64_hash(const char *s, uint8_t out[HLEN])
{
	size_t n = 0;

	CHECK(s != NULL);
	CHECK(sodium_base642bin(out, HLEN, s, strlen(s), NULL, &n, NULL,
	    sodium_base64_VARIANT_ORIGINAL) == 0);
	CHECK(n == HLEN);
}

static size_t
hex_bytes(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	CHECK(sodium_hex2bin(out, cap, s, strlen(s), NULL, &n, NULL) == 0);
	return n;
}

/* The property tests' leaves: "leaf <i>" (the vectors bring their own). */
static size_t
prop_leaf(uint64_t i, uint8_t *buf, size_t cap)
{
	return (size_t)snprintf((char *)buf, cap, "leaf %llu", (unsigned long long)i);
}

/* ---- a node store fed by the frontier, read by the getter ------------- */

struct store {
	uint8_t		hash[LVMAX + 1][NMAX + 1][HLEN];
	uint8_t		have[LVMAX + 1][NMAX + 1];
	uint64_t	limit;		/* size of the tree being computed on */
	size_t		nreads;
	struct msr_merkle_node_id reads[4 * MSR_MERKLE_PLAN_MAX];
	size_t		nput;
	size_t		fail_put_at;	/* put fails on this call (1-based); 0 never */
};

static struct store st;

static int
store_put(void *ctx, unsigned level, uint64_t index, const uint8_t hash[HLEN])
{
	struct store *s = ctx;
	uint8_t want[HLEN];

	s->nput++;
	if (s->fail_put_at != 0 && s->nput == s->fail_put_at)
		return -1;
	CHECK(level <= LVMAX);
	CHECK(index <= NMAX);
	CHECK_MSG(!s->have[level][index], "node (%u,%llu) reported twice",
	    level, (unsigned long long)index);
	if (level > 0) {
		/* Children before parents, and the parent is their node hash. */
		CHECK(s->have[level - 1][2 * index]);
		CHECK(s->have[level - 1][2 * index + 1]);
		msr_merkle_node_hash(s->hash[level - 1][2 * index],
		    s->hash[level - 1][2 * index + 1], want);
		CHECK(memcmp(want, hash, HLEN) == 0);
	}
	memcpy(s->hash[level][index], hash, HLEN);
	s->have[level][index] = 1;
	return 0;
}

static int
store_get(void *ctx, unsigned level, uint64_t index, uint8_t out[HLEN])
{
	struct store *s = ctx;

	/* Only complete nodes of the tree being computed on. */
	CHECK(level <= LVMAX);
	CHECK_MSG((index + 1) << level <= s->limit,
	    "incomplete node (%u,%llu) asked for in a tree of %llu", level,
	    (unsigned long long)index, (unsigned long long)s->limit);
	CHECK(s->nreads < MSR_ARRAY_LEN(s->reads));
	s->reads[s->nreads].level = level;
	s->reads[s->nreads].index = index;
	s->nreads++;
	if (!s->have[level][index])
		return -1;
	memcpy(out, s->hash[level][index], HLEN);
	return 0;
}

static void
store_begin(struct store *s, uint64_t limit)
{
	s->limit = limit;
	s->nreads = 0;
}

/* What the getter read equals, in order, what the plan listed. */
static void
store_check_plan(const struct store *s, const struct msr_merkle_nodes *plan)
{
	size_t i;

	CHECK(s->nreads == plan->n);
	for (i = 0; i < plan->n; i++) {
		CHECK(s->reads[i].level == plan->id[i].level);
		CHECK(s->reads[i].index == plan->id[i].index);
	}
}

/* Fill the store with a tree of n property leaves through the frontier. */
static void
store_build(struct store *s, struct msr_merkle_frontier *f, uint64_t n)
{
	uint8_t buf[64], leaf[HLEN];
	uint64_t i;
	size_t len;

	memset(s, 0, sizeof(*s));
	msr_merkle_frontier_reset(f);
	for (i = 0; i < n; i++) {
		len = prop_leaf(i, buf, sizeof(buf));
		msr_merkle_leaf_hash(buf, len, leaf);
		CHECK(msr_merkle_frontier_append(f, leaf, store_put, s) == 0);
	}
}

/* ---- naive RFC 9162 reference ----------------------------------------- */

static uint8_t	naive_memo[NMAX][NMAX + 1][HLEN];
static uint8_t	naive_have[NMAX][NMAX + 1];

static uint64_t
naive_k(uint64_t n)
{
	uint64_t k = 1;

	while (k * 2 < n)
		k *= 2;
	return k;
}

/* MTH(D[lo:hi]) straight from the definition, memoised. */
static const uint8_t *
naive_mth(uint64_t lo, uint64_t hi)
{
	uint8_t buf[1 + 64], *h;
	uint64_t k;
	size_t len;

	CHECK(lo < hi);
	h = naive_memo[lo][hi];
	if (naive_have[lo][hi])
		return h;
	if (hi - lo == 1) {
		buf[0] = 0x00;
		len = prop_leaf(lo, buf + 1, sizeof(buf) - 1);
		crypto_hash_sha256(h, buf, 1 + len);
	} else {
		k = naive_k(hi - lo);
		buf[0] = 0x01;
		memcpy(buf + 1, naive_mth(lo, lo + k), HLEN);
		memcpy(buf + 1 + HLEN, naive_mth(lo + k, hi), HLEN);
		crypto_hash_sha256(h, buf, 1 + 2 * HLEN);
	}
	naive_have[lo][hi] = 1;
	return h;
}

struct hashlist {
	size_t	n;
	uint8_t	h[MSR_MERKLE_PROOF_MAX + 1][HLEN];
};

static void
hl_add(struct hashlist *l, const uint8_t *h)
{
	CHECK(l->n < MSR_MERKLE_PROOF_MAX);
	memcpy(l->h[l->n++], h, HLEN);
}

/* PATH(m, D[lo:hi]), m relative to lo. */
static void
naive_path(uint64_t m, uint64_t lo, uint64_t hi, struct hashlist *out)
{
	uint64_t k;

	if (hi - lo <= 1)
		return;
	k = naive_k(hi - lo);
	if (m < k) {
		naive_path(m, lo, lo + k, out);
		hl_add(out, naive_mth(lo + k, hi));
	} else {
		naive_path(m - k, lo + k, hi, out);
		hl_add(out, naive_mth(lo, lo + k));
	}
}

/* SUBPROOF(m, D[lo:hi], b), m relative to lo. */
static void
naive_subproof(uint64_t m, uint64_t lo, uint64_t hi, int b, struct hashlist *out)
{
	uint64_t k;

	if (m == hi - lo) {
		if (!b)
			hl_add(out, naive_mth(lo, hi));
		return;
	}
	k = naive_k(hi - lo);
	if (m <= k) {
		naive_subproof(m, lo, lo + k, b, out);
		hl_add(out, naive_mth(lo + k, hi));
	} else {
		naive_subproof(m - k, lo + k, hi, 0, out);
		hl_add(out, naive_mth(lo, lo + k));
	}
}

/* ---- vectors ---------------------------------------------------------- */

/* The vector tree into st via the frontier; root checked at every size. */
static json_t *
load_vectors(uint64_t *nleaves)
{
	json_t *v = msr_test_load_json("tlog-vectors.json");
	json_t *leaves = json_object_get(v, "leaves_hex");
	json_t *hashes = json_object_get(v, "leaf_hashes");
	json_t *roots = json_object_get(v, "roots");
	struct msr_merkle_frontier f;
	uint8_t data[256], want[HLEN], got[HLEN];
	char key[32];
	size_t i, n, len;

	CHECK(json_is_array(leaves));
	n = json_array_size(leaves);
	CHECK(n == json_array_size(hashes));
	CHECK(json_object_size(roots) == n + 1);
	memset(&st, 0, sizeof(st));
	msr_merkle_frontier_reset(&f);
	for (i = 0; i <= n; i++) {
		snprintf(key, sizeof(key), "%zu", i);
		b64_hash(json_string_value(json_object_get(roots, key)), want);
		msr_merkle_frontier_root(&f, got);
		CHECK(memcmp(got, want, HLEN) == 0);
		store_begin(&st, i);
		CHECK(msr_merkle_root(i, store_get, &st, got) == 0);
		CHECK(memcmp(got, want, HLEN) == 0);
		if (i == n)
			break;
		len = hex_bytes(json_string_value(json_array_get(leaves, i)), data,
		    sizeof(data));
		msr_merkle_leaf_hash(data, len, got);
		b64_hash(json_string_value(json_array_get(hashes, i)), want);
		CHECK(memcmp(got, want, HLEN) == 0);
		CHECK(msr_merkle_frontier_append(&f, got, store_put, &st) == 0);
	}
	*nleaves = n;
	return v;
}

static void
vec_root(json_t *v, uint64_t size, uint8_t out[HLEN])
{
	char key[32];

	snprintf(key, sizeof(key), "%llu", (unsigned long long)size);
	b64_hash(json_string_value(json_object_get(json_object_get(v, "roots"), key)),
	    out);
}

static size_t
vec_hashes(json_t *arr, uint8_t out[][HLEN])
{
	size_t i, n = json_array_size(arr);

	CHECK(n <= MSR_MERKLE_PROOF_MAX);
	for (i = 0; i < n; i++)
		b64_hash(json_string_value(json_array_get(arr, i)), out[i]);
	return n;
}

START_TEST(test_vectors_roots)
{
	uint64_t n;
	json_t *v = load_vectors(&n);

	CHECK(n == 8);
	json_decref(v);
}
END_TEST

START_TEST(test_vectors_inclusion)
{
	uint8_t want[MSR_MERKLE_PROOF_MAX][HLEN], got[MSR_MERKLE_PROOF_MAX][HLEN];
	uint8_t root[HLEN];
	struct msr_merkle_nodes plan;
	uint64_t n, index, size;
	size_t i, nwant, ngot;
	json_t *v = load_vectors(&n), *proofs, *p;

	proofs = json_object_get(v, "inclusion_proofs");
	CHECK(json_array_size(proofs) > 0);
	json_array_foreach(proofs, i, p) {
		index = (uint64_t)json_integer_value(json_object_get(p, "index"));
		size = (uint64_t)json_integer_value(json_object_get(p, "tree_size"));
		nwant = vec_hashes(json_object_get(p, "hashes"), want);
		vec_root(v, size, root);

		store_begin(&st, size);
		CHECK(msr_merkle_prove_inclusion(index, size, store_get, &st,
		    got, MSR_MERKLE_PROOF_MAX, &ngot) == 0);
		CHECK(ngot == nwant);
		if (nwant > 0)
			CHECK(memcmp(got, want, nwant * HLEN) == 0);
		msr_merkle_nodes_init(&plan);
		CHECK(msr_merkle_plan_inclusion(&plan, index, size) == 0);
		store_check_plan(&st, &plan);

		CHECK(msr_merkle_verify_inclusion(st.hash[0][index], index,
		    size, want, nwant, root) == 0);
		if (nwant > 0) {
			want[0][0] ^= 1;
			CHECK(msr_merkle_verify_inclusion(st.hash[0][index],
			    index, size, want, nwant, root) == -1);
		}
	}
	json_decref(v);
}
END_TEST

START_TEST(test_vectors_consistency)
{
	uint8_t want[MSR_MERKLE_PROOF_MAX][HLEN], got[MSR_MERKLE_PROOF_MAX][HLEN];
	uint8_t r1[HLEN], r2[HLEN];
	struct msr_merkle_nodes plan;
	uint64_t n, m, size;
	size_t i, nwant, ngot;
	json_t *v = load_vectors(&n), *proofs, *p;

	proofs = json_object_get(v, "consistency_proofs");
	CHECK(json_array_size(proofs) > 0);
	json_array_foreach(proofs, i, p) {
		m = (uint64_t)json_integer_value(json_object_get(p, "first"));
		size = (uint64_t)json_integer_value(json_object_get(p, "second"));
		nwant = vec_hashes(json_object_get(p, "hashes"), want);
		vec_root(v, m, r1);
		vec_root(v, size, r2);

		store_begin(&st, size);
		CHECK(msr_merkle_prove_consistency(m, size, store_get, &st,
		    got, MSR_MERKLE_PROOF_MAX, &ngot) == 0);
		CHECK(ngot == nwant);
		if (nwant > 0)
			CHECK(memcmp(got, want, nwant * HLEN) == 0);
		msr_merkle_nodes_init(&plan);
		CHECK(msr_merkle_plan_consistency(&plan, m, size) == 0);
		store_check_plan(&st, &plan);

		CHECK(msr_merkle_verify_consistency(m, size, want, nwant,
		    r1, r2) == 0);
		CHECK(msr_merkle_verify_consistency(m, size, want, nwant,
		    r2, r1) == -1);
		if (nwant > 0) {
			want[nwant - 1][HLEN - 1] ^= 0x80;
			CHECK(msr_merkle_verify_consistency(m, size, want,
			    nwant, r1, r2) == -1);
		}
	}
	json_decref(v);
}
END_TEST

/* ---- properties ------------------------------------------------------- */

/* A proof that verifies must stop verifying when any part of it changes. */
static void
check_inclusion_mutations(const uint8_t leaf[HLEN], uint64_t index, uint64_t size,
    uint8_t proof[][HLEN], size_t len, const uint8_t root[HLEN])
{
	uint8_t bad[HLEN];
	size_t j;

	if (len > 0) {
		j = (size_t)(index % len);
		proof[j][(index + size) % HLEN] ^= 0x01;
		CHECK(msr_merkle_verify_inclusion(leaf, index, size, proof,
		    len, root) == -1);
		proof[j][(index + size) % HLEN] ^= 0x01;
		/* Truncated. */
		CHECK(msr_merkle_verify_inclusion(leaf, index, size, proof,
		    len - 1, root) == -1);
	}
	/* Extended (proof has room for one more). */
	CHECK(len < MSR_MERKLE_PROOF_MAX);
	memcpy(proof[len], root, HLEN);
	CHECK(msr_merkle_verify_inclusion(leaf, index, size, proof,
	    len + 1, root) == -1);
	/* Other leaf, other index, other root, index out of range. */
	memcpy(bad, leaf, HLEN);
	bad[0] ^= 0x40;
	CHECK(msr_merkle_verify_inclusion(bad, index, size, proof, len,
	    root) == -1);
	if (size > 1)
		CHECK(msr_merkle_verify_inclusion(leaf, (index + 1) % size,
		    size, proof, len, root) == -1);
	CHECK(msr_merkle_verify_inclusion(leaf, index, size, proof, len,
	    bad) == -1);
	CHECK(msr_merkle_verify_inclusion(leaf, size, size, proof, len,
	    root) == -1);
}

START_TEST(test_prop_roots_frontier)
{
	struct msr_merkle_frontier f, g;
	struct msr_merkle_nodes plan;
	uint8_t a[HLEN], b[HLEN], buf[64], leaf[HLEN];
	uint64_t n, i, level;
	size_t len;

	store_build(&st, &f, NMAX);
	/* Every node reported once: 2n - popcount(n) of them. */
	CHECK(st.nput == 2 * NMAX - (size_t)__builtin_popcountll(NMAX));
	msr_merkle_frontier_reset(&g);
	for (n = 0; n <= NMAX; n++) {
		msr_merkle_frontier_root(&g, a);
		if (n == 0) {
			crypto_hash_sha256(b, NULL, 0);
			CHECK(memcmp(a, b, HLEN) == 0);
		} else {
			CHECK(memcmp(a, naive_mth(0, n), HLEN) == 0);
		}
		/* Getter path. */
		store_begin(&st, n);
		CHECK(msr_merkle_root(n, store_get, &st, b) == 0);
		CHECK(memcmp(a, b, HLEN) == 0);
		msr_merkle_nodes_init(&plan);
		CHECK(msr_merkle_plan_root(&plan, n) == 0);
		store_check_plan(&st, &plan);
		CHECK(plan.n == (size_t)__builtin_popcountll(n));

		/* A frontier rebuilt from stored nodes equals the grown one. */
		store_begin(&st, n);
		CHECK(msr_merkle_frontier_init(&f, n, store_get, &st) == 0);
		msr_merkle_nodes_init(&plan);
		CHECK(msr_merkle_plan_frontier(&plan, n) == 0);
		store_check_plan(&st, &plan);
		CHECK(f.size == n);
		for (level = 0; level < MSR_MERKLE_LEVELS; level++)
			if ((n >> level) & 1)
				CHECK(memcmp(f.hash[level], g.hash[level], HLEN) == 0);
		msr_merkle_frontier_root(&f, b);
		CHECK(memcmp(a, b, HLEN) == 0);
		/* ... and grows on to the same final root. */
		for (i = n; i < NMAX; i++) {
			len = prop_leaf(i, buf, sizeof(buf));
			msr_merkle_leaf_hash(buf, len, leaf);
			CHECK(msr_merkle_frontier_append(&f, leaf, NULL,
			    NULL) == 0);
		}
		msr_merkle_frontier_root(&f, b);
		CHECK(memcmp(b, naive_mth(0, NMAX), HLEN) == 0);

		if (n < NMAX) {
			len = prop_leaf(n, buf, sizeof(buf));
			msr_merkle_leaf_hash(buf, len, leaf);
			CHECK(msr_merkle_frontier_append(&g, leaf, NULL,
			    NULL) == 0);
		}
	}
}
END_TEST

START_TEST(test_prop_inclusion)
{
	uint8_t proof[MSR_MERKLE_PROOF_MAX + 1][HLEN], root[HLEN];
	struct msr_merkle_frontier f;
	struct msr_merkle_nodes plan;
	struct hashlist want;
	uint64_t n, i;
	size_t len;

	store_build(&st, &f, NMAX);
	for (n = 1; n <= NMAX; n++) {
		memcpy(root, naive_mth(0, n), HLEN);
		for (i = 0; i < n; i++) {
			want.n = 0;
			naive_path(i, 0, n, &want);
			store_begin(&st, n);
			CHECK(msr_merkle_prove_inclusion(i, n, store_get,
			    &st, proof, MSR_MERKLE_PROOF_MAX, &len) == 0);
			CHECK(len == want.n);
			if (len > 0)
				CHECK(memcmp(proof, want.h, len * HLEN) == 0);
			msr_merkle_nodes_init(&plan);
			CHECK(msr_merkle_plan_inclusion(&plan, i, n) == 0);
			store_check_plan(&st, &plan);

			CHECK(msr_merkle_verify_inclusion(st.hash[0][i], i,
			    n, proof, len, root) == 0);
			check_inclusion_mutations(st.hash[0][i], i, n, proof, len,
			    root);
		}
	}
}
END_TEST

START_TEST(test_prop_consistency)
{
	uint8_t proof[MSR_MERKLE_PROOF_MAX + 1][HLEN], r1[HLEN], r2[HLEN];
	struct msr_merkle_frontier f;
	struct msr_merkle_nodes plan;
	struct hashlist want;
	uint64_t n, m;
	size_t len, j;

	store_build(&st, &f, NMAX);
	for (n = 1; n <= NMAX; n++) {
		memcpy(r2, naive_mth(0, n), HLEN);
		for (m = 1; m <= n; m++) {
			memcpy(r1, naive_mth(0, m), HLEN);
			want.n = 0;
			naive_subproof(m, 0, n, 1, &want);
			store_begin(&st, n);
			CHECK(msr_merkle_prove_consistency(m, n, store_get,
			    &st, proof, MSR_MERKLE_PROOF_MAX, &len) == 0);
			CHECK(len == want.n);
			if (len > 0)
				CHECK(memcmp(proof, want.h, len * HLEN) == 0);
			msr_merkle_nodes_init(&plan);
			CHECK(msr_merkle_plan_consistency(&plan, m, n) == 0);
			store_check_plan(&st, &plan);

			CHECK(msr_merkle_verify_consistency(m, n, proof,
			    len, r1, r2) == 0);
			/* Mutations. */
			if (len > 0) {
				j = (size_t)((m + n) % len);
				proof[j][m % HLEN] ^= 0x10;
				CHECK(msr_merkle_verify_consistency(m, n,
				    proof, len, r1, r2) == -1);
				proof[j][m % HLEN] ^= 0x10;
				CHECK(msr_merkle_verify_consistency(m, n,
				    proof, len - 1, r1, r2) == -1);
			}
			memcpy(proof[len], r1, HLEN);
			CHECK(msr_merkle_verify_consistency(m, n, proof,
			    len + 1, r1, r2) == -1);
			if (m < n) {
				CHECK(msr_merkle_verify_consistency(m, n,
				    proof, len, r2, r2) == -1);
				CHECK(msr_merkle_verify_consistency(m, n,
				    proof, len, r1, r1) == -1);
				CHECK(msr_merkle_verify_consistency(m - 1, n,
				    proof, len, r1, r2) == -1);
				/*
				 * Not (m, n - 1): the RFC verifier cannot tell a
				 * leaf hash from a node hash, so e.g. the (2, 4)
				 * proof also "proves" (2, 3) with the size-4 root.
				 * The signed checkpoint binds size to root.
				 */
			}
		}
	}
}
END_TEST

/* ---- edges and errors ------------------------------------------------- */

START_TEST(test_errors)
{
	uint8_t proof[MSR_MERKLE_PROOF_MAX + 1][HLEN], r[HLEN], empty[HLEN], x[HLEN];
	struct msr_merkle_frontier f, before;
	struct msr_merkle_nodes s;
	size_t len;

	store_build(&st, &f, 20);
	crypto_hash_sha256(empty, NULL, 0);
	msr_merkle_empty_root(r);
	ck_assert_mem_eq(r, empty, HLEN);

	/* Bad arguments. */
	store_begin(&st, 20);
	ck_assert_int_eq(msr_merkle_prove_inclusion(20, 20, store_get, &st, proof,
	    MSR_MERKLE_PROOF_MAX, &len), -1);
	ck_assert_int_eq(msr_merkle_prove_inclusion(0, 0, store_get, &st, proof,
	    MSR_MERKLE_PROOF_MAX, &len), -1);
	ck_assert_int_eq(msr_merkle_prove_inclusion(3, 20, store_get, &st, proof,
	    2, &len), -1);
	ck_assert_int_eq(msr_merkle_prove_consistency(21, 20, store_get, &st, proof,
	    MSR_MERKLE_PROOF_MAX, &len), -1);
	ck_assert_int_eq(msr_merkle_prove_consistency(3, 20, store_get, &st, proof,
	    1, &len), -1);
	ck_assert_uint_eq(st.nreads, 0);
	/* m == 0 and m == n: empty proofs. */
	len = 99;
	ck_assert_int_eq(msr_merkle_prove_consistency(0, 20, store_get, &st, proof,
	    MSR_MERKLE_PROOF_MAX, &len), 0);
	ck_assert_uint_eq(len, 0);
	len = 99;
	ck_assert_int_eq(msr_merkle_prove_consistency(20, 20, store_get, &st, proof,
	    MSR_MERKLE_PROOF_MAX, &len), 0);
	ck_assert_uint_eq(len, 0);
	msr_merkle_frontier_root(&f, r);
	ck_assert_int_eq(msr_merkle_verify_consistency(0, 20, proof, 0, empty, r), 0);
	ck_assert_int_eq(msr_merkle_verify_consistency(0, 20, proof, 0, r, r), -1);
	ck_assert_int_eq(msr_merkle_verify_consistency(0, 20, proof, 1, empty, r),
	    -1);
	ck_assert_int_eq(msr_merkle_verify_consistency(20, 20, proof, 0, r, r), 0);
	ck_assert_int_eq(msr_merkle_verify_consistency(20, 20, proof, 0, r, empty),
	    -1);
	ck_assert_int_eq(msr_merkle_verify_consistency(20, 20, proof, 1, r, r), -1);
	ck_assert_int_eq(msr_merkle_verify_consistency(21, 20, proof, 0, r, r), -1);
	ck_assert_int_eq(msr_merkle_verify_consistency(3, 20, proof, 0, r, r), -1);
	ck_assert_int_eq(msr_merkle_verify_inclusion(r, 0, 0, proof, 0, r), -1);
	/* Size 1: the root is the leaf, the proof empty. */
	ck_assert_int_eq(msr_merkle_verify_inclusion(st.hash[0][0], 0, 1, proof, 0,
	    st.hash[0][0]), 0);

	/* A failing getter fails the computation (20 = (4,0) + (2,4)). */
	st.have[0][19] = 0;
	st.have[2][4] = 0;
	store_begin(&st, 20);
	ck_assert_int_eq(msr_merkle_root(20, store_get, &st, r), -1);
	ck_assert_int_eq(msr_merkle_prove_inclusion(18, 20, store_get, &st, proof,
	    MSR_MERKLE_PROOF_MAX, &len), -1);
	ck_assert_int_eq(msr_merkle_prove_consistency(4, 20, store_get, &st, proof,
	    MSR_MERKLE_PROOF_MAX, &len), -1);
	ck_assert_int_eq(msr_merkle_frontier_init(&f, 20, store_get, &st), -1);
	st.have[0][19] = 1;
	st.have[2][4] = 1;

	/* A failing put leaves the frontier as it was. */
	store_build(&st, &f, 7);
	memcpy(&before, &f, sizeof(f));
	memset(x, 0x55, HLEN);
	st.fail_put_at = st.nput + 3;	/* leaf, level 1, then level 2 fails */
	ck_assert_int_eq(msr_merkle_frontier_append(&f, x, store_put, &st), -1);
	ck_assert_mem_eq(&f, &before, sizeof(f));
	st.fail_put_at = 0;
	memset(&st.have, 0, sizeof(st.have));
	ck_assert_int_eq(msr_merkle_frontier_append(&f, x, NULL, NULL), 0);
	ck_assert_uint_eq(f.size, 8);

	/* A full frontier refuses more. */
	f.size = UINT64_MAX;
	ck_assert_int_eq(msr_merkle_frontier_append(&f, x, NULL, NULL), -1);

	/* Node sets. */
	msr_merkle_nodes_init(&s);
	ck_assert_int_eq(msr_merkle_plan_inclusion(&s, 5, 5), -1);
	ck_assert_int_eq(msr_merkle_plan_consistency(&s, 6, 5), -1);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_int_eq(msr_merkle_plan_root(&s, 0), 0);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_int_eq(msr_merkle_nodes_complete(&s), 1);
	ck_assert_int_eq(msr_merkle_plan_inclusion(&s, 5, 13), 0);
	ck_assert_int_eq(msr_merkle_plan_root(&s, 13), 0);
	ck_assert_uint_gt(s.n, 0);
	ck_assert_int_eq(msr_merkle_nodes_complete(&s), 0);
	ck_assert_int_eq(msr_merkle_nodes_get(&s, s.id[0].level, s.id[0].index, r),
	    -1);
	ck_assert_int_eq(msr_merkle_nodes_set(&s, 40, 0, r), -1);
}
END_TEST

/*
 * Node sets end to end: plan an inclusion proof and the root, "fetch" the nodes
 * from the store as one query would, compute from the set alone.
 */
START_TEST(test_nodes_roundtrip)
{
	uint8_t proof[MSR_MERKLE_PROOF_MAX + 1][HLEN], root[HLEN], want[HLEN];
	struct msr_merkle_frontier f;
	struct msr_merkle_nodes s;
	uint64_t n, i, m;
	size_t k, len, n1;

	store_build(&st, &f, NMAX);
	for (n = 1; n <= NMAX; n += 7) {
		for (i = 0; i < n; i += 3) {
			msr_merkle_nodes_init(&s);
			ck_assert_int_eq(msr_merkle_plan_inclusion(&s, i, n), 0);
			ck_assert_int_eq(msr_merkle_plan_root(&s, n), 0);
			/* Planning again adds nothing. */
			n1 = s.n;
			ck_assert_int_eq(msr_merkle_plan_inclusion(&s, i, n), 0);
			ck_assert_int_eq(msr_merkle_plan_root(&s, n), 0);
			ck_assert_uint_eq(s.n, n1);
			m = i + 1;
			ck_assert_int_eq(msr_merkle_plan_consistency(&s, m, n), 0);
			for (k = 0; k < s.n; k++) {
				ck_assert_uint_le((s.id[k].index + 1) << s.id[k].level,
				    n);
				ck_assert_int_eq(msr_merkle_nodes_set(&s,
				    s.id[k].level, s.id[k].index,
				    st.hash[s.id[k].level][s.id[k].index]), 0);
			}
			ck_assert_int_eq(msr_merkle_nodes_complete(&s), 1);
			ck_assert_int_eq(msr_merkle_root(n, msr_merkle_nodes_get, &s,
			    root), 0);
			memcpy(want, naive_mth(0, n), HLEN);
			ck_assert_mem_eq(root, want, HLEN);
			ck_assert_int_eq(msr_merkle_prove_inclusion(i, n,
			    msr_merkle_nodes_get, &s, proof, MSR_MERKLE_PROOF_MAX,
			    &len), 0);
			ck_assert_int_eq(msr_merkle_verify_inclusion(st.hash[0][i], i,
			    n, proof, len, root), 0);
			ck_assert_int_eq(msr_merkle_prove_consistency(m, n,
			    msr_merkle_nodes_get, &s, proof, MSR_MERKLE_PROOF_MAX,
			    &len), 0);
			ck_assert_int_eq(msr_merkle_verify_consistency(m, n, proof,
			    len, naive_mth(0, m), root), 0);
		}
	}
}
END_TEST

/*
 * 64-bit sizes on a virtual tree whose leaves are all the same: a complete node
 * at level L then has the hash same[L] whatever its index, so the getter is
 * exact for any size. Proofs are checked by the independent RFC verifier and
 * against the frontier's root.
 */
static uint8_t same[MSR_MERKLE_LEVELS][HLEN];

static int
same_get(void *ctx, unsigned level, uint64_t index, uint8_t out[HLEN])
{
	uint64_t limit = *(const uint64_t *)ctx;

	CHECK(level < MSR_MERKLE_LEVELS);
	/* (index + 1) << level <= limit, without overflow. */
	CHECK(limit >> level >= 1);
	CHECK(index <= (limit >> level) - 1);
	memcpy(out, same[level], HLEN);
	return 0;
}

START_TEST(test_huge_sizes)
{
	static const uint64_t sizes[] = {
		1, 2, 3, (uint64_t)1 << 32, ((uint64_t)1 << 32) + 1,
		((uint64_t)1 << 63) - 1, (uint64_t)1 << 63,
		((uint64_t)1 << 63) + 12345, UINT64_MAX - 1, UINT64_MAX,
	};
	uint8_t proof[MSR_MERKLE_PROOF_MAX + 1][HLEN], root[HLEN], r1[HLEN], fr[HLEN];
	struct msr_merkle_frontier f;
	struct msr_merkle_nodes s;
	uint64_t n, m, idx[6];
	size_t a, b, c, len;
	unsigned level;

	msr_merkle_leaf_hash((const uint8_t *)"x", 1, same[0]);
	for (level = 1; level < MSR_MERKLE_LEVELS; level++)
		msr_merkle_node_hash(same[level - 1], same[level - 1], same[level]);

	for (a = 0; a < MSR_ARRAY_LEN(sizes); a++) {
		n = sizes[a];
		ck_assert_int_eq(msr_merkle_root(n, same_get, &n, root), 0);
		ck_assert_int_eq(msr_merkle_frontier_init(&f, n, same_get, &n), 0);
		msr_merkle_frontier_root(&f, fr);
		ck_assert_mem_eq(root, fr, HLEN);
		idx[0] = 0;
		idx[1] = n / 2;
		idx[2] = n - 1;
		idx[3] = n / 3;
		idx[4] = n > 1 ? n - 2 : 0;
		idx[5] = (n / 7) * 5;
		for (b = 0; b < MSR_ARRAY_LEN(idx); b++) {
			ck_assert_int_eq(msr_merkle_prove_inclusion(idx[b], n, same_get,
			    &n, proof, MSR_MERKLE_PROOF_MAX, &len), 0);
			ck_assert_int_eq(msr_merkle_verify_inclusion(same[0], idx[b], n,
			    proof, len, root), 0);
			msr_merkle_nodes_init(&s);
			ck_assert_int_eq(msr_merkle_plan_inclusion(&s, idx[b], n), 0);
			ck_assert_int_eq(msr_merkle_plan_root(&s, n), 0);
			ck_assert_uint_le(s.n, 192);

			m = idx[b] + 1;
			for (c = 0; c < 2; c++, m = m > 1 ? m - 1 : 1) {
				ck_assert_int_eq(msr_merkle_root(m, same_get, &m, r1),
				    0);
				ck_assert_int_eq(msr_merkle_prove_consistency(m, n,
				    same_get, &n, proof, MSR_MERKLE_PROOF_MAX, &len),
				    0);
				ck_assert_int_eq(msr_merkle_verify_consistency(m, n,
				    proof, len, r1, root), 0);
				msr_merkle_nodes_init(&s);
				ck_assert_int_eq(msr_merkle_plan_consistency(&s, m, n),
				    0);
				ck_assert_int_eq(msr_merkle_plan_root(&s, n), 0);
				ck_assert_int_eq(msr_merkle_plan_root(&s, m), 0);
				ck_assert_uint_le(s.n, MSR_MERKLE_PLAN_MAX);
			}
		}
	}
	/* The worst plan for a proof is about 2 * 64 nodes. */
	for (n = UINT64_MAX - 3; n >= UINT64_MAX - 3; n++) {
		for (m = 1; m < 70000; m = m * 3 + 1) {
			msr_merkle_nodes_init(&s);
			ck_assert_int_eq(msr_merkle_plan_inclusion(&s, m, n), 0);
			ck_assert_uint_le(s.n, 128);
			msr_merkle_nodes_init(&s);
			ck_assert_int_eq(msr_merkle_plan_inclusion(&s, n - m, n), 0);
			ck_assert_uint_le(s.n, 128);
			msr_merkle_nodes_init(&s);
			ck_assert_int_eq(msr_merkle_plan_consistency(&s, m, n), 0);
			ck_assert_uint_le(s.n, 128);
			msr_merkle_nodes_init(&s);
			ck_assert_int_eq(msr_merkle_plan_consistency(&s, n - m, n),
			    0);
			ck_assert_uint_le(s.n, 128);
		}
	}
}
END_TEST

/* Throughput smoke test: leaf hash + append, no allocation (run under make). */
START_TEST(test_append_rate)
{
	struct msr_merkle_frontier f;
	uint8_t buf[256], leaf[HLEN], root[HLEN];
	uint64_t i;

	memset(buf, 'e', sizeof(buf));
	msr_merkle_frontier_reset(&f);
	for (i = 0; i < 200000; i++) {
		memcpy(buf, &i, sizeof(i));
		msr_merkle_leaf_hash(buf, sizeof(buf), leaf);
		ck_assert_int_eq(msr_merkle_frontier_append(&f, leaf, NULL, NULL), 0);
	}
	msr_merkle_frontier_root(&f, root);
	ck_assert_uint_eq(f.size, 200000);
}
END_TEST

static Suite *
merkle_suite(void)
{
	Suite *s = suite_create("merkle");
	TCase *tc = tcase_create("vectors");

	tcase_add_test(tc, test_vectors_roots);
	tcase_add_test(tc, test_vectors_inclusion);
	tcase_add_test(tc, test_vectors_consistency);
	suite_add_tcase(s, tc);

	tc = tcase_create("properties");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_prop_roots_frontier);
	tcase_add_test(tc, test_prop_inclusion);
	tcase_add_test(tc, test_prop_consistency);
	tcase_add_test(tc, test_nodes_roundtrip);
	suite_add_tcase(s, tc);

	tc = tcase_create("edges");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_huge_sizes);
	tcase_add_test(tc, test_append_rate);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	return msr_test_run(merkle_suite(), 0);
}
