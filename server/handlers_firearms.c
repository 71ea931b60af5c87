/*
 * handlers_firearms.c — firearm registration (one or a batch), replacement
 * parts, and a manufacturer's view of its own firearms (role manufacturer; the
 * caller's org is its manufacturer id).
 *
 * A registration is validated completely in C first — fields, code syntax and
 * rs8 check symbols, duplicate codes and serials within the request — and then
 * written by a fixed number of set-based statements in one transaction,
 * whatever the number of firearms (arrays passed as parameters, rows as COPY
 * data; never one round trip per firearm):
 *   1. owners: the 8-symbol codes' entries in code_allocations; another
 *              manufacturer's → 409; unallocated ones are claimed for the
 *              caller (ON CONFLICT DO NOTHING) and checked again;
 *   2. ids:    one nextval per firearm, in request order;
 *   3. insert: COPY firearms, COPY codes — PostgreSQL's bulk path, which
 *              measured about twice as fast here as one INSERT ... SELECT
 *              FROM unnest(...) per table for 10,000 rows;
 *              the COPY commands are fixed text like BEGIN, the rows travel
 *              as COPY data (text format, escaped), so nothing from the
 *              request is ever parsed as SQL;
 *   4. pg_notify('msreg_codes') so every search index follows once the
 *      transaction commits; COMMIT.
 * A unique violation in step 3 (a serial or code registered before, or by a
 * racing request) rolls back; the offending item is then found by one query
 * over the request's serials or codes and named in a 409.
 *
 * Invariants:
 *  1. All or nothing: any client error leaves nothing stored (rollback) and
 *     names the offending item in detail.index for a batch.
 *  2. Every 8-symbol code in codes is also in code_allocations under its
 *     firearm's manufacturer (step 1). Allocation only has to respect the
 *     code_allocations primary key, and that key serialises a registration
 *     against a racing allocation or a racing registration by another
 *     manufacturer.
 *  3. Uniqueness is the database's: an insert that meets a concurrent
 *     uncommitted insert of the same code or serial waits for it, so of two
 *     racing registrations exactly one commits and the other answers 409.
 *     Which key conflicted is read from the error's constraint name (a
 *     structured field), never from message text.
 *  4. Rows are written in key order (serial, code), so concurrent writers lock
 *     rows in the same order; a deadlock or serialization failure that still
 *     happens is retried (MAX_ATTEMPTS) before answering 503.
 *  5. A manufacturer reads and writes only firearms whose manufacturer_id is
 *     its org; another manufacturer's firearm is answered 404, exactly as if
 *     it did not exist.
 *  6. Any other database failure is 503 unavailable.
 *  7. A manufacturer learns nothing about another's codes beyond
 *     "unavailable": a code registered (to anyone's firearm) and a code
 *     reserved to another manufacturer get the same 409 (CODE_UNAVAILABLE,
 *     detail.reason "unavailable"), never an owner, firearm or date.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>
#include <strings.h>
#include <time.h>

#include "msreg/code.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/handlers.h"
#include "msreg/jsonv.h"
#include "msreg/log.h"
#include "msreg/server.h"

#define MODEL_MAX     100
#define SERIAL_MAX    64
#define TEXT_MAX      64     /* type, caliber */
#define CODE_TEXT_MAX 64     /* code as typed, hyphens and spaces included */
#define CODES_MAX     16     /* codes per firearm in one registration */
#define MAX_ATTEMPTS  3

#undef W_OK   /* access()'s flag from <unistd.h> (via microhttpd.h), unused here */
enum { W_OK = 0, W_REPLIED = -1, W_RETRY = -2 };

/*
 * The one answer about a code the caller cannot have (invariant 7): whether it
 * is registered to a firearm, whose, or only reserved to another manufacturer
 * is not the caller's business.
 */
#define CODE_UNAVAILABLE \
	"code %s is unavailable: it is already registered or reserved to another manufacturer"

static const char *const components[] = { "firing_pin", "breech_face", "ejector",
    "extractor", "other", NULL };
static const char *const schemes[] = { "rs8", "free", NULL };

/* ---- statements ---------------------------------------------------------- */

/*
 * One index probe per code. Written as a LATERAL subquery that cannot be
 * flattened (OFFSET 0): as a plain join, the planner sees the 10,000-element
 * array and picks a hash join over a sequential scan of every allocation
 * (measured: 215 ms per batch at 1e6 allocations, against 53 ms for probes).
 * The same holds for every array-against-table statement below.
 */
static const struct msr_db_stmt stmt_owners = {
	"fa_owners",
	"SELECT u.code, a.manufacturer_id FROM unnest($1::text[]) AS u(code)"
	" LEFT JOIN LATERAL (SELECT c.manufacturer_id FROM code_allocations c"
	"                    WHERE c.code = u.code OFFSET 0) a ON true"
	" WHERE a.manufacturer_id IS DISTINCT FROM $2 ORDER BY u.code",
	2,
};

static const struct msr_db_stmt stmt_claim = {
	"fa_claim",
	"INSERT INTO code_allocations (code, manufacturer_id)"
	" SELECT c, $2 FROM unnest($1::text[]) AS c"
	" ON CONFLICT (code) DO NOTHING",
	2,
};

static const struct msr_db_stmt stmt_ids = {
	"fa_ids",
	"SELECT nextval('firearms_id_seq') FROM generate_series(1, $1::int)",
	1,
};

static const struct msr_db_stmt stmt_serials_taken = {
	"fa_serials_taken",
	"SELECT u.serial FROM unnest($2::text[]) AS u(serial) WHERE EXISTS"
	" (SELECT 1 FROM firearms f WHERE f.manufacturer_id = $1 AND f.serial = u.serial"
	"  OFFSET 0)",
	2,
};

static const struct msr_db_stmt stmt_codes_taken = {
	"fa_codes_taken",
	"SELECT u.code FROM unnest($1::text[]) AS u(code) WHERE EXISTS"
	" (SELECT 1 FROM codes c WHERE c.code = u.code OFFSET 0)",
	1,
};

static const struct msr_db_stmt stmt_notify = {
	"fa_notify",
	"SELECT pg_notify('msreg_codes', '')",
	0,
};

static const struct msr_db_stmt stmt_firearm_json = {
	"fa_firearm_json",
	"SELECT json_build_object("
	"  'id', f.id, 'manufacturer', f.manufacturer_id, 'model', f.model,"
	"  'serial', f.serial, 'type', f.type, 'caliber', f.caliber,"
	"  'manufactured_on', f.manufactured_on, 'created_at', f.created_at,"
	"  'codes', coalesce((SELECT json_agg(json_build_object("
	"      'code', c.code, 'scheme', c.scheme, 'component', c.component,"
	"      'status', c.status, 'registered_at', c.registered_at,"
	"      'retired_at', c.retired_at, 'replaces', c.replaces,"
	"      'replaced_by', (SELECT n.code FROM codes n"
	"                      WHERE n.firearm_id = f.id AND n.replaces = c.code LIMIT 1))"
	"      ORDER BY c.registered_at, c.code)"
	"    FROM codes c WHERE c.firearm_id = f.id), '[]'::json),"
	"  'first_sale', (SELECT json_build_object('dealer_ffl', s.dealer_ffl,"
	"      'sold_on', s.sold_on, 'transaction_ref', s.transaction_ref,"
	"      'state', s.state, 'recorded_at', s.recorded_at)"
	"    FROM first_sales s WHERE s.firearm_id = f.id))::text"
	" FROM firearms f WHERE f.id = $1 AND f.manufacturer_id = $2",
	2,
};

