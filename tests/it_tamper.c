/*
 * it_tamper.c — integration tests of the audit log against people and
 * failures that do not play by the rules, on a real msregd and PostgreSQL:
 *
 * 1. The insider: as msreg_owner (not a superuser) disable the append-only
 *    triggers, delete every audit row above an earlier checkpoint (erasing
 *    three investigator lookups), re-enable them. The database is then a
 *    perfectly consistent shorter log, which `msreg audit verify --db` alone
 *    accepts. It is caught by the running msregd at its next batch (503 on
 *    audited routes, /readyz 503, msreg_audit_integrity_failure 1), by a
 *    restart (the state file), and by `msreg audit verify --since` in both
 *    modes (--url against an instance that lost its state file and serves the
 *    cut log).
 * 2. A statement timeout at start-up (a lock held on audit_tree_state) is a
 *    database error, not an integrity failure: /readyz is 503 meanwhile, the
 *    metric stays 0, and the server becomes ready without a restart once the
 *    lock is released.
 * 3. The log never claims a write that did not happen: after a wait timeout,
 *    a kill -9 mid-traffic and PostgreSQL stopping mid-traffic, every
 *    manufacturer.create entry with status 2xx names a row that exists or is
 *    followed by an audit.write_void entry naming it, and every such void
 *    names a write whose row does not exist.
 */
#include <check.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "msreg/note.h"

static struct msr_it it;
static char auditor[128], investigator[128];

static void
setup_named(const char *name)
{
	ck_assert_int_ge(sodium_init(), 0);
	msr_it_setup(&it, name, "[audit]\nverify_on_start = full\nwait_ms = 1000\n");
	msr_it_client(&it, "auditor", "aud", NULL, auditor, sizeof(auditor));
	msr_it_client(&it, "investigator", "inv", "CA0190000", investigator,
	    sizeof(investigator));
}

static void setup_insider(void) { setup_named("tamper_insider"); }
static void setup_startup(void) { setup_named("tamper_startup"); }
static void setup_writes(void) { setup_named("tamper_writes"); }

static void
teardown(void)
{
	msr_it_teardown(&it);
}

/* ---- helpers ---- */

static void
msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int
run_cli(char **out, const char *const *args)
{
	char path[600];
	char *argv[16];
	int n = 0;

	snprintf(path, sizeof(path), "%s/msreg", it.bin);
	argv[n++] = path;
	while (*args != NULL && n < 15)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return msr_it_run(argv, out);
}

static long
search(struct msr_it *inst)
{
	struct msr_it_resp r;
	long st;

	ck_assert_int_eq(msr_it_request(inst, "POST", "/v1/search", investigator, NULL,
	    "{\"case_number\":\"HPD-2026-9\",\"purpose\":\"test\",\"readings\":[\"0H5K?4M3\"]}",
	    &r), 0);
	st = r.status;
	msr_it_resp_free(&r);
	return st;
}

static long
create_manufacturer(struct msr_it *inst, const char *id, long *index)
{
	struct msr_it_resp r;
	char body[160];
	long st;

	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"name\":\"Maker %s\"}", id, id);
	if (msr_it_request(inst, "POST", "/v1/manufacturers", it.admin_key, NULL, body, &r) != 0) {
		msr_it_resp_free(&r);
		return -1;
	}
	st = r.status;
	if (index != NULL)
		*index = r.audit_index;
	msr_it_resp_free(&r);
	return st;
}

/* The served checkpoint note (caller frees). */
static char *
checkpoint_note(struct msr_it *inst)
{
	struct msr_it_resp r;
	char *note;

	ck_assert_int_eq(msr_it_request(inst, "GET", "/v1/audit/checkpoint", NULL, NULL, NULL,
	    &r), 0);
	ck_assert_int_eq(r.status, 200);
	note = strdup(r.body);
	msr_it_resp_free(&r);
	return note;
}

static uint64_t
note_size(const char *note)
{
	struct msr_note_verifier v;
	struct msr_note_checkpoint cp;

	ck_assert_int_eq(msr_note_verifier_parse(&v, it.vkey, strlen(it.vkey)), 0);
	ck_assert_int_eq(msr_note_checkpoint_open(&v, note, &cp), 0);
	return cp.size;
}

static int
metric(struct msr_it *inst, const char *line)
{
	struct msr_it_resp r;
	int found;

	ck_assert_int_eq(msr_it_request(inst, "GET", "/metrics", NULL, NULL, NULL, &r), 0);
	found = r.body != NULL && strstr(r.body, line) != NULL;
	msr_it_resp_free(&r);
	return found;
}

