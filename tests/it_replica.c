/*
 * it_replica.c — [database] read_url: lookups and search results read from a
 * streaming replica, against a real primary and a real hot standby.
 *
 * The suite starts its own primary cluster and a replica of it
 * (deploy/pg.sh replica: pg_basebackup -R, hot standby on its own socket), and
 * two msregd instances on the primary with read_url pointing at the replica.
 * It shows, in order:
 *  1. reads are served by the replica: the replica counter of /metrics grows by
 *     one per lookup, and the replica's pg_stat_activity shows msregd's
 *     connection running the lookup statement;
 *  2. read-your-writes with replay paused on the replica
 *     (pg_wal_replay_pause()): a firearm registered and sold through an
 *     instance is found, sale included, by that instance at once (the replica
 *     is behind its last commit, so the primary answers);
 *  3. through the other instance, which committed nothing, the new code is
 *     still found by lookup and by search (a miss on the replica is retried on
 *     the primary) — while a *change* to an existing row (the sale) is seen
 *     only once the replica replays it: the documented bounded staleness;
 *  4. the replica stopped: both instances keep answering lookups and searches
 *     (200, from the primary), /readyz stays 200; the replica restarted: reads
 *     go back to it.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "it_ops.h"

#define NCODES 40

static struct msr_it a, b;
static char primary[600], replica[600], replica_super[800];
static char mkey[128], dkey[128], ikey[128];
static char codes[NCODES][13];
static uint64_t rng = 20261125;

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static double
served(struct msr_it *inst, const char *how)
{
	char series[128];

	snprintf(series, sizeof(series), "msreg_db_replica_reads_total{served=\"%s\"}", how);
	return ops_metric(inst, series);
}

/* Wait until the replica has replayed everything the primary has written. */
static void
wait_caught_up(void)
{
	char url[800];
	char *want;

	msr_it_pgurl(primary, "postgres", NULL, url, sizeof(url));
	want = msr_it_query(url, "SELECT pg_current_wal_lsn()::text");
	ck_assert_ptr_nonnull(want);
	for (int i = 0; i < 200; i++) {
		char sql[160], *ok;
		snprintf(sql, sizeof(sql), "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn", want);
		ok = msr_it_query(replica_super, sql);
		if (ok != NULL && strcmp(ok, "t") == 0) {
			free(ok);
			free(want);
			return;
		}
		free(ok);
		sleep_ms(50);
	}
	ck_abort_msg("replica did not reach %s", want);
}

static void
setup(void)
{
	char ini[1200], serial[32];

	snprintf(primary, sizeof(primary), "%s/../rp-primary", getenv("MSR_IT_PGBASE"));
	snprintf(replica, sizeof(replica), "%s/../rp-replica", getenv("MSR_IT_PGBASE"));
	ck_assert_int_eq(msr_it_cluster_start(primary), 0);
	ck_assert_int_eq(msr_it_replica_start(replica, primary), 0);
	msr_it_pgurl(replica, "it_replica", NULL, replica_super, sizeof(replica_super));
	snprintf(ini, sizeof(ini), "[database]\nread_url = postgresql://msreg_app@/it_replica"
	    "?host=%s/run\nread_pool_size = 4\n", replica);
	msr_it_setup_at(&a, "replica", ini, primary);
	msr_it_instance(&a, &b, "b", NULL);
	ck_assert_int_eq(msr_it_wait_ready(&b, 60000), 0);
	ck_assert_int_eq(msr_it_status(&a, "POST", "/v1/manufacturers", a.admin_key,
	    "{\"id\":\"acme\",\"name\":\"Acme Arms\"}"), 201);
	msr_it_client(&a, "manufacturer", "acme line", "acme", mkey, sizeof(mkey));
	msr_it_client(&a, "dealer", "shop", "1-23-456-07-6B-12345", dkey, sizeof(dkey));
	msr_it_client(&a, "investigator", "lab", "CA0194200", ikey, sizeof(ikey));
	for (int i = 0; i < NCODES; i++) {
		ops_free_code(&rng, codes[i]);
		snprintf(serial, sizeof(serial), "R%05d", i);
		ck_assert_int_eq(ops_register(&a, mkey, codes[i], serial), 201);
	}
}

static void
teardown(void)
{
	msr_it_teardown(&b);
	msr_it_teardown(&a);
	msr_it_cluster_stop(replica);
	msr_it_cluster_stop(primary);
}

START_TEST(reads_served_by_replica)
{
	double before, after;
	char *n;

	wait_caught_up();
	before = served(&a, "replica");
	ck_assert(before >= 0);
	for (int i = 0; i < NCODES; i++)
		ck_assert_int_eq(ops_lookup(&a, ikey, codes[i], NULL), 200);
	after = served(&a, "replica");
	printf("replica: %d lookups, %.0f answered by the replica (primary: miss %.0f, "
	    "behind %.0f, unavailable %.0f)\n", NCODES, after - before,
	    served(&a, "primary_miss"), served(&a, "primary_behind"),
	    served(&a, "primary_unavailable"));
	ck_assert_msg(after - before == NCODES, "only %.0f of %d lookups read the replica",
	    after - before, NCODES);
	/* the replica itself saw msregd's reads */
	n = msr_it_query(replica_super, "SELECT count(*) FROM pg_stat_activity"
	    " WHERE usename = 'msreg_app' AND query LIKE '%FROM codes%'");
	ck_assert_ptr_nonnull(n);
	ck_assert_msg(atoi(n) >= 1, "no msreg_app lookup on the replica (%s)", n);
	free(n);
	/* a search's result details too */
	before = served(&b, "replica");
	{
		long total = -1;
		ck_assert_int_eq(ops_search(&b, ikey, codes[0], 0, &total, NULL), 200);
		ck_assert_int_eq(total, 1);
	}
	ck_assert(served(&b, "replica") - before == 1);
}
END_TEST