/*
 * Serialises replacements on one firearm. An advisory lock rather than FOR
 * UPDATE: row locks need UPDATE privilege on firearms, which msreg_app does
 * not have (sql/008_privilege.sql), and firearm rows never change anyway.
 */
static const struct msr_db_stmt stmt_lock_firearm = {
	"fa_lock_firearm",
	"SELECT f.id FROM firearms f,"
	" LATERAL (SELECT pg_advisory_xact_lock(7316009, hashint8(f.id))) l"
	" WHERE f.id = $1 AND f.manufacturer_id = $2",
	2,
};

static const struct msr_db_stmt stmt_retire = {
	"fa_retire",
	"UPDATE codes SET status = 'retired', retired_at = now(),"
	"  change_seq = msreg_next_change(), change_xid = pg_current_xact_id()"
	" WHERE code = $1 AND firearm_id = $2 AND status = 'active' RETURNING code",
	2,
};

static const struct msr_db_stmt stmt_code_status = {
	"fa_code_status",
	"SELECT status FROM codes WHERE code = $1 AND firearm_id = $2",
	2,
};

static const struct msr_db_stmt stmt_insert_code = {
	"fa_insert_code",
	"INSERT INTO codes (code, scheme, component, firearm_id, replaces)"
	" VALUES ($1, $2, $3, $4, $5)"
	" ON CONFLICT (code) DO NOTHING RETURNING code",
	5,
};

/* ---- a registration request ---------------------------------------------- */

struct reg_code {
	char        code[MSR_CODE_MAX + 1];
	const char *scheme;        /* static strings from schemes[] */
	const char *component;     /* static strings from components[] */
	size_t      item;          /* index of its firearm in the request */
};

struct reg_item {
	const char *model, *serial, *type, *caliber, *made;   /* point into r->json */
	int64_t     id;                                        /* 0 until inserted */
};

struct reg {
	const char      *manufacturer;
	int              batch;        /* errors carry detail.index */
	struct reg_item *items;
	size_t           nitems;
	struct reg_code *codes;
	size_t           ncodes, capcodes;
};

static void
reg_free(struct reg *g)
{
	free(g->items);
	free(g->codes);
	memset(g, 0, sizeof(*g));
}

/* Name the offending item of a batch in the error already replied. */
static int
item_error(struct msr_req *r, const struct reg *g, size_t item)
{
	if (g->batch)
		msr_reply_add_detail(r, "index", json_integer((json_int_t)item));
	return -1;
}

/* ---- array parameters ---------------------------------------------------- */

/*
 * A PostgreSQL array literal being built: "{" elem "," elem ... "}". Every
 * element is double-quoted with '"' and '\' escaped, or the bare word NULL.
 */
struct arr {
	char   *p;
	size_t  len, cap;
	size_t  n;
	int     oom;
};

static void
arr_put(struct arr *a, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (a->oom)
		return;
	if (a->len + n + 2 > a->cap) {
		cap = a->cap ? a->cap : 256;
		while (a->len + n + 2 > cap)
			cap *= 2;
		p = realloc(a->p, cap);
		if (p == NULL) {
			a->oom = 1;
			return;
		}
		a->p = p;
		a->cap = cap;
	}
	memcpy(a->p + a->len, s, n);
	a->len += n;
	a->p[a->len] = '\0';
}

static void
arr_add(struct arr *a, const char *s)
{
	const char *q;

	arr_put(a, a->n++ == 0 ? "{" : ",", 1);
	if (s == NULL) {
		arr_put(a, "NULL", 4);
		return;
	}
	arr_put(a, "\"", 1);
	while (*s != '\0') {
		q = s + strcspn(s, "\"\\");
		arr_put(a, s, (size_t)(q - s));
		if (*q == '\0')
			break;
		arr_put(a, "\\", 1);
		arr_put(a, q, 1);
		s = q + 1;
	}
	arr_put(a, "\"", 1);
}

/* The finished literal, or NULL when out of memory. */
static const char *
arr_end(struct arr *a)
{
	if (a->n == 0)
		arr_put(a, "{", 1);
	arr_put(a, "}", 1);
	return a->oom ? NULL : a->p;
}

static void
arr_free(struct arr *a)
{
	free(a->p);
	memset(a, 0, sizeof(*a));
}

/* ---- parsing ------------------------------------------------------------- */

static int
caller_manufacturer(struct msr_req *r, const char **out)
{
	if (r->client.org[0] == '\0') {
		msr_reply_error(r, 403, "forbidden", NULL,
		    "this manufacturer key is not bound to a manufacturer");
		return -1;
	}
	*out = r->client.org;
	return 0;
}

/*
 * Normalise text as a code of the given scheme into out (canonical form).
 * Returns 0, or -1 after replying 400 invalid_code.
 */
static int
code_parse(struct msr_req *r, const char *field, const char *text, const char *scheme,
    char out[MSR_CODE_MAX + 1])
{
	uint8_t sym[CODE_TEXT_MAX];
	size_t n = 0;
	long bad_at = -1;

	if (msr_code_normalize(text, sym, sizeof(sym), &n, &bad_at) != 0) {
		msr_reply_error(r, 400, "invalid_code",
		    json_pack("{s:s, s:s, s:I}", "field", field, "code", text,
		    "offset", (json_int_t)bad_at),
		    "code \"%s\" has a character that is not a code symbol at offset %ld "
		    "(codes use Crockford base32: 0-9 and A-Z without U; I and L read as 1, "
		    "O as 0; hyphens and spaces are ignored)", text, bad_at);
		return -1;
	}
	if (strcmp(scheme, "rs8") == 0) {
		if (n != MSR_RS8_LEN) {
			msr_reply_error(r, 400, "invalid_code",
			    json_pack("{s:s, s:s, s:I}", "field", field, "code", text,
			    "symbols", (json_int_t)n),
			    "code has %zu symbols; rs8 codes have 8", n);
			return -1;
		}
		if (!msr_rs8_valid(sym)) {
			msr_code_format(sym, n, out);
			msr_reply_error(r, 400, "invalid_code",
			    json_pack("{s:s, s:s}", "field", field, "code", out),
			    "code %s is not an rs8 codeword: its check symbols do not match "
			    "(a character may be mistyped)", out);
			return -1;
		}
	} else if (n < MSR_FREE_MIN || n > MSR_FREE_MAX) {
		msr_reply_error(r, 400, "invalid_code",
		    json_pack("{s:s, s:s, s:I}", "field", field, "code", text,
		    "symbols", (json_int_t)n),
		    "code has %zu symbols; free codes have %d to %d", n, MSR_FREE_MIN,
		    MSR_FREE_MAX);
		return -1;
	}
	msr_code_format(sym, n, out);
	return 0;
}

