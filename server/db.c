/*
 * db.c — libpq connection pool (see db.h).
 *
 * Invariants:
 *  1. A connection handed out by msr_db_acquire() is idle (PQTRANS_IDLE) and
 *     belongs to exactly one caller until msr_db_release().
 *  2. Every statement registered in `registry` has a fixed index; bit i of
 *     conn->prepared says statement i is prepared on that connection. The bits
 *     are cleared whenever the connection is re-established.
 *  3. A connection seen broken (CONNECTION_BAD) is closed on release and
 *     reconnected on a later acquire, at most once per RECONNECT_BACKOFF_MS per
 *     slot, so that an outage turns requests into fast 503s instead of stalls.
 */
#include "msreg/db.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msreg/common.h"
#include "msreg/log.h"
#include "msreg/metrics.h"

#define MAX_STMTS            256
#define RECONNECT_BACKOFF_MS 250

struct slot {
	struct msr_db_conn conn;
	int                busy;
	int64_t            last_attempt_ms;
};

struct msr_db_pool {
	char            *url;
	int              size;
	int              wait_ms;
	int              statement_timeout_ms;
	struct slot     *slots;
	pthread_mutex_t  lock;
	pthread_cond_t   freed;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct msr_db_stmt *registry[MAX_STMTS];
static int registry_len;

static int
stmt_index(const struct msr_db_stmt *s)
{
	int i, ret = -1;

	pthread_mutex_lock(&registry_lock);
	for (i = 0; i < registry_len; i++)
		if (registry[i] == s) {
			ret = i;
			goto done;
		}
	if (registry_len < MAX_STMTS) {
		registry[registry_len] = s;
		ret = registry_len++;
	}
done:
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

static void
notice_discard(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

PGconn *
msr_db_connect(const char *url, char *err, size_t errlen)
{
	PGconn *pg = PQconnectdb(url);

	if (pg == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(pg));
		err[strcspn(err, "\n")] = '\0';
		PQfinish(pg);
		return NULL;
	}
	PQsetNoticeProcessor(pg, notice_discard, NULL);
	return pg;
}

static int
slot_connect(struct msr_db_pool *pool, struct slot *s)
{
	char err[256], sql[96];
	PGresult *res;

	s->last_attempt_ms = (int64_t)(msr_now_ns() / 1000000);
	memset(s->conn.prepared, 0, sizeof(s->conn.prepared));
	s->conn.broken = 0;
	s->conn.pg = msr_db_connect(pool->url, err, sizeof(err));
	if (s->conn.pg == NULL) {
		log_warn("database connection failed: %s", err);
		return -1;
	}
	snprintf(sql, sizeof(sql), "SET statement_timeout = %d", pool->statement_timeout_ms);
	res = PQexec(s->conn.pg, sql);
	PQclear(res);
	return 0;
}

struct msr_db_pool *
msr_db_pool_new(const char *url, int size, int wait_ms, int statement_timeout_ms)
{
	struct msr_db_pool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL)
		return NULL;
	pool->url = strdup(url);
	pool->slots = calloc((size_t)size, sizeof(*pool->slots));
	if (pool->url == NULL || pool->slots == NULL) {
		free(pool->url);
		free(pool->slots);
		free(pool);
		return NULL;
	}
	pool->size = size;
	pool->wait_ms = wait_ms;
	pool->statement_timeout_ms = statement_timeout_ms;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->freed, NULL);
	for (int i = 0; i < size; i++)
		pool->slots[i].conn.pool = pool;
	return pool;
}

void
msr_db_pool_free(struct msr_db_pool *pool)
{
	if (pool == NULL)
		return;
	for (int i = 0; i < pool->size; i++)
		if (pool->slots[i].conn.pg != NULL)
			PQfinish(pool->slots[i].conn.pg);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->freed);
	free(pool->slots);
	free(pool->url);
	free(pool);
}

/* Pick a free slot, preferring connected ones. Called with pool->lock held. */
static struct slot *
pick_slot(struct msr_db_pool *pool)
{
	struct slot *unconnected = NULL;

	for (int i = 0; i < pool->size; i++) {
		struct slot *s = &pool->slots[i];
		if (s->busy)
			continue;
		if (s->conn.pg != NULL)
			return s;
		if (unconnected == NULL)
			unconnected = s;
	}
	return unconnected;
}

