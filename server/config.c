/*
 * config.c — INI configuration through libinih, driven by one directive table.
 *
 * Each directive names its section, key, type, bounds and the field it fills;
 * the table is the single place a key is defined (config.example.ini documents
 * the same keys with their defaults). Unknown sections or keys are errors, so a
 * typo is reported as file:line instead of being silently ignored.
 */
#include "msreg/config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "msreg/common.h"
#include "msreg/log.h"

enum dir_type { T_STR, T_INT, T_SIZE, T_DOUBLE, T_LEVEL, T_BOOL, T_LIST };

struct directive {
	const char   *section;
	const char   *key;
	enum dir_type type;
	size_t        offset;
	double        min, max;
};

#define D(sec, key, type, field, min, max) \
	{ sec, key, type, offsetof(struct msr_config, field), min, max }

static const struct directive directives[] = {
	D("http", "address", T_STR, http_address, 0, 0),
	D("http", "port", T_INT, http_port, 0, 65535),
	D("http", "threads", T_INT, http_threads, 1, 1024),
	D("http", "max_connections", T_INT, http_max_connections, 1, 100000),
	D("http", "body_limit", T_SIZE, http_body_limit, 1024, 1073741824.0),
	D("http", "connection_timeout", T_INT, http_connection_timeout, 1, 3600),
	D("http", "tls_cert", T_STR, http_tls_cert, 0, 0),
	D("http", "tls_key", T_STR, http_tls_key, 0, 0),
	D("database", "url", T_STR, db_url, 0, 0),
	D("database", "owner_url", T_STR, db_owner_url, 0, 0),
	D("database", "pool_size", T_INT, db_pool_size, 1, 1000),
	D("database", "pool_wait_ms", T_INT, db_pool_wait_ms, 1, 600000),
	D("database", "statement_timeout_ms", T_INT, db_statement_timeout_ms, 0, 3600000),
	D("database", "read_url", T_STR, db_read_url, 0, 0),
	D("database", "read_pool_size", T_INT, db_read_pool_size, 0, 1000),
	D("audit", "origin", T_STR, audit_origin, 0, 0),
	D("audit", "key_file", T_STR, audit_key_file, 0, 0),
	D("audit", "batch_wait_us", T_INT, audit_batch_wait_us, 0, 1000000),
	D("audit", "max_batch", T_INT, audit_max_batch, 1, 100000),
	D("audit", "wait_ms", T_INT, audit_wait_ms, 100, 600000),
	D("audit", "verify_on_start", T_STR, audit_verify_on_start, 0, 0),
	D("audit", "state_file", T_STR, audit_state_file, 0, 0),
	D("audit", "next_key_file", T_STR, audit_next_key_file, 0, 0),
	D("audit", "old_keys", T_LIST, audit_old_keys, 0, 0),
	D("search", "max_expected_matches", T_DOUBLE, search_max_expected_matches, 0, 1e12),
	D("search", "max_readings", T_INT, search_max_readings, 1, 64),
	D("search", "max_positions", T_INT, search_max_positions, 6, 16),
	D("search", "default_limit", T_INT, search_default_limit, 1, 100),
	D("search", "max_limit", T_INT, search_max_limit, 1, 100),
	D("search", "confusion", T_STR, search_confusion, 0, 0),
	D("search", "poll_ms", T_INT, search_poll_ms, 10, 600000),
	D("search", "load_chunk", T_INT, search_load_chunk, 1000, 1073741824.0),
	D("limits", "batch_max", T_INT, limits_batch_max, 1, 10000),
	D("limits", "allocate_max", T_INT, limits_allocate_max, 1, 10000),
	D("rate", "per_second", T_DOUBLE, rate_per_second, 0, 1e9),
	D("rate", "burst", T_DOUBLE, rate_burst, 1, 1e9),
	D("log", "level", T_LEVEL, log_level, 0, 0),
	/* bounded requests and rate limits (issue 8) */
	D("http", "body_limit_small", T_SIZE, http_body_limit_small, 1024, 1073741824.0),
	D("http", "body_memory_limit", T_SIZE, http_body_memory_limit, 65536, 68719476736.0),
	D("http", "request_timeout", T_INT, http_request_timeout, 1, 3600),
	D("http", "per_address_connections", T_INT, http_per_address_connections, 0, 100000),
	D("http", "url_limit", T_INT, http_url_limit, 256, 32768),
	D("http", "header_limit", T_INT, http_header_limit, 1024, 32768),
	D("http", "json_max_depth", T_INT, http_json_max_depth, 2, 1000),
	D("http", "json_max_values", T_INT, http_json_max_values, 16, 100000000),
	D("rate", "enabled", T_BOOL, rate_enabled, 0, 1),
	D("rate", "investigator_per_second", T_DOUBLE, rate_role[MSR_RATE_INVESTIGATOR].per_second, 0, 1e9),
	D("rate", "investigator_burst", T_DOUBLE, rate_role[MSR_RATE_INVESTIGATOR].burst, 1, 1e9),
	D("rate", "manufacturer_per_second", T_DOUBLE, rate_role[MSR_RATE_MANUFACTURER].per_second, 0, 1e9),
	D("rate", "manufacturer_burst", T_DOUBLE, rate_role[MSR_RATE_MANUFACTURER].burst, 1, 1e9),
	D("rate", "dealer_per_second", T_DOUBLE, rate_role[MSR_RATE_DEALER].per_second, 0, 1e9),
	D("rate", "dealer_burst", T_DOUBLE, rate_role[MSR_RATE_DEALER].burst, 1, 1e9),
	D("rate", "auditor_per_second", T_DOUBLE, rate_role[MSR_RATE_AUDITOR].per_second, 0, 1e9),
	D("rate", "auditor_burst", T_DOUBLE, rate_role[MSR_RATE_AUDITOR].burst, 1, 1e9),
	D("rate", "admin_per_second", T_DOUBLE, rate_role[MSR_RATE_ADMIN].per_second, 0, 1e9),
	D("rate", "admin_burst", T_DOUBLE, rate_role[MSR_RATE_ADMIN].burst, 1, 1e9),
	D("rate", "address_per_second", T_DOUBLE, rate_role[MSR_RATE_ADDRESS].per_second, 0, 1e9),
	D("rate", "address_burst", T_DOUBLE, rate_role[MSR_RATE_ADDRESS].burst, 1, 1e9),
	D("witness", "witness", T_LIST, witness_witnesses, 0, 0),
	D("witness", "quorum", T_INT, witness_quorum, 0, 64),
	D("witness", "interval_ms", T_INT, witness_interval_ms, 10, 3600000),
	D("witness", "timeout_ms", T_INT, witness_timeout_ms, 10, 600000),
	D("witness", "max_age_s", T_INT, witness_max_age_s, 1, 86400),
	D("witness", "policy", T_STR, witness_policy, 0, 0),
	/* disclosure budgets and the specificity floor (issue 8, server/budget.c) */
	D("budget", "enabled", T_BOOL, budget_enabled, 0, 1),
	D("budget", "key_24h", T_INT, budget_limit[0], 1, 100000000),
	D("budget", "key_30d", T_INT, budget_limit[1], 1, 100000000),
	D("budget", "case_24h", T_INT, budget_limit[2], 1, 100000000),
	D("budget", "case_30d", T_INT, budget_limit[3], 1, 100000000),
	D("budget", "alert_low", T_DOUBLE, budget_alert[0], 0, 1),
	D("budget", "alert_high", T_DOUBLE, budget_alert[1], 0, 1),
	D("search", "min_bits", T_DOUBLE, search_min_bits, 0, 80),
};