/* code_parse's checks without a reply: 0 with out canonical, or -1. */
static int
code_canon(const char *text, const char *scheme, char out[MSR_CODE_MAX + 1])
{
	uint8_t sym[CODE_TEXT_MAX];
	size_t n = 0;
	long bad_at = -1;

	if (strlen(text) > CODE_TEXT_MAX ||
	    msr_code_normalize(text, sym, sizeof(sym), &n, &bad_at) != 0)
		return -1;
	if (strcmp(scheme, "rs8") == 0) {
		if (n != MSR_RS8_LEN || !msr_rs8_valid(sym))
			return -1;
	} else if (n < MSR_FREE_MIN || n > MSR_FREE_MAX) {
		return -1;
	}
	msr_code_format(sym, n, out);
	return 0;
}

/* Room for one more code in g; -1 when out of memory. */
static int
reg_grow_codes(struct reg *g)
{
	struct reg_code *nc;
	size_t cap;

	if (g->ncodes < g->capcodes)
		return 0;
	cap = g->capcodes ? g->capcodes * 2 : 16;
	nc = realloc(g->codes, cap * sizeof(*nc));
	if (nc == NULL)
		return -1;
	g->codes = nc;
	g->capcodes = cap;
	return 0;
}

static int
reg_add_code(struct msr_req *r, struct reg *g, json_t *obj, size_t item, size_t j)
{
	static const char *const keys[] = { "code", "component", "scheme", NULL };
	const char *text = NULL, *component = NULL, *scheme = "rs8";
	struct reg_code *c;

	if (!json_is_object(obj)) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "codes"),
		    "codes[%zu] must be an object {\"code\", \"component\", \"scheme\"}", j);
		goto fail;
	}
	if (msr_jv_known_keys(r, obj, keys) != 0 ||
	    msr_jv_string(r, obj, "code", 1, CODE_TEXT_MAX, &text) != 0 ||
	    msr_jv_enum(r, obj, "component", 1, components, &component) != 0 ||
	    msr_jv_enum(r, obj, "scheme", 0, schemes, &scheme) != 0)
		goto fail;
	if (reg_grow_codes(g) != 0) {
		msr_reply_unavailable(r, "out of memory");
		return -1;
	}
	c = &g->codes[g->ncodes];
	if (code_parse(r, "code", text, scheme, c->code) != 0)
		goto fail;
	c->scheme = scheme;
	c->component = component;
	c->item = item;
	g->ncodes++;
	return 0;
fail:
	msr_reply_add_detail(r, "code_index", json_integer((json_int_t)j));
	return item_error(r, g, item);
}

static int
reg_add_item(struct msr_req *r, struct reg *g, json_t *obj, size_t i)
{
	static const char *const keys[] = { "manufacturer", "model", "serial", "type",
	    "caliber", "manufactured_on", "codes", NULL };
	struct reg_item *it = &g->items[i];
	const char *manufacturer = NULL;
	json_t *codes, *c;
	size_t j, len;

	if (!json_is_object(obj)) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "firearms"),
		    "firearms[%zu] must be an object", i);
		return item_error(r, g, i);
	}
	if (msr_jv_known_keys(r, obj, keys) != 0 ||
	    msr_jv_string(r, obj, "manufacturer", 0, 64, &manufacturer) != 0 ||
	    msr_jv_string(r, obj, "model", 1, MODEL_MAX, &it->model) != 0 ||
	    msr_jv_string(r, obj, "serial", 1, SERIAL_MAX, &it->serial) != 0 ||
	    msr_jv_string(r, obj, "type", 1, TEXT_MAX, &it->type) != 0 ||
	    msr_jv_string(r, obj, "caliber", 1, TEXT_MAX, &it->caliber) != 0 ||
	    msr_jv_date(r, obj, "manufactured_on", 0, 1, &it->made) != 0)
		return item_error(r, g, i);
	if (manufacturer != NULL && strcmp(manufacturer, g->manufacturer) != 0) {
		msr_reply_error(r, 403, "forbidden",
		    json_pack("{s:s}", "field", "manufacturer"),
		    "this key registers firearms for manufacturer %s only", g->manufacturer);
		return item_error(r, g, i);
	}
	codes = json_object_get(obj, "codes");
	len = json_array_size(codes);
	if (!json_is_array(codes) || len == 0 || len > CODES_MAX) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "codes"),
		    "codes must be an array of 1 to %d codes", CODES_MAX);
		return item_error(r, g, i);
	}
	json_array_foreach(codes, j, c)
		if (reg_add_code(r, g, c, i, j) != 0)
			return -1;
	return 0;
}

static int
cmp_code(const void *a, const void *b)
{
	const struct reg_code *x = a, *y = b;

	return strcmp(x->code, y->code);
}

struct serial_ref {
	const char *serial;
	size_t      item;
};

static int
cmp_serial(const void *a, const void *b)
{
	const struct serial_ref *x = a, *y = b;

	return strcmp(x->serial, y->serial);
}

/*
 * Sort the codes and refuse a code given twice; *order gets the items sorted
 * by serial (caller frees) and a serial given twice is refused. The offending
 * item of a duplicate pair is the later one; of several pairs, the earliest
 * such item.
 */
static int
reg_check_duplicates(struct msr_req *r, struct reg *g, struct serial_ref **order)
{
	struct serial_ref *s;
	size_t bad = SIZE_MAX, later, k;
	const char *what = NULL;

	*order = NULL;
	if (g->ncodes > 1)
		qsort(g->codes, g->ncodes, sizeof(*g->codes), cmp_code);
	for (k = 1; k < g->ncodes; k++) {
		if (strcmp(g->codes[k - 1].code, g->codes[k].code) != 0)
			continue;
		later = g->codes[k].item > g->codes[k - 1].item ? g->codes[k].item :
		    g->codes[k - 1].item;
		if (later < bad) {
			bad = later;
			what = g->codes[k].code;
		}
	}
	if (what != NULL) {
		msr_reply_error(r, 409, "conflict", json_pack("{s:s}", "code", what),
		    "code %s appears more than once in this request", what);
		return item_error(r, g, bad);
	}
	s = calloc(g->nitems, sizeof(*s));
	if (s == NULL) {
		msr_reply_unavailable(r, "out of memory");
		return -1;
	}
	for (k = 0; k < g->nitems; k++) {
		s[k].serial = g->items[k].serial;
		s[k].item = k;
	}
	qsort(s, g->nitems, sizeof(*s), cmp_serial);
	for (k = 1; k < g->nitems; k++) {
		if (strcmp(s[k - 1].serial, s[k].serial) != 0)
			continue;
		later = s[k].item > s[k - 1].item ? s[k].item : s[k - 1].item;
		if (later < bad) {
			bad = later;
			what = s[k].serial;
		}
	}
	if (what != NULL) {
		msr_reply_error(r, 409, "conflict", json_pack("{s:s}", "serial", what),
		    "serial %s appears more than once in this request", what);
		free(s);
		return item_error(r, g, bad);
	}
	*order = s;
	return 0;
}

/* ---- writing ------------------------------------------------------------- */

