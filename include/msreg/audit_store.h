/*
 * audit_store.h — every SQL statement on the audit tables, one implementation
 * of each: the head (newest tree state and its checkpoint), tree nodes, the
 * tail check, entries, the sequencer's batch round trips, write intents, and
 * the database-mode verifier.
 *
 * Result codes: MSR_AS_OK; MSR_AS_IO when the database did not answer (down,
 * timeout, lock wait, broken connection: try again later); MSR_AS_CORRUPT when
 * it answered and the data are missing or malformed (never retried away). No
 * caller may turn MSR_AS_IO into an integrity failure.
 */
#ifndef MSREG_AUDIT_STORE_H
#define MSREG_AUDIT_STORE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "msreg/audit_verify.h"
#include "msreg/merkle.h"

#define MSR_AS_OK	 0
#define MSR_AS_IO	-1
#define MSR_AS_CORRUPT	-2

struct msr_db_conn;
struct msr_note_verifier;
struct msr_note_checkpoint;

/* The newest tree state and the checkpoint note signed at its size. */
struct msr_as_head {
	int		have;			/* 0: nothing sequenced yet */
	uint64_t	size;
	uint8_t		root[MSR_MERKLE_HASH_LEN];
	char		*note;			/* malloc'd, NULL when no note row */
};

void msr_as_head_clear(struct msr_as_head *h);
int msr_as_head(struct msr_db_conn *c, struct msr_as_head *h);
/*
 * Fetch every not-yet-set node of the plan s from audit_hashes in one query.
 * MSR_AS_CORRUPT when some planned node is not stored.
 */
int msr_as_nodes(struct msr_db_conn *c, struct msr_merkle_nodes *s);
/* Number of entries with index >= from. */
int msr_as_count_from(struct msr_db_conn *c, uint64_t from, uint64_t *n);
/*
 * Entries [from, to) with their stored level-0 hashes, in index order: fn is
 * called per row (stored NULL when the hash row is missing). fn returning
 * nonzero stops with MSR_AS_CORRUPT.
 */
typedef int (*msr_as_leaf_fn)(void *ctx, uint64_t idx, const uint8_t *leaf, size_t len,
    const uint8_t *stored);
int msr_as_tail(struct msr_db_conn *c, uint64_t from, uint64_t to, msr_as_leaf_fn fn,
    void *ctx);
/*
 * Entries for readers: rows (idx int8, leaf bytea, client_id int8 or NULL) in
 * binary, at most limit from start. *res is the caller's (PQclear).
 */
int msr_as_entries(struct msr_db_conn *c, uint64_t start, uint64_t limit, PGresult **res);

/*
 * Stored nodes of one level for readers (tiles): rows (idx int8, hash bytea)
 * in binary, level `level`, from <= idx < to, in index order. *res is the
 * caller's (PQclear).
 */
int msr_as_level(struct msr_db_conn *c, unsigned level, uint64_t from, uint64_t to,
    PGresult **res);

/* Kept for callers written before audit_store.c: 0 = MSR_AS_OK, else -1. */
int msr_audit_fetch_nodes(struct msr_db_conn *c, struct msr_merkle_nodes *s);

/* --- the sequencer's batch ------------------------------------------------------ */

/*
 * One batch's rows, as binary array parameters (reused between batches).
 * Fill with msr_as_batch_reset, _entry, _node, _void, _state; then store.
 */
struct msr_as_buf {
	uint8_t	*p;
	size_t	 len, cap;
	int	 oom;
};

struct msr_as_batch {
	struct msr_as_buf	 idx, leaf, client, nlevel, nidx, nhash, pending, voids;
	size_t			 nentries, nnodes, nvoids;
	size_t			*off, *len;	/* entry i: leaf.p + off[i], len[i] bytes */
	uint8_t			*is_write;	/* entry i is a write's intent */
	size_t			 cap;
	uint64_t		 first;		/* index of entry 0 (set before storing) */
	int64_t			 prev_size;	/* head the batch extends; -1 = none */
	uint8_t			 prev_root[MSR_MERKLE_HASH_LEN];
	uint64_t		 size;		/* tree after the batch */
	uint8_t			 root[MSR_MERKLE_HASH_LEN];
	const char		*note;		/* borrowed until the store returns */
	PGconn			*prepared_on;	/* statements prepared on this conn */
};

