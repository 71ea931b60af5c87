/*
 * audit.c — the audit log's sequencer: group commit of canonical-JSON entries
 * into PostgreSQL as an RFC 9162 Merkle tree, one signed C2SP checkpoint per
 * batch, a high-water mark kept outside the database, and the write intents
 * that keep the log from claiming writes that did not happen. All SQL is in
 * audit_store.c, all judging of stored logs in audit_verify.c; this file is the
 * sequencer alone.
 *
 * Formats
 *   leaf hash   SHA-256(0x00 || entry bytes)            RFC 9162 2.1.1
 *   node hash   SHA-256(0x01 || left || right)          RFC 9162 2.1.1
 *   checkpoint  "<origin>\n<tree size>\n<base64 root>\n" c2sp.org/tlog-checkpoint
 *   note        body "\n" "— <key name> <base64(keyid4 || Ed25519 sig)>\n"
 *                                                        c2sp.org/signed-note
 *   state file  the newest checkpoint note this process signed or verified,
 *               verbatim ([audit] state_file, default key_file ".state")
 *   the one entry this file writes itself (canonical JSON, keys sorted):
 *     {"action":"audit.write_void","reason":...,"void_for":N}   see "Writes"
 *
 * States (enum seq_state in struct msr_audit.state, written under a->lock;
 * each transition is made by the function named on it, as in SQLite's pager.c):
 *
 *                 sequencer_main           seq_recover
 *     STARTING ------------------> CHECKING ------------> READY <------+
 *                                   |  ^  |                |  |        |
 *                       seq_recover +--+  | refuse         |  |        | seq_recover
 *                       (I/O, backoff)    v                |  |        |
 *                                       REFUSING <---------+  |        |
 *                                         ^        refuse     |        |
 *                                         |                   v        |
 *                                         +------------- RELOADING ----+
 *                                              refuse     |  ^
 *                                                         +--+ seq_recover (I/O, backoff)
 *     (any) ---- msr_audit_stop ----> STOPPING
 *
 *   from       to         by              when
 *   STARTING   CHECKING   sequencer_main  the thread starts
 *   CHECKING   READY      seq_recover     seq_check passed (tail, full, state file)
 *   CHECKING   CHECKING   seq_recover     seq_check: database error; retried, backoff
 *                                         250 ms doubling to 5 s
 *   CHECKING   REFUSING   refuse          seq_check: integrity failure
 *   READY      RELOADING  seq_ready       seq_batch: database error (its waiters fail)
 *   READY      REFUSING   refuse          seq_batch: the head does not extend the mark
 *   RELOADING  READY      seq_recover     seq_reload: head and frontier reloaded
 *   RELOADING  RELOADING  seq_recover     seq_reload: database error; retried, backoff
 *   RELOADING  REFUSING   refuse          seq_reload: integrity failure
 *   any        STOPPING   msr_audit_stop
 *
 *   Only READY sequences (msr_audit_ready() is 1 only there; /readyz says 503
 *   otherwise). REFUSING is final for the process: the log failed an
 *   integrity check, every append fails (503 on every audited route), the
 *   error is logged as "AUDIT LOG INTEGRITY FAILURE" and the metric
 *   msreg_audit_integrity_failure is 1. A database error is never an
 *   integrity failure: audit_store.c reports MSR_AS_IO for anything the
 *   database did not answer (down, statement timeout, lock wait), and the
 *   sequencer retries; only an answer whose content is wrong is MSR_AS_CORRUPT.
 *
 * How a batch is sequenced (seq_batch, in phases)
 *   There is no fixed wait: when the sequencer is idle it takes whatever is
 *   queued at once (up to max_batch); entries that arrive while a batch
 *   commits form the next one ([audit] batch_wait_us > 0 adds a window).
 *     1. leaf hashes    computed by each appending thread before it queues
 *                       its entry (outside any lock), copied by take_batch;
 *                       batch_hash only hashes the voids the batch adds;
 *     2. the head       fast path: assume the head is our frontier (this
 *                       process appended last) and go straight to 3; slow
 *                       path (another instance appended, a void scan is due,
 *                       or the fast path's store found the head moved):
 *                       batch_open = msr_as_open {BEGIN, advisory lock, head,
 *                       [scan of write intents]} in one pipeline, then
 *                       adopt_head for a head that moved (checked against the
 *                       mark), then the voids join the batch;
 *     3. batch_extend   append to a copy of the frontier, collecting the
 *                       nodes it completes;
 *     4. batch_sign     sign the checkpoint;
 *     5. batch_commit   msr_as_store = {[BEGIN, lock,] guarded INSERT, COMMIT}
 *                       in one pipeline: the INSERT writes only if the head is
 *                       still the one the batch was computed on;
 *     6. batch_settle   move the frontier and the mark; the caller wakes the
 *                       waiters (settle_waiters).
 *   So a batch on a busy single-instance log costs ONE round trip plus the
 *   commit's fsync, however large it is; two while another msregd appends to
 *   the same log (the fast path is not tried again until the head stops
 *   moving).
 *
 * Asynchronous appends
 *   msr_audit_append_async copies the entry (and its leaf hash, computed by the
 *   caller's thread) into a waiter the sequencer owns, and returns; the
 *   sequencer calls the callback with the index once the batch has committed
 *   (invariant 1 holds for it exactly as for a blocking waiter), or with -1.
 *   msr_audit_append is the same queue with a waiter on the caller's stack
 *   woken by a condition variable. Callbacks run without a->lock, after each
 *   batch (run_callbacks), so a callback may append again. The queue is
 *   bounded (max_batch * QUEUE_BATCHES, at least QUEUE_MIN): beyond it an
 *   append fails at once. An asynchronous waiter has no thread to give up
 *   after wait_ms, so the reaper thread does it for it (reap), queued or in
 *   flight, as a blocking waiter would: one batch stuck on the database
 *   (statement_timeout) does not hold its requests longer than wait_ms.
 *
 * High-water mark
 *   The sequencer remembers the newest checkpoint it signed or verified (the
 *   mark) and hands each new one to a writer thread that persists it to the
 *   state file (tmp + fsync + rename + fsync of the directory), so no fsync
 *   delays a batch; the writer keeps only the newest note it was handed,
 *   writes at most every STATE_PAUSE_MS, and writes the last one before
 *   msr_audit_stop returns (after kill -9 the file may lag by that much). It never signs a tree
 *   that does not extend the
 *   mark: the fast path extends its own frontier (which yields the mark's root);
 *   any other head is adopted only after a consistency proof from the mark,
 *   built from audit_hashes and verified here, and after its checkpoint note
 *   verifies with our key. At start-up the stored log is checked against the
 *   state file the same way. A shorter log, a different root at the mark's
 *   size, or a failed proof is an integrity failure. An insider who cuts the
 *   log back below the mark (even with triggers disabled and every table
 *   consistent) is therefore refused by the running process at its next batch
 *   (the guarded INSERT stores nothing, the slow path sees the shorter head)
 *   and by a restart.
 *
 * Writes: the log never claims a write that did not happen
 *   A write's transaction T (http.c invariant 6) is still open when its entry
 *   is appended with msr_audit_append_write. The batch that stores the entry
 *   also inserts audit_pending(idx): an intent. T then ends with
 *   msr_audit_commit_write: in ONE round trip, {SELECT audit_write_done(idx),
 *   COMMIT}, where audit_write_done deletes the intent and raises if it is gone.
 *   So the data and the intent's resolution commit atomically: a committed
 *   write leaves no intent. An intent that stays (T timed out, failed to
 *   commit, the process was killed, PostgreSQL stopped) is voided by a later
 *   batch of any msregd on the log: the slow path locks, FOR UPDATE SKIP
 *   LOCKED, intents older than [audit] wait_ms or hinted by this process (a
 *   waiter that gave up, a failed commit, a batch whose outcome is unknown),
 *   appends {"action":"audit.write_void","void_for":idx} for each and deletes
 *   them in the same statement as that entry (msreg_app only inserts intents;
 *   it locks and deletes them through SECURITY DEFINER functions,
 *   sql/020_audit_pending.sql). The race is settled by the row:
 *   a T that commits first deleted the intent (nothing to void); a T that
 *   comes later finds it gone, raises, rolls back, and answers 503. An intent
 *   held by a live T is skipped (locked). Hence every 2xx write entry names
 *   data that exist or is followed by exactly one entry saying it did not
 *   happen; at start-up the first scan runs at once.
 *
 * Invariants
 *   1. Zero merge delay: an index is handed out only after the transaction that
 *      stored the entry AND a signed checkpoint covering it has committed.
 *   2. One sequencer at a time across every msregd sharing the database: all log
 *      writes happen under the transaction-scoped advisory lock, and the store
 *      is guarded by the head it was computed on.
 *   3. The in-memory frontier and mark move only after a successful COMMIT; any
 *      failure fails every waiter of the batch (-1) and sends the sequencer to
 *      RELOADING, which reloads the head and frontier (checked against the
 *      mark) before the next batch.
 *   4. Never two checkpoints that disagree: committed checkpoints extend the
 *      committed tree (invariant 2) and tree_size is their primary key. A
 *      batch whose COMMIT outcome is unknown held the advisory lock until its
 *      transaction ended; the next batch takes the lock before it reads the
 *      head or stores, so it sees that outcome and extends what committed. A
 *      note from a batch that did not commit was never visible to anyone, so
 *      signing another root at its size later forks nothing.
 *   5. A log that fails an integrity check is never extended in this process
 *      (REFUSING), so nothing is answered on top of a log that is not trusted.
 *   6. A waiter's entry bytes are copied by the sequencer under the lock when the
 *      batch is taken; a caller that gives up (audit_wait_ms) removes itself from
 *      the queue or the in-flight batch under the same lock, so the sequencer
 *      never touches a waiter that has returned. An asynchronous waiter is in
 *      exactly one of: the queue, the in-flight batch, the callback list (all
 *      under a->lock); it is freed right after its one callback.
 */
