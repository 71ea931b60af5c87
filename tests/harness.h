/*
 * harness.h — shared helpers for unit and integration tests.
 *
 * Unit tests use msr_test_load_json() to read reference vectors from tests/data/
 * (copies of shared/testdata, produced by Go's sumdb/tlog and sumdb/note and the
 * rs8 reference).
 *
 * Integration tests run the real msregd against a real PostgreSQL cluster over
 * real HTTP on loopback. tests/run-integration.sh starts one throwaway cluster
 * and exports MSR_IT_PGBASE; each test suite calls msr_it_setup() to get a fresh
 * database (migrated, with an admin key and an audit signer key), a config file
 * on a free loopback port and a running msregd, and msr_it_teardown() to stop
 * it. msregd is started with PR_SET_PDEATHSIG so it never outlives its test.
 */
#ifndef MSREG_TEST_HARNESS_H
#define MSREG_TEST_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Load tests/data/<name>; aborts the test process if it cannot. Caller decrefs. */
json_t *msr_test_load_json(const char *name);

/*
 * Seeded randomness for tests and benchmarks (splitmix64): the same seed gives
 * the same inputs on every machine, so a failure can be replayed.
 */
static inline uint64_t
msr_test_rand(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform enough below n (n > 0) for test inputs. */
static inline unsigned
msr_test_rand_below(uint64_t *state, unsigned n)
{
	return (unsigned)(msr_test_rand(state) % n);
}

struct Suite;
/*
 * Run a Check suite and return the process exit status (0 when every test
 * passed). nofork runs the tests in this process (for tests that must share
 * state with their fixtures, such as a daemon they kill and restart).
 */
int msr_test_run(struct Suite *s, int nofork);

struct msr_it {
	char  name[64];
	char  dir[512];          /* per-suite scratch dir (config, keys, logs) */
	char  pgbase[512];
	char  bin[512];          /* directory holding msregd and msreg */
	char  url_app[768];      /* msreg_app */
	char  url_owner[768];    /* msreg_owner */
	char  url_super[768];    /* cluster superuser */
	char  config[600];
	char  keyfile[600];
	char  vkey[512];         /* verifier key printed by keygen */
	char  admin_key[128];
	int   port;
	int   tls;               /* 1: talk https (certificate not verified) */
	pid_t pid;
};

struct msr_it_resp {
	long    status;
	char   *body;            /* NUL-terminated */
	size_t  len;
	json_t *json;            /* parsed body if JSON, else NULL */
	long    audit_index;     /* Audit-Index header, -1 if absent */
	char    ctype[128];
	char    retry_after[32];
};

/*
 * Create database "it_<name>" (dropped first if it exists), write the config
 * (extra_ini appended verbatim, may be NULL), keygen, migrate, create an admin
 * key, start msregd and wait until /healthz answers. Aborts on failure.
 */
void msr_it_setup(struct msr_it *it, const char *name, const char *extra_ini);
/* Stop msregd (SIGTERM, then SIGKILL after 10 s). */
void msr_it_teardown(struct msr_it *it);
/*
 * Another msregd instance on the same database and signer key: copies src into
 * dst with a new port and a copy of src's config file (tag names it) with
 * extra_ini appended (may be NULL), and starts it. Stop it with
 * msr_it_teardown(dst). Aborts on failure.
 */
void msr_it_instance(const struct msr_it *src, struct msr_it *dst, const char *tag,
                     const char *extra_ini);
/* Start msregd and wait for /healthz (10 s). 0 on success. */
int msr_it_start(struct msr_it *it);
/* Wait until /readyz answers 200 (timeout_ms). 0 if it did. */
int msr_it_wait_ready(struct msr_it *it, int timeout_ms);
/* Send sig to msregd and reap it. */
void msr_it_stop(struct msr_it *it, int sig);

/*
 * HTTP request to msregd. key may be NULL (no Authorization); ctype NULL means
 * application/json when body != NULL. Returns 0 if a response arrived.
 */
int msr_it_request(struct msr_it *it, const char *method, const char *path,
                   const char *key, const char *ctype, const char *body,
                   struct msr_it_resp *out);
void msr_it_resp_free(struct msr_it_resp *r);
/* Convenience: request and return status (response freed). */
long msr_it_status(struct msr_it *it, const char *method, const char *path,
                   const char *key, const char *body);
/* The error code string of an error response ("" if none). */
const char *msr_it_error_code(const struct msr_it_resp *r);

/* Create a client through the admin API; returns its key (static storage per call: copy it). */
void msr_it_client(struct msr_it *it, const char *role, const char *name, const char *org,
                   char *key_out, size_t keylen);
/* Run SQL as the cluster superuser; returns 0 on success. */
int msr_it_sql(struct msr_it *it, const char *sql);
/* Run a command (argv NULL-terminated), capture stdout (malloc'd) and exit status. */
int msr_it_run(char *const argv[], char **out);

/*
 * More clusters (replicas, restores). base is a directory for deploy/pg.sh
 * (normally beside MSR_IT_PGBASE, so the postgres user can reach it and
 * run-integration.sh removes it). Each returns 0 on success.
 */
/* Start the cluster under base (initdb first if needed). */
int msr_it_cluster_start(const char *base);
/* Fast shutdown of the cluster under base (its files stay). */
int msr_it_cluster_stop(const char *base);
/* A hot-standby streaming replica of the cluster under primary, in base, started. */
int msr_it_replica_start(const char *base, const char *primary);
/* msr_it_setup() on the cluster under pgbase instead of MSR_IT_PGBASE. */
void msr_it_setup_at(struct msr_it *it, const char *name, const char *extra_ini,
                     const char *pgbase);
/*
 * Like msr_it_instance(), but on the cluster under pgbase (e.g. a restored copy
 * of src's database): every URL in the copied config and in dst points there.
 * Returns 0 when it became healthy (it need not become ready).
 */
int msr_it_instance_on(const struct msr_it *src, struct msr_it *dst, const char *tag,
                       const char *extra_ini, const char *pgbase);
/* libpq URL of database db on the cluster under base, as role (NULL: superuser). */
void msr_it_pgurl(const char *base, const char *db, const char *role, char *out,
                  size_t len);
/*
 * First column of the first row of sql on url, malloc'd ("" for no row or
 * NULL); NULL if the query failed (reason on stderr).
 */
char *msr_it_query(const char *url, const char *sql);
/* Path of a file under the source tree (deploy/pg.sh ...), from MSR_IT_BIN/.. */
void msr_it_srcpath(const char *rel, char *out, size_t len);

#endif
