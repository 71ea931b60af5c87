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
 *
 * Read replica ([database] read_url). A primary pool may own a second pool on a
 * streaming replica (msr_db_pool_set_replica). msr_db_exec_read() runs a read
 * there when that cannot show the caller less than the primary would:
 *  4. Read-your-writes: every COMMIT through a primary pool with a replica
 *     records pg_current_wal_lsn() afterwards (commit_lsn, monotonic max). A
 *     read goes to the replica only if the replica's replay LSN is at or past
 *     commit_lsn; the replica's LSN is cached (it only grows, so a cached value
 *     is a safe lower bound) and asked again only when the cache is behind.
 *     Only "COMMIT" through msr_db_command() counts, i.e. the middleware's
 *     commit of a write. A transaction that commits on every read (say, a
 *     counter) and whose rows are never read from the replica should commit
 *     some other way, or every read after it waits for the replica or goes
 *     to the primary.
 *  5. A miss is never answered from the replica: a result with fewer rows than
 *     the caller expects (min_rows: 1 for an exact lookup, the number of codes
 *     the index found for a search) is retried on the primary, so a row
 *     committed through another instance and not yet replayed is still found.
 *  6. The replica is optional for availability: any failure (no connection,
 *     query error, recovery conflict) falls back to the primary, and after a
 *     failure the replica is not tried again for REPLICA_RETRY_MS, so a stopped
 *     replica costs one failed attempt per interval, not one per request.
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
#define REPLICA_RETRY_MS     1000

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
	/* read replica (invariants 4-6); atomics, no lock */
	struct msr_db_pool *replica;       /* primary pools: owned, or NULL */
	uint64_t         commit_lsn;       /* primary: highest LSN after our COMMITs */
	uint64_t         replay_lsn;       /* replica: last replay LSN seen (lower bound) */
	int64_t          down_until_ms;    /* replica: not tried before this time */
	uint64_t         reads[MSR_DB_READ_OUTCOMES];
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
	/*
	 * No JIT: msregd's statements are short OLTP ones, and PostgreSQL compiles a
	 * plan whose estimate passes jit_above_cost afresh on EVERY execution (it
	 * caches no JIT code). A lookup's cached plan crossed it on a 1.9e6-code
	 * registry: about 0.4 s of LLVM per 0.2 ms lookup (bench_registry, full
	 * scale). The verifier's one long COPY gains nothing from it either.
	 */
	PQclear(PQexec(pg, "SET jit = off"));
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
	msr_db_pool_free(pool->replica);
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

/* As msr_db_acquire(); *exhausted says whether NULL meant "no free slot in time". */
static struct msr_db_conn *
acquire(struct msr_db_pool *pool, int *exhausted)
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
			*exhausted = 1;
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

struct msr_db_conn *
msr_db_acquire(struct msr_db_pool *pool)
{
	int exhausted = 0;

	return acquire(pool, &exhausted);
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

/* "16/B374D848" -> 0x16B374D848; 0 for NULL or garbage. */
static uint64_t
parse_lsn(const char *s)
{
	unsigned long hi, lo;
	char *end;

	if (s == NULL || *s == '\0')
		return 0;
	hi = strtoul(s, &end, 16);
	if (*end != '/')
		return 0;
	lo = strtoul(end + 1, &end, 16);
	if (*end != '\0')
		return 0;
	return ((uint64_t)hi << 32) | (uint64_t)(lo & 0xffffffffUL);
}

static void
atomic_max_u64(uint64_t *p, uint64_t v)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_ACQUIRE);

	while (cur < v &&
	    !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

/* A fixed single-value query; returns the LSN or 0 (and marks c broken if lost). */
static uint64_t
query_lsn(struct msr_db_conn *c, const char *sql)
{
	PGresult *res = PQexec(c->pg, sql);
	uint64_t lsn = 0;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 0))
		lsn = parse_lsn(PQgetvalue(res, 0, 0));
	else
		check_broken(c);
	PQclear(res);
	return lsn;
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
	if (ret == 0 && strcmp(sql, "COMMIT") == 0)
		msr_db_committed(c);
	return ret;
}

void
msr_db_committed(struct msr_db_conn *c)
{
	/* invariant 4: remember how far a replica must be to show this commit */
	if (c->pool->replica != NULL) {
		uint64_t lsn = query_lsn(c, "SELECT pg_current_wal_lsn()");
		if (lsn == 0)   /* unknown: no replica read until a later commit says */
			lsn = UINT64_MAX;
		atomic_max_u64(&c->pool->commit_lsn, lsn);
	}
}