struct load_ctx {
	struct msr_config *cfg;
	char              *err;
	size_t             errlen;
};

static void
set_str(char **field, const char *value)
{
	free(*field);
	*field = strdup(value);
	if (*field == NULL)
		msr_fatal("out of memory");
}

void
msr_config_defaults(struct msr_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	set_str(&cfg->http_address, "127.0.0.1");
	cfg->http_port = 8080;
	cfg->http_threads = 32;
	cfg->http_max_connections = 1024;
	cfg->http_body_limit = 16 * 1024 * 1024;
	cfg->http_connection_timeout = 30;
	set_str(&cfg->db_url, "postgresql:///msreg");
	cfg->db_pool_size = 16;
	cfg->db_pool_wait_ms = 5000;
	cfg->db_statement_timeout_ms = 30000;
	set_str(&cfg->audit_origin, "msreg.example/log");
	set_str(&cfg->audit_key_file, "var/audit.key");
	cfg->audit_batch_wait_us = 0;
	cfg->audit_max_batch = 2048;
	cfg->audit_wait_ms = 10000;
	set_str(&cfg->audit_verify_on_start, "full");
	cfg->search_max_expected_matches = 20;
	cfg->search_max_readings = 8;
	cfg->search_max_positions = 16;
	cfg->search_default_limit = 20;
	cfg->search_max_limit = 100;
	set_str(&cfg->search_confusion, "0DQ,17,2Z,5S,6G,8B3,UV");
	cfg->search_poll_ms = 500;
	cfg->search_load_chunk = 1 << 27;
	cfg->limits_batch_max = 10000;
	cfg->limits_allocate_max = 10000;
	cfg->rate_per_second = 0;
	cfg->rate_burst = 100;
	cfg->rate_enabled = 1;
	/*
	 * Per-role defaults (see config.example.ini for the reasoning). -1 marks
	 * "not set in the file" so that a legacy [rate] per_second/burst > 0 can
	 * stand in for every role not configured by name (msr_config_rate()).
	 */
	for (int i = 0; i < MSR_RATE_NCLASSES; i++)
		cfg->rate_role[i].per_second = cfg->rate_role[i].burst = -1;
	cfg->http_body_limit_small = (size_t)64 * 1024;
	cfg->http_body_memory_limit = (size_t)128 * 1024 * 1024;
	cfg->http_request_timeout = 60;
	cfg->http_per_address_connections = 64;
	cfg->http_url_limit = 4096;
	cfg->http_header_limit = 16384;
	cfg->http_json_max_depth = 32;
	cfg->http_json_max_values = 1000000;
	cfg->log_level = MSR_LOG_INFO;
	/* see config.example.ini [budget] and [search] min_bits for the reasoning */
	cfg->budget_enabled = 1;
	cfg->budget_limit[0] = 400;
	cfg->budget_limit[1] = 4000;
	cfg->budget_limit[2] = 100;
	cfg->budget_limit[3] = 250;
	cfg->budget_alert[0] = 0.5;
	cfg->budget_alert[1] = 0.8;
	cfg->search_min_bits = 20;
}

