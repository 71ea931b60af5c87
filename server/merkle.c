/*
 * merkle.c — the audit log's Merkle tree: RFC 9162 section 2.1 hashing, the
 * append frontier, inclusion and consistency proofs read from stored complete
 * subtrees, and their verification. Pure: no I/O, no allocation, no global state.
 *
 * Formats (RFC 9162 section 2.1, identical to RFC 6962 section 2.1)
 *   MTH({})       = SHA-256()
 *   MTH({d0})     = SHA-256(0x00 || d0)                      leaf hash
 *   MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  node hash
 *                   where k is the largest power of two < n.
 *   PATH(m, D[n]) (2.1.3.1) and PROOF(m, D[n]) (2.1.4.1) are lists of subtree
 *   hashes, leaf side first: the order golang.org/x/mod/sumdb/tlog produces, the
 *   order of the C2SP tlog-proof receipt (c2sp.org/tlog-proof) and of the
 *   /v1/audit/proof/ responses.
 *
 * Storage model
 *   The server keeps only COMPLETE subtrees, addressed (level, index): node
 *   (L, k) is MTH(D[k*2^L : (k+1)*2^L]); level 0 holds the leaf hashes. A tree of
 *   size n is, left to right, the complete nodes of the set bits of n from the
 *   highest down: bit L contributes node (L, (n >> L) - 1). That list is the
 *   frontier, the only state the sequencer holds in memory (at most 64 hashes).
 *
 *   Every subtree the RFC recursion visits is a range [lo, hi) whose start lo is a
 *   multiple of 2^t, t the highest bit of hi - lo (true of [0, n); the left half
 *   [lo, lo+k) is then complete, and the right half starts at lo + k, a multiple
 *   of k, which is at least its own length). Such a range is the complete nodes of
 *   the set bits of hi - lo laid end to end, and its MTH is their right-to-left
 *   fold with node_hash. So MTH of any range a proof needs costs popcount(hi - lo)
 *   reads and as many hashes; nothing is recomputed from leaves.
 *
 * Plans
 *   Every computation goes through struct walk. With walk.plan set it records the
 *   (level, index) pairs it would read instead of reading them and skips hashing,
 *   so a plan lists exactly what the real run will ask for, by construction.
 *
 * Invariants
 *   1. The getter is only ever asked for complete nodes: (index + 1) << level
 *      never exceeds the tree size of the computation.
 *   2. A proof has at most 64 hashes (inclusion) or 65 (consistency: one per
 *      level plus the old tree's last subtree), and costs fewer than 2 * 64
 *      node reads: every hash is one complete node except at most one range of
 *      at most 63 nodes (a right-hand sibling before the descent first turns
 *      left, or the final MTH(D[lo:hi]) of a descent that never does).
 *   3. msr_merkle_frontier_append leaves the frontier unchanged unless it
 *      returns 0; put sees every node exactly once, children before parents.
 *   4. Verification follows RFC 9162 2.1.3.2 and 2.1.4.2 literally, so a proof
 *      longer or shorter than the canonical one is rejected.
 */
#include "msreg/merkle.h"

#include <sodium.h>
#include <string.h>

#define HLEN MSR_MERKLE_HASH_LEN

struct walk {
	msr_merkle_get_fn	 get;
	void			*ctx;
	struct msr_merkle_nodes	*plan;	/* non-NULL: record reads, do not hash */
};

void
msr_merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[HLEN])
{
	static const uint8_t prefix = 0x00;
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &prefix, 1);
	if (len > 0)
		crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, out);
}

/* out may alias left or right: both are copied before out is written. */
void
msr_merkle_node_hash(const uint8_t left[HLEN], const uint8_t right[HLEN],
    uint8_t out[HLEN])
{
	uint8_t buf[1 + 2 * HLEN];

	buf[0] = 0x01;
	memcpy(buf + 1, left, HLEN);
	memcpy(buf + 1 + HLEN, right, HLEN);
	crypto_hash_sha256(out, buf, sizeof(buf));
}

void
msr_merkle_empty_root(uint8_t out[HLEN])
{
	crypto_hash_sha256(out, NULL, 0);
}

/* Largest power of two strictly less than n; n >= 2. */
static uint64_t
split_point(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

static int
node_find(const struct msr_merkle_nodes *s, unsigned level, uint64_t index)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->id[i].level == level && s->id[i].index == index)
			return (int)i;
	return -1;
}

static int
node_add(struct msr_merkle_nodes *s, unsigned level, uint64_t index)
{
	if (node_find(s, level, index) >= 0)
		return 0;
	if (s->n >= MSR_MERKLE_PLAN_MAX)
		return -1;
	s->id[s->n].level = level;
	s->id[s->n].index = index;
	s->have[s->n] = 0;
	s->n++;
	return 0;
}

