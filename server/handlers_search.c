/*
 * handlers_search.c — POST /v1/search: partial-code lookup (role investigator).
 *
 * parse readings → enumeration guard → search the in-memory index → fetch the
 * candidates' firearms and first sales from PostgreSQL in one query, which
 * also counts them against the disclosure budgets → reply.
 *
 * Invariants:
 *  1. The guard runs before the index is touched: a query is refused with 422
 *     query_too_broad when it pins down fewer than [search] min_bits of a
 *     code (a floor independent of the registry's size, so a sparse length is
 *     no invitation; msr_query_bits), or when its expected number of random
 *     matches among the registered codes of its length exceeds [search]
 *     max_expected_matches.
 *  1a. Many narrow queries still add up: every firearm a search discloses
 *     counts against the key's and the case's disclosure budgets (budget.c);
 *     an answer that would exceed one is refused whole (429), never cut.
 *  2. Every answer and every refusal of an authenticated caller is audited with
 *     the case number, purpose, the readings as given, and what was returned.
 *  3. The index may lag PostgreSQL by one catch-up; it never holds a code that
 *     is not in PostgreSQL (codes are never deleted), so every hit resolves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/budget.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/feed.h"
#include "msreg/handlers.h"
#include "msreg/jsonv.h"
#include "msreg/pattern.h"
#include "msreg/search.h"
#include "msreg/server.h"

/*
 * The candidates' firearms and first sales, and the disclosure budget's verdict
 * on all of them at once (budget.c): one statement, one round trip.
 *
 * The code array is read through a scalar subquery, "(SELECT $1)": to the
 * planner that is an InitPlan output, whose length it cannot see even in a
 * custom plan, so custom and generic plans cost the same and PostgreSQL keeps
 * the generic one after its first five executions. With a bare "= ANY ($1)"
 * every custom plan (estimated from the actual 1-20 codes) looked cheaper
 * than the generic one (10 codes assumed), so every search was planned anew:
 * about 1 ms of PostgreSQL CPU against 0.05 ms of execution, more than half
 * of an audited search's database time (perf, bench_search). The plan is the
 * same index probe of codes_pkey either way. The firearm ids go to
 * msreg_disclose() as they are: it ignores duplicates itself (007_budget.sql),
 * so a DISTINCT here only added a hash aggregate to every search.
 */
static const struct msr_db_stmt stmt_details = {
	"search_details",
	"WITH d AS MATERIALIZED ("
	"  SELECT c.code, c.status, c.component, c.scheme,"
	"    f.id, f.manufacturer_id, f.model, f.serial, f.type, f.caliber,"
	"    f.manufactured_on::text AS manufactured_on,"
	"    s.dealer_ffl, s.sold_on::text AS sold_on, s.transaction_ref, s.state"
	"  FROM codes c JOIN firearms f ON f.id = c.firearm_id"
	"  LEFT JOIN first_sales s ON s.firearm_id = f.id"
	"  WHERE c.code = ANY ((SELECT $1::text[])::text[])),"
	" b AS MATERIALIZED (SELECT * FROM msreg_disclose($2::bigint, $3::text,"
	"  ARRAY(SELECT d.id FROM d), $4::integer[]))"
	" SELECT d.*, b.refused, b.budgets, b.used_before, b.used_after, b.retry_after"
	" FROM d CROSS JOIN b",
	4,
};

#define DETAILS_BUDGET_COL 15   /* msreg_disclose()'s columns in stmt_details */
#define HITS_MAX           100  /* the largest [search] max_limit (config.c) */

static int
reply_pattern_error(struct msr_req *r, const struct msr_pattern_error *pe)
{
	json_t *detail = json_pack("{s:s}", "reason", msr_pattern_errname(pe->code));

	if (pe->reading > 0)
		json_object_set_new(detail, "reading", json_integer(pe->reading));
	if (pe->position > 0)
		json_object_set_new(detail, "position", json_integer(pe->position));
	if (pe->offset > 0)
		json_object_set_new(detail, "offset", json_integer(pe->offset));
	msr_reply_error(r, 400, "invalid_pattern", detail, "%s", pe->message);
	return -1;
}

