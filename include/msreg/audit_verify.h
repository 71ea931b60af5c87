/*
 * audit_verify.h — pure verification of the audit log: no SQL, no network, no
 * files. The drivers that read a log feed it here: audit_store.c (database
 * mode, msregd's full start-up check), cli_audit.c (HTTP mode).
 *
 * Every check recomputes from the entries themselves (RFC 9162 leaf and node
 * hashes) and trusts only the verifier key: stored hashes, stored roots and the
 * server's answers are compared against the recomputation, never believed.
 * Results: 0 = verified; -1 = not verified, with rep->message naming the first
 * problem and rep->bad_index the first bad entry index when one can be named.
 */
#ifndef MSREG_AUDIT_VERIFY_H
#define MSREG_AUDIT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "msreg/merkle.h"
#include "msreg/note.h"

struct msr_audit_report {
	int64_t		bad_index;	/* first bad entry, -1 if none or unknown */
	uint64_t	tree_size;	/* size of the newest verified checkpoint */
	uint64_t	entries;	/* entries recomputed */
	uint64_t	checkpoints;	/* checkpoints checked (root and body) */
	uint64_t	signatures;	/* of them, signatures verified */
	double		seconds;
	int		io_error;	/* 1: could not read (database/HTTP), not a bad log */
	char		message[512];
};

void msr_audit_report_init(struct msr_audit_report *rep);
/* Record a problem (the first one recorded is kept). */
void msr_audit_report_fail(struct msr_audit_report *rep, int64_t bad, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* Flags for the database verifier (audit_store.h) and msr_av_signatures. */
/*
 * MSR_AV_LAST_SIGNATURE: verify the Ed25519 signature of the newest note only;
 * every older note is still opened (well formed, a signature line by a trusted
 * key, body equal to its row) and its root compared with the recomputed root.
 * That authenticates them as much as their own signatures would: the newest
 * signed root commits to every entry, and each older root is recomputed from
 * a prefix of those entries. Without the flag every signature is verified too
 * (one Ed25519 verification per checkpoint, i.e. per sequencer batch: the
 * dominant cost of a full run).
 */
#define MSR_AV_LAST_SIGNATURE  0x1
/*
 * MSR_AV_NO_STORED: do not compare the stored level-0 hashes (audit_hashes,
 * the cache inclusion proofs and tiles are served from) with the recomputed
 * leaf hashes. A wrong stored hash cannot hide a change: every root is
 * recomputed from the entries themselves, and a proof built on a wrong stored
 * hash fails its client's verification. When a root does not match, the
 * database verifier still consults the stored hashes of that checkpoint's
 * range to name the altered entry.
 */
#define MSR_AV_NO_STORED       0x2

/* A stored checkpoint row: size and root as the row says. */
struct msr_av_checkpoint {
	uint64_t	size;
	uint8_t		root[MSR_MERKLE_HASH_LEN];
};

/*
 * The streaming verifier. Entries are fed in order; at every checkpoint size
 * the recomputed root must equal the checkpoint's root; at the size of a
 * previously saved checkpoint (msr_av_since) its root too.
 *   1. Entries are exactly 0 .. expect-1: no gap, nothing beyond.
 *   2. When stored leaf hashes are given, each equals the recomputed leaf hash.
 *   3. Each checkpoint root equals the root recomputed at its size; as all
 *      roots come from one leaf sequence, every checkpoint is consistent with
 *      the next (RFC 9162 2.1.4) by construction.
 */
struct msr_av {
	struct msr_merkle_frontier	 fr;
	const struct msr_av_checkpoint	*cps;	/* ascending sizes; borrowed */
	size_t				 ncps, next;
	uint64_t			 expect;
	int				 have_since;
	uint64_t			 since_size;
	uint8_t				 since_root[MSR_MERKLE_HASH_LEN];
	int				 bad;
	uint64_t			 bad_from, bad_to;	/* root mismatch: entries [from, to) */
	struct msr_audit_report		*rep;
	void				*hasher;	/* private */
};

void msr_av_init(struct msr_av *v, const struct msr_av_checkpoint *cps, size_t ncps,
    uint64_t expect, struct msr_audit_report *rep);
/*
 * The log must extend `since` (a checkpoint verified earlier): 0, or -1 at once
 * when it is larger than the log.
 */
int msr_av_since(struct msr_av *v, const struct msr_note_checkpoint *since);
/*
 * Entry idx with its exact bytes; stored is its stored level-0 hash when the
 * source has one (check_stored 1; NULL then means "missing"), else ignored.
 */
int msr_av_entry(struct msr_av *v, uint64_t idx, const uint8_t *leaf, size_t len,
    int check_stored, const uint8_t *stored);
/*
 * The same in two halves, for a driver that hashes on several threads:
 * msr_av_leaf_hash with a hasher of the calling thread's own (NULL: the
 * portable fallback), then msr_av_entry_hashed in index order on one thread.
 */
void *msr_av_hasher_new(void);
void msr_av_hasher_free(void *hasher);
void msr_av_leaf_hash(void *hasher, const uint8_t *leaf, size_t len,
    uint8_t out[MSR_MERKLE_HASH_LEN]);
int msr_av_entry_hashed(struct msr_av *v, uint64_t idx, const uint8_t h[MSR_MERKLE_HASH_LEN],
    int check_stored, const uint8_t *stored);
/* After the last entry: every expected entry was seen, `since` was reached. */
int msr_av_finish(struct msr_av *v);
void msr_av_free(struct msr_av *v);

/*
 * Check the signed notes of n checkpoint rows (notes[i] belongs to cps[i]):
 * each opens with v and its body equals its row. With MSR_AV_LAST_SIGNATURE
 * only the newest one's signature is verified (the others are opened
 * unverified). Uses a second thread. 0, or -1 with the first bad row named in
 * rep (unless rep already names an earlier problem).
 */
int msr_av_signatures(const struct msr_note_verifier *v, const char *const *notes,
    const struct msr_av_checkpoint *cps, size_t n, unsigned flags,
    struct msr_audit_report *rep);

/*
 * The same in two steps, so the checks overlap other work: start hands the
 * rows to a background thread at once; finish joins in on what is left, waits,
 * and reports as msr_av_signatures (abandon 1: stop early, report nothing,
 * for a run that already failed to read). finish frees the handle; a NULL
 * handle (out of memory) fails.
 */
struct msr_av_sigs;
struct msr_av_sigs *msr_av_sig_start(const struct msr_note_verifier *v,
    const char *const *notes, const struct msr_av_checkpoint *cps, size_t n,
    unsigned flags);
int msr_av_sig_finish(struct msr_av_sigs *s, int abandon, struct msr_audit_report *rep);

/*
 * Offline receipt: a C2SP tlog-proof (c2sp.org/tlog-proof). msreg puts the
 * exact entry bytes in the proof's "extra" line; leaf/leaf_len (may be NULL)
 * supplies or overrides them and must then equal any extra data present.
 */
int msr_audit_receipt_verify(const char *receipt, const struct msr_note_verifier *v,
    const uint8_t *leaf, size_t leaf_len, struct msr_audit_report *rep);

/* Kept for callers written before the move to note.c. */
static inline int
msr_audit_open_checkpoint(const struct msr_note_verifier *v, const char *note,
    struct msr_note_checkpoint *cp)
{
	return msr_note_checkpoint_open(v, note, cp);
}

#endif
