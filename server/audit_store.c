/*
 * audit_store.c — every SQL statement on the audit tables (see audit_store.h).
 *
 * Tables (sql/001_schema.sql, sql/020_audit_pending.sql): audit_entries(idx,
 * leaf = exact entry bytes, client_id), audit_hashes(level, idx, hash) for every
 * COMPLETE subtree, audit_tree_state (one row per batch), audit_checkpoints (one
 * signed note per batch), audit_pending (write intents not yet resolved).
 *
 * Invariants
 *   1. One implementation per statement; a statement that may run on a pooled
 *      connection (prepared, struct msr_db_conn) or on a standalone one (the
 *      verifier's PGconn) is built once and sent by either transport.
 *   2. A result that is not a success is MSR_AS_IO, whatever the reason (down,
 *      statement timeout, lock timeout, cancelled): the caller retries. Only a
 *      successful answer whose content is missing or malformed is
 *      MSR_AS_CORRUPT.
 *   3. The batch store is guarded: every row it writes is written only if the
 *      newest tree state is still the one the batch was computed on, so a
 *      batch computed on a stale frontier stores nothing and says so.
 *   4. Pipelines are drained to their sync point or the connection is marked
 *      broken (never half a pipeline on a reused connection).
 */
#include "msreg/common.h"
#include "msreg/audit_store.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/db.h"
#include "msreg/log.h"
#include "msreg/note.h"

#define HLEN            MSR_MERKLE_HASH_LEN
#define AUDIT_LOCK_KEY  "7239017265103447401"   /* advisory lock: "msregaud" */

#define OID_INT2   21
#define OID_INT8   20
#define OID_BYTEA  17

/* --- statements ------------------------------------------------------------------ */

static const struct msr_db_stmt s_head = {
	"audit_head",
	"SELECT s.tree_size, s.root, c.note FROM"
	" (SELECT tree_size, root FROM audit_tree_state ORDER BY tree_size DESC LIMIT 1) s"
	" LEFT JOIN audit_checkpoints c ON c.tree_size = s.tree_size", 0 };
static const struct msr_db_stmt s_nodes = {
	"audit_nodes",
	"SELECT h.level, h.idx, h.hash FROM audit_hashes h"
	" JOIN unnest($1::smallint[], $2::bigint[]) AS u(level, idx)"
	" ON h.level = u.level AND h.idx = u.idx", 2 };
static const struct msr_db_stmt s_count_from = {
	"audit_count_from",
	"SELECT count(*) FROM audit_entries WHERE idx >= $1::bigint", 1 };
static const struct msr_db_stmt s_tail = {
	"audit_tail",
	"SELECT e.idx, e.leaf, h.hash FROM audit_entries e"
	" LEFT JOIN audit_hashes h ON h.level = 0 AND h.idx = e.idx"
	" WHERE e.idx >= $1::bigint AND e.idx < $2::bigint ORDER BY e.idx", 2 };
static const struct msr_db_stmt s_entries = {
	"audit_entries_page",
	"SELECT idx, leaf, client_id FROM audit_entries WHERE idx >= $1::bigint"
	" ORDER BY idx LIMIT $2::bigint", 2 };
static const struct msr_db_stmt s_level = {
	"audit_level",
	"SELECT idx, hash FROM audit_hashes WHERE level = $1::smallint"
	" AND idx >= $2::bigint AND idx < $3::bigint ORDER BY idx", 3 };
/* The sequencer's own statements, prepared on its connection for pipelines. */
static const struct msr_db_stmt s_lock = {
	"audit_seq_lock", "SELECT pg_advisory_xact_lock($1::bigint)", 1 };
static const struct msr_db_stmt s_scan = {
	"audit_seq_scan",
	"SELECT * FROM audit_pending_claim($1::integer, $2::bigint[], $3::integer)", 3 };
static const struct msr_db_stmt s_store = {
	"audit_seq_store",
	"WITH head AS (SELECT tree_size, root FROM audit_tree_state"
	"   ORDER BY tree_size DESC LIMIT 1),"
	" ok AS (SELECT 1 FROM head WHERE tree_size = $11::bigint AND root = $12::bytea"
	"   UNION ALL SELECT 1 WHERE $11::bigint = -1 AND NOT EXISTS (SELECT 1 FROM head)),"
	" e AS (INSERT INTO audit_entries (idx, leaf, client_id)"
	"   SELECT u.* FROM unnest($1::bigint[], $2::bytea[], $3::bigint[]) u"
	"   WHERE EXISTS (SELECT 1 FROM ok)),"
	" h AS (INSERT INTO audit_hashes (level, idx, hash)"
	"   SELECT u.* FROM unnest($4::smallint[], $5::bigint[], $6::bytea[]) u"
	"   WHERE EXISTS (SELECT 1 FROM ok)),"
	" s AS (INSERT INTO audit_tree_state (tree_size, root, batch_size)"
	"   SELECT $7::bigint, $8::bytea, $9::integer WHERE EXISTS (SELECT 1 FROM ok)),"
	" c AS (INSERT INTO audit_checkpoints (tree_size, root, note)"
	"   SELECT $7::bigint, $8::bytea, $10::text WHERE EXISTS (SELECT 1 FROM ok)),"
	" p AS (INSERT INTO audit_pending (idx)"
	"   SELECT unnest($13::bigint[]) WHERE EXISTS (SELECT 1 FROM ok)),"
	" v AS (SELECT audit_pending_void($14::bigint[]) AS n"
	"   WHERE EXISTS (SELECT 1 FROM ok))"
	" SELECT (SELECT count(*) FROM ok), (SELECT count(*) FROM v)", 14 };
static const struct msr_db_stmt s_write_done = {
	"audit_write_done", "SELECT audit_write_done($1::bigint)", 1 };

/* Verifier (standalone connection, one snapshot). */
static const char copy_joined_sql[] =
	"COPY (SELECT e.idx, e.leaf, h.hash FROM audit_entries e"
	" LEFT JOIN audit_hashes h ON h.level = 0 AND h.idx = e.idx ORDER BY e.idx)"
	" TO STDOUT (FORMAT binary)";
static const char copy_entries_sql[] =
	"COPY (SELECT idx, leaf FROM audit_entries ORDER BY idx) TO STDOUT (FORMAT binary)";
static const char copy_hashes_sql[] =
	"COPY (SELECT idx, hash FROM audit_hashes WHERE level = 0 ORDER BY idx)"
	" TO STDOUT (FORMAT binary)";
static const char *const copy_plan[] = {
	"SET LOCAL enable_hashjoin = off", "SET LOCAL enable_nestloop = off",
	"SET LOCAL enable_sort = off", "SET LOCAL enable_seqscan = off",
	"SET LOCAL enable_bitmapscan = off", "SET LOCAL max_parallel_workers_per_gather = 0",
};
static const char checkpoints_sql[] =
	"SELECT tree_size, root, note FROM audit_checkpoints ORDER BY tree_size";

/* --- one statement, two transports ------------------------------------------------- */