#include "msreg/common.h"
#include "msreg/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msreg/audit_store.h"
#include "msreg/audit_verify.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/log.h"
#include "msreg/merkle.h"
#include "msreg/metrics.h"
#include "msreg/note.h"

#define HLEN            MSR_MERKLE_HASH_LEN
#define RETRY_MIN_MS    250                     /* backoff while the database fails */
#define RETRY_MAX_MS    5000
#define START_WAIT_MS   10000                   /* msr_audit_start waits this long */
#define MAX_HINTS       1024
#define STATE_PAUSE_MS  1000                    /* state file writes, at most 1/s */
#define MAX_VOIDS       256                     /* intents voided per batch */
#define QUEUE_BATCHES   8                       /* queue bound: max_batch times this, */
#define QUEUE_MIN       65536                   /* at least this many entries */
#define REAP_MAX_MS     250                     /* the reaper looks this often at most */

enum seq_state {
	SEQ_STARTING,
	SEQ_CHECKING,
	SEQ_READY,
	SEQ_RELOADING,
	SEQ_REFUSING,
	SEQ_STOPPING,
};

static const char *const state_name[] = { "starting", "checking", "ready", "reloading",
	"refusing", "stopping" };

/* --- waiters and the handle -------------------------------------------------- */

enum wstate { W_QUEUED, W_INFLIGHT, W_DONE, W_FAILED };

/*
 * A waiter is either blocking (cb == NULL: it lives on the caller's stack and
 * is woken by cond) or asynchronous (cb != NULL: malloc'd by
 * msr_audit_append_async with the entry bytes after it, owned by the
 * sequencer, freed after its callback ran). Callbacks run on the sequencer
 * thread without a->lock held (run_callbacks), in index order per batch.
 */
struct waiter {
	const char	*entry;
	size_t		 len;
	int64_t		 client_id;
	int		 write;
	int64_t		 index;
	enum wstate	 state;
	size_t		 slot;		/* position in the in-flight batch */
	uint64_t	 enq_ns;
	pthread_cond_t	 cond;		/* blocking waiters only */
	uint8_t		 leaf[MSR_MERKLE_HASH_LEN];	/* leaf hash, by the caller */
	msr_audit_done_fn cb;		/* asynchronous waiters only */
	void		*cb_arg;
	struct waiter	*prev, *next;
};

struct msr_audit {
	/* configuration (copied) */
	char			*db_url;
	char			*origin;
	char			*state_path;
	int			 batch_wait_us, max_batch, wait_ms, verify_full;
	struct msr_note_signer	 signer;	/* [audit] key_file: the primary */
	struct msr_note_signer	 next;		/* [audit] next_key_file (rotation) */
	int			 have_next;
	struct msr_note_verifier trust[MSR_NOTE_MAX_KEYS];	/* chained: signer, */
	size_t			 ntrust;	/* next, [audit] old_keys */
	char			*vkey;		/* signing keys, one a line */

	/* shared: a->lock */
	pthread_t		 thread;
	int			 thread_started;
	pthread_mutex_t		 lock;
	pthread_cond_t		 work;		/* sequencer: something to do */
	pthread_cond_t		 settled;	/* start(): first attempt done */
	pthread_condattr_t	 cattr;
	struct waiter		*head, *tail;	/* queue */
	size_t			 qlen;
	size_t			 qmax;		/* queue bound: appends beyond it fail */
	struct waiter		*done, *done_tail;	/* async waiters settled, callbacks due */
	pthread_t		 reaper;	/* fails async waiters past wait_ms */
	int			 reaper_started;
	pthread_cond_t		 reap;
	struct waiter		**inflight;	/* current batch, NULL = gave up */
	size_t			 ninflight;
	int			 first_attempt_done;
	uint64_t		 hints[MAX_HINTS];	/* intents to void soon */
	size_t			 nhints;
	atomic_int		 state;		/* enum seq_state; written under lock */

	/* the state file writer: a->wlock */
	pthread_t		 writer;
	int			 writer_started;
	pthread_mutex_t		 wlock;
	pthread_cond_t		 wcond;
	char			*wpending;	/* newest note not yet written */
	int			 wstop;

	/* metrics */
	atomic_uint_fast64_t	 m_tree_size, m_voided, m_db_errors, m_batches;	/* batch sizes and
						   times: msr_metrics_audit_batch */

	/* sequencer thread only */
	struct msr_db_pool	*pool;		/* one connection, private */
	int			 have_frontier;
	int			 have_row;	/* the log has a tree state row */
	int			 contended;	/* another msregd appended lately */
	struct msr_merkle_frontier fr;
	struct msr_as_batch	 b;
	uint8_t			(*leafh)[HLEN];
	size_t			 leafh_cap;
	int			 have_mark;	/* the high-water mark */
	uint64_t		 mark_size;
	uint8_t			 mark_root[HLEN];
	char			*mark_note;
	char			 mark_error[600];	/* state file unusable: why */
	uint64_t		 last_scan_ns;
	int			 backoff_ms;
	char			 why[700];	/* the last integrity failure */
};

static uint64_t
now_ns(void)
{
	return msr_now_ns();
}

static void
deadline_ns(struct timespec *ts, uint64_t at)
{
	ts->tv_sec = (time_t)(at / 1000000000u);
	ts->tv_nsec = (long)(at % 1000000000u);
}

/* Lock held. */
static void
set_state(struct msr_audit *a, enum seq_state s)
{
	enum seq_state old = (enum seq_state)atomic_load(&a->state);

	if (old == s || old == SEQ_STOPPING)
		return;
	log_debug("audit: %s -> %s", state_name[old], state_name[s]);
	atomic_store(&a->state, (int)s);
}

static int
void_after_ms(const struct msr_audit *a)
{
	return a->wait_ms;
}

static uint64_t
scan_every_ns(const struct msr_audit *a)
{
	uint64_t ms = (uint64_t)a->wait_ms / 2;

	return (ms < 500 ? 500 : ms) * 1000000ull;
}

/* Lock held: a void scan should run now. */
static int
scan_due(const struct msr_audit *a)
{
	return a->nhints > 0 || now_ns() - a->last_scan_ns >= scan_every_ns(a);
}

/* Lock held. */
static void
hint(struct msr_audit *a, uint64_t idx)
{
	if (a->nhints < MAX_HINTS)
		a->hints[a->nhints++] = idx;
}

/* --- the high-water mark ------------------------------------------------------- */

