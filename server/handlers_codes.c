/*
 * handlers_codes.c — code allocation (role manufacturer) and exact code
 * lookup (role investigator).
 *
 * Allocation draws codewords uniformly at random from the whole rs8 space
 * (libsodium randomness over the 2^30 data words, msr_rs8_from_data), inserts
 * the whole draw in one statement (unnest) and tops up, in the same
 * transaction, whatever collided with a code issued or registered before.
 *
 * Invariants:
 *  1. A code is issued at most once, ever: code_allocations' primary key
 *     refuses a second allocation (ON CONFLICT DO NOTHING, only RETURNING rows
 *     are handed out), and every 8-symbol code ever registered — rs8 or free —
 *     is claimed there too (handlers_firearms.c), so a registered code cannot
 *     be drawn; the NOT EXISTS against codes also covers rows that reached the
 *     codes table without a claim (imports).
 *  2. An allocation is all or nothing: the codes handed out are exactly the
 *     rows committed, in one transaction, and exactly `count` of them; they
 *     are returned in ascending order (see allocate_round), which says
 *     nothing about any one code.
 *  3. A lookup answers only for a normalised, well-formed code and a request
 *     that names its case and purpose; its audit entry records both, the
 *     normalised query and what was returned (code, firearm id, count), also
 *     when nothing was found.
 *  4. A found firearm counts against the key's and the case's disclosure
 *     budgets (budget.c) in the same statement that reads it; past a budget
 *     the answer is 429 and the firearm's data never leaves this process.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/budget.h"
#include "msreg/code.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/handlers.h"
#include "msreg/jsonv.h"
#include "msreg/log.h"
#include "msreg/server.h"

#define ALLOC_ROUNDS     16     /* top-up rounds before giving up (never needed) */
#define CASE_NUMBER_MAX  100
#define PURPOSE_MAX      200
#define LOOKUP_TEXT_MAX  64     /* symbols accepted before "too long" */

/*
 * The NOT EXISTS carries OFFSET 0 so that it stays one index probe per drawn
 * code: pulled up into an anti-join, the planner hashes the whole codes table
 * for a 10,000-element array (measured 225 ms at 1e6 codes, against 24 ms).
 */
static const struct msr_db_stmt stmt_allocate = {
	"codes_allocate",
	"INSERT INTO code_allocations (code, manufacturer_id)"
	" SELECT c, $2 FROM unnest($1::text[]) AS c"
	" WHERE NOT EXISTS (SELECT 1 FROM codes WHERE codes.code = c OFFSET 0)"
	" ON CONFLICT (code) DO NOTHING RETURNING code",
	2,
};

static const struct msr_db_stmt stmt_lookup = {
	"codes_lookup",
	"SELECT c.code, c.status, c.component, c.scheme,"
	"  to_json(c.registered_at) #>> '{}', to_json(c.retired_at) #>> '{}',"
	"  c.replaces,"
	"  (SELECT n.code FROM codes n WHERE n.firearm_id = c.firearm_id"
	"     AND n.replaces = c.code LIMIT 1),"
	"  f.id, f.manufacturer_id, f.model, f.serial, f.type, f.caliber,"
	"  f.manufactured_on,"
	"  s.firearm_id IS NOT NULL, s.dealer_ffl, s.sold_on, s.transaction_ref, s.state,"
	"  b.refused, b.budgets, b.used_before, b.used_after, b.retry_after"
	" FROM codes c JOIN firearms f ON f.id = c.firearm_id"
	" LEFT JOIN first_sales s ON s.firearm_id = f.id"
	" CROSS JOIN LATERAL msreg_disclose($2::bigint, $3::text, ARRAY[f.id],"
	"   $4::integer[]) b"
	" WHERE c.code = $1",
	4,
};

#define LOOKUP_BUDGET_COL 20    /* msreg_disclose()'s columns in stmt_lookup */

/* ---- allocation ---------------------------------------------------------- */