/* Forget the entries, nodes and voids; buffers are kept for reuse. */
void msr_as_batch_reset(struct msr_as_batch *b);
/* Forget the nodes only (the batch is recomputed on a new head). */
void msr_as_batch_rewind(struct msr_as_batch *b);
void msr_as_batch_free(struct msr_as_batch *b);
/* Copy one entry in; write: the entry is a write's intent (audit.c, "Writes"). */
int msr_as_batch_entry(struct msr_as_batch *b, const char *entry, size_t len,
    int64_t client_id, int write);
/* Entry i's bytes (valid until the next reset). */
const uint8_t *msr_as_batch_leaf(const struct msr_as_batch *b, size_t i, size_t *len);
int msr_as_batch_node(struct msr_as_batch *b, unsigned level, uint64_t index,
    const uint8_t hash[MSR_MERKLE_HASH_LEN]);
/* A pending intent resolved as "did not happen" by this batch. */
int msr_as_batch_void(struct msr_as_batch *b, uint64_t idx);

/*
 * Round trip "open": BEGIN; the sequencer's advisory lock; the head; and, when
 * scan is set, lock (FOR UPDATE SKIP LOCKED) up to cap unresolved write intents
 * older than older_ms or listed in hint[0..nhint), returning their indexes in
 * voids. The transaction stays open (finish with msr_as_store or msr_as_abort).
 */
int msr_as_open(struct msr_as_batch *b, struct msr_db_conn *c, struct msr_as_head *h,
    int scan, int older_ms, const uint64_t *hint, size_t nhint, uint64_t *voids,
    size_t cap, size_t *nvoids);
/*
 * Round trip "store": [BEGIN; lock (when !opened)]; one INSERT of entries,
 * nodes, tree state, checkpoint and intents, and the DELETE of voided intents,
 * all applied only if the newest tree state is still (prev_size, prev_root);
 * COMMIT. *stored = 1 when stored, 0 when the head had moved (nothing stored,
 * the transaction is committed empty). *unknown = 1 when the COMMIT's outcome
 * is unknown (the connection broke after it was sent).
 */
int msr_as_store(struct msr_as_batch *b, struct msr_db_conn *c, int opened, int *stored,
    int *unknown);
/* End a transaction left open by msr_as_open without writing. */
void msr_as_abort(struct msr_db_conn *c);

/*
 * A write's transaction, after its entry `idx` is durable: resolve the intent
 * and COMMIT, in one round trip. MSR_AS_OK when committed; MSR_AS_CORRUPT when
 * the intent had already been voided (the write is rolled back); MSR_AS_IO
 * otherwise (rolled back or unknown: the intent, if left, is voided later).
 */
int msr_as_commit_write(struct msr_db_conn *c, uint64_t idx);

/* --- database-mode verification --------------------------------------------------- */

/*
 * In one REPEATABLE READ snapshot, stream audit_entries (binary COPY) through
 * the pure verifier (audit_verify.h), hashing on worker threads beside the
 * reading, with their stored level-0 hashes unless MSR_AV_NO_STORED (from a
 * second backend in the same exported snapshot, or a merge join when one
 * cannot be opened), and check every stored checkpoint: signature (all of
 * them unless MSR_AV_LAST_SIGNATURE), body equal to its row, root equal to the
 * recomputed root at its size, the newest tree state equal to the newest
 * checkpoint, the newest root from the stored nodes; when since is given, the
 * log extends it. pg is any role that can SELECT the audit tables; v is the
 * log's verifier key. 0 verified; -1 with rep->io_error set when the database
 * could not be read.
 */
int msr_audit_verify_db(PGconn *pg, const struct msr_note_verifier *v, unsigned flags,
    const struct msr_note_checkpoint *since, struct msr_audit_report *rep);

#endif