/* Write note to path: tmp + fsync + rename + fsync(dir). 0 or -1 (errno). */
static int
state_write_file(const char *path, const char *note)
{
	char tmp[4200], dir[4200];
	size_t len = strlen(note), off = 0;
	int fd, dfd, ret = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t n = write(fd, note + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off < len || fsync(fd) != 0) {
		close(fd);
		goto done;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0)
		goto done;
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) != 0)
			log_warn("audit: fsync of the state file's directory failed: %s",
			    strerror(errno));
		close(dfd);
	}
	ret = 0;
done:
	if (ret != 0)
		unlink(tmp);
	return ret;
}

/* The state file writer: the newest handed note, coalescing, until stopped. */
static void *
writer_main(void *arg)
{
	struct msr_audit *a = arg;

	pthread_mutex_lock(&a->wlock);
	while (!a->wstop || a->wpending != NULL) {
		char *note = a->wpending;

		if (note == NULL) {
			pthread_cond_wait(&a->wcond, &a->wlock);
			continue;
		}
		a->wpending = NULL;
		pthread_mutex_unlock(&a->wlock);
		if (state_write_file(a->state_path, note) != 0)
			log_error("audit: cannot write the state file %s: %s", a->state_path,
			    strerror(errno));
		free(note);
		pthread_mutex_lock(&a->wlock);
		if (!a->wstop) {
			/* At most one write per STATE_PAUSE_MS; newer notes coalesce. */
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += STATE_PAUSE_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&a->wcond, &a->wlock, &ts);
		}
	}
	pthread_mutex_unlock(&a->wlock);
	return NULL;
}

/*
 * The newest checkpoint signed or verified: remember it (never going back)
 * and, when note is given (ownership passes), hand a copy to the writer.
 */
static void
mark_set(struct msr_audit *a, uint64_t size, const uint8_t root[HLEN], char *note,
    int persist)
{
	if (a->have_mark && size < a->mark_size) {
		free(note);
		return;
	}
	a->have_mark = 1;
	a->mark_size = size;
	memcpy(a->mark_root, root, HLEN);
	if (note == NULL)
		return;
	free(a->mark_note);
	a->mark_note = note;
	if (persist) {
		char *copy = strdup(note);

		pthread_mutex_lock(&a->wlock);
		if (copy != NULL) {
			free(a->wpending);
			a->wpending = copy;
		}
		pthread_cond_signal(&a->wcond);
		pthread_mutex_unlock(&a->wlock);
	}
}

/* Read the state file at start: the mark, or why it cannot be trusted. */
static void
state_read(struct msr_audit *a)
{
	struct msr_note_checkpoint cp;
	char *note = NULL, err[512];
	int missing = 0;

	if (msr_note_checkpoint_load(a->state_path, a->trust, &note, &cp, &missing, err,
	    sizeof(err)) != 0) {
		if (missing) {
			log_info("audit: no state file %s yet; it starts with the checked log",
			    a->state_path);
		} else {
			snprintf(a->mark_error, sizeof(a->mark_error), "the state file: %s "
			    "(if the database was deliberately replaced, remove the file)", err);
		}
		return;
	}
	log_info("audit: high-water mark from %s: tree size %" PRIu64, a->state_path, cp.size);
	mark_set(a, cp.size, cp.root, note, 0);
}

/*
 * The stored tree of `size` leaves with root `root` must extend the mark: a
 * consistency proof from the mark, built from stored nodes. MSR_AS_CORRUPT
 * with a->why set when it does not.
 */
static int
extends_mark(struct msr_audit *a, struct msr_db_conn *c, uint64_t size,
    const uint8_t root[HLEN])
{
	struct msr_merkle_nodes *s = NULL;
	uint8_t proof[MSR_MERKLE_PROOF_MAX][HLEN], empty[HLEN];
	size_t n;
	int rc, ret = MSR_AS_CORRUPT;

	if (!a->have_mark)
		return MSR_AS_OK;
	if (a->mark_size > size) {
		snprintf(a->why, sizeof(a->why), "the log shrank: this server signed or "
		    "verified a checkpoint of tree size %" PRIu64 ", the database's newest is %"
		    PRIu64 " (entries %" PRIu64 "..%" PRIu64 " are gone)", a->mark_size, size,
		    size, a->mark_size - 1);
		return MSR_AS_CORRUPT;
	}
	if (a->mark_size == 0) {
		msr_merkle_empty_root(empty);
		return sodium_memcmp(empty, a->mark_root, HLEN) == 0 ? MSR_AS_OK : MSR_AS_CORRUPT;
	}
	if (a->mark_size == size) {
		if (sodium_memcmp(a->mark_root, root, HLEN) == 0)
			return MSR_AS_OK;
		snprintf(a->why, sizeof(a->why), "fork: the database's tree of size %" PRIu64
		    " has another root than the checkpoint this server signed or verified",
		    size);
		return MSR_AS_CORRUPT;
	}
	s = malloc(sizeof(*s));
	if (s == NULL)
		return MSR_AS_IO;
	msr_merkle_nodes_init(s);
	if (msr_merkle_plan_consistency(s, a->mark_size, size) != 0)
		goto done;
	rc = msr_as_nodes(c, s);
	if (rc != MSR_AS_OK) {
		ret = rc;
		if (rc == MSR_AS_CORRUPT)
			snprintf(a->why, sizeof(a->why), "stored tree nodes for a consistency "
			    "proof from size %" PRIu64 " to %" PRIu64 " are missing", a->mark_size,
			    size);
		goto done;
	}
	if (msr_merkle_prove_consistency(a->mark_size, size, msr_merkle_nodes_get, s, proof,
	    MSR_MERKLE_PROOF_MAX, &n) != 0 ||
	    msr_merkle_verify_consistency(a->mark_size, size, (const uint8_t (*)[HLEN])proof,
	    n, a->mark_root, root) != 0) {
		snprintf(a->why, sizeof(a->why), "the database's tree of size %" PRIu64 " does "
		    "not extend the checkpoint of size %" PRIu64 " this server signed or "
		    "verified (the log was rewritten)", size, a->mark_size);
		goto done;
	}
	ret = MSR_AS_OK;
done:
	free(s);
	return ret;
}

/* --- the frontier and the head ------------------------------------------------- */

/*
 * Load the frontier of the committed tree of `size` leaves from audit_hashes
 * and check that it yields `root`.
 */
static int
load_frontier(struct msr_audit *a, struct msr_db_conn *c, uint64_t size,
    const uint8_t root[HLEN])
{
	struct msr_merkle_nodes *s = malloc(sizeof(*s));
	struct msr_merkle_frontier fr;
	uint8_t got[HLEN];
	int rc, ret = MSR_AS_CORRUPT;

	if (s == NULL)
		return MSR_AS_IO;
	msr_merkle_nodes_init(s);
	if (msr_merkle_plan_frontier(s, size) != 0)
		goto done;
	rc = msr_as_nodes(c, s);
	if (rc != MSR_AS_OK || msr_merkle_frontier_init(&fr, size, msr_merkle_nodes_get, s) != 0) {
		ret = rc == MSR_AS_IO ? MSR_AS_IO : MSR_AS_CORRUPT;
		snprintf(a->why, sizeof(a->why), "stored tree nodes for size %" PRIu64
		    " are missing", size);
		goto done;
	}
	msr_merkle_frontier_root(&fr, got);
	if (sodium_memcmp(got, root, HLEN) != 0) {
		snprintf(a->why, sizeof(a->why), "stored tree nodes at size %" PRIu64 " do not "
		    "yield the recorded root", size);
		goto done;
	}
	a->fr = fr;
	a->have_frontier = 1;
	ret = MSR_AS_OK;
done:
	free(s);
	return ret;
}

/*
 * Accept h as the committed head: its checkpoint note is ours and matches it,
 * it extends the mark, and the stored frontier yields its root. Then it is
 * the mark (newest verified) and the frontier.
 */
