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
	/* [audit] */
	char     *audit_origin;
	char     *audit_key_file;
	int       audit_batch_wait_us;       /* optional collection window (0 = none) */
	int       audit_max_batch;
	int       audit_wait_ms;             /* longest a request waits for its entry */
	char     *audit_verify_on_start;     /* "full" or "tail" */
	char     *audit_state_file;          /* high-water mark; NULL = key_file ".state" */
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
	/* [log] */
	int       log_level;
};

/* Fill cfg with defaults. */
void msr_config_defaults(struct msr_config *cfg);
/*
 * Load path over the defaults. On error returns -1 and writes
 * "file:line: message" into err (errlen bytes).
 */
int msr_config_load(struct msr_config *cfg, const char *path, char *err, size_t errlen);
void msr_config_free(struct msr_config *cfg);

#endif
