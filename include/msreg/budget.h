/*
 * budget.h — disclosure budgets: what one API key and one case may get out of
 * the registry (issue 8; the counters are in PostgreSQL, sql/007_budget.sql).
 *
 * A handler that discloses firearms (exact lookup, search) calls the SQL
 * function msreg_disclose() inside the statement that fetches them, so the
 * decision costs no extra round trip:
 *
 *   msr_budget_args()   the function's parameters for this request;
 *   msr_budget_read()   its result columns into a verdict;
 *   msr_budget_apply()  refuse (429 disclosure_budget_exhausted, Retry-After,
 *                       nothing disclosed) or go on, writing an `alert` audit
 *                       entry for each alert threshold the disclosure crossed.
 *
 * The four budgets, in this order everywhere (SQL arrays included):
 *   0 key 24h, 1 key 30d, 2 case 24h, 3 case 30d
 * (distinct firearms per API key / per case over a rolling window).
 */
#ifndef MSREG_BUDGET_H
#define MSREG_BUDGET_H

#include <libpq-fe.h>
#include <stddef.h>

#define MSR_BUDGET_N         4
#define MSR_BUDGET_SUBJECT   512   /* "<ORI>/<case number>" */
#define MSR_BUDGET_COLUMNS   5     /* result columns of msreg_disclose() */

struct msr_req;

/* Text parameters of msreg_disclose(client, case, ids, limits). */
struct msr_budget_args {
	char        client[24];
	char        subject[MSR_BUDGET_SUBJECT];
	char        limits[64];
	const char *limits_param;     /* NULL when budgets are disabled */
};

struct msr_budget_verdict {
	int  refused;                 /* -1 none, else the budget index 0..3 */
	long budget[MSR_BUDGET_N];    /* effective (grants applied); 0 = not counted */
	long before[MSR_BUDGET_N];    /* distinct firearms in the window before */
	long after[MSR_BUDGET_N];     /* ... and with this disclosure */
	long retry_after;             /* seconds, for a refusal */
};

/* Fill a for this request's caller and case number (may be NULL). */
void msr_budget_args(const struct msr_req *r, const char *case_number,
                     struct msr_budget_args *a);
/*
 * The verdict from msreg_disclose()'s columns col .. col+4 of row in res.
 * 0, or -1 if they do not parse (the caller answers 503).
 */
int msr_budget_read(const PGresult *res, int row, int col, struct msr_budget_verdict *v);
/*
 * Enforce v for a disclosure of n firearms. Returns 0 to go on (after any
 * alert entries; notes the budget use in the request's audit entry), or -1
 * after replying: 429 disclosure_budget_exhausted when a budget refused, 503
 * when an alert entry could not be written.
 */
int msr_budget_apply(struct msr_req *r, const char *case_number,
                     const struct msr_budget_verdict *v, size_t n);
/* Append the budget metrics (Prometheus text) to buf (NUL-terminated, len bytes). */
void msr_budget_metrics(char *buf, size_t len);

/* Stable names: scope ("key"/"case") and window ("24h"/"30d") of budget i. */
const char *msr_budget_scope(int i);
const char *msr_budget_window(int i);

#endif