enum { ALLOC_FAILED = -1, ALLOC_RETRY = -2 };

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * One round: draw n codes, insert them, append the ones stored to codes and
 * the digest. Returns the number stored, ALLOC_RETRY on a deadlock, or
 * ALLOC_FAILED on any other database failure.
 *
 * Two concurrent rounds of 10,000 draws share a code with probability about
 * 0.09 (birthday bound over 2^30), and the second inserter of a shared code
 * waits for the first. Drawing in ascending order (the codes sort like their
 * data words) makes every round take those waits in the same order, so
 * rounds never wait for each other in a cycle.
 */
static long
allocate_round(struct msr_req *r, const char *manufacturer, size_t n, json_t *codes,
    crypto_hash_sha256_state *digest)
{
	uint8_t sym[MSR_RS8_LEN];
	uint32_t *draw;
	char *lit, *p;
	const char *values[2];
	PGresult *res;
	long got = ALLOC_FAILED;

	lit = malloc(n * (MSR_RS8_LEN + 1) + 2);
	draw = malloc(n * sizeof(*draw));
	if (lit == NULL || draw == NULL) {
		free(lit);
		free(draw);
		return ALLOC_FAILED;
	}
	/*
	 * MSR_RS8_DATA_SPACE is 2^30, so the low 30 bits of a uniform 32-bit word
	 * are exactly what randombytes_uniform(MSR_RS8_DATA_SPACE) returns (no
	 * rejection needed); one randombytes_buf call serves the whole round
	 * instead of one getrandom() system call per code.
	 */
	randombytes_buf(draw, n * sizeof(*draw));
	for (size_t i = 0; i < n; i++)
		draw[i] &= MSR_RS8_DATA_SPACE - 1;
	qsort(draw, n, sizeof(*draw), cmp_u32);
	p = lit;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		msr_rs8_from_data(draw[i], sym);
		if (i > 0)
			*p++ = ',';
		msr_code_format(sym, MSR_RS8_LEN, p);
		p += MSR_RS8_LEN;
	}
	*p++ = '}';
	*p = '\0';
	values[0] = lit;
	values[1] = manufacturer;
	res = msr_db_exec(r->db, &stmt_allocate, values);
	if (msr_db_ok(res)) {
		got = PQntuples(res);
		for (int i = 0; i < PQntuples(res); i++) {
			const char *c = PQgetvalue(res, i, 0);
			json_array_append_new(codes, json_string(c));
			crypto_hash_sha256_update(digest, (const unsigned char *)c, strlen(c));
			crypto_hash_sha256_update(digest, (const unsigned char *)"\n", 1);
		}
	} else if (strcmp(msr_db_sqlstate(res), "40P01") == 0) {
		got = ALLOC_RETRY;
	} else {
		log_warn("code allocation failed: %s",
		    res ? PQresultErrorMessage(res) : "connection lost");
	}
	PQclear(res);
	sodium_memzero(draw, n * sizeof(*draw));
	free(draw);
	free(lit);
	return got;
}

/*
 * Allocate count codes in one transaction into codes (emptied first) and the
 * digest. Returns 0, ALLOC_RETRY or ALLOC_FAILED (rolled back).
 */
static int
allocate_all(struct msr_req *r, const char *manufacturer, size_t count, json_t *codes,
    crypto_hash_sha256_state *digest)
{
	size_t need = count;
	long got = 0;
	int round;

	json_array_clear(codes);
	crypto_hash_sha256_init(digest);
	if (msr_db_command(r->db, "BEGIN") != 0)
		return ALLOC_FAILED;
	for (round = 0; need > 0 && round < ALLOC_ROUNDS; round++) {
		got = allocate_round(r, manufacturer, need, codes, digest);
		if (got < 0)
			break;
		need -= (size_t)got;
	}
	if (need == 0) {
		msr_req_commit(r);       /* committed once the audit entry is durable */
		return 0;
	}
	msr_db_command(r->db, "ROLLBACK");
	return got == ALLOC_RETRY ? ALLOC_RETRY : ALLOC_FAILED;
}