/* A failed statement: retry, 409, or 503. Clears res. */
static int
db_failed(struct msr_req *r, PGresult *res, const char *what)
{
	const char *state = msr_db_sqlstate(res);
	int ret = W_REPLIED;

	if (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0) {
		ret = W_RETRY;
	} else if (strcmp(state, "23505") == 0) {
		msr_reply_error(r, 409, "conflict", NULL,
		    "a code or serial in this request is already registered");
	} else {
		log_warn("%s failed: %s", what,
		    res ? PQresultErrorMessage(res) : "connection lost");
		msr_reply_unavailable(r, "the database is unavailable");
	}
	PQclear(res);
	return ret;
}

/* Run a statement expected to succeed; 0 with *out (caller clears), or W_*. */
static int
run(struct msr_req *r, const struct msr_db_stmt *s, const char *const *values,
    PGresult **out)
{
	PGresult *res = msr_db_exec(r->db, s, values);

	*out = NULL;
	if (!msr_db_ok(res))
		return db_failed(r, res, s->name);
	*out = res;
	return W_OK;
}

/* The earliest item holding one of the codes in res column 0 (SIZE_MAX if none). */
static size_t
earliest_code(const struct reg *g, const PGresult *res, size_t *which)
{
	size_t bad = SIZE_MAX;

	for (int i = 0; i < PQntuples(res); i++) {
		const char *code = PQgetvalue(res, i, 0);
		for (size_t k = 0; k < g->ncodes; k++)
			if (g->codes[k].item < bad && strcmp(g->codes[k].code, code) == 0) {
				bad = g->codes[k].item;
				*which = k;
			}
	}
	return bad;
}

static int
reserved_elsewhere(struct msr_req *r, const struct reg *g, const PGresult *res)
{
	size_t which = 0, bad = earliest_code(g, res, &which);

	msr_reply_error(r, 409, "conflict", json_pack("{s:s, s:s}", "code",
	    g->codes[which].code, "reason", "unavailable"), CODE_UNAVAILABLE,
	    g->codes[which].code);
	item_error(r, g, bad == SIZE_MAX ? 0 : bad);
	return W_REPLIED;
}

/*
 * Refuse 8-symbol codes reserved to another manufacturer and claim the
 * unallocated ones for the caller (invariant 2).
 */
static int
check_owners(struct msr_req *r, const struct reg *g)
{
	struct arr a = { 0 }, claim = { 0 };
	const char *values[2];
	PGresult *res = NULL;
	int ret = W_OK, i;

	for (size_t k = 0; k < g->ncodes; k++)
		if (strlen(g->codes[k].code) == MSR_RS8_LEN)
			arr_add(&a, g->codes[k].code);
	if (a.n == 0)
		goto done;
	values[0] = arr_end(&a);
	values[1] = g->manufacturer;
	if (values[0] == NULL)
		goto oom;
	ret = run(r, &stmt_owners, values, &res);
	if (ret != W_OK || PQntuples(res) == 0)
		goto done;
	for (i = 0; i < PQntuples(res); i++)
		if (!PQgetisnull(res, i, 1)) {
			ret = reserved_elsewhere(r, g, res);
			goto done;
		}
	/* unallocated codewords: claim them (in code order, invariant 4), then look
	 * again (a racing claim may win) */
	for (i = 0; i < PQntuples(res); i++)
		arr_add(&claim, PQgetvalue(res, i, 0));
	PQclear(res);
	res = NULL;
	values[0] = arr_end(&claim);
	if (values[0] == NULL)
		goto oom;
	ret = run(r, &stmt_claim, values, &res);
	if (ret != W_OK)
		goto done;
	PQclear(res);
	res = NULL;
	ret = run(r, &stmt_owners, values, &res);
	if (ret == W_OK && PQntuples(res) > 0)
		ret = reserved_elsewhere(r, g, res);
	goto done;
oom:
	msr_reply_unavailable(r, "out of memory");
	ret = W_REPLIED;
done:
	PQclear(res);
	arr_free(&a);
	arr_free(&claim);
	return ret;
}

/* One nextval per firearm, in request order. */
static int
assign_ids(struct msr_req *r, struct reg *g)
{
	char n[24];
	const char *values[1] = { n };
	PGresult *res = NULL;
	int ret;

	snprintf(n, sizeof(n), "%zu", g->nitems);
	ret = run(r, &stmt_ids, values, &res);
	if (ret == W_OK && (size_t)PQntuples(res) != g->nitems) {
		msr_reply_unavailable(r, "the database returned too few firearm ids");
		ret = W_REPLIED;
	}
	for (size_t k = 0; ret == W_OK && k < g->nitems; k++)
		g->items[k].id = strtoll(PQgetvalue(res, (int)k, 0), NULL, 10);
	PQclear(res);
	return ret;
}

/*
 * After a unique violation (transaction rolled back): find the earliest item
 * whose serial or code is taken and reply 409.
 */
static int
explain_conflict(struct msr_req *r, const struct reg *g, const char *constraint)
{
	struct arr keys = { 0 };
	const char *values[2];
	PGresult *res = NULL;
	size_t bad = SIZE_MAX, which = 0, k;
	int serial = strcmp(constraint, "codes_pkey") != 0;
	int ret;

	if (serial)
		for (k = 0; k < g->nitems; k++)
			arr_add(&keys, g->items[k].serial);
	else
		for (k = 0; k < g->ncodes; k++)
			arr_add(&keys, g->codes[k].code);
	if (arr_end(&keys) == NULL) {
		msr_reply_unavailable(r, "out of memory");
		ret = W_REPLIED;
		goto done;
	}
	if (serial) {
		values[0] = g->manufacturer;
		values[1] = keys.p;
		ret = run(r, &stmt_serials_taken, values, &res);
	} else {
		values[0] = keys.p;
		ret = run(r, &stmt_codes_taken, values, &res);
	}
	if (ret != W_OK)
		goto done;
	if (serial) {
		for (int i = 0; i < PQntuples(res); i++)
			for (k = 0; k < g->nitems && k < bad; k++)
				if (strcmp(g->items[k].serial, PQgetvalue(res, i, 0)) == 0)
					bad = k;
	} else {
		bad = earliest_code(g, res, &which);
	}
	if (bad == SIZE_MAX) {
		/* the conflicting writer rolled back after all: let the client retry */
		msr_reply_error(r, 409, "conflict", NULL,
		    "a %s in this request was being registered concurrently; retry",
		    serial ? "serial" : "code");
	} else if (serial) {
		msr_reply_error(r, 409, "conflict",
		    json_pack("{s:s, s:s}", "serial", g->items[bad].serial,
		    "manufacturer", g->manufacturer),
		    "serial %s is already registered for manufacturer %s",
		    g->items[bad].serial, g->manufacturer);
		item_error(r, g, bad);
	} else {
		msr_reply_error(r, 409, "conflict", json_pack("{s:s, s:s}", "code",
		    g->codes[which].code, "reason", "unavailable"), CODE_UNAVAILABLE,
		    g->codes[which].code);
		item_error(r, g, bad);
	}
	ret = W_REPLIED;
done:
	PQclear(res);
	arr_free(&keys);
	return ret;
}