static int
adopt_head(struct msr_audit *a, struct msr_db_conn *c, struct msr_as_head *h)
{
	struct msr_note_checkpoint cp;
	uint8_t empty[HLEN];
	int rc;

	a->have_frontier = 0;
	if (h->have && (h->note == NULL ||
	    msr_note_checkpoint_open(a->trust, h->note, &cp) != 0 || cp.size != h->size ||
	    sodium_memcmp(cp.root, h->root, HLEN) != 0)) {
		snprintf(a->why, sizeof(a->why), "the newest tree state (size %" PRIu64 ") has "
		    "no checkpoint signed by this server's key", h->size);
		return MSR_AS_CORRUPT;
	}
	rc = extends_mark(a, c, h->size, h->root);
	if (rc != MSR_AS_OK)
		return rc;
	if (!h->have) {
		msr_merkle_frontier_reset(&a->fr);
		msr_merkle_empty_root(empty);
		a->have_frontier = 1;
		a->have_row = 0;
		return MSR_AS_OK;
	}
	rc = load_frontier(a, c, h->size, h->root);
	if (rc != MSR_AS_OK)
		return rc;
	a->have_row = 1;
	mark_set(a, h->size, h->root, h->note, 1);
	h->note = NULL;
	atomic_store(&a->m_tree_size, h->size);
	return MSR_AS_OK;
}

/* --- start-up check ------------------------------------------------------------ */

struct tail_ctx {
	struct msr_audit	*a;
};

static int
tail_leaf(void *ctx, uint64_t idx, const uint8_t *leaf, size_t len, const uint8_t *stored)
{
	struct tail_ctx *t = ctx;
	uint8_t h[HLEN];

	msr_merkle_leaf_hash(leaf, len, h);
	if (stored == NULL || sodium_memcmp(h, stored, HLEN) != 0) {
		snprintf(t->a->why, sizeof(t->a->why), "entry %" PRIu64 ": leaf hash differs "
		    "from the stored tree", idx);
		return -1;
	}
	return 0;
}

/*
 * Tail check: the head's checkpoint is ours and well signed, the root from
 * stored nodes matches it, nothing lies beyond it, and the last 1024 leaves
 * hash to their stored level-0 nodes. A few queries, any log size.
 */
static int
check_tail(struct msr_audit *a, struct msr_db_conn *c, struct msr_as_head *h)
{
	struct msr_note_checkpoint cp;
	struct msr_merkle_nodes *s = NULL;
	struct tail_ctx t = { a };
	uint8_t root[HLEN];
	uint64_t beyond = 0;
	int rc;

	rc = msr_as_head(c, h);
	if (rc != MSR_AS_OK) {
		if (rc == MSR_AS_CORRUPT)
			snprintf(a->why, sizeof(a->why), "the newest tree state is malformed");
		return rc;
	}
	if (h->have && (h->note == NULL ||
	    msr_note_checkpoint_open(a->trust, h->note, &cp) != 0)) {
		snprintf(a->why, sizeof(a->why), "the last checkpoint (tree size %" PRIu64 ") "
		    "does not verify with this server's key", h->size);
		return MSR_AS_CORRUPT;
	}
	if (h->have && (cp.size != h->size || sodium_memcmp(cp.root, h->root, HLEN) != 0)) {
		snprintf(a->why, sizeof(a->why), "the last checkpoint's body (size %" PRIu64
		    ") disagrees with the tree state (size %" PRIu64 ")", cp.size, h->size);
		return MSR_AS_CORRUPT;
	}
	s = malloc(sizeof(*s));
	if (s == NULL)
		return MSR_AS_IO;
	msr_merkle_nodes_init(s);
	rc = MSR_AS_CORRUPT;
	if (msr_merkle_plan_root(s, h->size) != 0)
		goto done;
	rc = msr_as_nodes(c, s);
	if (rc != MSR_AS_OK || msr_merkle_root(h->size, msr_merkle_nodes_get, s, root) != 0) {
		if (rc != MSR_AS_IO) {
			rc = MSR_AS_CORRUPT;
			snprintf(a->why, sizeof(a->why), "stored tree nodes for size %" PRIu64
			    " are missing", h->size);
		}
		goto done;
	}
	if (sodium_memcmp(root, h->root, HLEN) != 0) {
		rc = MSR_AS_CORRUPT;
		snprintf(a->why, sizeof(a->why), "stored tree nodes do not yield the signed root "
		    "at size %" PRIu64, h->size);
		goto done;
	}
	rc = msr_as_count_from(c, h->size, &beyond);
	if (rc != MSR_AS_OK)
		goto done;
	if (beyond != 0) {
		rc = MSR_AS_CORRUPT;
		snprintf(a->why, sizeof(a->why), "entry %" PRIu64 ": entries exist beyond the "
		    "last signed checkpoint", h->size);
		goto done;
	}
	rc = msr_as_tail(c, h->size > 1024 ? h->size - 1024 : 0, h->size, tail_leaf, &t);
done:
	free(s);
	return rc;
}

/* Full check: every leaf, every checkpoint root (audit_store.c + audit_verify.c). */
static int
check_full(struct msr_audit *a)
{
	struct msr_audit_report rep;
	char err[256];
	PGconn *pg = msr_db_connect(a->db_url, err, sizeof(err));
	int ret;

	if (pg == NULL) {
		log_warn("audit: start-up check: %s", err);
		return MSR_AS_IO;
	}
	ret = msr_audit_verify_db(pg, a->trust, MSR_AV_LAST_SIGNATURE, NULL, &rep);
	PQfinish(pg);
	if (ret == 0) {
		log_info("audit: full start-up check passed: %" PRIu64 " entries, %" PRIu64
		    " checkpoints in %.2f s", rep.entries, rep.checkpoints, rep.seconds);
		return MSR_AS_OK;
	}
	if (rep.io_error) {
		log_warn("audit: start-up check: %s", rep.message);
		return MSR_AS_IO;
	}
	snprintf(a->why, sizeof(a->why), "%s", rep.message);
	return MSR_AS_CORRUPT;
}

static int seq_batch(struct msr_audit *a, int sign_empty);

/*
 * CHECKING: tail check, optional full check, the state file, then adopt the
 * head (which checks it against the mark) and, on a new log, sign the empty
 * tree. MSR_AS_IO retries; MSR_AS_CORRUPT refuses.
 */
static int
seq_check(struct msr_audit *a)
{
	struct msr_db_conn *c = msr_db_acquire(a->pool);
	struct msr_as_head h;
	int rc = MSR_AS_IO;

	memset(&h, 0, sizeof(h));
	if (c == NULL)
		goto done;
	rc = check_tail(a, c, &h);
	if (rc == MSR_AS_OK && a->verify_full)
		rc = check_full(a);
	if (rc == MSR_AS_OK && a->mark_error[0] != '\0') {
		snprintf(a->why, sizeof(a->why), "%s", a->mark_error);
		rc = MSR_AS_CORRUPT;
	}
	if (rc == MSR_AS_OK)
		rc = adopt_head(a, c, &h);
	msr_db_release(c);
	c = NULL;
	if (rc == MSR_AS_OK && !a->have_row) {
		/* A new log: sign the empty tree so /v1/audit/checkpoint has a note. */
		msr_as_batch_reset(&a->b);
		rc = seq_batch(a, 1);
	}
	if (rc == MSR_AS_OK) {
		a->last_scan_ns = 0;	/* void what a crash left, at once */
		log_info("audit: sequencer ready at tree size %" PRIu64, a->fr.size);
	}
done:
	msr_as_head_clear(&h);
	msr_db_release(c);
	return rc;
}

/* RELOADING: the head again, checked against the mark. */
static int
seq_reload(struct msr_audit *a)
{
	struct msr_db_conn *c = msr_db_acquire(a->pool);
	struct msr_as_head h;
	int rc = MSR_AS_IO;

	memset(&h, 0, sizeof(h));
	if (c == NULL)
		return MSR_AS_IO;
	rc = msr_as_head(c, &h);
	if (rc == MSR_AS_OK)
		rc = adopt_head(a, c, &h);
	else if (rc == MSR_AS_CORRUPT)
		snprintf(a->why, sizeof(a->why), "the newest tree state is malformed");
	msr_as_head_clear(&h);
	msr_db_release(c);
	if (rc == MSR_AS_OK)
		log_info("audit: sequencer reloaded at tree size %" PRIu64, a->fr.size);
	return rc;
}

/* --- one batch, in phases ---------------------------------------------------------- */