static int
fetch(struct walk *w, unsigned level, uint64_t index, uint8_t out[HLEN])
{
	if (w->plan != NULL) {
		memset(out, 0, HLEN);
		return node_add(w->plan, level, index);
	}
	return w->get(w->ctx, level, index, out) == 0 ? 0 : -1;
}

static void
join(const struct walk *w, const uint8_t left[HLEN], const uint8_t right[HLEN],
    uint8_t out[HLEN])
{
	if (w->plan == NULL)
		msr_merkle_node_hash(left, right, out);
}

/*
 * MTH(D[lo:hi]) for a range the RFC recursion can visit (see the design comment):
 * the complete nodes of the set bits of hi - lo, folded right to left.
 */
static int
range_hash(struct walk *w, uint64_t lo, uint64_t hi, uint8_t out[HLEN])
{
	uint8_t h[HLEN];
	uint64_t len, pos;
	unsigned level, top;
	int first = 1;
	int ret = -1;

	if (hi <= lo)
		goto done;
	len = hi - lo;
	top = 63 - (unsigned)__builtin_clzll(len);
	if ((lo & (((uint64_t)1 << top) - 1)) != 0)
		goto done;
	pos = hi;
	for (level = 0; level <= top; level++) {
		if (((len >> level) & 1) == 0)
			continue;
		pos -= (uint64_t)1 << level;
		if (fetch(w, level, pos >> level, h) == -1)
			goto done;
		if (first)
			memcpy(out, h, HLEN);
		else
			join(w, h, out, out);
		first = 0;
	}
	ret = 0;
done:
	return ret;
}

static int
walk_root(struct walk *w, uint64_t size, uint8_t out[HLEN])
{
	if (size == 0) {
		if (w->plan == NULL)
			msr_merkle_empty_root(out);
		return 0;
	}
	return range_hash(w, 0, size, out);
}

static int
walk_frontier(struct walk *w, struct msr_merkle_frontier *f, uint64_t size)
{
	unsigned level;
	int ret = -1;

	for (level = 0; level < MSR_MERKLE_LEVELS; level++) {
		if (((size >> level) & 1) == 0)
			continue;
		if (fetch(w, level, (size >> level) - 1, f->hash[level]) == -1)
			goto done;
	}
	f->size = size;
	ret = 0;
done:
	return ret;
}

/*
 * PATH(index, D[size]). The descent from the root meets the siblings root side
 * first, so they are written from the end: a first pass counts them.
 */
static int
walk_inclusion(struct walk *w, uint64_t index, uint64_t size,
    uint8_t proof[][HLEN], size_t cap, size_t *len)
{
	uint64_t lo, hi, k;
	size_t depth, j;
	int ret = -1;

	if (index >= size)
		goto done;
	depth = 0;
	for (lo = 0, hi = size; hi - lo > 1; depth++) {
		k = split_point(hi - lo);
		if (index - lo < k)
			hi = lo + k;
		else
			lo += k;
	}
	if (depth > cap)
		goto done;
	j = depth;
	for (lo = 0, hi = size; hi - lo > 1;) {
		k = split_point(hi - lo);
		j--;
		if (index - lo < k) {
			if (range_hash(w, lo + k, hi, proof[j]) == -1)
				goto done;
			hi = lo + k;
		} else {
			if (range_hash(w, lo, lo + k, proof[j]) == -1)
				goto done;
			lo += k;
		}
	}
	*len = depth;
	ret = 0;
done:
	return ret;
}

/*
 * PROOF(m, D[n]) = SUBPROOF(m, D[n], true), unrolled: lo < m <= hi throughout,
 * and `whole` is SUBPROOF's b (m is the whole old tree, so its root is known to
 * the verifier and need not be sent).
 */
static int
walk_consistency(struct walk *w, uint64_t m, uint64_t n,
    uint8_t proof[][HLEN], size_t cap, size_t *len)
{
	uint64_t lo, hi, k;
	size_t count, j;
	int whole, pass;
	int ret = -1;

	if (m > n)
		goto done;
	if (m == 0 || m == n) {
		*len = 0;
		ret = 0;
		goto done;
	}
	count = 0;
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1 && count > cap)
			goto done;
		j = count;
		lo = 0;
		hi = n;
		whole = 1;
		while (m != hi) {
			k = split_point(hi - lo);
			if (m - lo <= k) {
				if (pass == 1 &&
				    range_hash(w, lo + k, hi, proof[--j]) == -1)
					goto done;
				hi = lo + k;
			} else {
				if (pass == 1 &&
				    range_hash(w, lo, lo + k, proof[--j]) == -1)
					goto done;
				lo += k;
				whole = 0;
			}
			if (pass == 0)
				count++;
		}
		if (!whole) {
			if (pass == 1 &&
			    range_hash(w, lo, hi, proof[--j]) == -1)
				goto done;
			if (pass == 0)
				count++;
		}
	}
	*len = count;
	ret = 0;