static int
log_mentions(const char *needle)
{
	char path[600];
	size_t len;
	FILE *f;
	char *buf;
	int found;

	snprintf(path, sizeof(path), "%s/msregd.log", it.dir);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	buf = calloc(1, 1 << 22);
	len = fread(buf, 1, (1 << 22) - 1, f);
	buf[len] = '\0';
	fclose(f);
	found = strstr(buf, needle) != NULL;
	free(buf);
	return found;
}

static void
sql_as(const char *url, const char *sql)
{
	PGconn *pg = PQconnectdb(url);
	PGresult *res;

	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	res = PQexec(pg, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
	PQclear(res);
	PQfinish(pg);
}

static void
pg_ctl(const char *what)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "deploy/pg.sh %s '%s' >/dev/null 2>&1", what, it.pgbase);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- 1. the insider ---- */

START_TEST(insider_rollback_is_caught)
{
	static struct msr_it fresh;
	char saved[700], url[64], fresh_url[64], sql[2400], extra[900];
	const char *verify_db[] = { "--config", it.config, "audit", "verify", "--db", NULL };
	char *note, *out = NULL;
	uint64_t s;
	FILE *f;

	for (int i = 0; i < 5; i++) {
		char id[16];

		snprintf(id, sizeof(id), "ins%d", i);
		ck_assert_int_eq(create_manufacturer(&it, id, NULL), 201);
	}
	/* The checkpoint the insider will cut the log back to. */
	note = checkpoint_note(&it);
	s = note_size(note);
	free(note);
	/* Three lookups the insider wants gone. */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(search(&it), 200);
	/* Someone (the investigator, an auditor) saves the checkpoint covering them. */
	note = checkpoint_note(&it);
	ck_assert_uint_ge(note_size(note), s + 3);
	snprintf(saved, sizeof(saved), "%s/saved.checkpoint", it.dir);
	f = fopen(saved, "w");
	fputs(note, f);
	fclose(f);
	free(note);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	{
		const char *a[] = { "--config", it.config, "audit", "verify", "--db", "--since",
		    saved, NULL };
		const char *b[] = { "audit", "verify", "--url", url, "--key", auditor, "--vkey",
		    it.vkey, "--since", saved, NULL };

		ck_assert_msg(run_cli(&out, a) == 0, "verify --db --since before: %s", out);
		free(out);
		ck_assert_msg(run_cli(&out, b) == 0, "verify --url --since before: %s", out);
		free(out);
	}

	/* The insider: the owner role, no superuser. */
	snprintf(sql, sizeof(sql),
	    "ALTER TABLE audit_entries DISABLE TRIGGER USER;"
	    "ALTER TABLE audit_hashes DISABLE TRIGGER USER;"
	    "ALTER TABLE audit_tree_state DISABLE TRIGGER USER;"
	    "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER;"
	    "DELETE FROM audit_entries WHERE idx >= %llu;"
	    "DELETE FROM audit_hashes WHERE (idx + 1) * (1::bigint << level) > %llu;"
	    "DELETE FROM audit_tree_state WHERE tree_size > %llu;"
	    "DELETE FROM audit_checkpoints WHERE tree_size > %llu;"
	    "ALTER TABLE audit_entries ENABLE TRIGGER USER;"
	    "ALTER TABLE audit_hashes ENABLE TRIGGER USER;"
	    "ALTER TABLE audit_tree_state ENABLE TRIGGER USER;"
	    "ALTER TABLE audit_checkpoints ENABLE TRIGGER USER",
	    (unsigned long long)s, (unsigned long long)s, (unsigned long long)s,
	    (unsigned long long)s);
	sql_as(it.url_owner, sql);

	/* The cut log is self-consistent: verification without --since passes. */
	ck_assert_msg(run_cli(&out, verify_db) == 0, "verify --db after the cut: %s", out);
	free(out);

	/* The running msregd: its next batch is refused. */
	ck_assert_int_eq(search(&it), 503);
	ck_assert_int_eq(create_manufacturer(&it, "after1", NULL), 503);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/readyz", NULL, NULL), 503);
	ck_assert(metric(&it, "msreg_audit_integrity_failure 1"));
	ck_assert(log_mentions("AUDIT LOG INTEGRITY FAILURE"));
	ck_assert(log_mentions("the log shrank"));

	/* A restart: the state file remembers. */
	msr_it_stop(&it, SIGTERM);
	ck_assert_int_eq(msr_it_start(&it), 0);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/readyz", NULL, NULL), 503);
	ck_assert_int_eq(create_manufacturer(&it, "after2", NULL), 503);
	ck_assert_int_eq(search(&it), 503);
	ck_assert(metric(&it, "msreg_audit_integrity_failure 1"));

	/* The verifier with the saved checkpoint, database mode. */
	{
		const char *a[] = { "--config", it.config, "audit", "verify", "--db", "--since",
		    saved, NULL };

		ck_assert_int_ne(run_cli(&out, a), 0);
		ck_assert_msg(strstr(out, "shrank") != NULL, "verify --db --since: %s", out);
		free(out);
	}
	/* HTTP mode, against an instance that lost its state file. */
	snprintf(extra, sizeof(extra), "[audit]\nstate_file = %s/fresh.state\n", it.dir);
	msr_it_instance(&it, &fresh, "fresh", extra);
	ck_assert_int_eq(msr_it_wait_ready(&fresh, 60000), 0);
	snprintf(fresh_url, sizeof(fresh_url), "http://127.0.0.1:%d", fresh.port);
	{
		const char *b[] = { "audit", "verify", "--url", fresh_url, "--key", auditor,
		    "--vkey", it.vkey, "--since", saved, NULL };
		const char *c[] = { "audit", "verify", "--url", fresh_url, "--key", auditor,
		    "--vkey", it.vkey, NULL };

		ck_assert_int_ne(run_cli(&out, b), 0);
		ck_assert_msg(strstr(out, "shrank") != NULL, "verify --url --since: %s", out);
		free(out);
		ck_assert_msg(run_cli(&out, c) == 0, "verify --url without --since: %s", out);
		free(out);
	}
	msr_it_teardown(&fresh);
}
END_TEST

