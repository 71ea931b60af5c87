/*
 * db.h — a small libpq connection pool with prepared statements.
 *
 * Statements are static tables of struct msr_db_stmt owned by the module that
 * uses them; a connection prepares a statement the first time it is executed on
 * it. msr_db_acquire() waits up to the pool's wait time for a free connection
 * and returns NULL when none is usable (the caller answers 503 unavailable).
 * msr_db_release() rolls back an open or failed transaction and drops a broken
 * connection, which is re-established by a later acquire, so the pool recovers
 * by itself when the database comes back.
 */
#ifndef MSREG_DB_H
#define MSREG_DB_H

#include <libpq-fe.h>
#include <stdint.h>

struct msr_db_stmt {
	const char *name;
	const char *sql;
	int         nparams;
};

struct msr_db_pool;

/* Where a read offered to the replica was answered (msr_db_exec_read). */
enum msr_db_read_outcome {
	MSR_DB_READ_REPLICA = 0,      /* by the replica */
	MSR_DB_READ_MISS,             /* fewer rows than expected there: primary */
	MSR_DB_READ_BEHIND,           /* replica not yet at our last commit: primary */
	MSR_DB_READ_UNAVAILABLE,      /* replica down or failing: primary */
	MSR_DB_READ_OUTCOMES
};

struct msr_db_conn {
	PGconn             *pg;
	struct msr_db_pool *pool;
	uint64_t            prepared[4];   /* bitmap over the statement registry */
	int                 broken;
};

struct msr_db_pool *msr_db_pool_new(const char *url, int size, int wait_ms,
                                    int statement_timeout_ms);
void msr_db_pool_free(struct msr_db_pool *pool);

/* A connection, or NULL when the database is unreachable or the pool is exhausted. */
struct msr_db_conn *msr_db_acquire(struct msr_db_pool *pool);
void msr_db_release(struct msr_db_conn *c);
/* 1 if a connection could be acquired and answers a trivial query. */
int msr_db_ping(struct msr_db_pool *pool);

/*
 * Execute a prepared statement (text parameters; NULL values are SQL NULL).
 * Returns the PGresult (caller PQclears), or NULL when the statement could not
 * be sent; connection failures mark the connection broken.
 */
PGresult *msr_db_exec(struct msr_db_conn *c, const struct msr_db_stmt *s,
                      const char *const *values);
/* Same with explicit lengths/formats (binary parameters). */
PGresult *msr_db_exec_params(struct msr_db_conn *c, const struct msr_db_stmt *s,
                             const char *const *values, const int *lengths,
                             const int *formats, int result_format);
/* Run a fixed command (BEGIN, COMMIT, ...). Returns 0 on success. */
int msr_db_command(struct msr_db_conn *c, const char *sql);
/*
 * Tell the pool that c just committed by other means than msr_db_command
 * (a pipelined COMMIT, audit_store.c), so that replica reads wait for it.
 */
void msr_db_committed(struct msr_db_conn *c);

/*
 * Read replica ([database] read_url). The primary pool takes ownership of
 * replica (freed with it). After that, every COMMIT through the primary pool
 * records the primary's WAL position, and msr_db_exec_read() may answer from
 * the replica (see db.c invariants 4-6).
 */
void msr_db_pool_set_replica(struct msr_db_pool *primary, struct msr_db_pool *replica);
/*
 * Like msr_db_exec() on the primary connection, but answered by the replica
 * when it has replayed this process's last commit and returns at least
 * min_rows rows; otherwise (or when it fails) by the primary. Only for reads
 * whose rows, once committed, never disappear (registry data, not the audit log
 * or keys). Without a replica it is msr_db_exec(primary, ...).
 */
PGresult *msr_db_exec_read(struct msr_db_conn *primary, const struct msr_db_stmt *s,
                           const char *const *values, int min_rows);
/* Prometheus text for the replica counters into buf ("" without a replica); 0 if it fit. */
int msr_db_metrics(struct msr_db_pool *pool, char *buf, size_t len);

/* SQLSTATE of a failed result, "" if none. */
const char *msr_db_sqlstate(const PGresult *res);
/* 1 if res is a success (COMMAND_OK or TUPLES_OK). */
int msr_db_ok(const PGresult *res);

/* Open a standalone connection (CLI, listener). NULL on failure; err gets the reason. */
PGconn *msr_db_connect(const char *url, char *err, size_t errlen);

#endif