/* Run s on the pooled connection c (prepared) or, when c is NULL, on raw. */
static PGresult *
run(struct msr_db_conn *c, PGconn *raw, const struct msr_db_stmt *s,
    const char *const *vals, const int *lens, const int *fmts, int binary)
{
	if (c != NULL)
		return msr_db_exec_params(c, s, vals, lens, fmts, binary);
	return PQexecParams(raw, s->sql, s->nparams, NULL, vals, lens, fmts, binary);
}

static const char *
errmsg(struct msr_db_conn *c, PGconn *raw, const PGresult *res)
{
	if (res != NULL)
		return PQresultErrorMessage(res);
	return PQerrorMessage(c != NULL ? c->pg : raw);
}

/* --- growable buffers and binary array parameters ------------------------------------ */

static void
buf_reserve(struct msr_as_buf *b, size_t more)
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
buf_add(struct msr_as_buf *b, const void *data, size_t len)
{
	buf_reserve(b, len);
	if (b->oom)
		return;
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void
buf_be32(struct msr_as_buf *b, uint32_t v)
{
	uint8_t x[4] = { v >> 24, v >> 16, v >> 8, v };

	buf_add(b, x, 4);
}

static void
buf_be64(struct msr_as_buf *b, uint64_t v)
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
arr_begin(struct msr_as_buf *b, uint32_t oid)
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
arr_end(struct msr_as_buf *b, size_t n)
{
	if (!b->oom)
		put_be32(b->p + 12, (uint32_t)n);
}

static void
arr_int8(struct msr_as_buf *b, uint64_t v)
{
	buf_be32(b, 8);
	buf_be64(b, v);
}

/* Binary int8[] of n values (for small lists: hints). */
static int
arr_of(struct msr_as_buf *b, const uint64_t *v, size_t n)
{
	arr_begin(b, OID_INT8);
	for (size_t i = 0; i < n; i++)
		arr_int8(b, v[i]);
	arr_end(b, n);
	return b->oom ? -1 : 0;
}

/* --- head, nodes, tail, entries -------------------------------------------------------- */

void
msr_as_head_clear(struct msr_as_head *h)
{
	free(h->note);
	memset(h, 0, sizeof(*h));
}

/* Parse the head query's binary result (3 columns). */
static int
parse_head(const PGresult *res, struct msr_as_head *h)
{
	h->have = PQntuples(res) > 0;
	if (!h->have) {
		h->size = 0;
		msr_merkle_empty_root(h->root);
		return MSR_AS_OK;
	}
	if (PQgetlength(res, 0, 0) != 8 || PQgetlength(res, 0, 1) != HLEN)
		return MSR_AS_CORRUPT;
	h->size = msr_load_be((const uint8_t *)PQgetvalue(res, 0, 0), 8);
	memcpy(h->root, PQgetvalue(res, 0, 1), HLEN);
	if (!PQgetisnull(res, 0, 2)) {
		h->note = strndup(PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2));
		if (h->note == NULL)
			return MSR_AS_IO;
	}
	return MSR_AS_OK;
}

static int
head_fetch(struct msr_db_conn *c, PGconn *raw, struct msr_as_head *h)
{
	PGresult *res = run(c, raw, &s_head, NULL, NULL, NULL, 1);
	int ret = MSR_AS_IO;

	memset(h, 0, sizeof(*h));
	if (!msr_db_ok(res)) {
		log_warn("audit: reading the tree head failed: %s", errmsg(c, raw, res));
		goto done;
	}
	ret = parse_head(res, h);
done:
	PQclear(res);
	return ret;
}

int
msr_as_head(struct msr_db_conn *c, struct msr_as_head *h)
{
	return head_fetch(c, NULL, h);
}

static int
nodes_fetch(struct msr_db_conn *c, PGconn *raw, struct msr_merkle_nodes *s)
{
	struct msr_as_buf lv = { 0 }, ix = { 0 };
	const char *vals[2];
	int lens[2], fmts[2] = { 1, 1 };
	PGresult *res = NULL;
	size_t n = 0;
	int ret = MSR_AS_IO;

	if (msr_merkle_nodes_complete(s))
		return MSR_AS_OK;
	arr_begin(&lv, OID_INT2);
	arr_begin(&ix, OID_INT8);
	for (size_t i = 0; i < s->n; i++) {
		uint8_t l[2] = { 0, (uint8_t)s->id[i].level };

		if (s->have[i])
			continue;
		buf_be32(&lv, 2);
		buf_add(&lv, l, 2);
		arr_int8(&ix, s->id[i].index);
		n++;
	}
	arr_end(&lv, n);
	arr_end(&ix, n);
	if (lv.oom || ix.oom)
		goto done;
	vals[0] = (const char *)lv.p;
	vals[1] = (const char *)ix.p;
	lens[0] = (int)lv.len;
	lens[1] = (int)ix.len;
	res = run(c, raw, &s_nodes, vals, lens, fmts, 1);
	if (!msr_db_ok(res)) {
		log_warn("audit: reading tree nodes failed: %s", errmsg(c, raw, res));
		goto done;
	}
	ret = MSR_AS_CORRUPT;
	for (int r = 0; r < PQntuples(res); r++) {
		if (PQgetlength(res, r, 0) != 2 || PQgetlength(res, r, 1) != 8 ||
		    PQgetlength(res, r, 2) != HLEN)
			goto done;
		msr_merkle_nodes_set(s, (unsigned)msr_load_be((const uint8_t *)PQgetvalue(res, r, 0), 2),
		    msr_load_be((const uint8_t *)PQgetvalue(res, r, 1), 8),
		    (const uint8_t *)PQgetvalue(res, r, 2));
	}
	if (msr_merkle_nodes_complete(s))
		ret = MSR_AS_OK;
done:
	PQclear(res);
	free(lv.p);
	free(ix.p);
	return ret;
}

int
msr_as_nodes(struct msr_db_conn *c, struct msr_merkle_nodes *s)
{
	return nodes_fetch(c, NULL, s);
}

int
msr_audit_fetch_nodes(struct msr_db_conn *c, struct msr_merkle_nodes *s)
{
	return msr_as_nodes(c, s) == MSR_AS_OK ? 0 : -1;
}

int
msr_as_count_from(struct msr_db_conn *c, uint64_t from, uint64_t *n)
{
	char lo[24];
	const char *vals[1] = { lo };
	PGresult *res;
	int ret = MSR_AS_IO;

	snprintf(lo, sizeof(lo), "%" PRIu64, from);
	res = msr_db_exec(c, &s_count_from, vals);
	if (msr_db_ok(res) && PQntuples(res) == 1) {
		*n = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		ret = MSR_AS_OK;
	}
	PQclear(res);
	return ret;
}