/* Build the query from the request's readings. 0, or -1 after replying. */
static int
parse_query(struct msr_req *r, struct msr_query *q, unsigned max_mismatches)
{
	const struct msr_config *cfg = r->srv->cfg;
	json_t *readings = json_object_get(r->json, "readings");
	struct msr_pattern_limits lim;
	struct msr_pattern_error pe;
	struct msr_confusion conf;
	size_t i;
	json_t *v;

	if (!json_is_array(readings) || json_array_size(readings) == 0) {
		msr_reply_error(r, 400, "invalid_pattern", json_pack("{s:s}", "field", "readings"),
		    "readings must be a non-empty array of strings or {\"gear\": \"...\"} objects");
		return -1;
	}
	if (json_array_size(readings) > (size_t)cfg->search_max_readings) {
		msr_reply_error(r, 400, "invalid_pattern",
		    json_pack("{s:i}", "max_readings", cfg->search_max_readings),
		    "a query may hold at most %d readings", cfg->search_max_readings);
		return -1;
	}
	msr_pattern_limits_default(&lim);
	lim.max_readings = (unsigned)cfg->search_max_readings;
	lim.max_positions = (unsigned)cfg->search_max_positions;
	msr_query_init(q, &lim);
	memset(&pe, 0, sizeof(pe));
	json_array_foreach(readings, i, v) {
		json_t *gear = json_object_get(v, "gear");
		int rc;

		if (json_is_string(v)) {
			rc = msr_query_add_text(q, json_string_value(v), &pe);
		} else if (json_is_object(v) && json_object_size(v) == 1 && json_is_string(gear)) {
			rc = msr_query_add_gear(q, json_string_value(gear), &pe);
		} else {
			msr_reply_error(r, 400, "invalid_pattern",
			    json_pack("{s:I}", "reading", (json_int_t)i + 1),
			    "reading %zu must be a string or {\"gear\": \"0/1/? bits\"}", i + 1);
			return -1;
		}
		if (rc != 0)
			return reply_pattern_error(r, &pe);
	}
	if (msr_confusion_parse(cfg->search_confusion, &conf, &pe) != 0)
		msr_confusion_default(&conf);
	if (msr_query_finish(q, max_mismatches, &conf, &pe) != 0)
		return reply_pattern_error(r, &pe);
	return 0;
}