static int
apply(struct load_ctx *ctx, const struct directive *d, const char *value)
{
	char *base = (char *)ctx->cfg + d->offset;
	char *end;
	double v;
	int lvl;

	switch (d->type) {
	case T_STR:
		set_str((char **)(void *)base, value);
		return 0;
	case T_BOOL:
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 ||
		    strcmp(value, "on") == 0 || strcmp(value, "1") == 0) {
			*(int *)(void *)base = 1;
		} else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
		    strcmp(value, "off") == 0 || strcmp(value, "0") == 0) {
			*(int *)(void *)base = 0;
		} else {
			snprintf(ctx->err, ctx->errlen, "[%s] %s: \"%s\" is not true or false",
			    d->section, d->key, value);
			return -1;
		}
		return 0;
	case T_LIST:	/* a repeatable key: values joined with ", " */
		if (*(char **)(void *)base != NULL) {
			char *joined = NULL;

			if (asprintf(&joined, "%s, %s", *(char **)(void *)base, value) < 0)
				msr_fatal("out of memory");
			free(*(char **)(void *)base);
			*(char **)(void *)base = joined;
			return 0;
		}
		set_str((char **)(void *)base, value);
		return 0;
	case T_LEVEL:
		lvl = msr_log_parse_level(value);
		if (lvl < 0) {
			snprintf(ctx->err, ctx->errlen,
			    "[%s] %s: \"%s\" is not one of debug, info, warn, error",
			    d->section, d->key, value);
			return -1;
		}
		*(int *)(void *)base = lvl;
		return 0;
	default:
		break;
	}
	errno = 0;
	v = strtod(value, &end);
	if (end == value || *end != '\0' || errno != 0 || !isfinite(v)) {
		snprintf(ctx->err, ctx->errlen, "[%s] %s: \"%s\" is not a number",
		    d->section, d->key, value);
		return -1;
	}
	if ((d->type == T_INT || d->type == T_SIZE) && v != floor(v)) {
		snprintf(ctx->err, ctx->errlen, "[%s] %s: \"%s\" is not an integer",
		    d->section, d->key, value);
		return -1;
	}
	if (v < d->min || v > d->max) {
		snprintf(ctx->err, ctx->errlen, "[%s] %s: %s is out of range %.0f..%.0f",
		    d->section, d->key, value, d->min, d->max);
		return -1;
	}
	if (d->type == T_INT)
		*(int *)(void *)base = (int)v;
	else if (d->type == T_SIZE)
		*(size_t *)(void *)base = (size_t)v;
	else
		*(double *)(void *)base = v;
	return 0;
}

static int
on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;

	for (size_t i = 0; i < MSR_ARRAY_LEN(directives); i++) {
		const struct directive *d = &directives[i];
		if (strcmp(d->section, section) == 0 && strcmp(d->key, name) == 0)
			return apply(ctx, d, value) == 0;
	}
	snprintf(ctx->err, ctx->errlen, "unknown key \"%s\" in section [%s]", name, section);
	return 0;
}