int
msr_as_tail(struct msr_db_conn *c, uint64_t from, uint64_t to, msr_as_leaf_fn fn,
    void *ctx)
{
	char lo[24], hi[24];
	const char *vals[2] = { lo, hi };
	PGresult *res;
	int ret = MSR_AS_IO;

	snprintf(lo, sizeof(lo), "%" PRIu64, from);
	snprintf(hi, sizeof(hi), "%" PRIu64, to);
	res = msr_db_exec_params(c, &s_tail, vals, NULL, NULL, 1);
	if (!msr_db_ok(res))
		goto done;
	ret = MSR_AS_CORRUPT;
	for (int r = 0; r < PQntuples(res); r++) {
		const uint8_t *stored = NULL;

		if (PQgetlength(res, r, 0) != 8)
			goto done;
		if (!PQgetisnull(res, r, 2) && PQgetlength(res, r, 2) == HLEN)
			stored = (const uint8_t *)PQgetvalue(res, r, 2);
		if (fn(ctx, msr_load_be((const uint8_t *)PQgetvalue(res, r, 0), 8),
		    (const uint8_t *)PQgetvalue(res, r, 1), (size_t)PQgetlength(res, r, 1),
		    stored) != 0)
			goto done;
	}
	ret = MSR_AS_OK;
done:
	PQclear(res);
	return ret;
}

int
msr_as_entries(struct msr_db_conn *c, uint64_t start, uint64_t limit, PGresult **out)
{
	char s_start[24], s_limit[24];
	const char *vals[2] = { s_start, s_limit };
	PGresult *res;

	snprintf(s_start, sizeof(s_start), "%" PRIu64, start);
	snprintf(s_limit, sizeof(s_limit), "%" PRIu64, limit);
	res = msr_db_exec_params(c, &s_entries, vals, NULL, NULL, 1);
	if (!msr_db_ok(res)) {
		PQclear(res);
		*out = NULL;
		return MSR_AS_IO;
	}
	for (int r = 0; r < PQntuples(res); r++)
		if (PQgetlength(res, r, 0) != 8 ||
		    (!PQgetisnull(res, r, 2) && PQgetlength(res, r, 2) != 8)) {
			PQclear(res);
			*out = NULL;
			return MSR_AS_CORRUPT;
		}
	*out = res;
	return MSR_AS_OK;
}

int
msr_as_level(struct msr_db_conn *c, unsigned level, uint64_t from, uint64_t to,
    PGresult **out)
{
	char lv[8], s_lo[24], s_hi[24];
	const char *vals[3] = { lv, s_lo, s_hi };
	PGresult *res;

	snprintf(lv, sizeof(lv), "%u", level);
	snprintf(s_lo, sizeof(s_lo), "%" PRIu64, from);
	snprintf(s_hi, sizeof(s_hi), "%" PRIu64, to);
	res = msr_db_exec_params(c, &s_level, vals, NULL, NULL, 1);
	*out = NULL;
	if (!msr_db_ok(res)) {
		PQclear(res);
		return MSR_AS_IO;
	}
	for (int r = 0; r < PQntuples(res); r++)
		if (PQgetlength(res, r, 0) != 8 || PQgetlength(res, r, 1) != HLEN) {
			PQclear(res);
			return MSR_AS_CORRUPT;
		}
	*out = res;
	return MSR_AS_OK;
}

/* --- the sequencer's batch ------------------------------------------------------------ */

void
msr_as_batch_rewind(struct msr_as_batch *b)
{
	arr_begin(&b->nlevel, OID_INT2);
	arr_begin(&b->nidx, OID_INT8);
	arr_begin(&b->nhash, OID_BYTEA);
	b->nnodes = 0;
}

void
msr_as_batch_reset(struct msr_as_batch *b)
{
	arr_begin(&b->leaf, OID_BYTEA);
	arr_begin(&b->client, OID_INT8);
	arr_begin(&b->voids, OID_INT8);
	b->nentries = 0;
	b->nvoids = 0;
	msr_as_batch_rewind(b);
}

void
msr_as_batch_free(struct msr_as_batch *b)
{
	struct msr_as_buf *bufs[] = { &b->idx, &b->leaf, &b->client, &b->nlevel, &b->nidx,
	    &b->nhash, &b->pending, &b->voids };

	for (size_t i = 0; i < MSR_ARRAY_LEN(bufs); i++)
		free(bufs[i]->p);
	free(b->off);
	free(b->len);
	free(b->is_write);
	memset(b, 0, sizeof(*b));
}