void
msr_h_codes_allocate(struct msr_req *r)
{
	static const char *const keys[] = { "count", NULL };
	const char *manufacturer = r->client.org;
	json_t *codes = NULL;
	json_int_t count = 0;
	crypto_hash_sha256_state digest;
	unsigned char hash[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	int rc = ALLOC_RETRY;

	if (manufacturer[0] == '\0') {
		msr_reply_error(r, 403, "forbidden", NULL,
		    "this manufacturer key is not bound to a manufacturer");
		goto done;
	}
	if (msr_jv_known_keys(r, r->json, keys) != 0 ||
	    msr_jv_int(r, r->json, "count", 1, 1, r->srv->cfg->limits_allocate_max,
	    &count) != 0)
		goto done;
	msr_audit_note(r, "requested", json_integer(count));
	if (msr_req_db(r) == NULL)
		goto done;
	codes = json_array();
	for (int attempt = 0; codes != NULL && attempt < 3 && rc == ALLOC_RETRY; attempt++)
		rc = allocate_all(r, manufacturer, (size_t)count, codes, &digest);
	if (rc != 0) {
		msr_reply_unavailable(r, "the database is unavailable; no codes were allocated");
		goto done;
	}
	crypto_hash_sha256_final(&digest, hash);
	sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
	msr_audit_note(r, "allocated", json_integer((json_int_t)json_array_size(codes)));
	msr_audit_note(r, "codes_sha256", json_string(hex));
	msr_reply_json(r, 201, json_pack("{s:O}", "codes", codes));
done:
	json_decref(codes);
}

/* ---- lookup -------------------------------------------------------------- */

/*
 * A required, printable, UTF-8 query argument of at most max bytes; 0, or -1
 * after replying 400 invalid_field.
 */
static int
query_text(struct msr_req *r, const char *name, size_t max, const char **out)
{
	const char *s = msr_req_arg(r, name);
	json_t *probe;
	size_t n;

	*out = NULL;
	if (s == NULL || s[strspn(s, " \t")] == '\0') {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", name),
		    "%s is required: every lookup names its case and purpose", name);
		return -1;
	}
	n = strlen(s);
	probe = json_string(s);
	if (probe == NULL || n > max) {
		json_decref(probe);
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", name),
		    "%s must be UTF-8 text of at most %zu bytes", name, max);
		return -1;
	}
	json_decref(probe);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			msr_reply_error(r, 400, "invalid_field",
			    json_pack("{s:s}", "field", name),
			    "%s must not contain control characters", name);
			return -1;
		}
	*out = s;
	return 0;
}

static json_t *
text_or_null(const PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? json_null() : json_string(PQgetvalue(res, 0, col));
}

static json_t *
lookup_reply(const PGresult *res)
{
	json_t *firearm, *sale = json_null();

	firearm = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:o}",
	    "id", (json_int_t)strtoll(PQgetvalue(res, 0, 8), NULL, 10),
	    "manufacturer", PQgetvalue(res, 0, 9), "model", PQgetvalue(res, 0, 10),
	    "serial", PQgetvalue(res, 0, 11), "type", PQgetvalue(res, 0, 12),
	    "caliber", PQgetvalue(res, 0, 13), "manufactured_on", text_or_null(res, 14));
	if (strcmp(PQgetvalue(res, 0, 15), "t") == 0)
		sale = json_pack("{s:s, s:s, s:s, s:s}", "dealer_ffl", PQgetvalue(res, 0, 16),
		    "sold_on", PQgetvalue(res, 0, 17), "transaction_ref",
		    PQgetvalue(res, 0, 18), "state", PQgetvalue(res, 0, 19));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}",
	    "code", PQgetvalue(res, 0, 0), "status", PQgetvalue(res, 0, 1),
	    "component", PQgetvalue(res, 0, 2), "scheme", PQgetvalue(res, 0, 3),
	    "registered_at", PQgetvalue(res, 0, 4), "retired_at", text_or_null(res, 5),
	    "replaces", text_or_null(res, 6), "replaced_by", text_or_null(res, 7),
	    "firearm", firearm, "first_sale", sale);
}

