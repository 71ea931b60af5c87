/*
 * msregd.c — the msreg daemon: load config, open the database pool, start the
 * audit sequencer, the search index feed and the HTTP server, then wait for
 * SIGTERM/SIGINT and shut down gracefully (stop accepting, finish in-flight
 * requests, drain the audit queue, close connections).
 *
 * The daemon starts even when PostgreSQL is down: /healthz answers, /readyz
 * and every database-backed request say 503 until the database is back, and
 * each component reconnects by itself.
 */
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "msreg/audit.h"
#include "msreg/auth.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/feed.h"
#include "msreg/http.h"
#include "msreg/log.h"
#include "msreg/metrics.h"
#include "msreg/ratelimit.h"
#include "msreg/server.h"
#include "msreg/witness.h"

static void
usage(void)
{
	fprintf(stderr, "usage: msregd --config FILE [--check-config]\n");
	exit(2);
}

static void
load_secret(struct msr_server *srv)
{
	struct msr_db_conn *c = msr_db_acquire(srv->db);

	if (c == NULL)
		return;
	if (msr_auth_load_secret(c, srv->key_secret) == 0)
		srv->key_secret_loaded = 1;
	else
		log_warn("no API key secret in the database: run `msreg migrate`");
	msr_db_release(c);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct msr_config cfg;
	struct msr_server srv;
	struct msr_http *http = NULL;
	const char *config_path = NULL;
	char err[1024];
	int check_only = 0, ch, sig, ret = 1, witness_bad = 0;
	sigset_t set;

	while ((ch = getopt_long(argc, argv, "c:kh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': config_path = optarg; break;
		case 'k': check_only = 1; break;
		default: usage();
		}
	}
	if (config_path == NULL || optind != argc)
		usage();
	msr_config_defaults(&cfg);
	if (msr_config_load(&cfg, config_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		msr_config_free(&cfg);
		return 1;
	}
	if (check_only) {
		printf("%s: ok\n", config_path);
		msr_config_free(&cfg);
		return 0;
	}
	msr_log_set_level((enum msr_log_level)cfg.log_level);
	if (sodium_init() < 0)
		msr_fatal("libsodium failed to initialise");

	/* Handle termination signals synchronously in this thread only. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&srv, 0, sizeof(srv));
	srv.cfg = &cfg;
	srv.db = msr_db_pool_new(cfg.db_url, cfg.db_pool_size, cfg.db_pool_wait_ms,
	    cfg.db_statement_timeout_ms);
	srv.metrics = msr_metrics_new(msr_routes_len);
	/* per-key buckets; each key's rate is its role's (http.c, msr_config_rate) */
	srv.rate = cfg.rate_enabled ? msr_ratelimit_new(1, 1) : NULL;
	if (srv.db == NULL || srv.metrics == NULL || (cfg.rate_enabled && srv.rate == NULL))
		msr_fatal("out of memory");
	if (cfg.db_read_url != NULL && cfg.db_read_url[0] != '\0') {
		struct msr_db_pool *rp = msr_db_pool_new(cfg.db_read_url,
		    cfg.db_read_pool_size > 0 ? cfg.db_read_pool_size : cfg.db_pool_size,
		    cfg.db_pool_wait_ms < 100 ? cfg.db_pool_wait_ms : 100,   /* then the primary */
		    cfg.db_statement_timeout_ms);
		if (rp == NULL)
			msr_fatal("out of memory");
		msr_db_pool_set_replica(srv.db, rp);
	}
	load_secret(&srv);
	srv.audit = msr_audit_start(&cfg);
	if (srv.audit == NULL)
		goto done;
	srv.feed = msr_feed_start(&cfg);
	if (srv.feed == NULL)
		goto done;
	srv.witness = msr_witness_client_start(&cfg, srv.db, &witness_bad, err, sizeof(err));
	if (witness_bad) {
		log_error("%s", err);
		goto done;
	}
	http = msr_http_start(&srv);
	if (http == NULL)
		goto done;
	log_info("msregd listening on %s port %d (%d threads)", cfg.http_address,
	    cfg.http_port, cfg.http_threads);
	sd_notify(0, "READY=1");

	if (sigwait(&set, &sig) == 0)
		log_info("received signal %d, shutting down", sig);
	sd_notify(0, "STOPPING=1");
	srv.stopping = 1;
	ret = 0;
done:
	msr_http_stop(http);          /* finishes in-flight requests */
	msr_witness_client_stop(srv.witness);
	msr_feed_stop(srv.feed);
	msr_audit_stop(srv.audit);
	msr_db_pool_free(srv.db);
	msr_ratelimit_free(srv.rate);
	msr_metrics_free(srv.metrics);
	sodium_memzero(srv.key_secret, sizeof(srv.key_secret));
	msr_config_free(&cfg);
	log_info("msregd stopped");
	return ret;
}