static int
notify_codes(struct msr_req *r)
{
	PGresult *res = NULL;
	int ret = run(r, &stmt_notify, NULL, &res);

	PQclear(res);
	return ret;
}

/* One field of a COPY text-format row; NULL is \\N. Fields hold no control
 * characters (msr_jv_string refuses them), but escape them all the same. */
static void
copy_field(struct arr *a, const char *s, char sep)
{
	const char *q;

	if (s == NULL) {
		arr_put(a, "\\N", 2);
	} else {
		while (*s != '\0') {
			q = s + strcspn(s, "\\\t\n\r");
			arr_put(a, s, (size_t)(q - s));
			if (*q == '\0')
				break;
			arr_put(a, *q == '\\' ? "\\\\" : *q == '\t' ? "\\t" :
			    *q == '\n' ? "\\n" : "\\r", 2);
			s = q + 1;
		}
	}
	arr_put(a, &sep, 1);
}

static void
copy_int(struct arr *a, long long v, char sep)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%lld", v);
	copy_field(a, buf, sep);
}

/*
 * COPY rows into a table. The command text is fixed (never built from
 * input); the rows travel as COPY data. Returns 0, or -1 with *err the failed
 * result (caller clears; NULL when the connection failed, which marks it
 * broken).
 */
static int
copy_in(struct msr_req *r, const char *sql, const struct arr *rows, PGresult **err)
{
	PGconn *pg = r->db->pg;
	PGresult *res, *last = NULL;
	int ok = 0;

	*err = NULL;
	res = PQexec(pg, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		*err = res;
		goto done;
	}
	PQclear(res);
	if (PQputCopyData(pg, rows->p, (int)rows->len) != 1 || PQputCopyEnd(pg, NULL) != 1)
		goto done;
	while ((res = PQgetResult(pg)) != NULL) {
		if (last == NULL)
			last = res;
		else
			PQclear(res);
	}
	ok = PQresultStatus(last) == PGRES_COMMAND_OK;
	if (ok)
		PQclear(last);
	else
		*err = last;
done:
	if (!ok && PQstatus(pg) != CONNECTION_OK)
		r->db->broken = 1;
	return ok ? 0 : -1;
}

/*
 * Insert the firearms (in serial order) and their codes (in code order): one
 * COPY per table, the bulk path of PostgreSQL, then notify the search feed.
 */
static int
insert_all(struct msr_req *r, const struct reg *g, const struct serial_ref *order)
{
	struct arr firearms = { 0 }, codes = { 0 };
	char constraint[64];
	PGresult *res = NULL;
	size_t k;
	int ret = W_OK;

	for (k = 0; k < g->nitems; k++) {
		const struct reg_item *it = &g->items[order[k].item];
		copy_int(&firearms, (long long)it->id, '\t');
		copy_field(&firearms, g->manufacturer, '\t');
		copy_field(&firearms, it->model, '\t');
		copy_field(&firearms, it->serial, '\t');
		copy_field(&firearms, it->type, '\t');
		copy_field(&firearms, it->caliber, '\t');
		copy_field(&firearms, it->made, '\t');
		copy_int(&firearms, (long long)r->client.id, '\n');
	}
	for (k = 0; k < g->ncodes; k++) {
		copy_field(&codes, g->codes[k].code, '\t');
		copy_field(&codes, g->codes[k].scheme, '\t');
		copy_field(&codes, g->codes[k].component, '\t');
		copy_int(&codes, (long long)g->items[g->codes[k].item].id, '\n');
	}
	if (firearms.oom || codes.oom) {
		msr_reply_unavailable(r, "out of memory");
		ret = W_REPLIED;
		goto done;
	}
	if (copy_in(r, "COPY firearms (id, manufacturer_id, model, serial, type, caliber,"
	    " manufactured_on, created_by) FROM STDIN", &firearms, &res) != 0 ||
	    copy_in(r, "COPY codes (code, scheme, component, firearm_id) FROM STDIN",
	    &codes, &res) != 0)
		goto failed;
	ret = notify_codes(r);
	goto done;
failed:
	if (strcmp(msr_db_sqlstate(res), "23505") != 0) {
		ret = db_failed(r, res, "registration COPY");
		res = NULL;
		goto done;
	}
	snprintf(constraint, sizeof(constraint), "%s",
	    PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) ?
	    PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : "");
	if (msr_db_command(r->db, "ROLLBACK") != 0) {
		msr_reply_unavailable(r, "the database is unavailable");
		ret = W_REPLIED;
		goto done;
	}
	ret = explain_conflict(r, g, constraint);
done:
	PQclear(res);
	arr_free(&firearms);
	arr_free(&codes);
	return ret;
}

/* The stored firearm as JSON (*out, caller decrefs), or NULL if not the caller's. */
static int
fetch_firearm(struct msr_req *r, int64_t id, const char *manufacturer, json_t **out)
{
	char idtext[24];
	const char *values[2] = { idtext, manufacturer };
	PGresult *res = NULL;
	int ret;

	*out = NULL;
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	ret = run(r, &stmt_firearm_json, values, &res);
	if (ret != W_OK || PQntuples(res) == 0)
		goto done;
	*out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	if (*out == NULL) {
		msr_reply_unavailable(r, "the database returned an unreadable firearm");
		ret = W_REPLIED;
	}
done:
	PQclear(res);
	return ret;
}

/* The middleware commits once the request's audit entry is durable. */
static int
commit(struct msr_req *r)
{
	msr_req_commit(r);
	return W_OK;
}

/* One attempt at writing the whole registration (BEGIN ... COMMIT). */
static int
reg_write(struct msr_req *r, struct reg *g, const struct serial_ref *order, json_t **one)
{
	int ret;

	if (msr_db_command(r->db, "BEGIN") != 0) {
		msr_reply_unavailable(r, "the database is unavailable");
		return W_REPLIED;
	}
	ret = check_owners(r, g);
	if (ret == W_OK)
		ret = assign_ids(r, g);
	if (ret == W_OK)
		ret = insert_all(r, g, order);
	if (ret == W_OK && one != NULL)
		ret = fetch_firearm(r, g->items[0].id, g->manufacturer, one);
	if (ret == W_OK)
		ret = commit(r);
	/* a no-op when insert_all already rolled back */
	if (ret != W_OK)
		msr_db_command(r->db, "ROLLBACK");
	return ret;
}

/* Validate and store g; 0 on success (ids filled), -1 after replying. */
static int
reg_store(struct msr_req *r, struct reg *g, json_t **one)
{
	struct serial_ref *order = NULL;
	int ret = -1, w = W_RETRY;

	if (reg_check_duplicates(r, g, &order) != 0 || msr_req_db(r) == NULL)
		goto done;
	for (int attempt = 0; attempt < MAX_ATTEMPTS && w == W_RETRY; attempt++)
		w = reg_write(r, g, order, one);
	if (w == W_RETRY) {
		msr_reply_unavailable(r, "the registration kept conflicting with concurrent "
		    "writes; retry it");
		goto done;
	}
	ret = w == W_OK ? 0 : -1;
done:
	free(order);
	return ret;
}

/* ---- handlers ------------------------------------------------------------ */