void
msr_db_pool_set_replica(struct msr_db_pool *primary, struct msr_db_pool *replica)
{
	msr_db_pool_free(primary->replica);
	primary->replica = replica;
}

static void
count_read(struct msr_db_pool *rp, enum msr_db_read_outcome o)
{
	__atomic_add_fetch(&rp->reads[o], 1, __ATOMIC_RELAXED);
}

static void
replica_down(struct msr_db_pool *rp)
{
	__atomic_store_n(&rp->down_until_ms, (int64_t)(msr_now_ns() / 1000000) +
	    REPLICA_RETRY_MS, __ATOMIC_RELEASE);
	/* a replica that comes back may be a different, older one */
	__atomic_store_n(&rp->replay_lsn, 0, __ATOMIC_RELEASE);
}

PGresult *
msr_db_exec_read(struct msr_db_conn *primary, const struct msr_db_stmt *s,
    const char *const *values, int min_rows)
{
	struct msr_db_pool *rp = primary->pool->replica;
	struct msr_db_conn *c;
	PGresult *res;
	uint64_t need, have;
	int exhausted = 0;

	if (rp == NULL)
		return msr_db_exec(primary, s, values);
	if ((int64_t)(msr_now_ns() / 1000000) < __atomic_load_n(&rp->down_until_ms,
	    __ATOMIC_ACQUIRE)) {
		count_read(rp, MSR_DB_READ_UNAVAILABLE);
		return msr_db_exec(primary, s, values);
	}
	c = acquire(rp, &exhausted);
	if (c == NULL) {
		if (!exhausted)      /* busy is not down */
			replica_down(rp);
		count_read(rp, MSR_DB_READ_UNAVAILABLE);
		return msr_db_exec(primary, s, values);
	}
	need = __atomic_load_n(&primary->pool->commit_lsn, __ATOMIC_ACQUIRE);
	have = __atomic_load_n(&rp->replay_lsn, __ATOMIC_ACQUIRE);
	if (have < need) {
		have = query_lsn(c, "SELECT pg_last_wal_replay_lsn()");
		if (c->broken) {
			msr_db_release(c);
			replica_down(rp);
			count_read(rp, MSR_DB_READ_UNAVAILABLE);
			return msr_db_exec(primary, s, values);
		}
		atomic_max_u64(&rp->replay_lsn, have);
		if (have < need) {
			msr_db_release(c);
			count_read(rp, MSR_DB_READ_BEHIND);
			return msr_db_exec(primary, s, values);
		}
	}
	res = msr_db_exec(c, s, values);
	if (!msr_db_ok(res)) {
		if (!c->broken)
			log_warn("replica read %s failed (%s); reading the primary", s->name,
			    res ? msr_db_sqlstate(res) : "not sent");
		PQclear(res);
		if (c->broken)
			replica_down(rp);
		msr_db_release(c);
		count_read(rp, MSR_DB_READ_UNAVAILABLE);
		return msr_db_exec(primary, s, values);
	}
	msr_db_release(c);
	if (PQntuples(res) < min_rows) {
		PQclear(res);
		count_read(rp, MSR_DB_READ_MISS);
		return msr_db_exec(primary, s, values);
	}
	count_read(rp, MSR_DB_READ_REPLICA);
	return res;
}

int
msr_db_metrics(struct msr_db_pool *pool, char *buf, size_t len)
{
	static const char *const names[MSR_DB_READ_OUTCOMES] = {
		"replica", "primary_miss", "primary_behind", "primary_unavailable",
	};
	struct msr_db_pool *rp = pool->replica;
	size_t used;
	int n;

	if (len == 0)
		return -1;
	buf[0] = '\0';
	if (rp == NULL)
		return 0;
	n = snprintf(buf, len, "# HELP msreg_db_replica_reads_total Reads offered to the"
	    " read replica, by where they were answered.\n"
	    "# TYPE msreg_db_replica_reads_total counter\n");
	if (n < 0 || (size_t)n >= len)
		return -1;
	used = (size_t)n;
	for (int i = 0; i < MSR_DB_READ_OUTCOMES; i++) {
		n = snprintf(buf + used, len - used,
		    "msreg_db_replica_reads_total{served=\"%s\"} %llu\n", names[i],
		    (unsigned long long)__atomic_load_n(&rp->reads[i], __ATOMIC_RELAXED));
		if (n < 0 || (size_t)n >= len - used)
			return -1;
		used += (size_t)n;
	}
	return 0;
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
