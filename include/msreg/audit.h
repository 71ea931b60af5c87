/*
 * audit.h — the audit log's sequencer: group commit into PostgreSQL, RFC 9162
 * Merkle tree, signed C2SP checkpoints, a high-water mark kept outside the
 * database, and write intents that are resolved or voided (audit.c).
 *
 * msr_audit_append() is called by the HTTP middleware for every audited request
 * and blocks until the entry, the tree hashes it completes, the new tree state
 * and a checkpoint covering it are committed (zero merge delay). It returns 0
 * and the entry's 0-based index, or -1 when the log cannot be written (the
 * request then fails with 503 and nothing is answered).
 *
 * A write (a request whose transaction is still open, see http.c invariant 6)
 * appends with msr_audit_append_write() and then ends its transaction with
 * msr_audit_commit_write(), which commits the data and resolves the intent in
 * one round trip; an intent left unresolved is voided by a later entry.
 */
#ifndef MSREG_AUDIT_H
#define MSREG_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct msr_config;
struct msr_audit;
struct msr_db_conn;
struct msr_merkle_nodes;
struct msr_note_verifier;
struct msr_note_signer;

/*
 * Load the signer key, start the sequencer thread and wait (briefly) for its
 * start-up check. Returns NULL only on a fatal setup error (unreadable key
 * file, origin mismatch); a database that is down, a check still running or a
 * log that fails its check yields a handle whose msr_audit_ready() is 0.
 */
struct msr_audit *msr_audit_start(const struct msr_config *cfg);
void msr_audit_stop(struct msr_audit *a);
/* 1 when entries can be sequenced now. */
int msr_audit_ready(struct msr_audit *a);
/* Append one canonical-JSON entry; blocks until durable. 0 on success. */
int msr_audit_append(struct msr_audit *a, const char *entry, size_t len,
                     int64_t client_id, int64_t *index);
/*
 * The same without blocking: the entry is copied, and once the batch holding
 * it has committed (the same durability and zero merge delay as
 * msr_audit_append) the sequencer thread calls cb(arg, index), or cb(arg, -1)
 * when the entry could not be sequenced (database error, integrity failure,
 * queued longer than [audit] wait_ms, stop). Returns 0 when queued (cb is then
 * called exactly once), -1 when refused at once (not ready, queue full: cb is
 * never called). cb runs without the sequencer's lock and must be quick (it
 * delays the next batch); it may append again.
 */
typedef void (*msr_audit_done_fn)(void *arg, int64_t index);
int msr_audit_append_async(struct msr_audit *a, const char *entry, size_t len,
                           int64_t client_id, msr_audit_done_fn cb, void *arg);
/* The same for a write whose transaction on its own connection is still open. */
int msr_audit_append_write(struct msr_audit *a, const char *entry, size_t len,
                           int64_t client_id, int64_t *index);
/*
 * Commit the write's transaction on c now that its entry `index` is durable.
 * 0 when committed; -1 when it was not (rolled back, or outcome unknown): the
 * log then gets an "audit.write_void" entry naming `index` unless the data did
 * commit. The caller answers 503 on -1.
 */
int msr_audit_commit_write(struct msr_audit *a, struct msr_db_conn *c, int64_t index);
/* The verifier key text "<name>+<keyid>+<base64>" (owned by a). */
const char *msr_audit_verifier_key(struct msr_audit *a);
/* The parsed verifier key (owned by a). */
const struct msr_note_verifier *msr_audit_verifier(struct msr_audit *a);
/*
 * Prometheus text for the log's gauges and counters (msreg_audit_*), appended
 * to buf (NUL-terminated, truncated to cap).
 */
void msr_audit_metrics(struct msr_audit *a, char *buf, size_t cap);

/* Kept for callers written before the split (audit_store.c, note.c). */
int msr_audit_fetch_nodes(struct msr_db_conn *c, struct msr_merkle_nodes *s);
int msr_note_signer_load(const char *path, struct msr_note_signer *s, char *err,
    size_t errlen);
#define msr_audit_load_key msr_note_signer_load

#endif
