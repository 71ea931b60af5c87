/*
 * audit_verify.h — independent verification of the audit log (used by msregd's
 * full start-up check and by `msreg audit verify` / `msreg audit receipt verify`).
 *
 * Every function recomputes from the entries themselves (RFC 9162 leaf and node
 * hashes) and trusts only the verifier key: stored hashes, stored roots and the
 * server's answers are compared against the recomputation, never believed.
 * Results: 0 = verified; -1 = not verified, with rep->message naming the first
 * problem and rep->bad_index the first bad entry index when one can be named.
 */
#ifndef MSREG_AUDIT_VERIFY_H
#define MSREG_AUDIT_VERIFY_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct msr_note_verifier;
struct msr_note_checkpoint;

struct msr_audit_report {
	int64_t		bad_index;	/* first bad entry, -1 if none or unknown */
	uint64_t	tree_size;	/* size of the newest verified checkpoint */
	uint64_t	entries;	/* entries recomputed */
	uint64_t	checkpoints;	/* checkpoints checked */
	double		seconds;
	int		io_error;	/* 1: could not read (database/HTTP), not a bad log */
	char		message[512];
};

/* Flags for msr_audit_verify_db. */
#define MSR_AV_LAST_SIGNATURE  0x1	/* verify only the newest note's signature */

/*
 * Open a signed checkpoint note: signed by v, well formed, origin = v's name.
 * 0 and *cp filled, or -1.
 */
int msr_audit_open_checkpoint(const struct msr_note_verifier *v, const char *note,
    struct msr_note_checkpoint *cp);

/*
 * Database mode: in one REPEATABLE READ snapshot, stream audit_entries (binary
 * COPY) joined with their stored level-0 hashes, recompute every leaf hash and
 * the tree, and check every stored checkpoint: signature (all of them unless
 * MSR_AV_LAST_SIGNATURE), body equal to its row, root equal to the recomputed
 * root at its size (which also proves each checkpoint consistent with the
 * next), plus the newest root from the stored nodes. pg is any role that can
 * SELECT the audit tables; v is the log's verifier key.
 */
int msr_audit_verify_db(PGconn *pg, const struct msr_note_verifier *v, unsigned flags,
    struct msr_audit_report *rep);

/*
 * HTTP mode: fetch the checkpoint (and /v1/audit/key; when v is given, a served
 * key that differs from it fails; when v is NULL the served key is used), page through /v1/audit/entries with
 * the auditor key, recompute the root and compare. If prev_checkpoint (a note
 * verified earlier, may be NULL) is given, the log must extend it: its root
 * must equal the recomputed root at its size.
 */
int msr_audit_verify_url(const char *base_url, const char *auditor_key,
    const struct msr_note_verifier *v, const char *prev_checkpoint,
    struct msr_audit_report *rep,
    char **checkpoint_out);

/*
 * Offline receipt: a C2SP tlog-proof (c2sp.org/tlog-proof). msreg puts the
 * exact entry bytes in the proof's "extra" line; leaf/leaf_len (may be NULL)
 * supplies or overrides them and must then equal any extra data present.
 */
int msr_audit_receipt_verify(const char *receipt, const struct msr_note_verifier *v,
    const uint8_t *leaf, size_t leaf_len, struct msr_audit_report *rep);

#endif