static json_t *
str_or_null(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

/*
 * Candidate objects in hit order, once the disclosure budgets allow them; NULL
 * after replying (503, or 429 when a budget refused: nothing is disclosed).
 */
static json_t *
resolve_hits(struct msr_req *r, const char *case_number, const struct msr_hit *hits,
    size_t n, json_t *ids)
{
	char *array = NULL, code[MSR_CODE_MAX + 1];
	const char *values[4];
	struct msr_budget_args ba;
	struct msr_budget_verdict bv;
	size_t nfirearms = 0;
	json_t *out = NULL;
	PGresult *res = NULL;
	size_t len = 2;

	/*
	 * Nothing found, nothing to fetch or disclose: the statement would return
	 * no row and never call msreg_disclose() (its CTE is read only when d has
	 * rows), so the answer is the same without the round trip.
	 */
	if (n == 0)
		return json_array();
	array = malloc(n * (MSR_CODE_MAX + 1) + 3);
	if (array == NULL) {
		msr_reply_unavailable(r, "out of memory");
		return NULL;
	}
	array[0] = '{';
	for (size_t i = 0; i < n; i++) {
		msr_code_format(hits[i].code.sym, hits[i].code.len, code);
		len += (size_t)sprintf(array + len - 1, "%s%s", i ? "," : "", code);
	}
	array[len - 1] = '}';
	array[len] = '\0';
	msr_budget_args(r, case_number, &ba);
	values[0] = array;
	values[1] = ba.client;
	values[2] = ba.subject;
	values[3] = ba.limits_param;
	if (msr_req_db(r) == NULL)
		goto done;
	/* counting is a write: with budgets on, the primary answers (see handlers_codes.c) */
	res = ba.limits_param != NULL ? msr_db_exec(r->db, &stmt_details, values) :
	    msr_db_exec_read(r->db, &stmt_details, values, (int)n);
	if (!msr_db_ok(res)) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	if (PQntuples(res) > 0) {
		for (int k = 0; k < PQntuples(res); k++) {
			int seen = 0;
			for (int j = 0; j < k && !seen; j++)
				seen = strcmp(PQgetvalue(res, j, 4), PQgetvalue(res, k, 4)) == 0;
			nfirearms += !seen;
		}
		if (msr_budget_read(res, 0, DETAILS_BUDGET_COL, &bv) != 0) {
			msr_reply_unavailable(r, "the disclosure budget could not be read");
			goto done;
		}
		if (msr_budget_apply(r, case_number, &bv, nfirearms) != 0)
			goto done;
	}
	out = json_array();
	for (size_t i = 0; i < n; i++) {
		int row = -1;
		msr_code_format(hits[i].code.sym, hits[i].code.len, code);
		for (int k = 0; k < PQntuples(res); k++)
			if (strcmp(PQgetvalue(res, k, 0), code) == 0) {
				row = k;
				break;
			}
		if (row < 0)
			continue;      /* cannot happen: codes are never deleted */
		json_int_t fid = strtoll(PQgetvalue(res, row, 4), NULL, 10);
		json_t *sale = PQgetisnull(res, row, 11) ? json_null() :
		    json_pack("{s:o, s:o, s:o, s:o}", "dealer_ffl", str_or_null(res, row, 11),
		    "sold_on", str_or_null(res, row, 12), "transaction_ref",
		    str_or_null(res, row, 13), "state", str_or_null(res, row, 14));
		json_array_append_new(out, json_pack(
		    "{s:s, s:i, s:f, s:s, s:s, s:s,"
		    " s:{s:I, s:s, s:s, s:s, s:s, s:s, s:o}, s:o}",
		    "code", code, "mismatches", (int)hits[i].mismatches,
		    "score", hits[i].score / 1000.0,
		    "status", PQgetvalue(res, row, 1), "component", PQgetvalue(res, row, 2),
		    "scheme", PQgetvalue(res, row, 3),
		    "firearm", "id", fid, "manufacturer", PQgetvalue(res, row, 5),
		    "model", PQgetvalue(res, row, 6), "serial", PQgetvalue(res, row, 7),
		    "type", PQgetvalue(res, row, 8), "caliber", PQgetvalue(res, row, 9),
		    "manufactured_on", str_or_null(res, row, 10),
		    "first_sale", sale));
		json_array_append_new(ids, json_integer(fid));
	}
done:
	PQclear(res);
	free(array);
	return out;
}

void
msr_h_search(struct msr_req *r)
{
	static const char *const keys[] = { "case_number", "purpose", "readings",
	    "max_mismatches", "limit", NULL };
	const struct msr_config *cfg = r->srv->cfg;
	const char *case_number = NULL, *purpose = NULL;
	json_int_t max_mm = 0, limit = cfg->search_default_limit;
	struct msr_search_result sr;
	struct msr_hit hits[HITS_MAX];  /* limit <= [search] max_limit <= HITS_MAX */
	struct msr_query qs, *q = &qs;  /* ~3.7 KB on the stack, no malloc */
	struct msr_index *idx;
	json_t *candidates = NULL, *codes, *ids;
	double expected, n, bits;

	if (msr_jv_string(r, r->json, "case_number", 1, 200, &case_number) != 0 ||
	    msr_jv_string(r, r->json, "purpose", 1, 500, &purpose) != 0)
		return;
	msr_audit_note(r, "case_number", json_string(case_number));
	msr_audit_note(r, "purpose", json_string(purpose));
	msr_audit_note(r, "readings", json_deep_copy(json_object_get(r->json, "readings")));
	if (msr_jv_known_keys(r, r->json, keys) != 0 ||
	    msr_jv_int(r, r->json, "max_mismatches", 0, 0, MSR_QUERY_MISMATCHES_MAX, &max_mm) != 0 ||
	    msr_jv_int(r, r->json, "limit", 0, 1, cfg->search_max_limit, &limit) != 0)
		return;
	msr_audit_note(r, "max_mismatches", json_integer(max_mm));
	if (parse_query(r, q, (unsigned)max_mm) != 0)
		goto done;
	idx = msr_feed_index(r->srv->feed);
	if (idx == NULL) {
		msr_reply_unavailable(r, "the search index is loading");
		goto done;
	}
	n = (double)msr_index_count_len(idx, q->len);
	expected = msr_query_expected(q, n);
	bits = msr_query_bits(q);
	msr_audit_note(r, "expected_random_matches", json_real(expected));
	msr_audit_note(r, "bits", json_real(bits));
	if (bits + 1e-9 < cfg->search_min_bits) {
		msr_reply_error(r, 422, "query_too_broad",
		    json_pack("{s:f, s:f, s:f, s:f, s:f}", "bits", bits,
		    "min_bits", cfg->search_min_bits, "expected_matches", expected,
		    "max_expected_matches", cfg->search_max_expected_matches,
		    "registered_codes", n),
		    "the query pins down %.1f bits of a %u-symbol code (a random code "
		    "matches with probability 2^-%.1f); at least %g are required whatever "
		    "the registry's size: read more positions or allow fewer mismatches",
		    bits, q->len, bits, cfg->search_min_bits);
		goto done;
	}
	if (expected > cfg->search_max_expected_matches) {
		msr_reply_error(r, 422, "query_too_broad",
		    json_pack("{s:f, s:f, s:f}", "expected_matches", expected,
		    "max_expected_matches", cfg->search_max_expected_matches,
		    "registered_codes", n),
		    "the query would be expected to match %.1f registered codes at random "
		    "(at most %g allowed); read more positions or allow fewer mismatches",
		    expected, cfg->search_max_expected_matches);
		goto done;
	}
	if (limit > HITS_MAX || msr_index_search(idx, q, hits, (size_t)limit, &sr) != 0) {
		msr_reply_unavailable(r, "search failed");
		goto done;
	}
	ids = json_array();
	candidates = resolve_hits(r, case_number, hits, sr.nhits, ids);
	if (candidates == NULL) {
		json_decref(ids);
		goto done;
	}
	codes = json_array();
	for (size_t i = 0; i < json_array_size(candidates); i++)
		json_array_append(codes, json_object_get(json_array_get(candidates, i), "code"));
	msr_audit_note(r, "result", json_pack("{s:I, s:o, s:o}", "total", (json_int_t)sr.total,
	    "codes", codes, "firearm_ids", ids));
	msr_reply_json(r, 200, json_pack("{s:o, s:I, s:b, s:f, s:i}",
	    "candidates", candidates, "total", (json_int_t)sr.total,
	    "truncated", sr.total > sr.nhits, "expected_random_matches", expected,
	    "max_mismatches", (int)max_mm));
done:
	return;
}