/* ---- 2. a timeout at start-up is not an integrity failure ---- */

START_TEST(startup_timeout_is_retried)
{
	static struct msr_it slow;
	char extra[900];
	PGconn *pg = PQconnectdb(it.url_super);
	PGresult *res;

	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	ck_assert_int_eq(create_manufacturer(&it, "st0", NULL), 201);
	res = PQexec(pg, "BEGIN; LOCK TABLE audit_tree_state IN ACCESS EXCLUSIVE MODE");
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	snprintf(extra, sizeof(extra), "[database]\nstatement_timeout_ms = 300\n"
	    "[audit]\nstate_file = %s/slow.state\n", it.dir);
	msr_it_instance(&it, &slow, "slow", extra);
	msleep(1500);
	ck_assert_int_eq(msr_it_status(&slow, "GET", "/readyz", NULL, NULL), 503);
	ck_assert_int_eq(create_manufacturer(&slow, "st1", NULL), 503);
	ck_assert(metric(&slow, "msreg_audit_integrity_failure 0"));
	ck_assert(!log_mentions("INTEGRITY FAILURE"));
	res = PQexec(pg, "COMMIT");
	PQclear(res);
	PQfinish(pg);
	/* Ready without a restart (the retry backs off to at most 5 s). */
	ck_assert_int_eq(msr_it_wait_ready(&slow, 60000), 0);
	ck_assert_int_eq(create_manufacturer(&slow, "st2", NULL), 201);
	ck_assert(metric(&slow, "msreg_audit_integrity_failure 0"));
	ck_assert(!log_mentions("INTEGRITY FAILURE"));
	msr_it_teardown(&slow);
}
END_TEST

/* ---- 3. writes and their entries agree ---- */

/*
 * Check every manufacturer.create entry against the table: a row that exists
 * is named by at least one 2xx create entry that no audit.write_void names (a
 * void never covers a write that happened); a row that does not exist has
 * every 2xx create entry naming it voided by a later entry. Returns 1 when
 * they agree (*voids = number of voids), 0 when a 2xx entry is still
 * unresolved; fails at once on a void that lies.
 */
