/*
 * audit.h — the audit log: sequencer (group commit into PostgreSQL, RFC 9162
 * Merkle tree, signed C2SP checkpoints) and readers used by the audit endpoints.
 *
 * msr_audit_append() is called by the HTTP middleware for every audited request
 * and blocks until the entry, the tree hashes it completes, the new tree state
 * and a checkpoint covering it are committed (zero merge delay). It returns the
 * entry's 0-based index, or -1 when the log cannot be written (the request then
 * fails with 503 and nothing is answered).
 */
#ifndef MSREG_AUDIT_H
#define MSREG_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct msr_config;
struct msr_audit;

/*
 * Load the signer key, connect, check the stored tree against the last signed
 * checkpoint and start the sequencer thread. Returns NULL only on a fatal setup
 * error (unreadable key file); a database that is down or a log that fails its
 * start-up check yields a handle whose msr_audit_ready() is 0.
 */
struct msr_audit *msr_audit_start(const struct msr_config *cfg);
void msr_audit_stop(struct msr_audit *a);
/* 1 when entries can be sequenced now. */
int msr_audit_ready(struct msr_audit *a);
/* Append one canonical-JSON entry; blocks until durable. 0 on success. */
int msr_audit_append(struct msr_audit *a, const char *entry, size_t len,
                     int64_t client_id, int64_t *index);
/* The verifier key text "<name>+<keyid>+<base64>" (owned by a). */
const char *msr_audit_verifier_key(struct msr_audit *a);

/* --- for the audit endpoints and tools --- */
struct msr_db_conn;
struct msr_merkle_nodes;
struct msr_note_signer;

/* The parsed verifier key (owned by a). */
const struct msr_note_verifier *msr_audit_verifier(struct msr_audit *a);
/*
 * Read the signer key file (signed-note text form, PRIVATE+KEY+...) into s.
 * 0, or -1 with a reason in err. The caller wipes s (msr_note_signer_wipe).
 */
int msr_audit_load_key(const char *path, struct msr_note_signer *s, char *err,
                       size_t errlen);
/*
 * Fetch every not-yet-set node of the plan s from audit_hashes in one query.
 * 0 when the set is complete; -1 on a database error or missing nodes.
 */
int msr_audit_fetch_nodes(struct msr_db_conn *c, struct msr_merkle_nodes *s);

#endif