void
msr_h_firearm_create(struct msr_req *r)
{
	struct reg g = { 0 };
	json_t *firearm = NULL, *codes;

	if (caller_manufacturer(r, &g.manufacturer) != 0)
		goto done;
	g.items = calloc(1, sizeof(*g.items));
	if (g.items == NULL) {
		msr_reply_unavailable(r, "out of memory");
		goto done;
	}
	g.nitems = 1;
	if (reg_add_item(r, &g, r->json, 0) != 0)
		goto done;
	msr_audit_note(r, "serial", json_string(g.items[0].serial));
	codes = json_array();
	for (size_t k = 0; k < g.ncodes; k++)
		json_array_append_new(codes, json_string(g.codes[k].code));
	msr_audit_note(r, "codes", codes);
	if (reg_store(r, &g, &firearm) != 0)
		goto done;
	msr_audit_note(r, "firearm_id", json_integer(g.items[0].id));
	msr_reply_json(r, 201, firearm);
	firearm = NULL;
done:
	json_decref(firearm);
	reg_free(&g);
}

/*
 * The batch's ids in request order as [first, last] runs of consecutive ids:
 * exact, and a few bytes in the audit entry instead of one number per firearm
 * (ids come from one nextval per firearm in one statement, so they are
 * consecutive unless a concurrent registration took some in between).
 */
static json_t *
id_ranges(const struct reg *g)
{
	json_t *runs = json_array();
	size_t i, start = 0;

	for (i = 1; i <= g->nitems; i++) {
		if (i < g->nitems && g->items[i].id == g->items[i - 1].id + 1)
			continue;
		json_array_append_new(runs, json_pack("[I, I]", (json_int_t)g->items[start].id,
		    (json_int_t)g->items[i - 1].id));
		start = i;
	}
	return runs;
}


/* ---- batch bodies without a JSON tree ----------------------------------- */

/*
 * A 10,000-firearm batch is a 1.7 MB body of one fixed shape. Building a jansson
 * tree of it (about fifteen allocations per firearm, hash tables included) and
 * freeing it again was most of msregd's own time per batch, work COPY does not
 * do. fast_parse reads that shape straight into a struct reg: strings of
 * printable ASCII without escapes, NUL-terminated in place in the body (every
 * NUL it writes replaces a closing '"', and it never steps over a NUL it did
 * not write, so giving up restores the body exactly), each known key at most
 * once, every check of reg_add_item and reg_add_code passing. On anything else
 * it gives up (returns 1) and the handler parses the body as the middleware
 * does for MSR_R_JSON_BODY routes (Content-Type, pre-scan bounds, jansson) and
 * validates it exactly as before, so every refusal and its detail is the full
 * path's own: the fast path accepts only bodies that the full path accepts,
 * with the same result. Bounded: one pass over the body, no recursion, memory
 * proportional to the items (less than the tree it replaces).
 */
struct fp {
	char *p, *end;
};

static void
fp_ws(struct fp *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' ||
	    *f->p == '\r'))
		f->p++;
}

/* Consume c after optional whitespace; 1 if it was there. */
static int
fp_ch(struct fp *f, char c)
{
	fp_ws(f);
	if (f->p < f->end && *f->p == c) {
		f->p++;
		return 1;
	}
	return 0;
}

/* A string of printable ASCII without escapes, NUL-terminated in place. */
static char *
fp_str(struct fp *f)
{
	char *s;

	fp_ws(f);
	if (f->p >= f->end || *f->p != '"')
		return NULL;
	s = ++f->p;
	while (f->p < f->end && *f->p != '"') {
		unsigned char c = (unsigned char)*f->p;

		if (c < 0x20 || c >= 0x7f || c == '\\')
			return NULL;
		f->p++;
	}
	if (f->p >= f->end)
		return NULL;
	*f->p++ = '\0';
	return s;
}

/* msr_jv_string's checks for a string of printable ASCII. */
static int
fp_text_ok(const char *s, size_t maxlen)
{
	size_t n = strlen(s);

	return n > 0 && n <= maxlen && strspn(s, " ") != n;
}

static const char *
fp_enum(const char *s, const char *const *allowed)
{
	for (size_t i = 0; allowed[i] != NULL; i++)
		if (strcmp(s, allowed[i]) == 0)
			return allowed[i];
	return NULL;
}

/* msr_jv_date's checks (not in the future), for printable ASCII. */
static int
fp_date_ok(const char *s)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	char today[11];
	time_t now = time(NULL);
	struct tm tm;
	int y, m, d, leap;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
	    strspn(s, "0123456789") != 4 || strspn(s + 5, "0123456789") != 2 ||
	    strspn(s + 8, "0123456789") != 2)
		return 0;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 1800 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
	    (m == 2 && d == 29 && !leap))
		return 0;
	gmtime_r(&now, &tm);
	strftime(today, sizeof(today), "%Y-%m-%d", &tm);
	return strcmp(s, today) <= 0;
}

/* One code object {"code", "component"[, "scheme"]}; 0, or 1 to give up. */
static int
fp_code(struct fp *f, struct reg *g, size_t item)
{
	const char *text = NULL, *component = NULL, *scheme = "rs8", *v;
	unsigned seen = 0, bit;
	struct reg_code *c;
	char *k;

	if (!fp_ch(f, '{'))
		return 1;
	do {
		if ((k = fp_str(f)) == NULL || !fp_ch(f, ':') || (v = fp_str(f)) == NULL)
			return 1;
		if (strcmp(k, "code") == 0) {
			bit = 1;
			text = v;
		} else if (strcmp(k, "component") == 0) {
			bit = 2;
			component = fp_enum(v, components);
		} else if (strcmp(k, "scheme") == 0) {
			bit = 4;
			scheme = fp_enum(v, schemes);
		} else {
			return 1;
		}
		if (seen & bit)
			return 1;
		seen |= bit;
	} while (fp_ch(f, ','));
	if (!fp_ch(f, '}') || text == NULL || component == NULL || scheme == NULL ||
	    !fp_text_ok(text, CODE_TEXT_MAX) || reg_grow_codes(g) != 0)
		return 1;
	c = &g->codes[g->ncodes];
	if (code_canon(text, scheme, c->code) != 0)
		return 1;
	c->scheme = scheme;
	c->component = component;
	c->item = item;
	g->ncodes++;
	return 0;
}