static int
grow_leafh(struct msr_audit *a, size_t n)
{
	uint8_t (*p)[HLEN];
	size_t cap = a->leafh_cap ? a->leafh_cap : 64;

	if (n <= a->leafh_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	p = realloc(a->leafh, cap * HLEN);
	if (p == NULL)
		return -1;
	a->leafh = p;
	a->leafh_cap = cap;
	return 0;
}

/* Phase 1: leaf hashes of entries [from, nentries); no lock, no database. */
static int
batch_hash(struct msr_audit *a, size_t from)
{
	if (grow_leafh(a, a->b.nentries) != 0)
		return -1;
	for (size_t i = from; i < a->b.nentries; i++) {
		size_t len;
		const uint8_t *leaf = msr_as_batch_leaf(&a->b, i, &len);

		msr_merkle_leaf_hash(leaf, len, a->leafh[i]);
	}
	return 0;
}

/* An entry this file writes itself (a void), hashed at once. */
static int
batch_add_own(struct msr_audit *a, const char *text, size_t len)
{
	if (msr_as_batch_entry(&a->b, text, len, 0, 0) != 0)
		return -1;
	return batch_hash(a, a->b.nentries - 1);
}

static int
put_node(void *ctx, unsigned level, uint64_t index, const uint8_t hash[HLEN])
{
	return msr_as_batch_node(ctx, level, index, hash);
}

/*
 * Phase 3: append the batch to a copy of the frontier (the real one moves
 * only after COMMIT), collecting the nodes it completes.
 */
static int
batch_extend(struct msr_audit *a, struct msr_merkle_frontier *fr)
{
	struct msr_as_batch *b = &a->b;

	msr_as_batch_rewind(b);
	*fr = a->fr;
	for (size_t i = 0; i < b->nentries; i++)
		if (msr_merkle_frontier_append(fr, a->leafh[i], put_node, b) != 0)
			return -1;
	b->first = a->fr.size;
	b->prev_size = a->have_row ? (int64_t)a->fr.size : -1;
	msr_merkle_frontier_root(&a->fr, b->prev_root);
	b->size = fr->size;
	msr_merkle_frontier_root(fr, b->root);
	return 0;
}

/* Phase 4: sign the checkpoint of the extended tree (*note: caller frees). */
static int
batch_sign(struct msr_audit *a, char **note)
{
	struct msr_note_checkpoint cp;
	size_t len;

	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "%s", a->origin);
	cp.size = a->b.size;
	memcpy(cp.root, a->b.root, HLEN);
	free(*note);
	*note = NULL;
	const struct msr_note_signer *signers[2] = { &a->signer, &a->next };

	if (msr_note_checkpoint_sign_all(signers, a->have_next ? 2 : 1, &cp, note,
	    &len) != 0)
		return -1;
	a->b.note = *note;
	return 0;
}

/* The void entries for intents the open round trip locked. */
static int
batch_voids(struct msr_audit *a, const uint64_t *voids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char text[200];
		int len = snprintf(text, sizeof(text), "{\"action\":\"audit.write_void\","
		    "\"reason\":\"the write was not committed; nothing was stored\","
		    "\"void_for\":%" PRIu64 "}", voids[i]);

		log_warn("audit: write of entry %" PRIu64 " did not commit; logging that it "
		    "did not happen", voids[i]);
		if (batch_add_own(a, text, (size_t)len) != 0 ||
		    msr_as_batch_void(&a->b, voids[i]) != 0)
			return -1;
	}
	return 0;
}

/*
 * Phase 2, slow path: {BEGIN, lock, head, [intent scan]}; a head that moved
 * is adopted only if it extends the mark; the voided intents join the batch.
 * The transaction stays open.
 */
static int
batch_open(struct msr_audit *a, struct msr_db_conn *c, int scan, const uint64_t *hints,
    size_t nhints)
{
	struct msr_as_head h;
	uint64_t voids[MAX_VOIDS];
	uint8_t mine[HLEN];
	size_t nvoids = 0;
	int moved, rc;

	rc = msr_as_open(&a->b, c, &h, scan, void_after_ms(a), hints, nhints, voids,
	    MAX_VOIDS, &nvoids);
	if (rc == MSR_AS_CORRUPT)
		snprintf(a->why, sizeof(a->why), "the newest tree state is malformed");
	if (rc != MSR_AS_OK)
		goto done;
	if (scan) {
		pthread_mutex_lock(&a->lock);
		a->last_scan_ns = now_ns();
		pthread_mutex_unlock(&a->lock);
	}
	moved = !a->have_frontier || h.have != a->have_row || h.size != a->fr.size;
	if (!moved) {
		msr_merkle_frontier_root(&a->fr, mine);
		moved = sodium_memcmp(mine, h.root, HLEN) != 0;
	}
	/* Another writer: keep to the slow path while it lasts. */
	a->contended = moved && a->have_frontier;
	if (moved)
		rc = adopt_head(a, c, &h);
	if (rc == MSR_AS_OK && batch_voids(a, voids, nvoids) != 0)
		rc = MSR_AS_IO;
done:
	msr_as_head_clear(&h);
	return rc;
}

/* Phases 3-5: extend, sign, store. *stored 0: the head had moved. */
static int
batch_commit(struct msr_audit *a, struct msr_db_conn *c, int opened,
    struct msr_merkle_frontier *fr, char **note, int *stored)
{
	int unknown = 0, rc;

	*stored = 0;
	if (batch_extend(a, fr) != 0 || batch_sign(a, note) != 0)
		return MSR_AS_IO;
	rc = msr_as_store(&a->b, c, opened, stored, &unknown);
	if (rc == MSR_AS_OK)
		return rc;
	log_error("audit: storing a batch of %zu entries failed%s", a->b.nentries,
	    unknown ? " (outcome unknown)" : "");
	if (unknown) {
		/*
		 * The intents may be stored while their writes were told "no":
		 * void them soon. The note itself is harmless either way
		 * (invariant 4).
		 */
		pthread_mutex_lock(&a->lock);
		for (size_t i = 0; i < a->b.nentries; i++)
			if (a->b.is_write[i])
				hint(a, a->b.first + i);
		pthread_mutex_unlock(&a->lock);
	}
	return rc;
}

/* Phase 6: the frontier and the mark move only now (invariant 3). */
static void
batch_settle(struct msr_audit *a, const struct msr_merkle_frontier *fr, char *note)
{
	a->fr = *fr;
	a->have_row = 1;
	mark_set(a, a->b.size, a->b.root, note, 1);
	atomic_store(&a->m_tree_size, a->b.size);
	atomic_fetch_add(&a->m_voided, a->b.nvoids);
}

/*
 * Sequence the batch in a->b (entries taken from the queue; sign_empty: a new
 * log's empty tree). MSR_AS_OK once committed, or when there was nothing to
 * write (a->b.first is the first entry's index); MSR_AS_IO on a database
 * failure (the waiters fail, the sequencer reloads); MSR_AS_CORRUPT when the
 * stored log does not extend the mark (a->why says how).
 */
static int
seq_batch(struct msr_audit *a, int sign_empty)
{
	struct msr_db_conn *c = NULL;
	struct msr_merkle_frontier fr;
	uint64_t hints[MAX_HINTS];
	size_t nhints = 0;
	char *note = NULL;
	int scan, stored = 0, ret = MSR_AS_IO;

	c = msr_db_acquire(a->pool);
	if (c == NULL)
		goto done;
	pthread_mutex_lock(&a->lock);
	scan = scan_due(a);
	if (scan) {
		nhints = a->nhints;
		memcpy(hints, a->hints, nhints * sizeof(hints[0]));
		a->nhints = 0;
	}
	pthread_mutex_unlock(&a->lock);
	if (a->have_frontier && a->have_row && !a->contended && !scan && a->b.nentries > 0) {
		/* Fast path: the head is our frontier; one round trip. */
		ret = batch_commit(a, c, 0, &fr, &note, &stored);
		if (ret != MSR_AS_OK || stored)
			goto done;
		log_debug("audit: the tree head moved since this server's last batch "
		    "(size %" PRIu64 "); checking it", a->fr.size);
		a->contended = 1;
	}
	ret = batch_open(a, c, scan, hints, nhints);
	if (ret != MSR_AS_OK)
		goto done;
	if (a->b.nentries == 0 && (a->have_row || !sign_empty)) {
		msr_as_abort(c);	/* nothing to write */
		goto done;
	}
	ret = batch_commit(a, c, 1, &fr, &note, &stored);
	if (ret == MSR_AS_OK && !stored) {
		log_error("audit: the tree head moved under the sequencer lock");
		ret = MSR_AS_IO;
	}
done:
	if (ret == MSR_AS_OK && stored) {
		batch_settle(a, &fr, note);
		note = NULL;
	}
	if (ret != MSR_AS_OK) {
		a->have_frontier = 0;
		if (ret == MSR_AS_IO)
			atomic_fetch_add(&a->m_db_errors, 1);
	}
	a->b.note = NULL;
	free(note);
	msr_db_release(c);
	return ret;
}

