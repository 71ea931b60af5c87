/*
 * config.h — msregd/msreg configuration (INI file, see config.example.ini).
 *
 * Every key has a default; msr_config_load() applies the file on top of the
 * defaults and validates ranges. Strings are owned by the struct and freed by
 * msr_config_free().
 */
#ifndef MSREG_CONFIG_H
#define MSREG_CONFIG_H

#include <stddef.h>

/* Rate-limit classes: one per role, and source addresses of unauthenticated traffic. */
enum msr_rate_class {
	MSR_RATE_INVESTIGATOR,
	MSR_RATE_MANUFACTURER,
	MSR_RATE_DEALER,
	MSR_RATE_AUDITOR,
	MSR_RATE_ADMIN,
	MSR_RATE_ADDRESS,
	MSR_RATE_NCLASSES
};

struct msr_config {
	/* [http] */
	char     *http_address;
	int       http_port;
	int       http_threads;
	int       http_max_connections;
	size_t    http_body_limit;
	int       http_connection_timeout;   /* seconds */
	char     *http_tls_cert;             /* PEM file, NULL = plain HTTP */
	char     *http_tls_key;
	/* [database] */
	char     *db_url;                    /* msregd's application role */
	char     *db_owner_url;              /* migrations; defaults to db_url */
	int       db_pool_size;
	int       db_pool_wait_ms;
	int       db_statement_timeout_ms;
	char     *db_read_url;               /* streaming replica for lookups; NULL = none */
	int       db_read_pool_size;         /* 0 = pool_size */
	/* [audit] */
	char     *audit_origin;
	char     *audit_key_file;
	int       audit_batch_wait_us;       /* optional collection window (0 = none) */
	int       audit_max_batch;
	int       audit_wait_ms;             /* longest a request waits for its entry */
	char     *audit_verify_on_start;     /* "full" or "tail" */
	char     *audit_state_file;          /* high-water mark; NULL = key_file ".state" */
	char     *audit_next_key_file;       /* key rotation: second signer; NULL = none */
	char     *audit_old_keys;            /* key rotation: verifier keys trusted for
	                                        history (", "-joined); NULL = none */
	/* [search] */
	double    search_max_expected_matches;
	int       search_max_readings;
	int       search_max_positions;
	int       search_default_limit;
	int       search_max_limit;
	char     *search_confusion;
	int       search_poll_ms;            /* catch-up interval without NOTIFY */
	int       search_load_chunk;         /* rs8 codes per run when loading the index */
	/* [limits] */
	int       limits_batch_max;
	int       limits_allocate_max;
	/* [rate] */
	double    rate_per_second;           /* per API key; 0 disables */
	double    rate_burst;
	int       rate_enabled;              /* 0: every rate limit off (API.md) */
	struct {
		double per_second, burst;     /* -1 = not set: see msr_config_rate() */
	}         rate_role[MSR_RATE_NCLASSES];
	/* [http] bounded requests (issue 8) */
	size_t    http_body_limit_small;     /* routes without a larger column in routes.c */
	size_t    http_body_memory_limit;    /* bodies + parsed JSON in flight, all connections */
	int       http_request_timeout;      /* seconds for a whole request to arrive */
	int       http_per_address_connections; /* 0 = unlimited */
	int       http_url_limit;            /* 414 beyond */
	int       http_header_limit;         /* 431 beyond (all header names+values) */
	int       http_json_max_depth;
	int       http_json_max_values;      /* values and keys in one JSON body */
	/* [log] */
	int       log_level;
	/* [witness] (witness_client.c; zero/NULL = the defaults documented there) */
	char     *witness_witnesses;         /* witness = URL VKEY (repeatable), joined ", " */
	int       witness_quorum;            /* 0 = every witness */
	int       witness_interval_ms;
	int       witness_timeout_ms;
	int       witness_max_age_s;         /* older cosignatures count as missing */
	char     *witness_policy;            /* "alert" (default) or "refuse" */
	/* [budget] disclosure budgets (server/budget.c) */
	int       budget_enabled;            /* 0: no budget is counted (API.md) */
	int       budget_limit[4];           /* distinct firearms: key 24h, key 30d,
	                                        case 24h, case 30d */
	double    budget_alert[2];           /* alert when a budget's use crosses these
	                                        fractions (0 = no alert) */
	/* [search] specificity floor */
	double    search_min_bits;           /* bits a query must pin down */
};

/* Fill cfg with defaults. */
void msr_config_defaults(struct msr_config *cfg);
/*
 * Load path over the defaults. On error returns -1 and writes
 * "file:line: message" into err (errlen bytes).
 */
int msr_config_load(struct msr_config *cfg, const char *path, char *err, size_t errlen);
void msr_config_free(struct msr_config *cfg);
/*
 * The token bucket of a rate class: [rate] <class>_per_second/_burst if set,
 * else the legacy [rate] per_second/burst if > 0 (roles only), else the
 * built-in default. A per_second of 0 means unlimited for that class.
 */
void msr_config_rate(const struct msr_config *cfg, int cls, double *per_second,
                     double *burst);

#endif