/* One firearm object; 0, or 1 to give up. */
static int
fp_item(struct fp *f, struct reg *g, struct reg_item *it, size_t item)
{
	static const char *const keys[] = { "manufacturer", "model", "serial", "type",
	    "caliber", "manufactured_on", "codes", NULL };
	const char **field[] = { NULL, &it->model, &it->serial, &it->type, &it->caliber,
	    &it->made };
	unsigned seen = 0, i, ncodes = 0;
	char *k, *v;

	memset(it, 0, sizeof(*it));
	if (!fp_ch(f, '{'))
		return 1;
	do {
		if ((k = fp_str(f)) == NULL || !fp_ch(f, ':'))
			return 1;
		for (i = 0; keys[i] != NULL && strcmp(k, keys[i]) != 0; i++)
			;
		if (keys[i] == NULL || (seen & (1u << i)))
			return 1;
		seen |= 1u << i;
		if (i == 6) {
			if (!fp_ch(f, '['))
				return 1;
			do {
				if (++ncodes > CODES_MAX || fp_code(f, g, item) != 0)
					return 1;
			} while (fp_ch(f, ','));
			if (!fp_ch(f, ']'))
				return 1;
			continue;
		}
		if ((v = fp_str(f)) == NULL)
			return 1;
		if (i == 0) {
			if (!fp_text_ok(v, 64) || strcmp(v, g->manufacturer) != 0)
				return 1;
		} else {
			*field[i] = v;
		}
	} while (fp_ch(f, ','));
	if (!fp_ch(f, '}') || (seen & 0x5e) != 0x5e ||
	    !fp_text_ok(it->model, MODEL_MAX) || !fp_text_ok(it->serial, SERIAL_MAX) ||
	    !fp_text_ok(it->type, TEXT_MAX) || !fp_text_ok(it->caliber, TEXT_MAX) ||
	    (it->made != NULL && !fp_date_ok(it->made)))
		return 1;
	return 0;
}

/*
 * The whole body {"firearms": [...]} into g (manufacturer and batch set);
 * 0 when every item passed, 1 to take the full path (g reset), -1 out of memory.
 */
static int
fast_parse(struct msr_req *r, struct reg *g, size_t max)
{
	struct fp f;
	size_t cap = 0;
	char *k;

	if (r->body == NULL || r->body_len == 0)
		return 1;
	f.p = r->body;
	f.end = r->body + r->body_len;
	if (!fp_ch(&f, '{') || (k = fp_str(&f)) == NULL || strcmp(k, "firearms") != 0 ||
	    !fp_ch(&f, ':') || !fp_ch(&f, '['))
		goto give_up;
	do {
		if (g->nitems == max)
			goto give_up;
		if (g->nitems == cap) {
			struct reg_item *ni;

			cap = cap ? 2 * cap : 1024;
			if (cap > max)
				cap = max;
			ni = realloc(g->items, cap * sizeof(*ni));
			if (ni == NULL)
				goto give_up;
			g->items = ni;
		}
		if (fp_item(&f, g, &g->items[g->nitems], g->nitems) != 0)
			goto give_up;
		g->nitems++;
	} while (fp_ch(&f, ','));
	if (!fp_ch(&f, ']') || !fp_ch(&f, '}'))
		goto give_up;
	fp_ws(&f);
	if (f.p != f.end)
		goto give_up;
	return 0;
give_up:
	/* put back the quotes: every NUL before f.p is one this pass wrote */
	for (char *q = r->body; q < f.p && q < f.end; q++)
		if (*q == '\0')
			*q = '"';
	free(g->items);
	free(g->codes);
	g->items = NULL;
	g->codes = NULL;
	g->nitems = g->ncodes = g->capcodes = 0;
	return 1;
}

/*
 * The full path's parse, as the middleware's parse_body does for routes with
 * MSR_R_JSON_BODY (this route parses its own body, see above): the same
 * pre-scan bounds and errors, then jansson. 0 with r->json an object, or -1
 * after replying. (parse_body also charges the tree to the global body-memory
 * budget; that function is static in http.c, so this copy cannot: the tree
 * stays bounded by [http] json_max_values.)
 */
static int
batch_json(struct msr_req *r)
{
	const struct msr_config *cfg = r->srv->cfg;
	json_error_t jerr;
	size_t values;
	int depth;

	msr_json_prescan(r->body ? r->body : "", r->body_len, &values, &depth);
	if (depth > cfg->http_json_max_depth) {
		msr_reply_error(r, 400, "invalid_json",
		    json_pack("{s:i}", "max_depth", cfg->http_json_max_depth),
		    "the JSON nests deeper than %d levels", cfg->http_json_max_depth);
		return -1;
	}
	if (values > (size_t)cfg->http_json_max_values) {
		msr_reply_error(r, 413, "body_too_large",
		    json_pack("{s:i}", "max_values", cfg->http_json_max_values),
		    "the JSON holds more than %d values", cfg->http_json_max_values);
		return -1;
	}
	r->json = json_loadb(r->body ? r->body : "", r->body_len, JSON_REJECT_DUPLICATES,
	    &jerr);
	if (r->json == NULL) {
		msr_reply_error(r, 400, "invalid_json",
		    json_pack("{s:i, s:i}", "line", jerr.line, "column", jerr.column),
		    "malformed JSON: %s", jerr.text);
		return -1;
	}
	if (!json_is_object(r->json)) {
		msr_reply_error(r, 400, "invalid_json", NULL,
		    "the request body must be a JSON object");
		return -1;
	}
	return 0;
}

/* The middleware's Content-Type rule for JSON bodies. */
static int
batch_content_type_ok(struct msr_req *r)
{
	const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n = strlen("application/json");

	if (ct == NULL)
		return 0;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, "application/json", n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ')
		ct++;
	return *ct == '\0' || *ct == ';';
}

void
msr_h_firearm_batch(struct msr_req *r)
{
	static const char *const keys[] = { "firearms", NULL };
	struct reg g = { 0 };
	json_t *list, *ids = NULL, *item;
	size_t max = (size_t)r->srv->cfg->limits_batch_max, i;
	int fast = 1;

	g.batch = 1;
	if (!batch_content_type_ok(r)) {
		msr_reply_error(r, 415, "unsupported_media_type", NULL,
		    "the request body must be application/json");
		goto done;
	}
	if (r->client.org[0] != '\0') {
		g.manufacturer = r->client.org;
		fast = fast_parse(r, &g, max);
		if (fast < 0) {
			msr_reply_unavailable(r, "out of memory");
			goto done;
		}
	}
	if (fast == 0) {
		msr_audit_note(r, "submitted", json_integer((json_int_t)g.nitems));
		goto store;
	}
	if (batch_json(r) != 0 || caller_manufacturer(r, &g.manufacturer) != 0 ||
	    msr_jv_known_keys(r, r->json, keys) != 0)
		goto done;
	list = json_object_get(r->json, "firearms");
	if (!json_is_array(list) || json_array_size(list) == 0 ||
	    json_array_size(list) > max) {
		msr_reply_error(r, 400, "invalid_field",
		    json_pack("{s:s, s:I}", "field", "firearms", "max", (json_int_t)max),
		    "firearms must be an array of 1 to %zu firearms", max);
		goto done;
	}
	g.nitems = json_array_size(list);
	g.items = calloc(g.nitems, sizeof(*g.items));
	if (g.items == NULL) {
		msr_reply_unavailable(r, "out of memory");
		goto done;
	}
	msr_audit_note(r, "submitted", json_integer((json_int_t)g.nitems));
	json_array_foreach(list, i, item)
		if (reg_add_item(r, &g, item, i) != 0)
			goto done;
store:
	if (reg_store(r, &g, NULL) != 0)
		goto done;
	ids = json_array();
	for (i = 0; i < g.nitems; i++)
		json_array_append_new(ids, json_integer(g.items[i].id));
	msr_audit_note(r, "created", json_integer((json_int_t)g.nitems));
	msr_audit_note(r, "codes", json_integer((json_int_t)g.ncodes));
	msr_audit_note(r, "firearm_id_ranges", id_ranges(&g));
	msr_reply_json(r, 201, json_pack("{s:I, s:o}", "created", (json_int_t)g.nitems,
	    "ids", ids));
done:
	reg_free(&g);
}