struct msr_db_conn *
msr_db_acquire(struct msr_db_pool *pool)
{
	struct timespec deadline;
	struct slot *s = NULL;
	int64_t t;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += pool->wait_ms / 1000;
	deadline.tv_nsec += (long)(pool->wait_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		s = pick_slot(pool);
		if (s != NULL)
			break;
		msr_metrics_pool_wait(1);
		if (pthread_cond_timedwait(&pool->freed, &pool->lock, &deadline) == ETIMEDOUT) {
			msr_metrics_pool_wait(-1);
			msr_metrics_pool_timeout();
			pthread_mutex_unlock(&pool->lock);
			log_warn("database pool exhausted after %d ms", pool->wait_ms);
			return NULL;
		}
		msr_metrics_pool_wait(-1);
	}
	s->busy = 1;
	pthread_mutex_unlock(&pool->lock);

	if (s->conn.pg != NULL && PQstatus(s->conn.pg) != CONNECTION_OK) {
		PQfinish(s->conn.pg);
		s->conn.pg = NULL;
	}
	if (s->conn.pg == NULL) {
		t = (int64_t)(msr_now_ns() / 1000000);
		if (t - s->last_attempt_ms < RECONNECT_BACKOFF_MS || slot_connect(pool, s) != 0) {
			pthread_mutex_lock(&pool->lock);
			s->busy = 0;
			pthread_cond_signal(&pool->freed);
			pthread_mutex_unlock(&pool->lock);
			return NULL;
		}
	}
	return &s->conn;
}

void
msr_db_release(struct msr_db_conn *c)
{
	struct msr_db_pool *pool;
	struct slot *s;

	if (c == NULL)
		return;
	pool = c->pool;
	s = (struct slot *)(void *)c;   /* conn is the first member of slot */
	if (c->pg != NULL && !c->broken && PQstatus(c->pg) == CONNECTION_OK) {
		PGTransactionStatusType ts = PQtransactionStatus(c->pg);
		if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
			PGresult *res = PQexec(c->pg, "ROLLBACK");
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				c->broken = 1;
			PQclear(res);
		} else if (ts != PQTRANS_IDLE) {
			c->broken = 1;
		}
	} else {
		c->broken = 1;
	}
	if (c->broken && c->pg != NULL) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	pthread_mutex_lock(&pool->lock);
	s->busy = 0;
	pthread_cond_signal(&pool->freed);
	pthread_mutex_unlock(&pool->lock);
}

static void
check_broken(struct msr_db_conn *c)
{
	if (PQstatus(c->pg) != CONNECTION_OK)
		c->broken = 1;
}

static int
ensure_prepared(struct msr_db_conn *c, const struct msr_db_stmt *s)
{
	int i = stmt_index(s);
	PGresult *res;
	int ok;

	if (i < 0) {
		log_error("statement registry full (%d)", MAX_STMTS);
		return -1;
	}
	if (c->prepared[i / 64] & (UINT64_C(1) << (i % 64)))
		return 0;
	res = PQprepare(c->pg, s->name, s->sql, s->nparams, NULL);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok) {
		check_broken(c);
		if (!c->broken)
			log_error("prepare %s failed: %s", s->name, PQresultErrorMessage(res));
	}
	PQclear(res);
	if (!ok)
		return -1;
	c->prepared[i / 64] |= UINT64_C(1) << (i % 64);
	return 0;
}

PGresult *
msr_db_exec_params(struct msr_db_conn *c, const struct msr_db_stmt *s,
    const char *const *values, const int *lengths, const int *formats,
    int result_format)
{
	PGresult *res;

	if (c->broken || ensure_prepared(c, s) != 0)
		return NULL;
	res = PQexecPrepared(c->pg, s->name, s->nparams, values, lengths, formats,
	    result_format);
	if (res == NULL || PQresultStatus(res) == PGRES_FATAL_ERROR)
		check_broken(c);
	return res;
}

PGresult *
msr_db_exec(struct msr_db_conn *c, const struct msr_db_stmt *s, const char *const *values)
{
	return msr_db_exec_params(c, s, values, NULL, NULL, 0);
}

int
msr_db_command(struct msr_db_conn *c, const char *sql)
{
	PGresult *res;
	int ret;

	if (c->broken)
		return -1;
	res = PQexec(c->pg, sql);
	ret = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
	if (ret != 0)
		check_broken(c);
	PQclear(res);
	return ret;
}

int
msr_db_ping(struct msr_db_pool *pool)
{
	struct msr_db_conn *c = msr_db_acquire(pool);
	PGresult *res;
	int ok;

	if (c == NULL)
		return 0;
	res = PQexec(c->pg, "SELECT 1");
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		check_broken(c);
	PQclear(res);
	msr_db_release(c);
	return ok;
}

const char *
msr_db_sqlstate(const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return s ? s : "";
}

int
msr_db_ok(const PGresult *res)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}