static int
writes_agree(int *voids)
{
	PGconn *pg = PQconnectdb(it.url_super);
	PGresult *res;
	json_t *rows = json_object(), *live = json_object(), *all = json_array();
	char *note = checkpoint_note(&it);
	uint64_t n = note_size(note), i = 0;
	unsigned char *voided = calloc(n + 1, 1);
	const char *id;
	json_t *v;
	int ok = 1;

	free(note);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	res = PQexec(pg, "SELECT id FROM manufacturers");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	for (int r = 0; r < PQntuples(res); r++)
		json_object_set_new(rows, PQgetvalue(res, r, 0), json_true());
	PQclear(res);
	PQfinish(pg);
	while (i < n) {
		struct msr_it_resp r;
		char path[96];
		size_t k;
		json_t *e;

		snprintf(path, sizeof(path), "/v1/audit/entries?start=%llu&limit=1000",
		    (unsigned long long)i);
		ck_assert_int_eq(msr_it_request(&it, "GET", path, auditor, NULL, NULL, &r), 0);
		ck_assert_int_eq(r.status, 200);
		json_array_foreach(json_object_get(r.json, "entries"), k, e) {
			/* a page never holds entries beyond n (the checkpoint's size) */
			json_array_append(all, json_object_get(e, "entry"));
		}
		ck_assert_uint_gt(json_array_size(all), i);
		i = json_array_size(all);
		msr_it_resp_free(&r);
	}
	*voids = 0;
	for (i = 0; i < n; i++) {
		json_t *e = json_array_get(all, i);
		const char *action = json_string_value(json_object_get(e, "action"));
		json_int_t f;
		json_t *w;

		if (action == NULL || strcmp(action, "audit.write_void") != 0)
			continue;
		f = json_integer_value(json_object_get(e, "void_for"));
		w = json_array_get(all, (size_t)f);
		ck_assert_int_lt(f, (json_int_t)i);
		ck_assert_msg(!voided[f], "entry %lld voided twice", (long long)f);
		ck_assert_str_eq(json_string_value(json_object_get(w, "action")),
		    "manufacturer.create");
		voided[f] = 1;
		(*voids)++;
	}
	for (i = 0; i < n; i++) {
		json_t *e = json_array_get(all, i);
		const char *action = json_string_value(json_object_get(e, "action"));
		json_int_t st = json_integer_value(json_object_get(e, "status"));

		id = json_string_value(json_object_get(e, "manufacturer"));
		if (action == NULL || strcmp(action, "manufacturer.create") != 0 ||
		    st < 200 || st > 299)
			continue;
		ck_assert_ptr_nonnull(id);
		if (!voided[i])
			json_object_set_new(live, id, json_true());
		if (json_object_get(rows, id) == NULL && !voided[i])
			ok = 0;		/* claimed, not stored, not (yet) voided */
	}
	json_object_foreach(rows, id, v) {
		(void)v;
		if (strncmp(id, "w", 1) == 0 || strncmp(id, "wt", 2) == 0)
			ck_assert_msg(json_object_get(live, id) != NULL, "manufacturer %s exists "
			    "but every entry creating it was voided", id);
	}
	json_decref(rows);
	json_decref(live);
	json_decref(all);
	free(voided);
	return ok;
}

static int
await_agreement(int timeout_ms)
{
	int voids = 0;

	for (int waited = 0; !writes_agree(&voids); waited += 250) {
		ck_assert_msg(waited < timeout_ms, "a 2xx write entry names no row and no void");
		msleep(250);
	}
	return voids;
}

START_TEST(wait_timeout_is_voided)
{
	char sql[200], id[16], *note;
	int voids = 0, attempt;
	uint64_t n = 0;

	ck_assert_int_eq(create_manufacturer(&it, "wt0", NULL), 201);
	/*
	 * Make the batch holding the next entry wait, with the entry in flight:
	 * an uncommitted intent row for that index blocks the batch's INSERT
	 * (unique key) until this transaction ends. The write's wait times out
	 * first (wait_ms = 1000) and it is rolled back. (On a very loaded machine
	 * the entry may still be queued when the wait ends: then it is never
	 * logged, which is also correct; the scenario is tried again.)
	 */
	for (attempt = 0; attempt < 3 && voids == 0; attempt++) {
		PGconn *pg = PQconnectdb(it.url_super);
		PGresult *res;

		ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
		note = checkpoint_note(&it);
		n = note_size(note);
		snprintf(sql, sizeof(sql), "BEGIN; INSERT INTO audit_pending (idx) VALUES (%llu)",
		    (unsigned long long)n);
		free(note);
		res = PQexec(pg, sql);
		ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
		PQclear(res);
		snprintf(id, sizeof(id), "wt1-%d", attempt);
		ck_assert_int_eq(create_manufacturer(&it, id, NULL), 503);
		/* Released: the entry (status 201) is committed after its write rolled back. */
		res = PQexec(pg, "ROLLBACK");
		PQclear(res);
		PQfinish(pg);
		ck_assert_int_eq(msr_it_wait_ready(&it, 60000), 0);
		/* Was the entry logged? Its batch commits once unblocked. */
		for (int waited = 0; waited < 5000; waited += 100) {
			note = checkpoint_note(&it);
			if (note_size(note) > n)
				waited = 5000;
			free(note);
			msleep(100);
		}
		voids = await_agreement(60000);
	}
	ck_assert_int_eq(voids, 1);
	ck_assert(metric(&it, "msreg_audit_writes_voided_total 1"));
	fprintf(stderr, "wait timeout: %d void entry (after %d attempt%s)\n", voids, attempt,
	    attempt == 1 ? "" : "s");
	/* The same write again is not a 409: it was never stored. */
	ck_assert_int_eq(create_manufacturer(&it, id, NULL), 201);
	ck_assert_int_eq(await_agreement(30000), 1);
}
END_TEST