/* Parse the {id} path segment; 0, or -1 after replying. */
static int
path_id(struct msr_req *r, int64_t *id)
{
	if (msr_parse_id(r->capture[0], id) != 0) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "id"),
		    "firearm id must be a positive integer");
		return -1;
	}
	return 0;
}

static void
not_found(struct msr_req *r, int64_t id)
{
	msr_reply_error(r, 404, "not_found", json_pack("{s:I}", "id", (json_int_t)id),
	    "no firearm %lld of this manufacturer", (long long)id);
}

void
msr_h_firearm_get(struct msr_req *r)
{
	const char *manufacturer;
	json_t *firearm = NULL;
	int64_t id;
	int ret;

	if (caller_manufacturer(r, &manufacturer) != 0 || path_id(r, &id) != 0)
		return;
	msr_audit_note(r, "firearm_id", json_integer(id));
	if (msr_req_db(r) == NULL)
		return;
	ret = fetch_firearm(r, id, manufacturer, &firearm);
	if (ret == W_RETRY)
		msr_reply_unavailable(r, "the database is busy; retry");
	if (ret != W_OK)
		return;
	if (firearm == NULL) {
		not_found(r, id);
		return;
	}
	msr_audit_note(r, "codes", json_integer((json_int_t)json_array_size(
	    json_object_get(firearm, "codes"))));
	msr_reply_json(r, 200, firearm);
}

/* The replacement's steps inside one transaction. */
static int
replace_write(struct msr_req *r, struct reg *g, int64_t id, const char *replaces,
    json_t **out)
{
	char idtext[24];
	const char *values[5];
	PGresult *res = NULL;
	int ret;

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	if (msr_db_command(r->db, "BEGIN") != 0) {
		msr_reply_unavailable(r, "the database is unavailable");
		return W_REPLIED;
	}
	values[0] = idtext;
	values[1] = g->manufacturer;
	ret = run(r, &stmt_lock_firearm, values, &res);
	if (ret != W_OK)
		goto done;
	if (PQntuples(res) == 0) {
		not_found(r, id);
		ret = W_REPLIED;
		goto done;
	}
	PQclear(res);
	res = NULL;
	if (replaces != NULL) {
		values[0] = replaces;
		values[1] = idtext;
		ret = run(r, &stmt_retire, values, &res);
		if (ret != W_OK)
			goto done;
		if (PQntuples(res) == 0) {
			PQclear(res);
			res = NULL;
			ret = run(r, &stmt_code_status, values, &res);
			if (ret != W_OK)
				goto done;
			if (PQntuples(res) == 0)
				msr_reply_error(r, 400, "invalid_field",
				    json_pack("{s:s, s:s}", "field", "replaces", "code", replaces),
				    "firearm %lld carries no code %s", (long long)id, replaces);
			else
				msr_reply_error(r, 409, "conflict",
				    json_pack("{s:s, s:s}", "field", "replaces", "code", replaces),
				    "code %s is already retired", replaces);
			ret = W_REPLIED;
			goto done;
		}
		PQclear(res);
		res = NULL;
	}
	ret = check_owners(r, g);
	if (ret != W_OK)
		goto done;
	values[0] = g->codes[0].code;
	values[1] = g->codes[0].scheme;
	values[2] = g->codes[0].component;
	values[3] = idtext;
	values[4] = replaces;
	ret = run(r, &stmt_insert_code, values, &res);
	if (ret != W_OK)
		goto done;
	if (PQntuples(res) == 0) {
		msr_reply_error(r, 409, "conflict", json_pack("{s:s, s:s}", "code",
		    g->codes[0].code, "reason", "unavailable"), CODE_UNAVAILABLE,
		    g->codes[0].code);
		ret = W_REPLIED;
		goto done;
	}
	ret = notify_codes(r);
	if (ret == W_OK)
		ret = fetch_firearm(r, id, g->manufacturer, out);
	if (ret == W_OK)
		ret = commit(r);
done:
	PQclear(res);
	if (ret != W_OK)
		msr_db_command(r->db, "ROLLBACK");
	return ret;
}

void
msr_h_firearm_add_code(struct msr_req *r)
{
	static const char *const keys[] = { "code", "component", "replaces", "scheme", NULL };
	struct reg g = { 0 };
	struct reg_code code;
	const char *text = NULL, *old_text = NULL, *replaces = NULL;
	char old[MSR_CODE_MAX + 1];
	uint8_t sym[CODE_TEXT_MAX];
	size_t n;
	long bad_at;
	json_t *firearm = NULL;
	int64_t id;
	int w = W_RETRY;

	memset(&code, 0, sizeof(code));
	code.scheme = "rs8";
	if (caller_manufacturer(r, &g.manufacturer) != 0 || path_id(r, &id) != 0 ||
	    msr_jv_known_keys(r, r->json, keys) != 0 ||
	    msr_jv_string(r, r->json, "code", 1, CODE_TEXT_MAX, &text) != 0 ||
	    msr_jv_enum(r, r->json, "component", 1, components, &code.component) != 0 ||
	    msr_jv_enum(r, r->json, "scheme", 0, schemes, &code.scheme) != 0 ||
	    msr_jv_string(r, r->json, "replaces", 0, CODE_TEXT_MAX, &old_text) != 0 ||
	    code_parse(r, "code", text, code.scheme, code.code) != 0)
		goto done;
	if (old_text != NULL) {
		if (msr_code_normalize(old_text, sym, MSR_CODE_MAX, &n, &bad_at) != 0 ||
		    n < MSR_FREE_MIN) {
			msr_reply_error(r, 400, "invalid_code",
			    json_pack("{s:s, s:s}", "field", "replaces", "code", old_text),
			    "replaces \"%s\" is not a code (6 to 16 Crockford base32 symbols)",
			    old_text);
			goto done;
		}
		msr_code_format(sym, n, old);
		replaces = old;
		if (strcmp(old, code.code) == 0) {
			msr_reply_error(r, 400, "invalid_field",
			    json_pack("{s:s}", "field", "replaces"),
			    "a code cannot replace itself");
			goto done;
		}
	}
	g.codes = &code;
	g.ncodes = 1;
	msr_audit_note(r, "firearm_id", json_integer(id));
	msr_audit_note(r, "code", json_string(code.code));
	if (replaces != NULL)
		msr_audit_note(r, "replaces", json_string(replaces));
	if (msr_req_db(r) == NULL)
		goto done;
	for (int attempt = 0; attempt < MAX_ATTEMPTS && w == W_RETRY; attempt++)
		w = replace_write(r, &g, id, replaces, &firearm);
	if (w == W_RETRY)
		msr_reply_unavailable(r, "the replacement kept conflicting with concurrent "
		    "writes; retry it");
	if (w != W_OK)
		goto done;
	msr_reply_json(r, 201, firearm);
	firearm = NULL;
done:
	json_decref(firearm);
}