void
msr_h_code_lookup(struct msr_req *r)
{
	const char *case_number = NULL, *purpose = NULL, *values[4];
	struct msr_budget_args ba;
	struct msr_budget_verdict bv;
	uint8_t sym[LOOKUP_TEXT_MAX];
	char code[LOOKUP_TEXT_MAX + 1];
	size_t n = 0;
	long bad_at = -1;
	PGresult *res = NULL;
	json_t *reply;

	/*
	 * parse: case and purpose first, each noted when valid so that even a
	 * refused lookup is on record; the error replied is the first invalid field.
	 */
	if (query_text(r, "purpose", PURPOSE_MAX, &purpose) == 0)
		msr_audit_note(r, "purpose", json_string(purpose));
	if (query_text(r, "case_number", CASE_NUMBER_MAX, &case_number) == 0)
		msr_audit_note(r, "case_number", json_string(case_number));
	if (case_number == NULL || purpose == NULL)
		goto done;
	if (msr_code_normalize(r->capture[0], sym, sizeof(sym), &n, &bad_at) != 0) {
		if (bad_at >= 0)
			msr_reply_error(r, 400, "invalid_code",
			    json_pack("{s:I}", "offset", (json_int_t)bad_at),
			    "the code has a character that is not a code symbol at offset %ld "
			    "(codes use Crockford base32: 0-9 and A-Z without U; I and L read "
			    "as 1, O as 0; hyphens and spaces are ignored)", bad_at);
		else
			msr_reply_error(r, 400, "invalid_code", NULL,
			    "the code has more than %d symbols; registered codes have %d to %d",
			    LOOKUP_TEXT_MAX, MSR_FREE_MIN, MSR_FREE_MAX);
		goto done;
	}
	msr_code_format(sym, n, code);
	msr_audit_note(r, "query", json_string(code));
	if (n < MSR_FREE_MIN || n > MSR_FREE_MAX) {
		msr_reply_error(r, 400, "invalid_code",
		    json_pack("{s:s, s:I}", "code", code, "symbols", (json_int_t)n),
		    "code has %zu symbols; registered codes have %d to %d", n, MSR_FREE_MIN,
		    MSR_FREE_MAX);
		goto done;
	}
	/* do */
	if (msr_req_db(r) == NULL)
		goto done;
	msr_budget_args(r, case_number, &ba);
	values[0] = code;
	values[1] = ba.client;
	values[2] = ba.subject;
	values[3] = ba.limits_param;
	/*
	 * Counting a disclosure writes: with budgets on, the lookup goes to the
	 * primary (a replica could only refuse from stale counts); without, the
	 * function only returns and a replica may answer.
	 */
	res = ba.limits_param != NULL ? msr_db_exec(r->db, &stmt_lookup, values) :
	    msr_db_exec_read(r->db, &stmt_lookup, values, 1);
	if (!msr_db_ok(res)) {
		log_warn("code lookup failed: %s",
		    res ? PQresultErrorMessage(res) : "connection lost");
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	if (PQntuples(res) == 0) {
		msr_audit_note(r, "result", json_pack("{s:i}", "count", 0));
		if (n == MSR_RS8_LEN && !msr_rs8_valid(sym))
			msr_reply_error(r, 404, "not_found",
			    json_pack("{s:s, s:s}", "code", code, "hint",
			    "not an rs8 codeword: a character may be misread; "
			    "POST /v1/search accepts uncertain readings"),
			    "no code %s is registered", code);
		else
			msr_reply_error(r, 404, "not_found", json_pack("{s:s}", "code", code),
			    "no code %s is registered", code);
		goto done;
	}
	if (msr_budget_read(res, 0, LOOKUP_BUDGET_COL, &bv) != 0) {
		msr_reply_unavailable(r, "the disclosure budget could not be read");
		goto done;
	}
	if (msr_budget_apply(r, case_number, &bv, 1) != 0)
		goto done;
	/* reply */
	reply = lookup_reply(res);
	msr_audit_note(r, "result", json_pack("{s:i, s:s, s:I, s:s}", "count", 1,
	    "code", PQgetvalue(res, 0, 0),
	    "firearm_id", (json_int_t)strtoll(PQgetvalue(res, 0, 8), NULL, 10),
	    "status", PQgetvalue(res, 0, 1)));
	msr_reply_json(r, 200, reply);
done:
	PQclear(res);
}
