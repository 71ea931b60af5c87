/*
 * server.h — the daemon's shared state, reachable from every request.
 *
 * One struct msr_server lives for the whole process (msregd.c owns it). Its
 * members are created before the HTTP daemon starts and destroyed after it
 * stops; handlers only read the pointers.
 */
#ifndef MSREG_SERVER_H
#define MSREG_SERVER_H

#include <stdint.h>

struct msr_config;
struct msr_db_pool;
struct msr_audit;
struct msr_metrics;
struct msr_feed;
struct msr_ratelimit;
struct msr_witness_client;

struct msr_server {
	const struct msr_config *cfg;
	struct msr_db_pool      *db;
	struct msr_audit        *audit;     /* audit log sequencer */
	struct msr_feed         *feed;      /* in-memory partial-code index fed from PostgreSQL */
	struct msr_metrics      *metrics;
	struct msr_ratelimit    *rate;
	struct msr_witness_client *witness; /* witness submitter, NULL if none */
	uint8_t                  key_secret[32];  /* keys the BLAKE2b hash of API keys */
	volatile int             key_secret_loaded; /* set once, after key_secret is filled */
	volatile int             stopping;
};

#endif