#define WORKERS 4

struct worker {
	int		 id;
	int		 sent, ok;
	volatile int	*stop;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 100000 && !*w->stop; i++) {
		char id[32];
		long st;

		snprintf(id, sizeof(id), "w%d-%d-%d", w->id, (int)getpid() % 1000, i);
		st = create_manufacturer(&it, id, NULL);
		w->sent++;
		if (st == 201)
			w->ok++;
		if (st < 0)
			msleep(20);	/* msregd is gone or restarting */
	}
	return NULL;
}

static void
traffic(pthread_t *t, struct worker *w, volatile int *stop, int round)
{
	for (int i = 0; i < WORKERS; i++) {
		w[i].id = round * 10 + i;
		w[i].sent = w[i].ok = 0;
		w[i].stop = stop;
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
}

static int
join(pthread_t *t, struct worker *w)
{
	int ok = 0;

	for (int i = 0; i < WORKERS; i++) {
		pthread_join(t[i], NULL);
		ok += w[i].ok;
	}
	return ok;
}

START_TEST(kill9_and_pg_stop_leave_no_false_claim)
{
	pthread_t t[WORKERS];
	struct worker w[WORKERS];
	volatile int stop = 0;
	int ok, voids;

	/* kill -9 mid-traffic */
	traffic(t, w, &stop, 1);
	/* at least 1.2 s and more than 10 answered writes however slow the machine
	 * (up to 60 s), so the kill lands among answered writes */
	msleep(1200);
	for (int waited = 0, sum = 0; waited < 58800; waited += 100) {
		sum = 0;
		for (int i = 0; i < WORKERS; i++)
			sum += __atomic_load_n(&w[i].ok, __ATOMIC_RELAXED);
		if (sum > 10)
			break;
		msleep(100);
	}
	msr_it_stop(&it, SIGKILL);
	stop = 1;
	ok = join(t, w);
	ck_assert_int_gt(ok, 10);
	ck_assert_int_eq(msr_it_start(&it), 0);
	ck_assert_int_eq(msr_it_wait_ready(&it, 60000), 0);
	voids = await_agreement(60000);
	fprintf(stderr, "kill -9: %d writes answered 201, %d void entries\n", ok, voids);

	/* PostgreSQL stops mid-traffic, then comes back */
	stop = 0;
	traffic(t, w, &stop, 2);
	msleep(1200);
	pg_ctl("stop");
	msleep(500);
	pg_ctl("start");
	ck_assert_int_eq(msr_it_wait_ready(&it, 30000), 0);
	msleep(500);
	stop = 1;
	ok = join(t, w);
	voids = await_agreement(60000);
	fprintf(stderr, "PostgreSQL stop: %d writes answered 201, %d void entries in all\n",
	    ok, voids);
	{
		const char *a[] = { "--config", it.config, "audit", "verify", "--db", NULL };
		char *out = NULL;

		ck_assert_msg(run_cli(&out, a) == 0, "verify: %s", out);
		free(out);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tamper");
	TCase *ti = tcase_create("insider");
	TCase *ts = tcase_create("startup");
	TCase *tw = tcase_create("writes");

	tcase_add_unchecked_fixture(ti, setup_insider, teardown);
	tcase_set_timeout(ti, 300);
	tcase_add_test(ti, insider_rollback_is_caught);
	suite_add_tcase(s, ti);
	tcase_add_unchecked_fixture(ts, setup_startup, teardown);
	tcase_set_timeout(ts, 300);
	tcase_add_test(ts, startup_timeout_is_retried);
	suite_add_tcase(s, ts);
	tcase_add_unchecked_fixture(tw, setup_writes, teardown);
	tcase_set_timeout(tw, 300);
	tcase_add_test(tw, wait_timeout_is_voided);
	tcase_add_test(tw, kill9_and_pg_stop_leave_no_false_claim);
	suite_add_tcase(s, tw);
	return msr_test_run(s, 1);
}
