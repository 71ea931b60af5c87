/*
 * feed.c — the search index inside msregd, fed from PostgreSQL (see feed.h).
 *
 * One thread owns a dedicated connection (not from the pool):
 *   1. initial load: in one REPEATABLE READ transaction, note the snapshot's
 *      in-progress transactions and the largest change_seq, COPY every code
 *      out, and build the index in O(N), one sorted run per [search]
 *      load_chunk rs8 codes, so the raw codes are never all in memory at once;
 *   2. LISTEN msreg_codes; registry writes NOTIFY in their transaction;
 *   3. catch-up, on every notification and at least every [search] poll_ms:
 *      in one REPEATABLE READ transaction take a new snapshot S and read the
 *      rows that were not visible in the previous snapshot P:
 *        change_seq > max_seq(P)   UNION ALL   change_xid in xip(P)
 *      (two index scans), add them (idempotent) and make S the previous one.
 *
 * Invariants:
 *  1. After a catch-up in snapshot S, every code visible in S is in the index.
 *     Let row R, written by transaction T, be visible in S but not in P. If
 *     R's change_seq is above max_seq(P) the first branch reads it. Otherwise
 *     it was drawn before the row holding max_seq(P), hence before P was taken;
 *     T had its xid before it drew it (sql/006_change_order.sql), so T had an
 *     xid before P and, not committed in P, is in xip(P): the second branch
 *     reads it. Rows visible in P are not read again, so concurrent long
 *     batches cost one read each, not one per catch-up.
 *  2. The index is only ever added to; codes are never deleted from the
 *     registry and retired codes stay searchable.
 *  3. If the connection breaks, the thread reconnects and resumes from the
 *     last snapshot it completed; the index stays servable meanwhile.
 */
#include "msreg/feed.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msreg/code.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/log.h"
#include "msreg/metrics.h"
#include "msreg/search.h"

struct msr_feed {
	const struct msr_config *cfg;
	pthread_t        thread;
	pthread_mutex_t  lock;
	pthread_cond_t   cond;
	int              stop;
	int              ready;
	struct msr_index *index;
	PGconn          *pg;
	/* the last completed snapshot P (see invariant 1) */
	char            *xip;            /* in-progress xids of P, array literal (malloc) */
	long long        max_seq;        /* largest change_seq visible in P */
	uint64_t         sync_req;       /* msr_feed_sync generations */
	uint64_t         sync_done;
	double           load_seconds;
	uint64_t         catchups, added;
};

static int
exec_cmd(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		log_warn("search feed: %s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	return ok ? 0 : -1;
}

/* The current snapshot's in-progress xids as an array literal (malloc'd). */
static int
read_snapshot(PGconn *pg, char **xip)
{
	PGresult *res = PQexec(pg,
	    "SELECT array(SELECT pg_snapshot_xip(pg_current_snapshot()))::text");
	int ret = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		*xip = strdup(PQgetvalue(res, 0, 0));
		ret = *xip != NULL ? 0 : -1;
	}
	PQclear(res);
	return ret;
}

static int
read_max_seq(PGconn *pg, long long *max)
{
	PGresult *res = PQexec(pg, "SELECT coalesce(max(change_seq), 0) FROM codes");
	int ret = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		*max = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		ret = 0;
	}
	PQclear(res);
	return ret;
}

struct load_buf {
	struct msr_index *index;          /* being built */
	size_t           chunk;           /* flush rs8 after this many */
	uint64_t        *rs8;
	size_t           n_rs8, cap_rs8, total_rs8;
	struct msr_code *other;
	size_t           n_other, cap_other;
};

/* Turn the buffered rs8 codes (and, at the end, the other codes) into a run. */
static int
load_flush(struct load_buf *b, int last)
{
	if (b->n_rs8 == 0 && !last)
		return 0;
	if (msr_index_add_bulk(b->index, b->rs8, b->n_rs8, last ? b->other : NULL,
	    last ? b->n_other : 0) != 0)
		return -1;
	b->total_rs8 += b->n_rs8;
	b->n_rs8 = 0;
	return 0;
}

/* Classify one normalised code text into the load buffers. */
static int
load_code(struct load_buf *b, const char *text, size_t len)
{
	struct msr_code c;
	size_t n;
	long bad;
	char tmp[MSR_CODE_MAX + 1];

	if (len == 0 || len > MSR_CODE_MAX)
		return 0;
	memcpy(tmp, text, len);
	tmp[len] = '\0';
	if (msr_code_normalize(tmp, c.sym, sizeof(c.sym), &n, &bad) != 0)
		return 0;
	c.len = (uint8_t)n;
	if (n == MSR_RS8_LEN && msr_rs8_valid(c.sym)) {
		if (b->n_rs8 == b->chunk && load_flush(b, 0) != 0)
			return -1;
		if (b->n_rs8 == b->cap_rs8) {
			size_t cap = b->cap_rs8 ? b->cap_rs8 * 2 : 1 << 16;
			uint64_t *p;

			if (cap > b->chunk)
				cap = b->chunk;     /* chunk >= 1000 ([search] load_chunk) */
			if (cap <= b->n_rs8)
				return -1;
			p = realloc(b->rs8, cap * sizeof(*p));
			if (p == NULL)
				return -1;
			b->rs8 = p;
			b->cap_rs8 = cap;
		}
		b->rs8[b->n_rs8++] = msr_rs8_pack(c.sym);
		return 0;
	}
	if (b->n_other == b->cap_other) {
		size_t cap = b->cap_other ? b->cap_other * 2 : 1024;
		struct msr_code *p = realloc(b->other, cap * sizeof(*p));
		if (p == NULL)
			return -1;
		b->other = p;
		b->cap_other = cap;
	}
	b->other[b->n_other++] = c;
	return 0;
}

