/*
 * audit.c — the audit log sequencer: group commit of canonical-JSON entries into
 * PostgreSQL as an RFC 9162 Merkle tree, with a signed C2SP checkpoint per batch.
 *
 * Formats
 *   leaf hash   SHA-256(0x00 || entry bytes)            RFC 9162 2.1.1
 *   node hash   SHA-256(0x01 || left || right)          RFC 9162 2.1.1
 *   checkpoint  "<origin>\n<tree size>\n<base64 root>\n" c2sp.org/tlog-checkpoint
 *   note        body "\n" "— <key name> <base64(keyid4 || Ed25519 sig)>\n"
 *                                                        c2sp.org/signed-note
 *   Tables (sql/001_schema.sql): audit_entries(idx, leaf = exact entry bytes,
 *   client_id), audit_hashes(level, idx, hash) for every COMPLETE subtree,
 *   audit_tree_state (one row per batch), audit_checkpoints (one signed note per
 *   batch).
 *
 * How a batch is sequenced
 *   Callers (HTTP threads) enqueue an entry and sleep on their own condition
 *   variable. The sequencer thread takes up to audit_max_batch queued entries
 *   once the oldest has waited audit_batch_wait_us (entries that queued while the
 *   previous batch committed go at once), copies them, hashes the leaves, and
 *   then in ONE transaction:
 *     BEGIN; pg_advisory_xact_lock(AUDIT_LOCK_KEY);
 *     read the newest audit_tree_state row (another msregd may have appended:
 *       then reload the frontier from audit_hashes, one query);
 *     append the leaves to a copy of the frontier, collecting completed nodes;
 *     sign the checkpoint; one INSERT statement (unnest of binary arrays) for
 *       entries, nodes, tree state and checkpoint; COMMIT.
 *   That is two libpq pipelines, so two round trips plus the commit's fsync per
 *   batch however large it is. Only then are the waiters woken with their
 *   indexes.
 *
 * Invariants
 *   1. Zero merge delay: an index is handed out only after the transaction that
 *      stored the entry AND a signed checkpoint covering it has committed.
 *   2. One sequencer at a time across every msregd sharing the database: all log
 *      writes happen under the transaction-scoped advisory lock, after reading
 *      the committed tree size under that lock.
 *   3. The in-memory frontier is only advanced after a successful COMMIT; any
 *      failure fails every waiter of the batch (-1) and forces a reload of the
 *      frontier from the database before the next batch.
 *   4. Never two checkpoints that disagree: committed checkpoints extend the
 *      committed tree (invariant 2) and tree_size is their primary key. A note
 *      signed in a batch whose COMMIT failed (outcome unknown) is remembered;
 *      should a later batch reach the same size with another root, a filler
 *      entry (action "audit.filler") is appended to step over that size.
 *   5. A log that fails the start-up check (signature, roots, leaf hashes) is
 *      never extended in this process: msr_audit_ready() stays 0 and every
 *      append fails, so nothing is answered on top of a log that is not trusted.
 *   6. A waiter's entry bytes are copied by the sequencer under the lock when the
 *      batch is taken; a caller that gives up (audit_wait_ms) removes itself from
 *      the queue or the in-flight batch under the same lock, so the sequencer
 *      never touches a waiter that has returned.
 */
#include "msreg/common.h"
#include "msreg/audit.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msreg/audit_verify.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/log.h"
#include "msreg/merkle.h"
#include "msreg/metrics.h"
#include "msreg/note.h"

#define HLEN            MSR_MERKLE_HASH_LEN
#define AUDIT_LOCK_KEY  "7239017265103447401"   /* advisory lock: "msregaud" */
#define RETRY_MS        250                     /* reconnect interval while down */
#define START_WAIT_MS   10000                   /* msr_audit_start waits this long */
#define MAX_UNCERTAIN   16

#define OID_INT2   21
#define OID_INT8   20
#define OID_BYTEA  17

/* --- prepared statements ---------------------------------------------------- */

static const struct msr_db_stmt s_lock = {
	"audit_lock", "SELECT pg_advisory_xact_lock($1::bigint)", 1 };
static const struct msr_db_stmt s_head = {
	"audit_head",
	"SELECT tree_size, root FROM audit_tree_state ORDER BY tree_size DESC LIMIT 1", 0 };
static const struct msr_db_stmt s_nodes = {
	"audit_nodes",
	"SELECT h.level, h.idx, h.hash FROM audit_hashes h"
	" JOIN unnest($1::smallint[], $2::bigint[]) AS u(level, idx)"
	" ON h.level = u.level AND h.idx = u.idx", 2 };
static const struct msr_db_stmt s_insert = {
	"audit_insert",
	"WITH e AS (INSERT INTO audit_entries (idx, leaf, client_id)"
	"  SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[])),"
	" h AS (INSERT INTO audit_hashes (level, idx, hash)"
	"  SELECT * FROM unnest($4::smallint[], $5::bigint[], $6::bytea[])),"
	" s AS (INSERT INTO audit_tree_state (tree_size, root, batch_size)"
	"  VALUES ($7::bigint, $8::bytea, $9::integer))"
	" INSERT INTO audit_checkpoints (tree_size, root, note)"
	" VALUES ($7::bigint, $8::bytea, $10::text)", 10 };
static const struct msr_db_stmt s_last_checkpoint = {
	"audit_last_checkpoint",
	"SELECT tree_size, root, note FROM audit_checkpoints"
	" ORDER BY tree_size DESC LIMIT 1", 0 };