done:
	return ret;
}

int
msr_merkle_root(uint64_t size, msr_merkle_get_fn get, void *ctx,
    uint8_t out[HLEN])
{
	struct walk w = { get, ctx, NULL };

	return walk_root(&w, size, out);
}

int
msr_merkle_prove_inclusion(uint64_t index, uint64_t size, msr_merkle_get_fn get,
    void *ctx, uint8_t proof[][HLEN], size_t cap, size_t *len)
{
	struct walk w = { get, ctx, NULL };

	return walk_inclusion(&w, index, size, proof, cap, len);
}

int
msr_merkle_prove_consistency(uint64_t m, uint64_t n, msr_merkle_get_fn get,
    void *ctx, uint8_t proof[][HLEN], size_t cap, size_t *len)
{
	struct walk w = { get, ctx, NULL };

	return walk_consistency(&w, m, n, proof, cap, len);
}

void
msr_merkle_frontier_reset(struct msr_merkle_frontier *f)
{
	memset(f, 0, sizeof(*f));
}

int
msr_merkle_frontier_init(struct msr_merkle_frontier *f, uint64_t size,
    msr_merkle_get_fn get, void *ctx)
{
	struct walk w = { get, ctx, NULL };

	msr_merkle_frontier_reset(f);
	return walk_frontier(&w, f, size);
}

int
msr_merkle_frontier_append(struct msr_merkle_frontier *f, const uint8_t leaf[HLEN],
    msr_merkle_put_fn put, void *ctx)
{
	uint8_t cur[HLEN];
	uint64_t n = f->size;
	unsigned level = 0;
	int ret = -1;

	if (n == UINT64_MAX)
		goto done;
	memcpy(cur, leaf, HLEN);
	if (put != NULL && put(ctx, 0, n, cur) != 0)
		goto done;
	/* Each set low bit of n is a complete left sibling waiting for cur. */
	while ((n >> level) & 1) {
		msr_merkle_node_hash(f->hash[level], cur, cur);
		level++;
		if (put != NULL && put(ctx, level, n >> level, cur) != 0)
			goto done;
	}
	memcpy(f->hash[level], cur, HLEN);
	f->size = n + 1;
	ret = 0;
done:
	return ret;
}

void
msr_merkle_frontier_root(const struct msr_merkle_frontier *f, uint8_t out[HLEN])
{
	unsigned level;
	int first = 1;

	if (f->size == 0) {
		msr_merkle_empty_root(out);
		return;
	}
	for (level = 0; level < MSR_MERKLE_LEVELS; level++) {
		if (((f->size >> level) & 1) == 0)
			continue;
		if (first)
			memcpy(out, f->hash[level], HLEN);
		else
			msr_merkle_node_hash(f->hash[level], out, out);
		first = 0;
	}
}

/* Right-shift fn and sn together until fn's low bit is set or fn is 0. */
static void
shift_to_set_bit(uint64_t *fn, uint64_t *sn)
{
	while ((*fn & 1) == 0 && *fn != 0) {
		*fn >>= 1;
		*sn >>= 1;
	}
}

