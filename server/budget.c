/*
 * budget.c — disclosure budgets (see budget.h and sql/007_budget.sql).
 *
 * The per-query guard (query_too_broad, [search] min_bits) bounds what one
 * query may ask; it cannot stop many narrow queries from adding up to the
 * whole registry. What a key and a case can get out is bounded here: every
 * firearm that a lookup or a search discloses counts, once per window, against
 * rolling budgets of distinct firearms per API key and per case number.
 *
 * Invariants:
 *  1. Nothing is disclosed past a budget: the decision and the recording are
 *     one SQL function call (msreg_disclose) inside the statement that reads
 *     the firearms, serialised per key and per case in PostgreSQL, so several
 *     msregd instances and concurrent requests share one count. A refused
 *     request records nothing and answers 429 disclosure_budget_exhausted with
 *     no firearm data; its audit entry says which budget refused and how many
 *     firearms were withheld.
 *  2. A search that would exceed a budget is refused whole, never truncated:
 *     which firearms a partial answer would keep is itself a choice an
 *     attacker could steer. The investigator narrows the query or asks for a
 *     smaller `limit`; an admin can grant a larger budget
 *     (POST /v1/budgets/grants).
 *  3. Crossing an alert fraction of a budget ([budget] alert_low, alert_high)
 *     writes one extra audit entry with action "alert" before the answer, and
 *     counts it in msreg_budget_alerts_total. Because msreg_disclose
 *     serialises a subject's requests, exactly one request sees each crossing
 *     (used before < threshold <= used after), so an auditor gets one alert
 *     per threshold per window, while the sweep is happening.
 *  4. Counting errs towards the registry: a disclosure recorded whose answer is
 *     then lost (audit log or network failure) still counts.
 */
#include "msreg/budget.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msreg/audit.h"
#include "msreg/config.h"
#include "msreg/http.h"
#include "msreg/log.h"
#include "msreg/server.h"

static const char *const scopes[MSR_BUDGET_N] = { "key", "key", "case", "case" };
static const char *const windows[MSR_BUDGET_N] = { "24h", "30d", "24h", "30d" };

/* process-wide counters for /metrics */
static atomic_uint_fast64_t alerts[MSR_BUDGET_N][2];
static atomic_uint_fast64_t refusals[MSR_BUDGET_N];
static atomic_uint_fast64_t disclosed;     /* firearms newly counted per key and day */

const char *
msr_budget_scope(int i)
{
	return i >= 0 && i < MSR_BUDGET_N ? scopes[i] : "";
}

const char *
msr_budget_window(int i)
{
	return i >= 0 && i < MSR_BUDGET_N ? windows[i] : "";
}

void
msr_budget_args(const struct msr_req *r, const char *case_number, struct msr_budget_args *a)
{
	const struct msr_config *cfg = r->srv->cfg;

	memset(a, 0, sizeof(*a));
	snprintf(a->client, sizeof(a->client), "%lld", (long long)r->client.id);
	/* a case belongs to its agency: the same number at two agencies is two cases */
	if (case_number != NULL)
		snprintf(a->subject, sizeof(a->subject), "%s/%s", r->client.org, case_number);
	snprintf(a->limits, sizeof(a->limits), "{%d,%d,%d,%d}", cfg->budget_limit[0],
	    cfg->budget_limit[1], cfg->budget_limit[2], cfg->budget_limit[3]);
	a->limits_param = cfg->budget_enabled ? a->limits : NULL;
}

/* "{1,2,3,4}" into out[4]; 0 or -1. */
static int
parse_array(const char *s, long out[MSR_BUDGET_N])
{
	char *end;

	if (*s++ != '{')
		return -1;
	for (int i = 0; i < MSR_BUDGET_N; i++) {
		out[i] = strtol(s, &end, 10);
		if (end == s || *end != (i == MSR_BUDGET_N - 1 ? '}' : ','))
			return -1;
		s = end + 1;
	}
	return 0;
}

int
msr_budget_read(const PGresult *res, int row, int col, struct msr_budget_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->refused = -1;
	if (PQnfields(res) < col + MSR_BUDGET_COLUMNS || row >= PQntuples(res))
		return -1;
	for (int c = col; c < col + MSR_BUDGET_COLUMNS; c++)
		if (PQgetisnull(res, row, c))
			return -1;
	v->refused = (int)strtol(PQgetvalue(res, row, col), NULL, 10) - 1;
	v->retry_after = strtol(PQgetvalue(res, row, col + 4), NULL, 10);
	if (v->refused < -1 || v->refused >= MSR_BUDGET_N ||
	    parse_array(PQgetvalue(res, row, col + 1), v->budget) != 0 ||
	    parse_array(PQgetvalue(res, row, col + 2), v->before) != 0 ||
	    parse_array(PQgetvalue(res, row, col + 3), v->after) != 0)
		return -1;
	return 0;
}

static void
format_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%06ldZ", ts.tv_nsec / 1000);
}

/* One `alert` entry for budget i crossing fraction frac. 0, or -1 if not durable. */
static int
append_alert(struct msr_req *r, const char *case_number, const struct msr_budget_verdict *v,
    int i, double frac)
{
	char when[40], *text = NULL;
	json_t *entry;
	int64_t index = -1;
	int ret = -1;

	format_time(when, sizeof(when));
	entry = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:f, s:I, s:I,"
	    " s:{s:s, s:s}}",
	    "time", when, "action", "alert", "alert", "disclosure_budget",
	    "client", (json_int_t)r->client.id, "role", msr_role_name(r->client.role),
	    "org", r->client.org, "scope", scopes[i], "window", windows[i],
	    "threshold", frac, "budget", (json_int_t)v->budget[i],
	    "used", (json_int_t)v->after[i],
	    "trigger", "action", r->route->action, "path", r->path);
	if (entry != NULL && case_number != NULL && i >= 2)
		json_object_set_new(entry, "case_number", json_string(case_number));
	if (entry != NULL)
		text = json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS);
	if (text != NULL && r->srv->audit != NULL &&
	    msr_audit_append(r->srv->audit, text, strlen(text), r->client.id, &index) == 0)
		ret = 0;
	free(text);
	json_decref(entry);
	return ret;
}