static int key_file_private(const char *path, char *err, size_t errlen);

static int
validate(const struct msr_config *cfg, char *err, size_t errlen)
{
	if ((cfg->http_tls_cert == NULL) != (cfg->http_tls_key == NULL)) {
		snprintf(err, errlen, "[http] tls_cert and tls_key must be set together");
		return -1;
	}
	if (strcmp(cfg->audit_verify_on_start, "full") != 0 &&
	    strcmp(cfg->audit_verify_on_start, "tail") != 0) {
		snprintf(err, errlen, "[audit] verify_on_start must be full or tail");
		return -1;
	}
	if (cfg->audit_origin[0] == '\0' || strchr(cfg->audit_origin, '+') != NULL ||
	    strpbrk(cfg->audit_origin, " \t\n") != NULL) {
		snprintf(err, errlen, "[audit] origin must be non-empty, without spaces or '+'");
		return -1;
	}
	if (cfg->search_default_limit > cfg->search_max_limit) {
		snprintf(err, errlen, "[search] default_limit exceeds max_limit");
		return -1;
	}
	if (cfg->http_body_memory_limit < cfg->http_body_limit) {
		snprintf(err, errlen, "[http] body_memory_limit is below body_limit:"
		    " the largest body could never be accepted");
		return -1;
	}
	if (cfg->budget_limit[0] > cfg->budget_limit[1] ||
	    cfg->budget_limit[2] > cfg->budget_limit[3]) {
		snprintf(err, errlen, "[budget] a 24h budget exceeds its 30d budget");
		return -1;
	}
	if (cfg->budget_alert[0] > cfg->budget_alert[1]) {
		snprintf(err, errlen, "[budget] alert_low exceeds alert_high");
		return -1;
	}
	if (key_file_private(cfg->audit_next_key_file, err, errlen) != 0)
		return -1;
	return key_file_private(cfg->audit_key_file, err, errlen);
}

/*
 * The audit signer key must not be readable by group or others (issue 8):
 * refused at --check-config and at start. A missing file is not this check's
 * business (the audit module reports it when it loads the key).
 */
static int
key_file_private(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (path == NULL || stat(path, &st) != 0)
		return 0;
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		snprintf(err, errlen, "[audit] key_file %s has mode %04o: the signer key"
		    " must not be accessible by group or others (chmod 600)",
		    path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

void
msr_config_rate(const struct msr_config *cfg, int cls, double *per_second, double *burst)
{
	/* requests/s and burst per API key of the role, or per address (unauthenticated) */
	static const double defaults[MSR_RATE_NCLASSES][2] = {
		[MSR_RATE_INVESTIGATOR] = { 5, 30 },
		[MSR_RATE_MANUFACTURER] = { 20, 100 },
		[MSR_RATE_DEALER] = { 10, 50 },
		[MSR_RATE_AUDITOR] = { 50, 200 },
		[MSR_RATE_ADMIN] = { 5, 50 },
		[MSR_RATE_ADDRESS] = { 20, 100 },
	};
	const int legacy = cfg->rate_per_second > 0 && cls != MSR_RATE_ADDRESS;

	*per_second = cfg->rate_role[cls].per_second >= 0 ? cfg->rate_role[cls].per_second :
	    legacy ? cfg->rate_per_second : defaults[cls][0];
	*burst = cfg->rate_role[cls].burst >= 0 ? cfg->rate_role[cls].burst :
	    legacy ? cfg->rate_burst : defaults[cls][1];
}

int
msr_config_load(struct msr_config *cfg, const char *path, char *err, size_t errlen)
{
	struct load_ctx ctx = { cfg, NULL, 0 };
	char msg[512] = "syntax error";
	FILE *f;
	int line;

	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	ctx.err = msg;
	ctx.errlen = sizeof(msg);
	line = ini_parse_file(f, on_ini_pair, &ctx);
	fclose(f);
	if (line != 0) {
		snprintf(err, errlen, "%s:%d: %s", path, line, msg);
		return -1;
	}
	if (validate(cfg, msg, sizeof(msg)) != 0) {
		snprintf(err, errlen, "%s: %s", path, msg);
		return -1;
	}
	if (cfg->db_owner_url == NULL)
		set_str(&cfg->db_owner_url, cfg->db_url);
	return 0;
}

void
msr_config_free(struct msr_config *cfg)
{
	for (size_t i = 0; i < MSR_ARRAY_LEN(directives); i++)
		if (directives[i].type == T_STR || directives[i].type == T_LIST)
			free(*(char **)(void *)((char *)cfg + directives[i].offset));
	memset(cfg, 0, sizeof(*cfg));
}