/* --- the sequencer thread --------------------------------------------------------- */

static void
unlink_waiter(struct msr_audit *a, struct waiter *w)
{
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		a->head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		a->tail = w->prev;
	w->prev = w->next = NULL;
	a->qlen--;
}

/*
 * w's outcome is known (state W_DONE or W_FAILED; lock held, w in no list): a
 * blocking waiter is woken, an asynchronous one joins the callback list.
 */
static void
finish(struct msr_audit *a, struct waiter *w)
{
	if (w->cb == NULL) {
		pthread_cond_signal(&w->cond);
		return;
	}
	w->prev = NULL;
	w->next = NULL;
	if (a->done_tail != NULL)
		a->done_tail->next = w;
	else
		a->done = w;
	a->done_tail = w;
}

/*
 * Run the callbacks of settled asynchronous waiters, without a->lock (a
 * callback may append again). Lock held on entry and on return.
 */
static void
run_callbacks(struct msr_audit *a)
{
	while (a->done != NULL) {
		struct waiter *w = a->done;

		a->done = a->done_tail = NULL;
		pthread_mutex_unlock(&a->lock);
		while (w != NULL) {
			struct waiter *next = w->next;

			w->cb(w->cb_arg, w->state == W_DONE ? w->index : -1);
			free(w);
			w = next;
		}
		pthread_mutex_lock(&a->lock);
	}
}

/*
 * The reaper: asynchronous waiters have no thread of their own to give up
 * after wait_ms, so this one does it for them, queued or in flight (a batch
 * stuck on the database keeps its blocking waiters only until wait_ms, and so
 * its asynchronous ones). An in-flight one leaves its slot NULL, as a blocking
 * waiter that gave up does (settle_waiters). Lock held.
 */
static void
reap(struct msr_audit *a)
{
	uint64_t now = now_ns(), wait_ns = (uint64_t)a->wait_ms * 1000000u;
	struct waiter *w = a->head;
	size_t n = 0;

	while (w != NULL && now - w->enq_ns > wait_ns) {
		struct waiter *next = w->next;

		if (w->cb != NULL) {
			unlink_waiter(a, w);
			w->state = W_FAILED;
			finish(a, w);
			n++;
		}
		w = next;
	}
	for (size_t i = 0; i < a->ninflight; i++) {
		w = a->inflight[i];
		if (w == NULL || w->cb == NULL || now - w->enq_ns <= wait_ns)
			continue;
		a->inflight[i] = NULL;
		w->state = W_FAILED;
		finish(a, w);
		n++;
	}
	if (n > 0)
		log_warn("audit: %zu entries not sequenced within %d ms", n, a->wait_ms);
}