static int
batch_grow(struct msr_as_batch *b, size_t n)
{
	size_t *off, *len, cap = b->cap ? b->cap : 64;
	uint8_t *w;

	if (n <= b->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	off = realloc(b->off, cap * sizeof(*off));
	if (off != NULL)
		b->off = off;
	len = realloc(b->len, cap * sizeof(*len));
	if (len != NULL)
		b->len = len;
	w = realloc(b->is_write, cap);
	if (w != NULL)
		b->is_write = w;
	if (off == NULL || len == NULL || w == NULL)
		return -1;
	b->cap = cap;
	return 0;
}

int
msr_as_batch_entry(struct msr_as_batch *b, const char *entry, size_t len,
    int64_t client_id, int write)
{
	if (len > INT32_MAX || batch_grow(b, b->nentries + 1) != 0)
		return -1;
	buf_be32(&b->leaf, (uint32_t)len);
	b->off[b->nentries] = b->leaf.len;
	b->len[b->nentries] = len;
	b->is_write[b->nentries] = write != 0;
	buf_add(&b->leaf, entry, len);
	if (client_id > 0)
		arr_int8(&b->client, (uint64_t)client_id);
	else
		buf_be32(&b->client, UINT32_MAX);	/* NULL */
	if (b->leaf.oom || b->client.oom)
		return -1;
	b->nentries++;
	return 0;
}

const uint8_t *
msr_as_batch_leaf(const struct msr_as_batch *b, size_t i, size_t *len)
{
	*len = b->len[i];
	return b->leaf.p + b->off[i];
}

int
msr_as_batch_node(struct msr_as_batch *b, unsigned level, uint64_t index,
    const uint8_t hash[MSR_MERKLE_HASH_LEN])
{
	uint8_t lv[2] = { 0, (uint8_t)level };

	buf_be32(&b->nlevel, 2);
	buf_add(&b->nlevel, lv, 2);
	arr_int8(&b->nidx, index);
	buf_be32(&b->nhash, HLEN);
	buf_add(&b->nhash, hash, HLEN);
	b->nnodes++;
	return b->nlevel.oom || b->nidx.oom || b->nhash.oom ? -1 : 0;
}

int
msr_as_batch_void(struct msr_as_batch *b, uint64_t idx)
{
	arr_int8(&b->voids, idx);
	b->nvoids++;
	return b->voids.oom ? -1 : 0;
}

/*
 * Pipelined statements. The sequencer's statements are prepared once per
 * connection under their own names (db.c's registry serves msr_db_exec); any
 * trouble marks the connection broken so that it is re-established, which
 * also forgets what was prepared.
 */
static const struct msr_db_stmt s_seq_head = { "audit_seq_head", NULL, 0 };

static int
seq_prepare(struct msr_as_batch *b, struct msr_db_conn *c)
{
	const struct msr_db_stmt *st[4] = { &s_lock, &s_seq_head, &s_scan, &s_store };
	int ret = 0;

	if (b->prepared_on == c->pg)
		return 0;
	for (int i = 0; i < 4 && ret == 0; i++) {
		const char *sql = st[i] == &s_seq_head ? s_head.sql : st[i]->sql;
		int np = st[i] == &s_seq_head ? s_head.nparams : st[i]->nparams;
		PGresult *res = PQprepare(c->pg, st[i]->name, sql, np, NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			log_warn("audit: prepare %s failed: %s", st[i]->name,
			    PQresultErrorMessage(res));
			c->broken = 1;
			ret = -1;
		}
		PQclear(res);
	}
	b->prepared_on = ret == 0 ? c->pg : NULL;
	return ret;
}

/*
 * Read the results of n pipelined queries and the sync point, then leave
 * pipeline mode. st[i] = 1 (success), 0 (failed or skipped after a failure),
 * -1 (never received); keep[i] (when keep != NULL and the query succeeded)
 * receives its result. *sqlstate gets the first error's SQLSTATE. Returns 0
 * when every query succeeded; -1 otherwise, with the connection marked broken
 * when the pipeline could not be drained.
 */
static int
pipe_read(struct msr_db_conn *c, int n, PGresult **keep, int *st, char sqlstate[6])
{
	int ok = 1, drained = 1;

	if (sqlstate != NULL)
		sqlstate[0] = '\0';
	for (int i = 0; i < n; i++)
		st[i] = -1;
	for (int i = 0; i < n; i++) {
		PGresult *res = PQgetResult(c->pg), *end;
		ExecStatusType s;

		if (res == NULL) {
			drained = 0;
			break;
		}
		s = PQresultStatus(res);
		st[i] = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
		if (!st[i]) {
			if (ok && s != PGRES_PIPELINE_ABORTED) {
				log_warn("audit: statement failed: %s", PQresultErrorMessage(res));
				if (sqlstate != NULL)
					snprintf(sqlstate, 6, "%s", msr_db_sqlstate(res));
			}
			ok = 0;
		}
		if (keep != NULL && st[i] && s == PGRES_TUPLES_OK)
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
		ok = 0;
	}
	return ok ? 0 : -1;
}

static int
send_fail(struct msr_as_batch *b, struct msr_db_conn *c)
{
	log_warn("audit: sending a pipeline failed: %s", PQerrorMessage(c->pg));
	c->broken = 1;		/* closed on release: never half a pipeline */
	if (b != NULL)
		b->prepared_on = NULL;
	return MSR_AS_IO;
}

int
msr_as_open(struct msr_as_batch *b, struct msr_db_conn *c, struct msr_as_head *h,
    int scan, int older_ms, const uint64_t *hint, size_t nhint, uint64_t *voids,
    size_t cap, size_t *nvoids)
{
	const char *lockv[1] = { AUDIT_LOCK_KEY };
	struct msr_as_buf hv = { 0 };
	char s_older[24], s_cap[24];
	const char *sv[3];
	int sl[3] = { 0, 0, 0 }, sf[3] = { 0, 1, 0 };
	PGresult *keep[4] = { NULL, NULL, NULL, NULL };
	int st[4], n = scan ? 4 : 3, ret = MSR_AS_IO;

	memset(h, 0, sizeof(*h));
	*nvoids = 0;
	if (seq_prepare(b, c) != 0)
		goto done;
	if (scan) {
		snprintf(s_older, sizeof(s_older), "%d", older_ms);
		snprintf(s_cap, sizeof(s_cap), "%zu", cap);
		if (arr_of(&hv, hint, nhint) != 0)
			goto done;
		sv[0] = s_older;
		sv[1] = (const char *)hv.p;
		sl[1] = (int)hv.len;
		sv[2] = s_cap;
	}
	if (PQenterPipelineMode(c->pg) != 1 ||
	    PQsendQueryParams(c->pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQsendQueryPrepared(c->pg, s_lock.name, 1, lockv, NULL, NULL, 0) != 1 ||
	    PQsendQueryPrepared(c->pg, s_seq_head.name, 0, NULL, NULL, NULL, 1) != 1 ||
	    (scan && PQsendQueryPrepared(c->pg, s_scan.name, 3, sv, sl, sf, 1) != 1) ||
	    PQpipelineSync(c->pg) != 1) {
		ret = send_fail(b, c);
		goto done;
	}
	if (pipe_read(c, n, keep, st, NULL) != 0 || keep[2] == NULL)
		goto done;
	ret = parse_head(keep[2], h);
	if (ret != MSR_AS_OK || !scan)
		goto done;
	for (int r = 0; r < PQntuples(keep[3]) && (size_t)r < cap; r++) {
		if (PQgetlength(keep[3], r, 0) != 8) {
			ret = MSR_AS_CORRUPT;
			goto done;
		}
		voids[(*nvoids)++] = msr_load_be((const uint8_t *)PQgetvalue(keep[3], r, 0), 8);
	}
done:
	for (int i = 0; i < 4; i++)
		PQclear(keep[i]);
	free(hv.p);
	return ret;
}

void
msr_as_abort(struct msr_db_conn *c)
{
	if (c != NULL && msr_db_command(c, "ROLLBACK") != 0)
		c->broken = 1;
}

int
msr_as_store(struct msr_as_batch *b, struct msr_db_conn *c, int opened, int *stored,
    int *unknown)
{
	const char *lockv[1] = { AUDIT_LOCK_KEY };
	const char *vals[14];
	int lens[14], fmts[14];
	char s_size[24], s_count[24], s_prev[24];
	PGresult *keep[4] = { NULL, NULL, NULL, NULL };
	int st[4], q, n, ret = MSR_AS_IO;
	size_t np;

	*stored = 0;
	*unknown = 0;
	arr_begin(&b->idx, OID_INT8);
	arr_begin(&b->pending, OID_INT8);
	np = 0;
	for (size_t i = 0; i < b->nentries; i++) {
		arr_int8(&b->idx, b->first + i);
		if (b->is_write[i]) {
			arr_int8(&b->pending, b->first + i);
			np++;
		}
	}
	arr_end(&b->idx, b->nentries);
	arr_end(&b->pending, np);
	arr_end(&b->leaf, b->nentries);
	arr_end(&b->client, b->nentries);
	arr_end(&b->nlevel, b->nnodes);
	arr_end(&b->nidx, b->nnodes);
	arr_end(&b->nhash, b->nnodes);
	arr_end(&b->voids, b->nvoids);
	{
		const struct msr_as_buf *bin[6] = { &b->idx, &b->leaf, &b->client,
		    &b->nlevel, &b->nidx, &b->nhash };

		for (int i = 0; i < 6; i++) {
			if (bin[i]->oom)
				return MSR_AS_IO;
			vals[i] = (const char *)bin[i]->p;
			lens[i] = (int)bin[i]->len;
			fmts[i] = 1;
		}
	}
	if (b->pending.oom || b->voids.oom)
		return MSR_AS_IO;
	snprintf(s_size, sizeof(s_size), "%" PRIu64, b->size);
	snprintf(s_count, sizeof(s_count), "%zu", b->nentries);
	snprintf(s_prev, sizeof(s_prev), "%" PRId64, b->prev_size);
	vals[6] = s_size;
	vals[7] = (const char *)b->root;
	vals[8] = s_count;
	vals[9] = b->note;
	vals[10] = s_prev;
	vals[11] = (const char *)b->prev_root;
	vals[12] = (const char *)b->pending.p;
	vals[13] = (const char *)b->voids.p;
	lens[6] = lens[8] = lens[9] = lens[10] = 0;
	fmts[6] = fmts[8] = fmts[9] = fmts[10] = 0;
	lens[7] = lens[11] = HLEN;
	fmts[7] = fmts[11] = 1;
	lens[12] = (int)b->pending.len;
	lens[13] = (int)b->voids.len;
	fmts[12] = fmts[13] = 1;
	if (seq_prepare(b, c) != 0)
		return MSR_AS_IO;
	if (PQenterPipelineMode(c->pg) != 1)
		return send_fail(b, c);
	if (!opened &&
	    (PQsendQueryParams(c->pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQsendQueryPrepared(c->pg, s_lock.name, 1, lockv, NULL, NULL, 0) != 1)) {
		*unknown = 0;
		return send_fail(b, c);
	}
	q = opened ? 0 : 2;		/* the store's position in the pipeline */
	n = q + 2;
	if (PQsendQueryPrepared(c->pg, s_store.name, 14, vals, lens, fmts, 0) != 1 ||
	    PQsendQueryParams(c->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(c->pg) != 1) {
		/* The store may have been sent whole: its outcome is unknown. */
		*unknown = 1;
		return send_fail(b, c);
	}
	if (pipe_read(c, n, keep, st, NULL) == 0 && keep[q] != NULL &&
	    PQntuples(keep[q]) == 1) {
		*stored = strcmp(PQgetvalue(keep[q], 0, 0), "0") != 0;
		ret = MSR_AS_OK;
	} else {
		/* Known not stored only if the store (or what preceded it) failed. */
		*unknown = !(st[q] == 0 || (q > 0 && (st[0] == 0 || st[1] == 0)));
	}
	for (int i = 0; i < 4; i++)
		PQclear(keep[i]);
	return ret;
}

int
msr_as_commit_write(struct msr_db_conn *c, uint64_t idx)
{
	char s_idx[24];
	const char *vals[1] = { s_idx };
	char sqlstate[6];
	int st[2];

	if (c == NULL || c->broken)
		return MSR_AS_IO;
	snprintf(s_idx, sizeof(s_idx), "%" PRIu64, idx);
	if (PQenterPipelineMode(c->pg) != 1 ||
	    PQsendQueryParams(c->pg, s_write_done.sql, 1, NULL, vals, NULL, NULL, 0) != 1 ||
	    PQsendQueryParams(c->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(c->pg) != 1)
		return send_fail(NULL, c);
	if (pipe_read(c, 2, NULL, st, sqlstate) == 0) {
		msr_db_committed(c);	/* read-your-writes on a replica */
		return MSR_AS_OK;
	}
	return strcmp(sqlstate, "MSR01") == 0 ? MSR_AS_CORRUPT : MSR_AS_IO;
}

/* --- database-mode verification ------------------------------------------------------- */

/* Load every checkpoint row (size, root) in order; *resp keeps the notes. */
static int
load_checkpoints(PGconn *pg, PGresult **resp, struct msr_av_checkpoint **out,
    const char ***notes, size_t *n, struct msr_audit_report *rep)
{
	PGresult *res = PQexecParams(pg, checkpoints_sql, 0, NULL, NULL, NULL, NULL, 1);
	struct msr_av_checkpoint *cps = NULL;
	const char **nv = NULL;
	int rows, ret = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rep->io_error = 1;
		msr_audit_report_fail(rep, -1, "reading checkpoints: %s", PQresultErrorMessage(res));
		goto done;
	}
	rows = PQntuples(res);
	cps = calloc((size_t)rows + 1, sizeof(*cps));
	nv = calloc((size_t)rows + 1, sizeof(*nv));
	if (cps == NULL || nv == NULL) {
		msr_audit_report_fail(rep, -1, "out of memory");
		goto done;
	}
	for (int r = 0; r < rows; r++) {
		uint64_t size = msr_load_be((const uint8_t *)PQgetvalue(res, r, 0), 8);

		cps[r].size = size;
		nv[r] = PQgetvalue(res, r, 2);
		if (PQgetlength(res, r, 1) != HLEN) {
			msr_audit_report_fail(rep, (int64_t)size - 1, "checkpoint at size %" PRIu64
			    ": bad root", size);
			goto done;
		}
		memcpy(cps[r].root, PQgetvalue(res, r, 1), HLEN);
		if (r > 0 && cps[r - 1].size >= size) {
			msr_audit_report_fail(rep, -1, "checkpoints out of order at size %" PRIu64,
			    size);
			goto done;
		}
	}
	*out = cps;
	*notes = nv;
	*n = (size_t)rows;
	*resp = res;
	res = NULL;
	cps = NULL;
	nv = NULL;
	ret = 0;
done:
	free(cps);
	free(nv);
	PQclear(res);
	return ret;
}

/* The stored complete subtrees yield the signed root. */
static int
check_stored_root(PGconn *pg, const struct msr_av_checkpoint *last,
    struct msr_audit_report *rep)
{
	struct msr_merkle_nodes *s = malloc(sizeof(*s));
	uint8_t root[HLEN];
	int rc, ret = -1;

	if (s == NULL)
		return -1;
	msr_merkle_nodes_init(s);
	if (msr_merkle_plan_root(s, last->size) != 0) {
		msr_audit_report_fail(rep, -1, "cannot plan the root at size %" PRIu64, last->size);
		goto done;
	}
	rc = nodes_fetch(NULL, pg, s);
	if (rc == MSR_AS_IO) {
		rep->io_error = 1;
		msr_audit_report_fail(rep, -1, "reading tree nodes: %s", PQerrorMessage(pg));
		goto done;
	}
	if (rc != MSR_AS_OK || msr_merkle_root(last->size, msr_merkle_nodes_get, s, root) != 0) {
		msr_audit_report_fail(rep, -1, "stored tree nodes for size %" PRIu64 " are missing",
		    last->size);
		goto done;
	}
	if (sodium_memcmp(root, last->root, HLEN) != 0) {
		msr_audit_report_fail(rep, -1, "stored tree nodes do not yield the signed root at "
		    "size %" PRIu64 " (audit_hashes altered above level 0)", last->size);
		goto done;
	}
	ret = 0;
done:
	free(s);
	return ret;
}

/* --- binary COPY streams --------------------------------------------------------------- */

/* One COPY ... TO STDOUT (FORMAT binary) being read, a row at a time. */
struct copy_in {
	PGconn	*pg;
	char	*row;		/* libpq's buffer for the current row */
	int	 header;	/* the file header is still ahead */
	int	 done;		/* trailer or end seen */
};

/* Start sql on c->pg; 0, or -1 with the reason in rep. */
static int
copy_start(struct copy_in *c, PGconn *pg, const char *sql, struct msr_audit_report *rep)
{
	PGresult *res = PQexec(pg, sql);
	int ok = PQresultStatus(res) == PGRES_COPY_OUT;

	memset(c, 0, sizeof(*c));
	c->pg = pg;
	c->header = 1;
	if (!ok) {
		rep->io_error = 1;
		msr_audit_report_fail(rep, -1, "reading the log: %s", PQresultErrorMessage(res));
		c->done = 1;
	}
	PQclear(res);
	return ok ? 0 : -1;
}

/*
 * The next tuple's bytes (after the header; without the trailer): 1 and *p,
 * *len; 0 at the end; -1 malformed or unreadable (rep says which).
 */
static int
copy_next(struct copy_in *c, const uint8_t **p, int *len, struct msr_audit_report *rep)
{
	const uint8_t *q;
	int n;

	if (c->row != NULL) {
		PQfreemem(c->row);
		c->row = NULL;
	}
	if (c->done)
		return 0;
	n = PQgetCopyData(c->pg, &c->row, 0);
	if (n <= 0) {
		c->done = 1;
		if (n == -2) {
			rep->io_error = 1;
			msr_audit_report_fail(rep, -1, "reading the log: %s", PQerrorMessage(c->pg));
			return -1;
		}
		return 0;
	}
	q = (const uint8_t *)c->row;
	if (c->header) {
		/* "PGCOPY\n\377\r\n\0", flags, header extension length */
		if (n < 19 || memcmp(q, "PGCOPY\n\377\r\n", 11) != 0 ||
		    msr_load_be(q + 15, 4) > (uint64_t)n - 19)
			goto malformed;
		q += 19 + msr_load_be(q + 15, 4);
		n -= (int)(q - (const uint8_t *)c->row);
		c->header = 0;
	}
	if (n == 2 && msr_load_be(q, 2) == 0xffff)
		return copy_next(c, p, len, rep);	/* trailer: libpq's end is next */
	*p = q;
	*len = n;
	return 1;
malformed:
	rep->io_error = 1;
	msr_audit_report_fail(rep, -1, "malformed COPY data");
	c->done = 1;
	return -1;
}

/* Drain what is left and collect the COPY's result: 0, or -1 (rep says why). */
static int
copy_finish(struct copy_in *c, struct msr_audit_report *rep)
{
	const uint8_t *p;
	PGresult *res;
	int len, ret = 0;

	if (c->pg == NULL)
		return 0;
	while (copy_next(c, &p, &len, rep) > 0)
		;
	res = PQgetResult(c->pg);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rep->io_error = 1;
		msr_audit_report_fail(rep, -1, "reading the log: %s", PQresultErrorMessage(res));
		ret = -1;
	}
	PQclear(res);
	while ((res = PQgetResult(c->pg)) != NULL)
		PQclear(res);
	return ret;
}

/*
 * Parse one binary COPY tuple of nf fields: (idx int8, bytes bytea[, bytes bytea
 * or NULL]). Returns 0, or -1 if malformed; a NULL or absent third field leaves
 * *hash NULL.
 */
static int
parse_row(const uint8_t *p, int len, int nf, uint64_t *idx, const uint8_t **leaf,
    size_t *leaf_len, const uint8_t **hash)
{
	const uint8_t *end = p + len;
	int32_t fl;

	*hash = NULL;
	if (len < 2 || msr_load_be(p, 2) != (uint64_t)nf)
		return -1;
	p += 2;
	if (end - p < 12 || msr_load_be(p, 4) != 8)
		return -1;
	*idx = msr_load_be(p + 4, 8);
	p += 12;
	if (end - p < 4)
		return -1;
	fl = (int32_t)msr_load_be(p, 4);
	p += 4;
	if (fl < 0 || end - p < fl)
		return -1;
	*leaf = p;
	*leaf_len = (size_t)fl;
	p += fl;
	if (nf < 3)
		return 0;
	if (end - p < 4)
		return -1;
	fl = (int32_t)msr_load_be(p, 4);
	p += 4;
	if (fl == HLEN && end - p >= HLEN)
		*hash = p;
	return 0;
}

/*
 * Hashing runs beside the reading. The reading thread copies rows into
 * batches of a ring; HASHERS worker threads each take the next filled batch,
 * compute its leaf hashes (the bulk of the work), then wait for their turn
 * and fold it into the verifier in index order. Only the workers, one at a
 * time and in order, touch the verifier and the report until they are joined.
 */
#define VB_ENTRIES 1024
#define VB_RING    6
#define HASHERS    2

struct vbatch {
	size_t		 n, used, cap;
	uint64_t	 seq;		/* which batch of the stream */
	uint64_t	 idx[VB_ENTRIES];
	size_t		 off[VB_ENTRIES + 1];
	uint8_t		 stored[VB_ENTRIES][HLEN];
	uint8_t		 has_stored[VB_ENTRIES];
	uint8_t		 leaf_hash[VB_ENTRIES][HLEN];
	uint8_t		*bytes;
};

struct vpipe {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct vbatch	 b[VB_RING];
	uint64_t	 filled;	/* batches handed over so far */
	uint64_t	 taken;		/* batches a worker has taken */
	uint64_t	 folded;	/* batches folded, in order */
	int		 stop;
	int		 check_stored;
	struct msr_av	*v;
	pthread_t	 th[HASHERS];
	int		 nth;
};

static void
vbatch_hash(struct vbatch *b, void *hasher)
{
	for (size_t i = 0; i < b->n; i++)
		msr_av_leaf_hash(hasher, b->bytes + b->off[i], b->off[i + 1] - b->off[i],
		    b->leaf_hash[i]);
}

static void
vbatch_fold(struct vpipe *pp, const struct vbatch *b)
{
	for (size_t i = 0; i < b->n && !pp->v->bad; i++)
		msr_av_entry_hashed(pp->v, b->idx[i], b->leaf_hash[i], pp->check_stored,
		    b->has_stored[i] ? b->stored[i] : NULL);
}

static void *
vpipe_main(void *arg)
{
	struct vpipe *pp = arg;
	void *hasher = msr_av_hasher_new();

	pthread_mutex_lock(&pp->mu);
	for (;;) {
		struct vbatch *b;

		while (pp->taken == pp->filled && !pp->stop)
			pthread_cond_wait(&pp->cv, &pp->mu);
		if (pp->taken == pp->filled)
			break;
		b = &pp->b[pp->taken++ % VB_RING];
		pthread_mutex_unlock(&pp->mu);
		vbatch_hash(b, hasher);
		pthread_mutex_lock(&pp->mu);
		while (pp->folded != b->seq)
			pthread_cond_wait(&pp->cv, &pp->mu);
		pthread_mutex_unlock(&pp->mu);
		vbatch_fold(pp, b);
		pthread_mutex_lock(&pp->mu);
		pp->folded++;
		pthread_cond_broadcast(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	msr_av_hasher_free(hasher);
	return NULL;
}

/* The batch to fill next, once the workers are done with its slot. */
static struct vbatch *
vpipe_slot(struct vpipe *pp)
{
	struct vbatch *b = &pp->b[pp->filled % VB_RING];

	pthread_mutex_lock(&pp->mu);
	while (pp->filled - pp->folded >= VB_RING)
		pthread_cond_wait(&pp->cv, &pp->mu);
	pthread_mutex_unlock(&pp->mu);
	b->n = b->used = 0;
	b->seq = pp->filled;
	return b;
}

/* Hand the filled batch over (or, without workers, hash and fold it here). */
static void
vpipe_hand(struct vpipe *pp, struct vbatch *b)
{
	if (pp->nth == 0) {
		vbatch_hash(b, pp->v->hasher);
		vbatch_fold(pp, b);
		pp->filled++;
		pp->folded++;
		return;
	}
	pthread_mutex_lock(&pp->mu);
	pp->filled++;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
}

/* Append one entry to b; -1 out of memory. */
static int
vbatch_add(struct vbatch *b, uint64_t idx, const uint8_t *leaf, size_t len,
    const uint8_t *stored)
{
	if (b->used + len > b->cap) {
		size_t cap = b->cap ? b->cap : (size_t)1 << 20;
		uint8_t *p;

		while (cap < b->used + len)
			cap *= 2;
		p = realloc(b->bytes, cap);
		if (p == NULL)
			return -1;
		b->bytes = p;
		b->cap = cap;
	}
	memcpy(b->bytes + b->used, leaf, len);
	b->idx[b->n] = idx;
	b->off[b->n] = b->used;
	b->used += len;
	b->off[b->n + 1] = b->used;
	b->has_stored[b->n] = stored != NULL;
	if (stored != NULL)
		memcpy(b->stored[b->n], stored, HLEN);
	b->n++;
	return 0;
}

/*
 * Stream the entries through the pure verifier v. nf is the COPY's field
 * count: 3 when each row carries its stored level-0 hash (copy_joined_sql),
 * else 2; with hc (a second connection in the same snapshot, streaming the
 * level-0 hashes by index) the stored hashes come from there instead: two
 * scans in two backends at once cost less than their merge join in one.
 */
static int
stream_entries(struct copy_in *ec, int nf, struct copy_in *hc, struct msr_av *v,
    int check_stored, struct msr_audit_report *rep)
{
	const uint8_t *p, *hp, *leaf, *stored, *hash = NULL, *none;
	struct msr_audit_report mine;	/* the reading thread's own problems */
	struct vpipe *pp = calloc(1, sizeof(*pp));
	struct vbatch *b;
	size_t leaf_len, hash_len;
	uint64_t idx = 0, hidx = 0;
	int len, hl, rc = -1, hrc = 1, ret = -1, bad = 0;

	msr_audit_report_init(&mine);
	if (pp == NULL) {
		msr_audit_report_fail(rep, -1, "out of memory");
		return -1;
	}
	pthread_mutex_init(&pp->mu, NULL);
	pthread_cond_init(&pp->cv, NULL);
	pp->v = v;
	pp->check_stored = check_stored;
	while (pp->nth < HASHERS && pthread_create(&pp->th[pp->nth], NULL, vpipe_main, pp) == 0)
		pp->nth++;
	b = vpipe_slot(pp);
	while ((rc = copy_next(ec, &p, &len, &mine)) > 0) {
		if (bad)
			continue;		/* drain after the first problem */
		if (parse_row(p, len, nf, &idx, &leaf, &leaf_len, &stored) != 0)
			goto malformed;
		if (hc != NULL) {
			/* the stored hash of idx, if any: skip hashes of absent entries */
			while (hrc > 0 && (hash == NULL || hidx < idx)) {
				hrc = copy_next(hc, &hp, &hl, &mine);
				if (hrc > 0 && (parse_row(hp, hl, 2, &hidx, &hash, &hash_len,
				    &none) != 0 || hash_len != HLEN))
					goto malformed;
			}
			stored = hrc > 0 && hidx == idx ? hash : NULL;
		}
		if (vbatch_add(b, idx, leaf, leaf_len, stored) != 0) {
			msr_audit_report_fail(&mine, -1, "out of memory");
			bad = 1;
			continue;
		}
		if (b->n == VB_ENTRIES) {
			vpipe_hand(pp, b);
			b = vpipe_slot(pp);
		}
		continue;
malformed:
		msr_audit_report_fail(&mine, -1, "malformed COPY data near entry %" PRIu64, idx);
		mine.io_error = 1;
		bad = 1;
	}
	if (!bad && rc == 0 && b->n > 0)
		vpipe_hand(pp, b);
	pthread_mutex_lock(&pp->mu);
	pp->stop = 1;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	for (int i = 0; i < pp->nth; i++)
		pthread_join(pp->th[i], NULL);
	if (copy_finish(ec, &mine) != 0 || (hc != NULL && copy_finish(hc, &mine) != 0))
		rc = -1;
	if (hrc < 0)
		rc = -1;
	/* the verifier's finding, if any, comes first: it is earlier in the log */
	if (rep->message[0] == '\0' && mine.message[0] != '\0') {
		snprintf(rep->message, sizeof(rep->message), "%s", mine.message);
		rep->bad_index = mine.bad_index;
		rep->io_error = mine.io_error;
	}
	if (rep->message[0] == '\0' && rc == 0)
		ret = msr_av_finish(v);
	for (int i = 0; i < VB_RING; i++)
		free(pp->b[i].bytes);
	pthread_cond_destroy(&pp->cv);
	pthread_mutex_destroy(&pp->mu);
	free(pp);
	return ret;
}

/*
 * A checkpoint's root did not match the entries [from, to): name the entry
 * whose content no longer matches its stored leaf hash, if the stored hashes
 * tell (an insider who rewrote both leaves the range named as it was).
 */
static void
localize(PGconn *pg, uint64_t from, uint64_t to, struct msr_audit_report *rep)
{
	static const char sql[] =
	    "SELECT e.idx, e.leaf, h.hash FROM audit_entries e LEFT JOIN audit_hashes h"
	    " ON h.level = 0 AND h.idx = e.idx WHERE e.idx >= $1 AND e.idx < $2"
	    " ORDER BY e.idx LIMIT 100000";
	char a[24], b[24];
	const char *vals[2] = { a, b };
	void *hasher = msr_av_hasher_new();
	PGresult *res;

	snprintf(a, sizeof(a), "%" PRIu64, from);
	snprintf(b, sizeof(b), "%" PRIu64, to);
	res = PQexecParams(pg, sql, 2, NULL, vals, NULL, NULL, 1);
	for (int r = 0; PQresultStatus(res) == PGRES_TUPLES_OK && r < PQntuples(res); r++) {
		uint64_t idx = msr_load_be((const uint8_t *)PQgetvalue(res, r, 0), 8);
		uint8_t h[HLEN];

		if (PQgetlength(res, r, 2) != HLEN)
			continue;
		msr_av_leaf_hash(hasher, (const uint8_t *)PQgetvalue(res, r, 1),
		    (size_t)PQgetlength(res, r, 1), h);
		if (memcmp(h, PQgetvalue(res, r, 2), HLEN) != 0) {
			rep->message[0] = '\0';
			msr_audit_report_fail(rep, (int64_t)idx, "entry %" PRIu64 ": content does "
			    "not match its stored leaf hash (entry altered)", idx);
			break;
		}
	}
	PQclear(res);
	msr_av_hasher_free(hasher);
}

/*
 * A second connection to the same database in the same snapshot as pg (whose
 * REPEATABLE READ transaction is open), or NULL: the caller then reads
 * everything through pg.
 */
static PGconn *
twin_open(PGconn *pg)
{
	PQconninfoOption *opts = PQconninfo(pg), *o;
	const char *kw[64], *val[64];
	char sql[160];
	PGresult *res = NULL;
	PGconn *twin = NULL;
	int n = 0;

	if (opts == NULL)
		return NULL;
	for (o = opts; o->keyword != NULL && n < 62; o++)
		if (o->val != NULL && o->val[0] != '\0') {
			kw[n] = o->keyword;
			val[n++] = o->val;
		}
	kw[n] = NULL;
	val[n] = NULL;
	res = PQexec(pg, "SELECT pg_export_snapshot()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQgetlength(res, 0, 0) > 100)
		goto fail;
	/* the snapshot id is the server's ([0-9A-F-]); checked, it cannot break out */
	if (strspn(PQgetvalue(res, 0, 0), "0123456789ABCDEFabcdef-") !=
	    strlen(PQgetvalue(res, 0, 0)))
		goto fail;
	snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT '%s'", PQgetvalue(res, 0, 0));
	twin = PQconnectdbParams(kw, val, 0);
	if (PQstatus(twin) != CONNECTION_OK)
		goto fail;
	PQclear(res);
	res = PQexec(twin, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		goto fail;
	PQclear(res);
	res = PQexec(twin, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		goto fail;
	PQclear(res);
	PQconninfoFree(opts);
	return twin;
fail:
	PQclear(res);
	PQconninfoFree(opts);
	if (twin != NULL)
		PQfinish(twin);
	return NULL;
}

/* The planner settings of copy_plan on c (both scans in index order). */
static void
plan_copy(PGconn *c)
{
	for (size_t i = 0; i < sizeof(copy_plan) / sizeof(copy_plan[0]); i++)
		PQclear(PQexec(c, copy_plan[i]));
}

int
msr_audit_verify_db(PGconn *pg, const struct msr_note_verifier *v, unsigned flags,
    const struct msr_note_checkpoint *since, struct msr_audit_report *rep)
{
	struct msr_av_checkpoint *cps = NULL;
	const char **notes = NULL;
	struct msr_as_head head;
	struct msr_av_sigs *sigs;
	struct msr_av av;
	size_t ncps = 0;
	PGresult *res, *cpres = NULL;
	struct copy_in ec, hc;
	PGconn *twin = NULL;
	double t0 = msr_now_s();
	int av_ready = 0, ret = -1, rc;

	msr_audit_report_init(rep);
	memset(&head, 0, sizeof(head));
	res = PQexec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rep->io_error = 1;
		msr_audit_report_fail(rep, -1, "database: %s", PQerrorMessage(pg));
		PQclear(res);
		goto done;
	}
	PQclear(res);
	/*
	 * One big ordered read: sort the level-0 hashes in memory rather than on
	 * disk, and skip JIT compilation (it costs more than it saves here).
	 */
	res = PQexec(pg, "SET LOCAL work_mem = '256MB'");
	PQclear(res);
	res = PQexec(pg, "SET LOCAL jit = off");
	PQclear(res);
	if (load_checkpoints(pg, &cpres, &cps, &notes, &ncps, rep) != 0)
		goto rollback;
	switch (head_fetch(NULL, pg, &head)) {
	case MSR_AS_OK:
		break;
	case MSR_AS_IO:
		rep->io_error = 1;
		msr_audit_report_fail(rep, -1, "reading the tree state: %s", PQerrorMessage(pg));
		goto rollback;
	default:
		msr_audit_report_fail(rep, -1, "the newest tree state is malformed");
		goto rollback;
	}
	if (head.have != (ncps > 0) || (ncps > 0 && (head.size != cps[ncps - 1].size ||
	    sodium_memcmp(head.root, cps[ncps - 1].root, HLEN) != 0))) {
		msr_audit_report_fail(rep, -1, "the newest tree state disagrees with the newest "
		    "checkpoint");
		goto rollback;
	}
	msr_av_init(&av, cps, ncps, ncps > 0 ? cps[ncps - 1].size : 0, rep);
	av_ready = 1;
	if (since != NULL && msr_av_since(&av, since) != 0)
		goto rollback;
	/*
	 * Signatures are the costliest part (one Ed25519 verification per
	 * checkpoint): a background thread starts on them now, overlapping the
	 * COPY and the hashing; this thread joins in once the entries are done.
	 */
	sigs = msr_av_sig_start(v, notes, cps, ncps, flags);
	/*
	 * The plan for the COPYs: primary-key scans in index order, no sort, no
	 * parallel workers (they compete with the hashing for the same cores);
	 * whatever the statistics say. The level-0 hashes stream from a second
	 * backend in the same snapshot when one can be opened (two scans side by
	 * side cost less than their merge join in one), else through the join.
	 */
	if (!(flags & MSR_AV_NO_STORED))
		twin = twin_open(pg);
	plan_copy(pg);
	if (twin != NULL) {
		PGresult *r = NULL;

		plan_copy(twin);
		memset(&hc, 0, sizeof(hc));
		if (PQsendQuery(twin, copy_hashes_sql) == 1)
			r = PQgetResult(twin);
		if (PQresultStatus(r) == PGRES_COPY_OUT) {
			hc.pg = twin;
			hc.header = 1;
		}
		PQclear(r);
		if (hc.pg == NULL) {
			PQfinish(twin);
			twin = NULL;
		}
	}
	if (twin != NULL || (flags & MSR_AV_NO_STORED))
		rc = copy_start(&ec, pg, copy_entries_sql, rep) == 0 ?
		    stream_entries(&ec, 2, twin != NULL ? &hc : NULL, &av,
		    !(flags & MSR_AV_NO_STORED), rep) : -1;
	else
		rc = copy_start(&ec, pg, copy_joined_sql, rep) == 0 ?
		    stream_entries(&ec, 3, NULL, &av, 1, rep) : -1;
	if (rc == 0 && ncps > 0)
		check_stored_root(pg, &cps[ncps - 1], rep);
	else if (av.bad_to > av.bad_from && !rep->io_error)
		localize(pg, av.bad_from, av.bad_to, rep);
	msr_av_sig_finish(sigs, rep->io_error, rep);
	if (rep->message[0] != '\0')
		goto rollback;
	if (ncps > 0)
		rep->tree_size = cps[ncps - 1].size;
	rep->checkpoints += since != NULL;
	rep->signatures += since != NULL;
	ret = 0;
rollback:
	res = PQexec(pg, "ROLLBACK");
	PQclear(res);
done:
	if (twin != NULL)
		PQfinish(twin);
	if (av_ready)
		msr_av_free(&av);
	msr_as_head_clear(&head);
	PQclear(cpres);
	free(cps);
	free(notes);
	rep->seconds = msr_now_s() - t0;
	return ret;
}