static int
refuse(struct msr_req *r, const struct msr_budget_verdict *v, size_t n)
{
	int i = v->refused;
	long used = v->before[i], fresh = v->after[i] - v->before[i];
	char retry[24];

	atomic_fetch_add_explicit(&refusals[i], 1, memory_order_relaxed);
	msr_audit_note(r, "budget", json_pack("{s:s, s:s, s:I, s:I, s:I}",
	    "scope", scopes[i], "window", windows[i], "budget", (json_int_t)v->budget[i],
	    "used", (json_int_t)used, "requested", (json_int_t)fresh));
	msr_audit_note(r, "withheld", json_pack("{s:I}", "firearms", (json_int_t)n));
	msr_reply_error(r, 429, "disclosure_budget_exhausted",
	    json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "scope", scopes[i],
	    "window", windows[i], "budget", (json_int_t)v->budget[i],
	    "used", (json_int_t)used, "requested", (json_int_t)fresh,
	    "retry_after", (json_int_t)v->retry_after),
	    "this answer would disclose %ld more firearm(s) to this %s, which has %ld of "
	    "its %ld in %s left; nothing was disclosed. Narrow the query or lower its "
	    "limit, wait, or ask an admin for a grant", fresh,
	    i < 2 ? "API key" : "case", v->budget[i] > used ? v->budget[i] - used : 0,
	    v->budget[i], windows[i]);
	snprintf(retry, sizeof(retry), "%ld", v->retry_after > 0 ? v->retry_after : 1);
	msr_reply_header(r, "Retry-After", retry);
	return -1;
}

int
msr_budget_apply(struct msr_req *r, const char *case_number,
    const struct msr_budget_verdict *v, size_t n)
{
	const struct msr_config *cfg = r->srv->cfg;
	json_t *use;

	if (!cfg->budget_enabled)
		return 0;
	if (v->refused >= 0)
		return refuse(r, v, n);
	atomic_fetch_add_explicit(&disclosed, (uint_fast64_t)(v->after[0] - v->before[0]),
	    memory_order_relaxed);
	for (int i = 0; i < MSR_BUDGET_N; i++) {
		if (v->budget[i] <= 0)
			continue;
		for (int t = 0; t < 2; t++) {
			double frac = cfg->budget_alert[t];
			long mark = (long)ceil(frac * (double)v->budget[i]);

			if (frac <= 0 || !(v->before[i] < mark && v->after[i] >= mark))
				continue;
			atomic_fetch_add_explicit(&alerts[i][t], 1, memory_order_relaxed);
			log_warn("disclosure budget alert: client %lld, %s %s at %ld of %ld",
			    (long long)r->client.id, scopes[i], windows[i], v->after[i],
			    v->budget[i]);
			if (append_alert(r, case_number, v, i, frac) != 0) {
				msr_reply_unavailable(r, "the audit log is unavailable; "
				    "the request was not answered");
				return -1;
			}
		}
	}
	use = json_pack("{s:{s:I, s:I}}", "key", "24h", (json_int_t)v->after[0],
	    "30d", (json_int_t)v->after[1]);
	if (v->budget[2] > 0)
		json_object_set_new(use, "case", json_pack("{s:I, s:I}",
		    "24h", (json_int_t)v->after[2], "30d", (json_int_t)v->after[3]));
	msr_audit_note(r, "budget_used", use);
	return 0;
}

void
msr_budget_metrics(char *buf, size_t len)
{
	size_t n = strlen(buf);
	int w;

#define OUT(...) do { \
		w = snprintf(buf + n, len > n ? len - n : 0, __VA_ARGS__); \
		if (w > 0 && (size_t)w < len - n) n += (size_t)w; \
	} while (0)
	if (n >= len)
		return;
	OUT("# HELP msreg_budget_alerts_total Disclosure budget alert thresholds crossed.\n"
	    "# TYPE msreg_budget_alerts_total counter\n");
	for (int i = 0; i < MSR_BUDGET_N; i++)
		for (int t = 0; t < 2; t++)
			OUT("msreg_budget_alerts_total{scope=\"%s\",window=\"%s\",level=\"%s\"} %llu\n",
			    scopes[i], windows[i], t == 0 ? "low" : "high",
			    (unsigned long long)atomic_load_explicit(&alerts[i][t],
			    memory_order_relaxed));
	OUT("# HELP msreg_budget_refusals_total Answers refused for an exhausted disclosure budget.\n"
	    "# TYPE msreg_budget_refusals_total counter\n");
	for (int i = 0; i < MSR_BUDGET_N; i++)
		OUT("msreg_budget_refusals_total{scope=\"%s\",window=\"%s\"} %llu\n",
		    scopes[i], windows[i], (unsigned long long)atomic_load_explicit(&refusals[i],
		    memory_order_relaxed));
	OUT("# HELP msreg_budget_disclosed_total Firearms newly counted against a key's 24h budget.\n"
	    "# TYPE msreg_budget_disclosed_total counter\n"
	    "msreg_budget_disclosed_total %llu\n",
	    (unsigned long long)atomic_load_explicit(&disclosed, memory_order_relaxed));
#undef OUT
}