static const struct msr_db_stmt s_tail_leaves = {
	"audit_tail_leaves",
	"SELECT e.idx, e.leaf, h.hash FROM audit_entries e"
	" LEFT JOIN audit_hashes h ON h.level = 0 AND h.idx = e.idx"
	" WHERE e.idx >= $1::bigint AND e.idx < $2::bigint ORDER BY e.idx", 2 };
static const struct msr_db_stmt s_tail_count = {
	"audit_tail_count",
	"SELECT count(*) FROM audit_entries WHERE idx >= $1::bigint", 1 };

/* --- growable byte buffer and binary array parameters ------------------------ */

struct buf {
	uint8_t	*p;
	size_t	 len, cap;
	int	 oom;
};

static void
buf_reserve(struct buf *b, size_t more)
{
	size_t cap;
	uint8_t *p;

	if (b->oom || b->len + more <= b->cap)
		return;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = 1;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void
buf_add(struct buf *b, const void *data, size_t len)
{
	buf_reserve(b, len);
	if (b->oom)
		return;
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void
buf_be32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = { v >> 24, v >> 16, v >> 8, v };

	buf_add(b, x, 4);
}

static void
buf_be64(struct buf *b, uint64_t v)
{
	buf_be32(b, (uint32_t)(v >> 32));
	buf_be32(b, (uint32_t)v);
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/*
 * A one-dimensional binary array parameter (PostgreSQL array_send format):
 * ndim, has-nulls flag, element type, length, lower bound, then per element a
 * 4-byte length (-1 = NULL) and the bytes. The length is patched by arr_end().
 */
static void
arr_begin(struct buf *b, uint32_t oid)
{
	b->len = 0;
	b->oom = 0;
	buf_be32(b, 1);
	buf_be32(b, 1);
	buf_be32(b, oid);
	buf_be32(b, 0);
	buf_be32(b, 1);
}

static void
arr_end(struct buf *b, size_t n)
{
	if (!b->oom)
		put_be32(b->p + 12, (uint32_t)n);
}

/* --- waiters and the handle -------------------------------------------------- */

enum wstate { W_QUEUED, W_INFLIGHT, W_DONE, W_FAILED };

struct waiter {
	const char	*entry;
	size_t		 len;
	int64_t		 client_id;
	int64_t		 index;
	enum wstate	 state;
	size_t		 slot;		/* position in the in-flight batch */
	uint64_t	 enq_ns;
	pthread_cond_t	 cond;
	struct waiter	*prev, *next;
};

struct uncertain {
	uint64_t	size;
	uint8_t		root[HLEN];
};

struct msr_audit {
	/* configuration (copied) */
	char			*db_url;
	char			*origin;
	int			 batch_wait_us, max_batch, wait_ms, verify_full;
	int			 stmt_timeout_ms;
	struct msr_note_signer	 signer;
	char			*vkey;

	pthread_t		 thread;
	int			 thread_started;
	pthread_mutex_t		 lock;
	pthread_cond_t		 work;		/* sequencer: something to do */
	pthread_cond_t		 settled;	/* start(): first attempt done */
	pthread_condattr_t	 cattr;
	struct waiter		*head, *tail;	/* queue */
	size_t			 qlen;
	struct waiter		**inflight;	/* current batch, NULL = gave up */
	size_t			 ninflight;
	int			 stopping;
	int			 first_attempt_done;
	atomic_int		 ready;
	atomic_int		 refused;

	/* sequencer-only state */
	struct msr_db_pool	*pool;		/* one connection, private */
	PGconn			*prepared_on;	/* pipeline statements prepared here */
	int			 checked;	/* start-up check passed */
	int			 have_frontier;
	struct msr_merkle_frontier fr;
	struct uncertain	 uncertain[MAX_UNCERTAIN];
	size_t			 nuncertain;
	/* batch buffers, reused */
	struct buf		 p_leaf, p_idx, p_client, p_nlevel, p_nidx, p_nhash;
	size_t			 nentries, nnodes;
	size_t			*off;		/* entry i starts at p_leaf.p + off[i] */
	size_t			*len;
	uint8_t			(*leafh)[HLEN];
	size_t			 cap_entries;
	uint64_t		 base;		/* tree size before the batch */
};

static int run_batch(struct msr_audit *a);
static void batch_reset(struct msr_audit *a);

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
deadline_ns(struct timespec *ts, uint64_t at)
{
	ts->tv_sec = (time_t)(at / 1000000000u);
	ts->tv_nsec = (long)(at % 1000000000u);
}

/* --- node fetch (shared with the handlers) ------------------------------------ */

int
msr_audit_fetch_nodes(struct msr_db_conn *c, struct msr_merkle_nodes *s)
{
	struct buf lv = { 0 }, ix = { 0 };
	char *vals[2] = { NULL, NULL };
	PGresult *res = NULL;
	int ret = -1;

	if (s->n == 0)
		return 0;
	/* Text arrays: a proof needs a few dozen small integers at most. */
	buf_add(&lv, "{", 1);
	buf_add(&ix, "{", 1);
	for (size_t i = 0; i < s->n; i++) {
		char t[32];
		int n;

		if (s->have[i])
			continue;
		n = snprintf(t, sizeof(t), "%s%u", lv.len > 1 ? "," : "", s->id[i].level);
		buf_add(&lv, t, (size_t)n);
		n = snprintf(t, sizeof(t), "%s%" PRIu64, ix.len > 1 ? "," : "", s->id[i].index);
		buf_add(&ix, t, (size_t)n);
	}
	buf_add(&lv, "}", 2);
	buf_add(&ix, "}", 2);
	if (lv.oom || ix.oom)
		goto done;
	vals[0] = (char *)lv.p;
	vals[1] = (char *)ix.p;
	res = msr_db_exec_params(c, &s_nodes, (const char *const *)vals, NULL, NULL, 1);
	if (!msr_db_ok(res)) {
		log_error("audit: reading tree nodes failed: %s",
		    res ? PQresultErrorMessage(res) : "no connection");
		goto done;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		if (PQgetlength(res, r, 0) != 2 || PQgetlength(res, r, 1) != 8 ||
		    PQgetlength(res, r, 2) != HLEN)
			goto done;
		msr_merkle_nodes_set(s, (unsigned)msr_load_be((const uint8_t *)PQgetvalue(res, r, 0), 2),
		    msr_load_be((const uint8_t *)PQgetvalue(res, r, 1), 8),
		    (const uint8_t *)PQgetvalue(res, r, 2));
	}
	ret = msr_merkle_nodes_complete(s) ? 0 : -1;
	if (ret != 0)
		log_error("audit: stored tree nodes are missing (audit_hashes incomplete)");
done:
	PQclear(res);
	free(lv.p);
	free(ix.p);
	return ret;
}

/* --- tree head --------------------------------------------------------------- */

/*
 * The committed tree size and root (size 0, empty root if nothing yet; then
 * *have_row, if given, is 0).
 */
static int
read_head2(struct msr_db_conn *c, uint64_t *size, uint8_t root[HLEN], int *have_row)
{
	PGresult *res = msr_db_exec_params(c, &s_head, NULL, NULL, NULL, 1);
	int ret = -1;

	if (!msr_db_ok(res))
		goto done;
	if (have_row != NULL)
		*have_row = PQntuples(res) > 0;
	if (PQntuples(res) == 0) {
		*size = 0;
		msr_merkle_empty_root(root);
		ret = 0;
		goto done;
	}
	if (PQgetlength(res, 0, 0) != 8 || PQgetlength(res, 0, 1) != HLEN)
		goto done;
	*size = msr_load_be((const uint8_t *)PQgetvalue(res, 0, 0), 8);
	memcpy(root, PQgetvalue(res, 0, 1), HLEN);
	ret = 0;
done:
	PQclear(res);
	return ret;
}

static int
read_head(struct msr_db_conn *c, uint64_t *size, uint8_t root[HLEN])
{
	return read_head2(c, size, root, NULL);
}

/*
 * Load the frontier of the committed tree of `size` leaves from audit_hashes and
 * check that it yields `root`. A mismatch means the stored nodes disagree with
 * the tree state: the log is refused.
 */
static int
load_frontier(struct msr_audit *a, struct msr_db_conn *c, uint64_t size,
    const uint8_t root[HLEN])
{
	struct msr_merkle_nodes *s = malloc(sizeof(*s));
	uint8_t got[HLEN];
	int ret = -1;

	if (s == NULL)
		return -1;
	msr_merkle_nodes_init(s);
	if (msr_merkle_plan_frontier(s, size) != 0 || msr_audit_fetch_nodes(c, s) != 0 ||
	    msr_merkle_frontier_init(&a->fr, size, msr_merkle_nodes_get, s) != 0)
		goto done;
	msr_merkle_frontier_root(&a->fr, got);
	if (sodium_memcmp(got, root, HLEN) != 0) {
		log_error("audit: stored tree nodes at size %" PRIu64 " do not yield the "
		    "recorded root; refusing to extend the log", size);
		atomic_store(&a->refused, 1);
		goto done;
	}
	a->have_frontier = 1;
	ret = 0;
done:
	free(s);
	return ret;
}

/* --- start-up check ------------------------------------------------------------ */

/*
 * Tail check: the last checkpoint is ours and well signed, matches the newest
 * tree state and the root computed from stored nodes, and the leaves of the
 * last batch hash to their stored level-0 nodes. A few queries, any log size.
 */
static int
check_tail(struct msr_audit *a, struct msr_db_conn *c, char *why, size_t whylen)
{
	PGresult *res = NULL;
	uint64_t size = 0, hsize;
	uint8_t root[HLEN], hroot[HLEN], leaf[HLEN];
	struct msr_merkle_nodes *s = NULL;
	char lo[24], hi[24];
	const char *vals[2];
	int ret = -1;

	res = msr_db_exec_params(c, &s_last_checkpoint, NULL, NULL, NULL, 0);
	if (!msr_db_ok(res)) {
		snprintf(why, whylen, "cannot read checkpoints");
		ret = -2;
		goto done;
	}
	if (PQntuples(res) == 0) {
		msr_merkle_empty_root(root);
	} else {
		struct msr_note_checkpoint cp;

		size = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		if (msr_audit_open_checkpoint(&a->signer.v, PQgetvalue(res, 0, 2), &cp) != 0) {
			snprintf(why, whylen, "the last checkpoint (tree size %" PRIu64 ") "
			    "does not verify with this server's key", size);
			goto done;
		}
		if (cp.size != size || strcmp(cp.origin, a->origin) != 0) {
			snprintf(why, whylen, "the last checkpoint's body (origin %s, size %" PRIu64
			    ") disagrees with its row (size %" PRIu64 ")", cp.origin, cp.size, size);
			goto done;
		}
		memcpy(root, cp.root, HLEN);
	}
	PQclear(res);
	res = NULL;
	if (read_head(c, &hsize, hroot) != 0) {
		snprintf(why, whylen, "cannot read the tree state");
		ret = -2;
		goto done;
	}
	if (hsize != size || sodium_memcmp(hroot, root, HLEN) != 0) {
		snprintf(why, whylen, "tree state (size %" PRIu64 ") disagrees with the last "
		    "signed checkpoint (size %" PRIu64 ")", hsize, size);
		goto done;
	}
	s = malloc(sizeof(*s));
	if (s == NULL)
		goto done;
	msr_merkle_nodes_init(s);
	if (msr_merkle_plan_root(s, size) != 0 || msr_audit_fetch_nodes(c, s) != 0 ||
	    msr_merkle_root(size, msr_merkle_nodes_get, s, hroot) != 0) {
		snprintf(why, whylen, "stored tree nodes for size %" PRIu64 " are missing", size);
		goto done;
	}
	if (sodium_memcmp(hroot, root, HLEN) != 0) {
		snprintf(why, whylen, "stored tree nodes do not yield the signed root at "
		    "size %" PRIu64, size);
		goto done;
	}
	/* Nothing beyond the checkpoint. */
	snprintf(lo, sizeof(lo), "%" PRIu64, size);
	vals[0] = lo;
	res = msr_db_exec(c, &s_tail_count, vals);
	if (!msr_db_ok(res)) {
		ret = -2;
		goto done;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
		snprintf(why, whylen, "entry %" PRIu64 ": entries exist beyond the last "
		    "signed checkpoint", size);
		goto done;
	}
	PQclear(res);
	/* The last 1024 leaves against their stored hashes. */
	snprintf(lo, sizeof(lo), "%" PRIu64, size > 1024 ? size - 1024 : 0);
	snprintf(hi, sizeof(hi), "%" PRIu64, size);
	vals[0] = lo;
	vals[1] = hi;
	res = msr_db_exec_params(c, &s_tail_leaves, vals, NULL, NULL, 1);
	if (!msr_db_ok(res)) {
		ret = -2;
		goto done;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		uint64_t idx = msr_load_be((const uint8_t *)PQgetvalue(res, r, 0), 8);

		msr_merkle_leaf_hash((const uint8_t *)PQgetvalue(res, r, 1),
		    (size_t)PQgetlength(res, r, 1), leaf);
		if (PQgetisnull(res, r, 2) || PQgetlength(res, r, 2) != HLEN ||
		    sodium_memcmp(leaf, PQgetvalue(res, r, 2), HLEN) != 0) {
			snprintf(why, whylen, "entry %" PRIu64 ": leaf hash differs from the "
			    "stored tree", idx);
			goto done;
		}
	}
	ret = 0;
done:
	PQclear(res);
	free(s);
	return ret;
}

/* Full check: every leaf, every checkpoint root (audit_verify.c). */
static int
check_full(struct msr_audit *a, char *why, size_t whylen)
{
	struct msr_audit_report rep;
	char err[256];
	PGconn *pg = msr_db_connect(a->db_url, err, sizeof(err));
	int ret;

	if (pg == NULL) {
		snprintf(why, whylen, "%s", err);
		return -2;
	}
	ret = msr_audit_verify_db(pg, &a->signer.v, MSR_AV_LAST_SIGNATURE, &rep);
	PQfinish(pg);
	if (ret == 0) {
		log_info("audit: full start-up check passed: %" PRIu64 " entries, %" PRIu64
		    " checkpoints in %.2f s", rep.entries, rep.checkpoints, rep.seconds);
		return 0;
	}
	snprintf(why, whylen, "%s", rep.message);
	return rep.io_error ? -2 : -1;
}

/*
 * Bring the sequencer up: run the start-up check once, then load the head and
 * the frontier. Returns 0 when ready.
 */
static int
recover(struct msr_audit *a)
{
	struct msr_db_conn *c = NULL;
	uint64_t size;
	uint8_t root[HLEN];
	char why[600] = "";
	int rc, have_row = 1, ret = -1;

	if (atomic_load(&a->refused))
		return -1;
	c = msr_db_acquire(a->pool);
	if (c == NULL)
		goto done;
	if (!a->checked) {
		rc = check_tail(a, c, why, sizeof(why));
		if (rc == 0 && a->verify_full)
			rc = check_full(a, why, sizeof(why));
		if (rc == -2) {
			log_warn("audit: start-up check postponed: %s", why);
			goto done;
		}
		if (rc != 0) {
			log_error("AUDIT LOG INTEGRITY FAILURE: %s; refusing to sequence "
			    "(audited requests will fail with 503 until this is resolved)", why);
			atomic_store(&a->refused, 1);
			goto done;
		}
		a->checked = 1;
	}
	if (read_head2(c, &size, root, &have_row) != 0 || load_frontier(a, c, size, root) != 0)
		goto done;
	msr_db_release(c);
	c = NULL;
	if (!have_row) {
		/* A new log: sign the empty tree so /v1/audit/checkpoint has a note. */
		batch_reset(a);
		if (run_batch(a) != 0)
			goto done;
	}
	log_info("audit: sequencer ready at tree size %" PRIu64, a->fr.size);
	ret = 0;
done:
	msr_db_release(c);
	return ret;
}

/* --- one batch --------------------------------------------------------------- */

struct put_ctx {
	struct msr_audit *a;
};

static int
collect_node(void *ctx, unsigned level, uint64_t index, const uint8_t hash[HLEN])
{
	struct msr_audit *a = ctx;
	uint8_t lv[2] = { 0, (uint8_t)level };

	buf_be32(&a->p_nlevel, 2);
	buf_add(&a->p_nlevel, lv, 2);
	buf_be32(&a->p_nidx, 8);
	buf_be64(&a->p_nidx, index);
	buf_be32(&a->p_nhash, HLEN);
	buf_add(&a->p_nhash, hash, HLEN);
	a->nnodes++;
	return a->p_nlevel.oom || a->p_nidx.oom || a->p_nhash.oom ? -1 : 0;
}

static int
grow_entries(struct msr_audit *a, size_t n)
{
	size_t *off, *len;
	uint8_t (*lh)[HLEN];

	if (n <= a->cap_entries)
		return 0;
	off = realloc(a->off, n * sizeof(*off));
	if (off != NULL)
		a->off = off;
	len = realloc(a->len, n * sizeof(*len));
	if (len != NULL)
		a->len = len;
	lh = realloc(a->leafh, n * sizeof(*lh));
	if (lh != NULL)
		a->leafh = lh;
	if (off == NULL || len == NULL || lh == NULL)
		return -1;
	a->cap_entries = n;
	return 0;
}

/* Add one entry's bytes to the batch (called with a->lock held). */
static int
batch_add(struct msr_audit *a, const char *entry, size_t len, int64_t client_id)
{
	if (grow_entries(a, a->nentries + 1) != 0)
		return -1;
	buf_be32(&a->p_leaf, (uint32_t)len);
	a->off[a->nentries] = a->p_leaf.len;
	a->len[a->nentries] = len;
	buf_add(&a->p_leaf, entry, len);
	if (client_id > 0) {
		buf_be32(&a->p_client, 8);
		buf_be64(&a->p_client, (uint64_t)client_id);
	} else {
		buf_be32(&a->p_client, UINT32_MAX);	/* NULL */
	}
	a->nentries++;
	return a->p_leaf.oom || a->p_client.oom ? -1 : 0;
}

static void
batch_reset(struct msr_audit *a)
{
	arr_begin(&a->p_leaf, OID_BYTEA);
	arr_begin(&a->p_client, OID_INT8);
	a->nentries = 0;
}

static int
uncertain_conflict(struct msr_audit *a, uint64_t size, const uint8_t root[HLEN])
{
	for (size_t i = 0; i < a->nuncertain; i++)
		if (a->uncertain[i].size == size &&
		    sodium_memcmp(a->uncertain[i].root, root, HLEN) != 0)
			return 1;
	return 0;
}

/* Forget uncertain notes at or below the committed size: none can recur. */
static void
uncertain_prune(struct msr_audit *a, uint64_t committed)
{
	size_t j = 0;

	for (size_t i = 0; i < a->nuncertain; i++)
		if (a->uncertain[i].size > committed)
			a->uncertain[j++] = a->uncertain[i];
	a->nuncertain = j;
}

static int
add_filler(struct msr_audit *a, uint64_t size)
{
	char text[160];
	int n = snprintf(text, sizeof(text), "{\"action\":\"audit.filler\",\"reason\":"
	    "\"step over tree size %" PRIu64 " signed in a batch whose commit failed\"}", size);

	if (batch_add(a, text, (size_t)n, 0) != 0)
		return -1;
	msr_merkle_leaf_hash((const uint8_t *)text, (size_t)n, a->leafh[a->nentries - 1]);
	return 0;
}

/*
 * Pipelined statements. A batch is two round trips: {BEGIN, lock, head} and
 * {INSERT, COMMIT}, each sent as one libpq pipeline. The statements are
 * prepared once per connection under their own names (db.c's registry is for
 * msr_db_exec); any trouble marks the connection broken so that it is
 * re-established, which also forgets what was prepared.
 */
static const char *const seq_name[3] = {
	"audit_seq_lock", "audit_seq_head", "audit_seq_insert" };

static int
seq_prepare(struct msr_audit *a, struct msr_db_conn *c)
{
	const struct msr_db_stmt *st[3] = { &s_lock, &s_head, &s_insert };
	int ret = 0;

	if (a->prepared_on == c->pg)
		return 0;
	for (int i = 0; i < 3 && ret == 0; i++) {
		PGresult *res = PQprepare(c->pg, seq_name[i], st[i]->sql, st[i]->nparams, NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			log_error("audit: prepare %s failed: %s", seq_name[i],
			    PQresultErrorMessage(res));
			c->broken = 1;
			ret = -1;
		}
		PQclear(res);
	}
	a->prepared_on = ret == 0 ? c->pg : NULL;
	return ret;
}

/*
 * Read the results of n pipelined queries and the sync point, then leave
 * pipeline mode. keep[i] (if keep != NULL) receives query i's result, else it
 * is cleared; *failed_at gets the first query that returned an error (-1 if
 * none did). Returns 0 when every query succeeded; otherwise -1, and the
 * connection is marked broken if the pipeline could not be drained.
 */
static int
pipeline_finish(struct msr_audit *a, struct msr_db_conn *c, int n, PGresult **keep,
    int *failed_at)
{
	int ok = 1, drained = 1;

	if (failed_at != NULL)
		*failed_at = -1;

	for (int i = 0; i < n; i++) {
		PGresult *res = PQgetResult(c->pg), *end;
		ExecStatusType st;

		if (res == NULL) {
			drained = 0;
			break;
		}
		st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			if (ok && st != PGRES_PIPELINE_ABORTED) {
				log_error("audit: batch statement failed: %s",
				    PQresultErrorMessage(res));
				if (failed_at != NULL)
					*failed_at = i;
			}
			ok = 0;
		}
		if (keep != NULL && st == PGRES_TUPLES_OK)
			keep[i] = res;
		else
			PQclear(res);
		end = PQgetResult(c->pg);	/* NULL ends each query's results */
		if (end != NULL) {
			PQclear(end);
			drained = 0;
			break;
		}
	}
	if (drained) {
		PGresult *sync = PQgetResult(c->pg);

		drained = sync != NULL && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
		PQclear(sync);
	}
	if (!drained || PQexitPipelineMode(c->pg) != 1) {
		c->broken = 1;
		a->prepared_on = NULL;
		ok = 0;
	}
	return ok ? 0 : -1;
}

/* Parse the head query's binary result: 0 and size/root (have_row 0 if empty). */
static int
parse_head(const PGresult *res, uint64_t *size, uint8_t root[HLEN], int *have_row)
{
	*have_row = PQntuples(res) > 0;
	if (!*have_row) {
		*size = 0;
		msr_merkle_empty_root(root);
		return 0;
	}
	if (PQgetlength(res, 0, 0) != 8 || PQgetlength(res, 0, 1) != HLEN)
		return -1;
	*size = msr_load_be((const uint8_t *)PQgetvalue(res, 0, 0), 8);
	memcpy(root, PQgetvalue(res, 0, 1), HLEN);
	return 0;
}

/*
 * Sequence the entries in the batch buffers. 0 on commit; on failure the
 * caller fails the waiters and forgets the frontier.
 */
static int
run_batch(struct msr_audit *a)
{
	struct msr_db_conn *c = NULL;
	struct msr_merkle_frontier fr;
	uint64_t size;
	uint8_t root[HLEN];
	struct msr_note_checkpoint cp;
	char *note = NULL;
	size_t note_len;
	char s_size[24], s_count[24];
	const char *vals[10];
	int lens[10], fmts[10];
	const char *lockv[1] = { AUDIT_LOCK_KEY };
	size_t i;
	int committing = 0, have_row = 1, failed_at, ret = -1;

	/* Leaf hashes do not depend on the position: outside the lock. */
	for (i = 0; i < a->nentries; i++)
		msr_merkle_leaf_hash(a->p_leaf.p + a->off[i], a->len[i], a->leafh[i]);

	c = msr_db_acquire(a->pool);
	if (c == NULL)
		goto done;
	if (seq_prepare(a, c) != 0 || PQenterPipelineMode(c->pg) != 1)
		goto fail;
	/* Round trip 1: BEGIN, the sequencer lock, then (new snapshot) the head. */
	if (PQsendQueryParams(c->pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQsendQueryPrepared(c->pg, seq_name[0], 1, lockv, NULL, NULL, 0) != 1 ||
	    PQsendQueryPrepared(c->pg, seq_name[1], 0, NULL, NULL, NULL, 1) != 1 ||
	    PQpipelineSync(c->pg) != 1) {
		c->broken = 1;		/* closed on release: never half a pipeline */
		a->prepared_on = NULL;
		goto fail;
	}
	{
		PGresult *keep[3] = { NULL, NULL, NULL };
		int rc = pipeline_finish(a, c, 3, keep, NULL);

		if (rc == 0 && keep[2] != NULL)
			rc = parse_head(keep[2], &size, root, &have_row);
		PQclear(keep[1]);
		PQclear(keep[2]);
		if (rc != 0 || keep[2] == NULL)
			goto fail;
	}
	if (a->nentries == 0 && have_row) {
		ret = 0;	/* the empty tree was signed elsewhere meanwhile */
		goto done;
	}
	if (!a->have_frontier || size != a->fr.size) {
		if (a->have_frontier)
			log_debug("audit: tree grew from %" PRIu64 " to %" PRIu64
			    " elsewhere; reloading the frontier", a->fr.size, size);
		if (load_frontier(a, c, size, root) != 0)
			goto fail;
	} else {
		uint8_t mine[HLEN];

		msr_merkle_frontier_root(&a->fr, mine);
		if (sodium_memcmp(mine, root, HLEN) != 0 && load_frontier(a, c, size, root) != 0)
			goto fail;
	}
	uncertain_prune(a, size);
	a->base = size;

	/* Append to a copy; the real frontier moves only after COMMIT. */
	fr = a->fr;
	arr_begin(&a->p_nlevel, OID_INT2);
	arr_begin(&a->p_nidx, OID_INT8);
	arr_begin(&a->p_nhash, OID_BYTEA);
	a->nnodes = 0;
	for (i = 0; i < a->nentries; i++)
		if (msr_merkle_frontier_append(&fr, a->leafh[i], collect_node, a) != 0)
			goto fail;
	msr_merkle_frontier_root(&fr, root);
	for (int k = 0; k < MAX_UNCERTAIN && uncertain_conflict(a, fr.size, root); k++) {
		log_warn("audit: tree size %" PRIu64 " was signed with another root in a "
		    "failed commit; appending a filler entry", fr.size);
		if (add_filler(a, fr.size) != 0 ||
		    msr_merkle_frontier_append(&fr, a->leafh[a->nentries - 1], collect_node, a) != 0)
			goto fail;
		msr_merkle_frontier_root(&fr, root);
	}
	if (uncertain_conflict(a, fr.size, root))
		goto fail;

	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "%s", a->origin);
	cp.size = fr.size;
	memcpy(cp.root, root, HLEN);
	if (msr_note_checkpoint_sign(&a->signer, &cp, &note, &note_len) != 0)
		goto fail;

	arr_begin(&a->p_idx, OID_INT8);
	for (i = 0; i < a->nentries; i++) {
		buf_be32(&a->p_idx, 8);
		buf_be64(&a->p_idx, size + i);
	}
	arr_end(&a->p_idx, a->nentries);
	arr_end(&a->p_leaf, a->nentries);
	arr_end(&a->p_client, a->nentries);
	arr_end(&a->p_nlevel, a->nnodes);
	arr_end(&a->p_nidx, a->nnodes);
	arr_end(&a->p_nhash, a->nnodes);
	if (a->p_idx.oom || a->p_leaf.oom || a->p_client.oom || a->p_nlevel.oom ||
	    a->p_nidx.oom || a->p_nhash.oom)
		goto fail;
	snprintf(s_size, sizeof(s_size), "%" PRIu64, fr.size);
	snprintf(s_count, sizeof(s_count), "%zu", a->nentries);
	{
		const struct buf *bin[6] = { &a->p_idx, &a->p_leaf, &a->p_client,
		    &a->p_nlevel, &a->p_nidx, &a->p_nhash };

		for (i = 0; i < 6; i++) {
			vals[i] = (const char *)bin[i]->p;
			lens[i] = (int)bin[i]->len;
			fmts[i] = 1;
		}
	}
	vals[6] = s_size;
	vals[7] = (const char *)root;
	lens[7] = HLEN;
	fmts[7] = 1;
	vals[8] = s_count;
	vals[9] = note;
	lens[6] = lens[8] = lens[9] = 0;
	fmts[6] = fmts[8] = fmts[9] = 0;
	/* Round trip 2: the whole batch in one statement, then COMMIT. */
	if (PQenterPipelineMode(c->pg) != 1)
		goto fail;
	committing = 1;
	if (PQsendQueryPrepared(c->pg, seq_name[2], 10, vals, lens, fmts, 0) != 1 ||
	    PQsendQueryParams(c->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(c->pg) != 1) {
		c->broken = 1;
		a->prepared_on = NULL;
		goto fail;
	}
	if (pipeline_finish(a, c, 2, NULL, &failed_at) != 0) {
		/* The INSERT itself failed: nothing was stored, the note is void. */
		if (failed_at == 0)
			committing = 0;
		log_error("audit: storing a batch of %zu entries failed", a->nentries);
		goto fail;
	}
	a->fr = fr;
	ret = 0;
	goto done;
fail:
	a->have_frontier = 0;
	if (committing && a->nuncertain < MAX_UNCERTAIN) {
		/* Outcome unknown: this note may exist. Remember it (invariant 4). */
		a->uncertain[a->nuncertain].size = fr.size;
		memcpy(a->uncertain[a->nuncertain].root, root, HLEN);
		a->nuncertain++;
	} else if (committing) {
		log_error("audit: too many commits with unknown outcome; refusing to sign");
		atomic_store(&a->refused, 1);
	}
done:
	free(note);
	msr_db_release(c);
	return ret;
}

/* --- sequencer thread ------------------------------------------------------- */

static void
fail_queue(struct msr_audit *a)
{
	while (a->head != NULL) {
		struct waiter *w = a->head;

		a->head = w->next;
		w->state = W_FAILED;
		w->prev = w->next = NULL;
		pthread_cond_signal(&w->cond);
	}
	a->tail = NULL;
	a->qlen = 0;
}

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

/* Move up to max_batch queued waiters into the in-flight batch (lock held). */
static void
take_batch(struct msr_audit *a)
{
	batch_reset(a);
	a->ninflight = 0;
	while (a->head != NULL && a->ninflight < (size_t)a->max_batch) {
		struct waiter *w = a->head;

		unlink_waiter(a, w);
		if (batch_add(a, w->entry, w->len, w->client_id) != 0) {
			w->state = W_FAILED;
			pthread_cond_signal(&w->cond);
			continue;
		}
		w->state = W_INFLIGHT;
		w->slot = a->ninflight;
		a->inflight[a->ninflight++] = w;
	}
}

static void *
sequencer_main(void *arg)
{
	struct msr_audit *a = arg;
	struct timespec ts;
	uint64_t until, batch_t0;
	int rc;

	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		if (!atomic_load(&a->ready)) {
			pthread_mutex_unlock(&a->lock);
			rc = recover(a);
			pthread_mutex_lock(&a->lock);
			if (rc == 0) {
				atomic_store(&a->ready, 1);
			} else {
				fail_queue(a);
			}
			if (!a->first_attempt_done) {
				a->first_attempt_done = 1;
				pthread_cond_broadcast(&a->settled);
			}
			if (rc != 0) {
				deadline_ns(&ts, now_ns() + RETRY_MS * 1000000ull);
				pthread_cond_timedwait(&a->work, &a->lock, &ts);
			}
			continue;
		}
		if (a->qlen == 0) {
			pthread_cond_wait(&a->work, &a->lock);
			continue;
		}
		/* Group commit: let the batch fill for batch_wait_us after its oldest entry. */
		until = a->head->enq_ns + (uint64_t)a->batch_wait_us * 1000u;
		while (!a->stopping && a->head != NULL && a->qlen < (size_t)a->max_batch &&
		    now_ns() < until) {
			deadline_ns(&ts, until);
			pthread_cond_timedwait(&a->work, &a->lock, &ts);
		}
		if (a->stopping || a->head == NULL)
			continue;
		take_batch(a);
		pthread_mutex_unlock(&a->lock);
		batch_t0 = now_ns();
		rc = a->ninflight > 0 ? run_batch(a) : 0;
		if (rc == 0 && a->ninflight > 0)
			msr_metrics_audit_batch(a->ninflight, now_ns() - batch_t0);
		pthread_mutex_lock(&a->lock);
		for (size_t i = 0; i < a->ninflight; i++) {
			struct waiter *w = a->inflight[i];

			if (w == NULL)
				continue;	/* gave up waiting */
			if (rc == 0) {
				w->index = (int64_t)(a->base + i);
				w->state = W_DONE;
			} else {
				w->state = W_FAILED;
			}
			pthread_cond_signal(&w->cond);
		}
		a->ninflight = 0;
		if (rc != 0) {
			log_warn("audit: batch failed; its requests get 503");
			atomic_store(&a->ready, 0);
		}
	}
	fail_queue(a);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* --- public API --------------------------------------------------------------- */

int
msr_audit_load_key(const char *path, struct msr_note_signer *s, char *err,
    size_t errlen)
{
	char buf[MSR_NOTE_KEY_TEXT_MAX + 2];
	size_t n = 0;
	FILE *f = fopen(path, "r");
	int ret = -1;

	if (f == NULL) {
		snprintf(err, errlen, "cannot open the audit signer key %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (msr_note_signer_parse(s, buf, n) != 0) {
		snprintf(err, errlen, "%s is not a signer key (PRIVATE+KEY+<name>+<id>+<key>)",
		    path);
		goto done;
	}
	ret = 0;
done:
	sodium_memzero(buf, sizeof(buf));
	return ret;
}

static char *
xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

struct msr_audit *
msr_audit_start(const struct msr_config *cfg)
{
	struct msr_audit *a = NULL;
	struct timespec ts;
	char err[256], vkey[MSR_NOTE_KEY_TEXT_MAX];

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
	a->db_url = xstrdup(cfg->db_url);
	a->origin = xstrdup(cfg->audit_origin);
	a->batch_wait_us = cfg->audit_batch_wait_us;
	a->max_batch = cfg->audit_max_batch > 0 ? cfg->audit_max_batch : 1;
	a->wait_ms = cfg->audit_wait_ms;
	a->verify_full = strcmp(cfg->audit_verify_on_start, "tail") != 0;
	a->inflight = calloc((size_t)a->max_batch, sizeof(*a->inflight));
	if (a->db_url == NULL || a->origin == NULL || a->inflight == NULL)
		goto fail;
	if (msr_audit_load_key(cfg->audit_key_file, &a->signer, err, sizeof(err)) != 0) {
		log_error("audit: %s", err);
		goto fail;
	}
	if (strcmp(a->signer.v.name, a->origin) != 0) {
		log_error("audit: key %s is named %s but [audit] origin is %s",
		    cfg->audit_key_file, a->signer.v.name, a->origin);
		goto fail;
	}
	if (msr_note_verifier_format(&a->signer.v, vkey, sizeof(vkey)) == 0)
		a->vkey = strdup(vkey);
	a->pool = msr_db_pool_new(cfg->db_url, 1, cfg->db_pool_wait_ms,
	    cfg->db_statement_timeout_ms);
	if (a->vkey == NULL || a->pool == NULL)
		goto fail;
	if (pthread_create(&a->thread, NULL, sequencer_main, a) != 0)
		goto fail;
	a->thread_started = 1;
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
		a->stopping = 1;
		pthread_cond_broadcast(&a->work);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
	}
	msr_db_pool_free(a->pool);
	msr_note_signer_wipe(&a->signer);
	free(a->vkey);
	free(a->db_url);
	free(a->origin);
	free(a->inflight);
	free(a->p_leaf.p);
	free(a->p_idx.p);
	free(a->p_client.p);
	free(a->p_nlevel.p);
	free(a->p_nidx.p);
	free(a->p_nhash.p);
	free(a->off);
	free(a->len);
	free(a->leafh);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->settled);
	pthread_condattr_destroy(&a->cattr);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

int
msr_audit_ready(struct msr_audit *a)
{
	return a != NULL && atomic_load(&a->ready) && !atomic_load(&a->refused);
}

const char *
msr_audit_verifier_key(struct msr_audit *a)
{
	return a->vkey;
}

const struct msr_note_verifier *
msr_audit_verifier(struct msr_audit *a)
{
	return &a->signer.v;
}

int
msr_audit_append(struct msr_audit *a, const char *entry, size_t len,
    int64_t client_id, int64_t *index)
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
	w.state = W_QUEUED;
	pthread_cond_init(&w.cond, &a->cattr);

	pthread_mutex_lock(&a->lock);
	if (a->stopping) {
		pthread_mutex_unlock(&a->lock);
		goto done;
	}
	/*
	 * The waiter lives on this stack frame: it leaves the queue (sequencer or
	 * timeout, both under a->lock) before this function returns (invariant 6).
	 */
	w.enq_ns = now_ns();
	w.prev = a->tail;
	if (a->tail != NULL)
		a->tail->next = &w;
	else
		/* cppcheck-suppress autoVariables */
		a->head = &w;
	/* cppcheck-suppress autoVariables */
	a->tail = &w;
	a->qlen++;
	if (a->qlen == 1 || a->qlen >= (size_t)a->max_batch)
		pthread_cond_signal(&a->work);
	deadline_ns(&ts, w.enq_ns + (uint64_t)a->wait_ms * 1000000u);
	while (w.state == W_QUEUED || w.state == W_INFLIGHT) {
		if (pthread_cond_timedwait(&w.cond, &a->lock, &ts) != ETIMEDOUT)
			continue;
		if (w.state == W_QUEUED) {
			unlink_waiter(a, &w);
			w.state = W_FAILED;
		} else if (w.state == W_INFLIGHT) {
			a->inflight[w.slot] = NULL;
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
