/*
 * merkle.h — RFC 9162 Merkle tree hashing, proofs and verification (pure, no I/O).
 *
 * Leaf hash SHA-256(0x00 || data), node hash SHA-256(0x01 || left || right), the
 * root of the empty tree SHA-256(""). Stored nodes are COMPLETE subtrees addressed
 * by (level, index): node (L, k) covers leaves [k * 2^L, (k + 1) * 2^L); level 0
 * nodes are the leaf hashes.
 *
 * Three ways in:
 *   - the frontier: the right edge of the tree (one hash per set bit of the size),
 *     fed one leaf at a time by the sequencer; it reports every node it completes
 *     so the caller can store it, and gives the root at the current size;
 *   - getter-driven computations (root, inclusion proof, consistency proof) that
 *     read only complete nodes, a few dozen at most, through a callback;
 *   - plan functions that list exactly the nodes those computations will read, so
 *     the caller can fetch them in one query into a node set and then run the
 *     computation with msr_merkle_nodes_get as the getter.
 *
 * Ownership: nothing here allocates. All structures are caller-owned and may live
 * on the stack (struct msr_merkle_nodes is about 13 KiB).
 * Return values: 0 on success, -1 on failure (bad arguments, getter failure, set
 * full, or a proof that does not verify).
 */
#ifndef MSREG_MERKLE_H
#define MSREG_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MSR_MERKLE_HASH_LEN   32
#define MSR_MERKLE_LEVELS     64   /* frontier slots: one per bit of a uint64_t size */
#define MSR_MERKLE_PROOF_MAX  65   /* longest proof: inclusion 64, consistency 65 */
#define MSR_MERKLE_PLAN_MAX   256  /* nodes a node set holds (one proof + a root fit) */

/*
 * Read the complete node (level, index) into out. Return 0, or nonzero if it
 * cannot be read (the computation then fails with -1).
 */
typedef int (*msr_merkle_get_fn)(void *ctx, unsigned level, uint64_t index,
    uint8_t out[MSR_MERKLE_HASH_LEN]);
/*
 * Told of a newly completed node. Return 0, or nonzero to abort the append (the
 * frontier is then left as it was before the append).
 */
typedef int (*msr_merkle_put_fn)(void *ctx, unsigned level, uint64_t index,
    const uint8_t hash[MSR_MERKLE_HASH_LEN]);

/* Hashes. */
void msr_merkle_leaf_hash(const uint8_t *data, size_t len,
    uint8_t out[MSR_MERKLE_HASH_LEN]);
void msr_merkle_node_hash(const uint8_t left[MSR_MERKLE_HASH_LEN],
    const uint8_t right[MSR_MERKLE_HASH_LEN], uint8_t out[MSR_MERKLE_HASH_LEN]);
/* SHA-256 of nothing: the root of the empty tree. */
void msr_merkle_empty_root(uint8_t out[MSR_MERKLE_HASH_LEN]);

/*
 * The frontier of a tree of `size` leaves: hash[L] is node (L, (size >> L) - 1)
 * for every bit L set in size; other slots are unspecified.
 */
struct msr_merkle_frontier {
	uint64_t	size;
	uint8_t		hash[MSR_MERKLE_LEVELS][MSR_MERKLE_HASH_LEN];
};

/* Empty tree. */
void msr_merkle_frontier_reset(struct msr_merkle_frontier *f);
/* Frontier of a tree of `size` leaves, its popcount(size) nodes read by get. */
int msr_merkle_frontier_init(struct msr_merkle_frontier *f, uint64_t size,
    msr_merkle_get_fn get, void *ctx);
/*
 * Append one leaf hash. put (may be NULL) is called with (0, size, leaf) and then
 * with every node the leaf completes, lowest level first. No allocation; about
 * one node hash per append on average.
 */
int msr_merkle_frontier_append(struct msr_merkle_frontier *f,
    const uint8_t leaf[MSR_MERKLE_HASH_LEN], msr_merkle_put_fn put, void *ctx);
/* Root of the tree at the frontier's size. */
void msr_merkle_frontier_root(const struct msr_merkle_frontier *f,
    uint8_t out[MSR_MERKLE_HASH_LEN]);