int
msr_merkle_verify_inclusion(const uint8_t leaf[HLEN], uint64_t index,
    uint64_t size, const uint8_t proof[][HLEN], size_t len,
    const uint8_t root[HLEN])
{
	uint8_t r[HLEN];
	uint64_t fn, sn;
	size_t i;
	int ret = -1;

	if (index >= size)
		goto done;
	fn = index;
	sn = size - 1;
	memcpy(r, leaf, HLEN);
	for (i = 0; i < len; i++) {
		if (sn == 0)
			goto done;
		if ((fn & 1) || fn == sn) {
			msr_merkle_node_hash(proof[i], r, r);
			if ((fn & 1) == 0)
				shift_to_set_bit(&fn, &sn);
		} else {
			msr_merkle_node_hash(r, proof[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || memcmp(r, root, HLEN) != 0)
		goto done;
	ret = 0;
done:
	return ret;
}

int
msr_merkle_verify_consistency(uint64_t m, uint64_t n,
    const uint8_t proof[][HLEN], size_t len, const uint8_t old_root[HLEN],
    const uint8_t new_root[HLEN])
{
	uint8_t fr[HLEN], sr[HLEN], empty[HLEN];
	uint64_t fn, sn;
	size_t i;
	int ret = -1;

	if (m > n)
		goto done;
	if (m == 0) {
		msr_merkle_empty_root(empty);
		if (len == 0 && memcmp(old_root, empty, HLEN) == 0)
			ret = 0;
		goto done;
	}
	if (m == n) {
		if (len == 0 && memcmp(old_root, new_root, HLEN) == 0)
			ret = 0;
		goto done;
	}
	if (len == 0)
		goto done;
	/*
	 * RFC 9162 2.1.4.2 step 2 prepends old_root when m is a power of two; here
	 * the path is walked as that virtual list: element 0 is old_root or
	 * proof[0], the rest follow from i.
	 */
	if ((m & (m - 1)) == 0) {
		memcpy(fr, old_root, HLEN);
		i = 0;
	} else {
		memcpy(fr, proof[0], HLEN);
		i = 1;
	}
	memcpy(sr, fr, HLEN);
	fn = m - 1;
	sn = n - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < len; i++) {
		if (sn == 0)
			goto done;
		if ((fn & 1) || fn == sn) {
			msr_merkle_node_hash(proof[i], fr, fr);
			msr_merkle_node_hash(proof[i], sr, sr);
			if ((fn & 1) == 0)
				shift_to_set_bit(&fn, &sn);
		} else {
			msr_merkle_node_hash(sr, proof[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || memcmp(fr, old_root, HLEN) != 0 ||
	    memcmp(sr, new_root, HLEN) != 0)
		goto done;
	ret = 0;
done:
	return ret;
}

void
msr_merkle_nodes_init(struct msr_merkle_nodes *s)
{
	s->n = 0;
}

/* Run a computation in plan mode; on failure the set is left as it was. */
static void
plan_begin(struct msr_merkle_nodes *s, struct walk *w, size_t *mark)
{
	w->get = NULL;
	w->ctx = NULL;
	w->plan = s;
	*mark = s->n;
}

static int
plan_end(struct msr_merkle_nodes *s, size_t mark, int rc)
{
	if (rc != 0)
		s->n = mark;
	return rc == 0 ? 0 : -1;
}

int
msr_merkle_plan_root(struct msr_merkle_nodes *s, uint64_t size)
{
	uint8_t out[HLEN];
	struct walk w;
	size_t mark;

	plan_begin(s, &w, &mark);
	return plan_end(s, mark, walk_root(&w, size, out));
}

int
msr_merkle_plan_frontier(struct msr_merkle_nodes *s, uint64_t size)
{
	struct msr_merkle_frontier f;
	struct walk w;
	size_t mark;

	msr_merkle_frontier_reset(&f);
	plan_begin(s, &w, &mark);
	return plan_end(s, mark, walk_frontier(&w, &f, size));
}

int
msr_merkle_plan_inclusion(struct msr_merkle_nodes *s, uint64_t index,
    uint64_t size)
{
	uint8_t proof[MSR_MERKLE_PROOF_MAX][HLEN];
	struct walk w;
	size_t mark, len;

	plan_begin(s, &w, &mark);
	return plan_end(s, mark, walk_inclusion(&w, index, size, proof,
	    MSR_MERKLE_PROOF_MAX, &len));
}

int
msr_merkle_plan_consistency(struct msr_merkle_nodes *s, uint64_t m, uint64_t n)
{
	uint8_t proof[MSR_MERKLE_PROOF_MAX][HLEN];
	struct walk w;
	size_t mark, len;

	plan_begin(s, &w, &mark);
	return plan_end(s, mark, walk_consistency(&w, m, n, proof,
	    MSR_MERKLE_PROOF_MAX, &len));
}

int
msr_merkle_nodes_set(struct msr_merkle_nodes *s, unsigned level, uint64_t index,
    const uint8_t hash[HLEN])
{
	int i = node_find(s, level, index);

	if (i < 0)
		return -1;
	memcpy(s->hash[i], hash, HLEN);
	s->have[i] = 1;
	return 0;
}

int
msr_merkle_nodes_complete(const struct msr_merkle_nodes *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!s->have[i])
			return 0;
	return 1;
}

int
msr_merkle_nodes_get(void *ctx, unsigned level, uint64_t index, uint8_t out[HLEN])
{
	const struct msr_merkle_nodes *s = ctx;
	int i = node_find(s, level, index);

	if (i < 0 || !s->have[i])
		return -1;
	memcpy(out, s->hash[i], HLEN);
	return 0;
}