START_TEST(read_your_writes)
{
	char code[13], code2[13], *n, *list = NULL;
	int sold = -1;
	long total = -1;
	double miss, behind;

	ops_free_code(&rng, code);
	ops_free_code(&rng, code2);
	n = msr_it_query(replica_super, "SELECT pg_wal_replay_pause()");
	ck_assert_ptr_nonnull(n);
	free(n);
	/* the replica now stays behind every write below */
	behind = served(&a, "primary_behind");
	ck_assert_int_eq(ops_register(&a, mkey, code, "RYW-1"), 201);
	ck_assert_int_eq(ops_sale(&a, dkey, "acme", "RYW-1"), 201);
	ck_assert_int_eq(ops_lookup(&a, ikey, code, &sold), 200);
	ck_assert_int_eq(sold, 1);
	ck_assert(served(&a, "primary_behind") > behind);

	/* instance b committed nothing: its reads go to the replica, misses to the primary */
	miss = served(&b, "primary_miss");
	ck_assert_int_eq(ops_lookup(&b, ikey, code, &sold), 200);
	ck_assert_int_eq(sold, 1);       /* a miss is answered by the primary, sale and all */
	ck_assert(served(&b, "primary_miss") > miss);
	for (int i = 0; i < 100; i++) {  /* b's index learns the code from the primary */
		if (ops_search(&b, ikey, code, 0, &total, NULL) == 200 && total == 1)
			break;
		sleep_ms(50);
	}
	ck_assert_int_eq(total, 1);
	/* a change to a row the replica already has: stale until replayed */
	ck_assert_int_eq(ops_sale(&a, dkey, "acme", "R00001"), 201);
	ck_assert_int_eq(ops_lookup(&b, ikey, codes[1], &sold), 200);
	ck_assert_msg(sold == 0, "replay is paused, yet b saw the sale");
	ck_assert_int_eq(ops_lookup(&a, ikey, codes[1], &sold), 200);
	ck_assert_int_eq(sold, 1);       /* a, which made the change, sees it */

	n = msr_it_query(replica_super, "SELECT pg_wal_replay_resume()");
	ck_assert_ptr_nonnull(n);
	free(n);
	wait_caught_up();
	ck_assert_int_eq(ops_lookup(&b, ikey, codes[1], &sold), 200);
	ck_assert_int_eq(sold, 1);
	ck_assert_int_eq(ops_search(&b, ikey, codes[1], 0, &total, &list), 200);
	ck_assert_msg(list != NULL && strstr(list, "/1") != NULL, "search shows no sale: %s", list);
	free(list);
}
END_TEST

START_TEST(replica_stopped_keeps_answering)
{
	double unavail, rep;
	long total = -1;
	char code[13];

	ck_assert_int_eq(msr_it_cluster_stop(replica), 0);
	unavail = served(&a, "primary_unavailable");
	for (int i = 0; i < NCODES; i++) {
		struct msr_it *inst = i % 2 ? &b : &a;
		ck_assert_int_eq(ops_lookup(inst, ikey, codes[i], NULL), 200);
	}
	ck_assert_int_eq(ops_search(&a, ikey, codes[2], 0, &total, NULL), 200);
	ck_assert_int_eq(total, 1);
	ops_free_code(&rng, code);
	ck_assert_int_eq(ops_register(&b, mkey, code, "DOWN-1"), 201);
	ck_assert_int_eq(ops_lookup(&b, ikey, code, NULL), 200);
	ck_assert_int_eq(msr_it_status(&a, "GET", "/readyz", NULL, NULL), 200);
	ck_assert(served(&a, "primary_unavailable") > unavail);

	/* back: reads return to the replica within the retry interval */
	ck_assert_int_eq(msr_it_cluster_start(replica), 0);
	wait_caught_up();
	/* polled up to 60 s (a loaded machine), not 5 lookups after a fixed pause */
	rep = served(&a, "replica");
	for (int i = 0; i < 200 && served(&a, "replica") <= rep; i++) {
		ck_assert_int_eq(ops_lookup(&a, ikey, codes[i % 5], NULL), 200);
		sleep_ms(300);
	}
	ck_assert_msg(served(&a, "replica") > rep, "reads did not return to the replica");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("replica");
	TCase *tc = tcase_create("replica");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, reads_served_by_replica);
	tcase_add_test(tc, read_your_writes);
	tcase_add_test(tc, replica_stopped_keeps_answering);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 1);
}