static int
initial_load(struct msr_feed *f)
{
	struct load_buf b = { 0 };
	PGresult *res;

	b.chunk = (size_t)f->cfg->search_load_chunk;
	b.index = msr_index_new(NULL);
	if (b.index == NULL)
		return -1;
	double t0 = msr_now_s();
	char *row;
	int n, ret = -1;

	free(f->xip);
	f->xip = NULL;
	if (exec_cmd(f->pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != 0 ||
	    read_snapshot(f->pg, &f->xip) != 0 ||
	    read_max_seq(f->pg, &f->max_seq) != 0)
		goto done;
	res = PQexec(f->pg, "COPY codes (code) TO STDOUT");
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		log_warn("search feed: COPY failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		goto done;
	}
	PQclear(res);
	while ((n = PQgetCopyData(f->pg, &row, 0)) > 0) {
		size_t len = (size_t)n;
		if (len > 0 && row[len - 1] == '\n')
			len--;
		if (load_code(&b, row, len) != 0) {
			PQfreemem(row);
			log_error("search feed: out of memory building the index");
			goto done;
		}
		PQfreemem(row);
	}
	res = PQgetResult(f->pg);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		PQclear(res);
		goto done;
	}
	PQclear(res);
	while ((res = PQgetResult(f->pg)) != NULL)
		PQclear(res);
	if (exec_cmd(f->pg, "COMMIT") != 0)
		goto done;
	if (load_flush(&b, 1) != 0) {
		log_error("search feed: index build failed");
		goto done;
	}
	f->index = b.index;
	b.index = NULL;
	f->load_seconds = msr_now_s() - t0;
	log_info("search index loaded: %zu rs8 + %zu other codes in %.2f s", b.total_rs8,
	    b.n_other, f->load_seconds);
	ret = 0;
done:
	if (ret != 0 && PQstatus(f->pg) == CONNECTION_OK)
		exec_cmd(f->pg, "ROLLBACK");
	msr_index_free(b.index);
	free(b.rs8);
	free(b.other);
	return ret;
}