static void *
reaper_main(void *arg)
{
	struct msr_audit *a = arg;
	uint64_t every_ms = (uint64_t)a->wait_ms / 4;

	if (every_ms > REAP_MAX_MS)
		every_ms = REAP_MAX_MS;
	pthread_mutex_lock(&a->lock);
	while (atomic_load(&a->state) != SEQ_STOPPING) {
		struct timespec ts;

		reap(a);
		run_callbacks(a);
		if (atomic_load(&a->state) == SEQ_STOPPING)
			break;
		deadline_ns(&ts, now_ns() + every_ms * 1000000ull);
		pthread_cond_timedwait(&a->reap, &a->lock, &ts);
	}
	run_callbacks(a);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static void
fail_queue(struct msr_audit *a)
{
	while (a->head != NULL) {
		struct waiter *w = a->head;

		a->head = w->next;
		w->state = W_FAILED;
		w->prev = w->next = NULL;
		finish(a, w);
	}
	a->tail = NULL;
	a->qlen = 0;
}

/*
 * Move up to max_batch queued waiters into the in-flight batch (lock held).
 * An asynchronous waiter queued longer than wait_ms fails instead, as a
 * blocking one would have given up (the queue is in arrival order).
 */
static void
take_batch(struct msr_audit *a)
{
	uint64_t now = now_ns(), wait_ns = (uint64_t)a->wait_ms * 1000000u;

	msr_as_batch_reset(&a->b);
	a->ninflight = 0;
	(void)grow_leafh(a, (size_t)a->max_batch);
	while (a->head != NULL && a->ninflight < (size_t)a->max_batch) {
		struct waiter *w = a->head;
		int late = w->cb != NULL && now - w->enq_ns > wait_ns;

		unlink_waiter(a, w);
		if (late || a->b.nentries >= a->leafh_cap ||
		    msr_as_batch_entry(&a->b, w->entry, w->len, w->client_id, w->write) != 0) {
			w->state = W_FAILED;
			finish(a, w);
			continue;
		}
		/* phase 1: hashed by the appending thread, outside any lock */
		memcpy(a->leafh[a->b.nentries - 1], w->leaf, HLEN);
		w->state = W_INFLIGHT;
		w->slot = a->ninflight;
		a->inflight[a->ninflight++] = w;
	}
}

/* Wake the in-flight waiters with the batch's outcome (lock held). */
static void
settle_waiters(struct msr_audit *a, int ok)
{
	for (size_t i = 0; i < a->ninflight; i++) {
		struct waiter *w = a->inflight[i];

		if (w == NULL) {
			/* Gave up waiting: a write among them was rolled back. */
			if (ok && a->b.is_write[i])
				hint(a, a->b.first + i);
			continue;
		}
		if (ok) {
			w->index = (int64_t)(a->b.first + i);
			w->state = W_DONE;
		} else {
			w->state = W_FAILED;
		}
		finish(a, w);
	}
	a->ninflight = 0;
}

/* Lock held: the log failed an integrity check. */
static void
refuse(struct msr_audit *a)
{
	log_error("AUDIT LOG INTEGRITY FAILURE: %s; refusing to sign (audited requests "
	    "get 503 until this is resolved)", a->why);
	set_state(a, SEQ_REFUSING);
	fail_queue(a);
}

/* Lock held: sleep ms (or until woken). */
static void
nap(struct msr_audit *a, uint64_t ms)
{
	struct timespec ts;

	deadline_ns(&ts, now_ns() + ms * 1000000ull);
	pthread_cond_timedwait(&a->work, &a->lock, &ts);
}

/* CHECKING or RELOADING: one attempt, then the transition. Lock held. */
static void
seq_recover(struct msr_audit *a)
{
	enum seq_state s = (enum seq_state)atomic_load(&a->state);
	int rc;

	pthread_mutex_unlock(&a->lock);
	rc = s == SEQ_CHECKING ? seq_check(a) : seq_reload(a);
	pthread_mutex_lock(&a->lock);
	if (atomic_load(&a->state) == SEQ_STOPPING)
		return;
	if (rc == MSR_AS_OK) {
		set_state(a, SEQ_READY);
		a->backoff_ms = RETRY_MIN_MS;
	} else if (rc == MSR_AS_CORRUPT) {
		refuse(a);
	} else {
		log_warn("audit: %s postponed (database unavailable); retrying in %d ms",
		    s == SEQ_CHECKING ? "start-up check" : "reload", a->backoff_ms);
		fail_queue(a);
		run_callbacks(a);
	}
	if (!a->first_attempt_done) {
		a->first_attempt_done = 1;
		pthread_cond_broadcast(&a->settled);
	}
	if (rc == MSR_AS_IO) {
		nap(a, (uint64_t)a->backoff_ms);
		a->backoff_ms = a->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : a->backoff_ms * 2;
	}
}

/* READY: one batch (or an idle wait). Lock held. */
static void
seq_ready(struct msr_audit *a)
{
	uint64_t until, t0;
	int rc;

	if (a->qlen == 0 && !scan_due(a)) {
		uint64_t next = a->last_scan_ns + scan_every_ns(a), now = now_ns();

		nap(a, next > now ? (next - now) / 1000000u + 1 : 1);
		return;
	}
	if (a->batch_wait_us > 0 && a->head != NULL) {
		/* Optional collection window ([audit] batch_wait_us). */
		until = a->head->enq_ns + (uint64_t)a->batch_wait_us * 1000u;
		while (atomic_load(&a->state) == SEQ_READY && a->head != NULL &&
		    a->qlen < (size_t)a->max_batch && now_ns() < until) {
			struct timespec ts;

			deadline_ns(&ts, until);
			pthread_cond_timedwait(&a->work, &a->lock, &ts);
		}
	}
	take_batch(a);
	pthread_mutex_unlock(&a->lock);
	t0 = now_ns();
	rc = seq_batch(a, 0);
	if (rc == MSR_AS_OK && a->ninflight > 0) {
		msr_metrics_audit_batch(a->ninflight, now_ns() - t0);
		atomic_fetch_add(&a->m_batches, 1);
	}
	pthread_mutex_lock(&a->lock);
	settle_waiters(a, rc == MSR_AS_OK);
	if (atomic_load(&a->state) == SEQ_STOPPING)
		return;
	if (rc == MSR_AS_CORRUPT) {
		refuse(a);
	} else if (rc != MSR_AS_OK) {
		log_warn("audit: batch failed; its requests get 503; reloading");
		set_state(a, SEQ_RELOADING);
		fail_queue(a);
	}
}

static void *
sequencer_main(void *arg)
{
	struct msr_audit *a = arg;

	pthread_mutex_lock(&a->lock);
	set_state(a, SEQ_CHECKING);
	for (;;) {
		run_callbacks(a);
		switch ((enum seq_state)atomic_load(&a->state)) {
		case SEQ_STARTING:
		case SEQ_CHECKING:
		case SEQ_RELOADING:
			seq_recover(a);
			continue;
		case SEQ_READY:
			seq_ready(a);
			continue;
		case SEQ_REFUSING:
			fail_queue(a);
			run_callbacks(a);
			pthread_cond_wait(&a->work, &a->lock);
			continue;
		case SEQ_STOPPING:
			break;
		}
		break;
	}
	fail_queue(a);
	run_callbacks(a);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* --- public API --------------------------------------------------------------- */

static char *
xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/*
 * Key rotation (README "Key rotation"): the checkpoint is signed by key_file
 * and, while a rotation is in progress, by next_key_file too (same name,
 * another key id); stored checkpoints, the state file and receipts verify with
 * any of those keys or of [audit] old_keys (verifier keys of retired signers,
 * trusted for the history they signed). a->vkey, served by /v1/audit/key, lists
 * the signing keys only, the primary first.
 */
static int
audit_keys(struct msr_audit *a, const struct msr_config *cfg)
{
	char err[512], k1[MSR_NOTE_KEY_TEXT_MAX], k2[MSR_NOTE_KEY_TEXT_MAX];
	size_t i, j;

	a->trust[0] = a->signer.v;
	a->ntrust = 1;
	k2[0] = '\0';
	if (cfg->audit_next_key_file != NULL && cfg->audit_next_key_file[0] != '\0') {
		if (msr_note_signer_load(cfg->audit_next_key_file, &a->next, err,
		    sizeof(err)) != 0) {
			log_error("audit: [audit] next_key_file: %s", err);
			return -1;
		}
		if (strcmp(a->next.v.name, a->origin) != 0 ||
		    a->next.v.key_id == a->signer.v.key_id) {
			log_error("audit: next key %s must be named %s and differ from key_file",
			    cfg->audit_next_key_file, a->origin);
			return -1;
		}
		a->have_next = 1;
		a->trust[a->ntrust++] = a->next.v;
		if (msr_note_verifier_format(&a->next.v, k2, sizeof(k2)) != 0)
			return -1;
	}
	if (cfg->audit_old_keys != NULL &&
	    msr_note_keys_parse_list(cfg->audit_old_keys, a->trust, MSR_NOTE_MAX_KEYS,
	    &a->ntrust) != 0) {
		log_error("audit: [audit] old_keys: a malformed verifier key, or more than"
		    " %d keys in all", MSR_NOTE_MAX_KEYS);
		return -1;
	}
	for (i = 0; i < a->ntrust; i++)
		for (j = 0; j < i; j++)
			if (a->trust[i].key_id == a->trust[j].key_id)
				log_info("audit: key id %08x is listed twice", a->trust[i].key_id);
	if (msr_note_keys_chain(a->trust, a->ntrust) != 0) {
		log_error("audit: every key in [audit] old_keys must be named %s", a->origin);
		return -1;
	}
	if (msr_note_verifier_format(&a->signer.v, k1, sizeof(k1)) != 0 ||
	    asprintf(&a->vkey, "%s%s%s", k1, k2[0] != '\0' ? "\n" : "", k2) < 0) {
		a->vkey = NULL;
		return -1;
	}
	if (a->have_next || a->ntrust > 1)
		log_info("audit: key rotation: signing with %zu key(s), %zu trusted for the"
		    " history", a->have_next ? (size_t)2 : (size_t)1, a->ntrust);
	return 0;
}

struct msr_audit *
msr_audit_start(const struct msr_config *cfg)
{
	struct msr_audit *a = NULL;
	struct timespec ts;
	char err[512];

	if (sodium_init() < 0)
		return NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&a->cattr);
	pthread_condattr_setclock(&a->cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&a->work, &a->cattr);
	pthread_cond_init(&a->settled, &a->cattr);
	pthread_cond_init(&a->reap, &a->cattr);
	pthread_mutex_init(&a->wlock, NULL);
	pthread_cond_init(&a->wcond, NULL);
	atomic_init(&a->state, SEQ_STARTING);
	a->backoff_ms = RETRY_MIN_MS;
	a->db_url = xstrdup(cfg->db_url);
	a->origin = xstrdup(cfg->audit_origin);
	if (cfg->audit_state_file != NULL && cfg->audit_state_file[0] != '\0') {
		a->state_path = xstrdup(cfg->audit_state_file);
	} else if (cfg->audit_key_file != NULL) {
		a->state_path = malloc(strlen(cfg->audit_key_file) + 7);
		if (a->state_path != NULL)
			sprintf(a->state_path, "%s.state", cfg->audit_key_file);
	}
	a->batch_wait_us = cfg->audit_batch_wait_us;
	a->max_batch = cfg->audit_max_batch > 0 ? cfg->audit_max_batch : 1;
	a->qmax = (size_t)a->max_batch * QUEUE_BATCHES;
	if (a->qmax < QUEUE_MIN)
		a->qmax = QUEUE_MIN;
	a->wait_ms = cfg->audit_wait_ms;
	a->verify_full = strcmp(cfg->audit_verify_on_start, "tail") != 0;
	a->inflight = calloc((size_t)a->max_batch, sizeof(*a->inflight));
	if (a->db_url == NULL || a->origin == NULL || a->inflight == NULL ||
	    a->state_path == NULL)
		goto fail;
	if (msr_note_signer_load(cfg->audit_key_file, &a->signer, err, sizeof(err)) != 0) {
		log_error("audit: %s", err);
		goto fail;
	}
	if (strcmp(a->signer.v.name, a->origin) != 0) {
		log_error("audit: key %s is named %s but [audit] origin is %s",
		    cfg->audit_key_file, a->signer.v.name, a->origin);
		goto fail;
	}
	if (audit_keys(a, cfg) != 0)
		goto fail;
	a->pool = msr_db_pool_new(cfg->db_url, 1, cfg->db_pool_wait_ms,
	    cfg->db_statement_timeout_ms);
	if (a->vkey == NULL || a->pool == NULL)
		goto fail;
	state_read(a);
	if (pthread_create(&a->writer, NULL, writer_main, a) != 0)
		goto fail;
	a->writer_started = 1;
	if (pthread_create(&a->thread, NULL, sequencer_main, a) != 0)
		goto fail;
	a->thread_started = 1;
	if (pthread_create(&a->reaper, NULL, reaper_main, a) != 0)
		goto fail;
	a->reaper_started = 1;
	/*
	 * Wait for the first attempt (check + load) so that readiness is known when
	 * the HTTP server starts, but not for long: a full check of a huge log goes
	 * on in the background while /healthz answers and /readyz says 503.
	 */
	pthread_mutex_lock(&a->lock);
	deadline_ns(&ts, now_ns() + START_WAIT_MS * 1000000ull);
	while (!a->first_attempt_done) {
		if (pthread_cond_timedwait(&a->settled, &a->lock, &ts) == ETIMEDOUT) {
			log_info("audit: start-up check still running; not ready until it ends");
			break;
		}
	}
	pthread_mutex_unlock(&a->lock);
	return a;
fail:
	msr_audit_stop(a);
	return NULL;
}

void
msr_audit_stop(struct msr_audit *a)
{
	if (a == NULL)
		return;
	if (a->thread_started) {
		pthread_mutex_lock(&a->lock);
		atomic_store(&a->state, SEQ_STOPPING);
		pthread_cond_broadcast(&a->work);
		pthread_cond_broadcast(&a->reap);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
		if (a->reaper_started)
			pthread_join(a->reaper, NULL);
	}
	if (a->writer_started) {
		pthread_mutex_lock(&a->wlock);
		a->wstop = 1;
		pthread_cond_signal(&a->wcond);
		pthread_mutex_unlock(&a->wlock);
		pthread_join(a->writer, NULL);	/* the newest mark is on disk */
	}
	free(a->wpending);
	msr_db_pool_free(a->pool);
	msr_note_signer_wipe(&a->signer);
	msr_note_signer_wipe(&a->next);
	msr_as_batch_free(&a->b);
	free(a->leafh);
	free(a->mark_note);
	free(a->vkey);
	free(a->db_url);
	free(a->origin);
	free(a->state_path);
	free(a->inflight);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->settled);
	pthread_cond_destroy(&a->reap);
	pthread_condattr_destroy(&a->cattr);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->wcond);
	pthread_mutex_destroy(&a->wlock);
	free(a);
}