/*
 * Getter-driven computations. Proofs are in RFC 9162 order, leaf side first
 * (as golang.org/x/mod/sumdb/tlog ProveRecord / ProveTree), written to
 * proof[0 .. *len); cap is the room in proof (MSR_MERKLE_PROOF_MAX always
 * suffices).
 */
int msr_merkle_root(uint64_t size, msr_merkle_get_fn get, void *ctx,
    uint8_t out[MSR_MERKLE_HASH_LEN]);
/* PATH(index, D[size]); requires index < size. */
int msr_merkle_prove_inclusion(uint64_t index, uint64_t size,
    msr_merkle_get_fn get, void *ctx, uint8_t proof[][MSR_MERKLE_HASH_LEN],
    size_t cap, size_t *len);
/* PROOF(m, D[n]); requires m <= n. m == 0 or m == n gives the empty proof. */
int msr_merkle_prove_consistency(uint64_t m, uint64_t n,
    msr_merkle_get_fn get, void *ctx, uint8_t proof[][MSR_MERKLE_HASH_LEN],
    size_t cap, size_t *len);

/* Verification, RFC 9162 sections 2.1.3.2 and 2.1.4.2. 0 = proven. */
int msr_merkle_verify_inclusion(const uint8_t leaf[MSR_MERKLE_HASH_LEN],
    uint64_t index, uint64_t size, const uint8_t proof[][MSR_MERKLE_HASH_LEN],
    size_t len, const uint8_t root[MSR_MERKLE_HASH_LEN]);
/*
 * m == n: the proof must be empty and the roots equal. m == 0: the proof must be
 * empty and old_root the empty-tree root (every tree extends the empty one).
 */
int msr_merkle_verify_consistency(uint64_t m, uint64_t n,
    const uint8_t proof[][MSR_MERKLE_HASH_LEN], size_t len,
    const uint8_t old_root[MSR_MERKLE_HASH_LEN],
    const uint8_t new_root[MSR_MERKLE_HASH_LEN]);

/*
 * Node sets: plan, fetch, compute.
 *
 *	struct msr_merkle_nodes s;
 *	msr_merkle_nodes_init(&s);
 *	msr_merkle_plan_inclusion(&s, i, size);
 *	msr_merkle_plan_root(&s, size);
 *	... one query for s.id[0 .. s.n), msr_merkle_nodes_set() per row ...
 *	msr_merkle_prove_inclusion(i, size, msr_merkle_nodes_get, &s, ...);
 *
 * A plan adds, in the order the computation reads them, the nodes it will read
 * that are not already in the set. Plans fail (-1) only on bad arguments or when
 * the set would exceed MSR_MERKLE_PLAN_MAX.
 */
struct msr_merkle_node_id {
	unsigned	level;
	uint64_t	index;
};

struct msr_merkle_nodes {
	size_t				n;
	struct msr_merkle_node_id	id[MSR_MERKLE_PLAN_MAX];
	uint8_t				hash[MSR_MERKLE_PLAN_MAX][MSR_MERKLE_HASH_LEN];
	uint8_t				have[MSR_MERKLE_PLAN_MAX];
};

void msr_merkle_nodes_init(struct msr_merkle_nodes *s);
int msr_merkle_plan_root(struct msr_merkle_nodes *s, uint64_t size);
int msr_merkle_plan_frontier(struct msr_merkle_nodes *s, uint64_t size);
int msr_merkle_plan_inclusion(struct msr_merkle_nodes *s, uint64_t index,
    uint64_t size);
int msr_merkle_plan_consistency(struct msr_merkle_nodes *s, uint64_t m,
    uint64_t n);
/* Record a fetched hash; -1 if (level, index) is not in the set. */
int msr_merkle_nodes_set(struct msr_merkle_nodes *s, unsigned level,
    uint64_t index, const uint8_t hash[MSR_MERKLE_HASH_LEN]);
/* 1 if every planned node has its hash, else 0. */
int msr_merkle_nodes_complete(const struct msr_merkle_nodes *s);
/* A msr_merkle_get_fn over a node set (ctx = the set); fails on unset nodes. */
int msr_merkle_nodes_get(void *ctx, unsigned level, uint64_t index,
    uint8_t out[MSR_MERKLE_HASH_LEN]);

#endif