static int
catch_up(struct msr_feed *f)
{
	char seq[24], *xip = NULL;
	const char *values[2] = { seq, f->xip };
	long long max_seq = f->max_seq;
	PGresult *res = NULL;
	int ret = -1;

	snprintf(seq, sizeof(seq), "%lld", f->max_seq);
	if (exec_cmd(f->pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != 0 ||
	    read_snapshot(f->pg, &xip) != 0)
		goto done;
	res = PQexecParams(f->pg,
	    "SELECT code, change_seq FROM codes WHERE change_seq > $1::bigint"
	    " UNION ALL"
	    " SELECT code, change_seq FROM codes WHERE change_xid = ANY ($2::xid8[])",
	    2, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warn("search feed: catch-up failed: %s", PQresultErrorMessage(res));
		goto done;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		struct msr_code c;
		long long s = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		size_t n;
		long bad;

		if (s > max_seq)
			max_seq = s;
		if (msr_code_normalize(PQgetvalue(res, i, 0), c.sym, sizeof(c.sym), &n, &bad) != 0)
			continue;
		c.len = (uint8_t)n;
		if (msr_index_add(f->index, &c) == 1)
			f->added++;
	}
	if (exec_cmd(f->pg, "COMMIT") != 0)
		goto done;
	free(f->xip);
	f->xip = xip;
	xip = NULL;
	f->max_seq = max_seq;
	f->catchups++;
	msr_metrics_feed_caught_up();
	ret = 0;
done:
	free(xip);
	PQclear(res);
	if (ret != 0 && PQstatus(f->pg) == CONNECTION_OK)
		exec_cmd(f->pg, "ROLLBACK");
	return ret;
}

static int
stopping(struct msr_feed *f)
{
	int s;

	pthread_mutex_lock(&f->lock);
	s = f->stop;
	pthread_mutex_unlock(&f->lock);
	return s;
}

/* Wait for a notification, a sync request or the poll interval. */
static void
wait_for_change(struct msr_feed *f)
{
	struct pollfd pfd = { PQsocket(f->pg), POLLIN, 0 };
	int slice = 50, waited = 0;
	PGnotify *n;

	while (waited < f->cfg->search_poll_ms && !stopping(f)) {
		pthread_mutex_lock(&f->lock);
		if (f->sync_req != f->sync_done) {
			pthread_mutex_unlock(&f->lock);
			return;
		}
		pthread_mutex_unlock(&f->lock);
		if (poll(&pfd, 1, slice) > 0) {
			int got = 0;
			PQconsumeInput(f->pg);
			while ((n = PQnotifies(f->pg)) != NULL) {
				got = 1;
				PQfreemem(n);
			}
			if (got || PQstatus(f->pg) != CONNECTION_OK)
				return;
		}
		waited += slice;
	}
}

static void *
feed_main(void *arg)
{
	struct msr_feed *f = arg;
	char err[256];
	int logged_down = 0;

	while (!stopping(f)) {
		if (f->pg == NULL || PQstatus(f->pg) != CONNECTION_OK) {
			if (f->pg != NULL)
				PQfinish(f->pg);
			f->pg = msr_db_connect(f->cfg->db_url, err, sizeof(err));
			if (f->pg == NULL || exec_cmd(f->pg, "LISTEN msreg_codes") != 0) {
				if (!logged_down)
					log_warn("search feed: database unavailable (%s); retrying", err);
				logged_down = 1;
				if (f->pg != NULL) {
					PQfinish(f->pg);
					f->pg = NULL;
				}
				struct timespec ts = { 0, 250 * 1000000L };
				nanosleep(&ts, NULL);
				continue;
			}
			logged_down = 0;
		}
		if (f->index == NULL) {
			if (initial_load(f) != 0)
				continue;
			pthread_mutex_lock(&f->lock);
			f->ready = 1;
			pthread_mutex_unlock(&f->lock);
		}
		pthread_mutex_lock(&f->lock);
		uint64_t gen = f->sync_req;
		pthread_mutex_unlock(&f->lock);
		if (catch_up(f) == 0) {
			pthread_mutex_lock(&f->lock);
			f->sync_done = gen;
			pthread_cond_broadcast(&f->cond);
			pthread_mutex_unlock(&f->lock);
		}
		if (PQstatus(f->pg) == CONNECTION_OK)
			wait_for_change(f);
	}
	return NULL;
}

struct msr_feed *
msr_feed_start(const struct msr_config *cfg)
{
	struct msr_feed *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->cfg = cfg;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	if (pthread_create(&f->thread, NULL, feed_main, f) != 0) {
		free(f);
		return NULL;
	}
	return f;
}

void
msr_feed_stop(struct msr_feed *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = 1;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	if (f->pg != NULL)
		PQfinish(f->pg);
	msr_index_free(f->index);
	free(f->xip);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	free(f);
}

int
msr_feed_ready(struct msr_feed *f)
{
	int r;

	pthread_mutex_lock(&f->lock);
	r = f->ready;
	pthread_mutex_unlock(&f->lock);
	return r;
}

struct msr_index *
msr_feed_index(struct msr_feed *f)
{
	struct msr_index *idx;

	pthread_mutex_lock(&f->lock);
	idx = f->ready ? f->index : NULL;
	pthread_mutex_unlock(&f->lock);
	return idx;
}

int
msr_feed_sync(struct msr_feed *f, int timeout_ms)
{
	struct timespec deadline;
	uint64_t want;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->lock);
	want = ++f->sync_req;
	while (f->sync_done < want && ret == 0)
		if (pthread_cond_timedwait(&f->cond, &f->lock, &deadline) == ETIMEDOUT)
			ret = -1;
	pthread_mutex_unlock(&f->lock);
	return ret;
}

void
msr_feed_metrics(struct msr_feed *f, char *buf, size_t len)
{
	struct msr_index_stats st;
	struct msr_index *idx = msr_feed_index(f);

	if (idx == NULL) {
		snprintf(buf, len, "# HELP msreg_search_index_ready 1 once the search index is "
		    "loaded.\n# TYPE msreg_search_index_ready gauge\n"
		    "msreg_search_index_ready 0\n");
		return;
	}
	msr_index_stats(idx, &st);
	snprintf(buf, len,
	    "# HELP msreg_search_index_ready 1 once the search index is loaded.\n"
	    "# TYPE msreg_search_index_ready gauge\nmsreg_search_index_ready 1\n"
	    "# HELP msreg_search_index_codes Codes in the search index.\n"
	    "# TYPE msreg_search_index_codes gauge\nmsreg_search_index_codes %zu\n"
	    "# HELP msreg_search_index_bytes Memory held by the search index.\n"
	    "# TYPE msreg_search_index_bytes gauge\nmsreg_search_index_bytes %zu\n"
	    "# HELP msreg_search_index_load_seconds Time the initial index load took.\n"
	    "# TYPE msreg_search_index_load_seconds gauge\nmsreg_search_index_load_seconds %.3f\n"
	    "# HELP msreg_search_feed_catchups_total Catch-ups of the search feed.\n"
	    "# TYPE msreg_search_feed_catchups_total counter\n"
	    "msreg_search_feed_catchups_total %llu\n",
	    st.codes, st.memory, f->load_seconds, (unsigned long long)f->catchups);
}