int
msr_audit_ready(struct msr_audit *a)
{
	return a != NULL && atomic_load(&a->state) == SEQ_READY;
}

const char *
msr_audit_verifier_key(struct msr_audit *a)
{
	return a->vkey;
}

const struct msr_note_verifier *
msr_audit_verifier(struct msr_audit *a)
{
	return a->trust;
}

/*
 * Queue w (lock held, state READY checked by the caller). 0, or -1 when the
 * queue is full.
 */
static int
enqueue(struct msr_audit *a, struct waiter *w)
{
	if (a->qlen >= a->qmax)
		return -1;
	w->state = W_QUEUED;
	w->enq_ns = now_ns();
	w->next = NULL;
	w->prev = a->tail;
	if (a->tail != NULL)
		a->tail->next = w;
	else
		a->head = w;
	a->tail = w;
	a->qlen++;
	if (a->qlen == 1 || a->qlen >= (size_t)a->max_batch)
		pthread_cond_signal(&a->work);
	return 0;
}

int
msr_audit_append_async(struct msr_audit *a, const char *entry, size_t len,
    int64_t client_id, msr_audit_done_fn cb, void *arg)
{
	struct waiter *w;
	int ret = -1;

	if (cb == NULL || !msr_audit_ready(a) || len > INT32_MAX)
		return -1;
	w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return -1;
	memset(w, 0, sizeof(*w));
	memcpy(w + 1, entry, len);
	w->entry = (const char *)(w + 1);
	w->len = len;
	w->client_id = client_id;
	w->cb = cb;
	w->cb_arg = arg;
	msr_merkle_leaf_hash((const uint8_t *)entry, len, w->leaf);
	pthread_mutex_lock(&a->lock);
	if (atomic_load(&a->state) == SEQ_READY)
		ret = enqueue(a, w);
	pthread_mutex_unlock(&a->lock);
	if (ret != 0)
		free(w);
	return ret;
}

/* The blocking append: a waiter on this stack frame, woken by its cond. */
static int
append(struct msr_audit *a, const char *entry, size_t len, int64_t client_id,
    int write, int64_t *index)
{
	struct waiter w;
	struct timespec ts;
	int ret = -1;

	if (!msr_audit_ready(a) || len > INT32_MAX)
		return -1;
	memset(&w, 0, sizeof(w));
	w.entry = entry;
	w.len = len;
	w.client_id = client_id;
	w.write = write;
	msr_merkle_leaf_hash((const uint8_t *)entry, len, w.leaf);
	pthread_cond_init(&w.cond, &a->cattr);

	pthread_mutex_lock(&a->lock);
	/*
	 * The waiter lives on this stack frame: it leaves the queue (sequencer or
	 * timeout, both under a->lock) before this function returns (invariant 6).
	 */
	if (atomic_load(&a->state) != SEQ_READY || enqueue(a, &w) != 0) {
		pthread_mutex_unlock(&a->lock);
		goto done;
	}
	deadline_ns(&ts, w.enq_ns + (uint64_t)a->wait_ms * 1000000u);
	while (w.state == W_QUEUED || w.state == W_INFLIGHT) {
		if (pthread_cond_timedwait(&w.cond, &a->lock, &ts) != ETIMEDOUT)
			continue;
		if (w.state == W_QUEUED) {
			unlink_waiter(a, &w);
			w.state = W_FAILED;
		} else if (w.state == W_INFLIGHT) {
			a->inflight[w.slot] = NULL;	/* settle_waiters hints a write */
			w.state = W_FAILED;
		}
		log_warn("audit: entry not sequenced within %d ms", a->wait_ms);
	}
	pthread_mutex_unlock(&a->lock);
	if (w.state == W_DONE) {
		if (index != NULL)
			*index = w.index;
		ret = 0;
	}
done:
	pthread_cond_destroy(&w.cond);
	return ret;
}

int
msr_audit_append(struct msr_audit *a, const char *entry, size_t len,
    int64_t client_id, int64_t *index)
{
	return append(a, entry, len, client_id, 0, index);
}

int
msr_audit_append_write(struct msr_audit *a, const char *entry, size_t len,
    int64_t client_id, int64_t *index)
{
	return append(a, entry, len, client_id, 1, index);
}

int
msr_audit_commit_write(struct msr_audit *a, struct msr_db_conn *c, int64_t index)
{
	int rc;

	if (index < 0)
		return -1;
	rc = msr_as_commit_write(c, (uint64_t)index);
	if (rc == MSR_AS_OK)
		return 0;
	log_warn("audit: the write of entry %" PRId64 " did not commit%s", index,
	    rc == MSR_AS_CORRUPT ? " (its intent was already voided)" : "");
	if (a != NULL && rc == MSR_AS_IO) {
		pthread_mutex_lock(&a->lock);
		hint(a, (uint64_t)index);
		pthread_cond_signal(&a->work);
		pthread_mutex_unlock(&a->lock);
	}
	return -1;
}

void
msr_audit_metrics(struct msr_audit *a, char *buf, size_t cap)
{
	size_t n = strnlen(buf, cap);
	int st;

	if (a == NULL || n + 1 >= cap)
		return;
	st = atomic_load(&a->state);
	snprintf(buf + n, cap - n,
	    "# HELP msreg_audit_integrity_failure 1 when the audit log failed an integrity "
	    "check and this server refuses to sign\n"
	    "# TYPE msreg_audit_integrity_failure gauge\n"
	    "msreg_audit_integrity_failure %d\n"
	    "# HELP msreg_audit_ready 1 when the sequencer accepts entries\n"
	    "# TYPE msreg_audit_ready gauge\n"
	    "msreg_audit_ready %d\n"
	    "# HELP msreg_audit_tree_size entries in the log as last committed or verified\n"
	    "# TYPE msreg_audit_tree_size gauge\n"
	    "msreg_audit_tree_size %" PRIuFAST64 "\n"
	    "# HELP msreg_audit_writes_voided_total write entries followed by an "
	    "audit.write_void entry\n"
	    "# TYPE msreg_audit_writes_voided_total counter\n"
	    "msreg_audit_writes_voided_total %" PRIuFAST64 "\n"
	    "# HELP msreg_audit_db_errors_total batches that failed on a database error\n"
	    "# TYPE msreg_audit_db_errors_total counter\n"
	    "msreg_audit_db_errors_total %" PRIuFAST64 "\n"
	    "# HELP msreg_audit_batches_total batches of requests' entries committed\n"
	    "# TYPE msreg_audit_batches_total counter\n"
	    "msreg_audit_batches_total %" PRIuFAST64 "\n",
	    st == SEQ_REFUSING, st == SEQ_READY,
	    (uint_fast64_t)atomic_load(&a->m_tree_size),
	    (uint_fast64_t)atomic_load(&a->m_voided),
	    (uint_fast64_t)atomic_load(&a->m_db_errors),
	    (uint_fast64_t)atomic_load(&a->m_batches));
}
