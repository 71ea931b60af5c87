/*
 * handlers_audit.c — the auditors' endpoints (API.md "Auditors").
 *
 *   GET /v1/audit/checkpoint                      public  text/plain signed note
 *   GET /v1/audit/key                             public  text/plain verifier key
 *   GET /v1/audit/entries?start&limit             auditor
 *   GET /v1/audit/proof/inclusion?index&tree_size auditor, or entry's client
 *   GET /v1/audit/proof/consistency?first&second  public
 *   GET /v1/audit/receipt/{index}                 auditor, or entry's client
 *
 * Formats: proofs are RFC 9162 2.1.3/2.1.4 hash lists, leaf side first, in
 * standard base64; the checkpoint is a c2sp.org/tlog-checkpoint signed note
 * (c2sp.org/signed-note); a receipt is a c2sp.org/tlog-proof@v1 whose "extra"
 * line carries the exact entry bytes (so it verifies offline on its own).
 *
 * Invariants
 *   1. Nothing is recomputed from leaves: a proof plans the complete subtrees it
 *      needs (merkle.h) and fetches them in one query (msr_as_nodes; every
 *      statement on the audit tables is audit_store.c's);
 *      with the size/owner lookups a request reads a handful of rows.
 *   2. Sizes are bounded by the newest committed tree state, so every node a
 *      plan asks for is complete and stored (append-only, never changes).
 *   3. Bad or missing parameters are 400 invalid_field naming the field; an index
 *      that is not in the log is 404 not_found; any database failure is 503.
 */
#include "msreg/common.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/audit.h"
#include "msreg/audit_store.h"
#include "msreg/db.h"
#include "msreg/handlers.h"
#include "msreg/merkle.h"
#include "msreg/note.h"
#include "msreg/server.h"
#include "msreg/witness.h"

#define HLEN            MSR_MERKLE_HASH_LEN
#define ENTRIES_DEFAULT 100
#define ENTRIES_MAX     1000
/* A page stops once its leaves reach this many bytes (at least one entry). */
#define ENTRIES_PAGE_BYTES (1024 * 1024)

/* ---- helpers ---- */

/*
 * Parse query argument `name` as a decimal integer in [0, 2^63). Missing:
 * *out = dflt, or 400 when dflt < 0 (required). Returns 0, or -1 after replying.
 */
static int
arg_u64(struct msr_req *r, const char *name, int64_t dflt, uint64_t *out)
{
	const char *s = msr_req_arg(r, name);
	uint64_t v = 0;
	size_t i;

	if (s == NULL || s[0] == '\0') {
		if (dflt >= 0) {
			*out = (uint64_t)dflt;
			return 0;
		}
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", name),
		    "%s is required", name);
		return -1;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 18) {
			msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", name),
			    "%s must be a non-negative integer below 10^18", name);
			return -1;
		}
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static void MSR_PRINTF(3, 4)
bad_field(struct msr_req *r, const char *field, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", field), "%s", msg);
}

/* Size of the newest committed tree (0 if empty). 0, or -1 after replying 503. */
static int
current_size(struct msr_req *r, uint64_t *size)
{
	struct msr_as_head h;
	int ret = -1;

	if (msr_as_head(r->db, &h) != MSR_AS_OK) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	*size = h.have ? h.size : 0;
	ret = 0;
done:
	msr_as_head_clear(&h);
	return ret;
}

/*
 * Load entry `index` (row: idx, leaf, client_id) and check that the caller
 * may see it: auditors, or the client that made it. 0, or -1 after replying
 * (404 unknown, 403 not yours, 503).
 */
static int
entry_for_caller(struct msr_req *r, uint64_t index, PGresult **out)
{
	PGresult *res = NULL;
	int64_t owner;

	if (msr_as_entries(r->db, index, 1, &res) != MSR_AS_OK) {
		msr_reply_unavailable(r, "the database is unavailable");
		return -1;
	}
	if (PQntuples(res) == 0 ||
	    msr_load_be((const uint8_t *)PQgetvalue(res, 0, 0), 8) != index) {
		PQclear(res);
		msr_reply_error(r, 404, "not_found", json_pack("{s:I}", "index", (json_int_t)index),
		    "no audit entry %" PRIu64, index);
		return -1;
	}
	owner = -1;
	if (!PQgetisnull(res, 0, 2))
		owner = (int64_t)msr_load_be((const uint8_t *)PQgetvalue(res, 0, 2), 8);
	if (r->client.role != MSR_ROLE_AUDITOR && owner != r->client.id) {
		PQclear(res);
		msr_reply_error(r, 403, "forbidden", json_pack("{s:I}", "index", (json_int_t)index),
		    "only auditors and the client that made entry %" PRIu64 " may read its proof",
		    index);
		return -1;
	}
	*out = res;
	return 0;
}

static json_t *
b64_json(const uint8_t *data, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(cap);
	json_t *j;

	if (s == NULL)
		return NULL;
	sodium_bin2base64(s, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
	j = json_string(s);
	free(s);
	return j;
}

static json_t *
hashes_json(const uint8_t (*h)[HLEN], size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++)
		json_array_append_new(a, b64_json(h[i], HLEN));
	return a;
}

/* ---- public ---- */

void
msr_h_audit_checkpoint(struct msr_req *r)
{
	struct msr_as_head h;
	char *text;

	if (msr_req_db(r) == NULL)
		return;
	if (msr_as_head(r->db, &h) != MSR_AS_OK) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	if (h.note == NULL) {
		/* Only before the sequencer's first start on an empty database. */
		msr_reply_unavailable(r, "no checkpoint has been signed yet");
		goto done;
	}
	text = msr_witness_client_decorate(r->srv->witness, h.note,
	    strlen(h.note));	/* with witness cosignatures */
	if (text == NULL) {
		text = h.note;
		h.note = NULL;
	}
	msr_reply_text(r, 200, "text/plain; charset=utf-8", text);
done:
	msr_as_head_clear(&h);
}

void
msr_h_audit_key(struct msr_req *r)
{
	const char *key = r->srv->audit ? msr_audit_verifier_key(r->srv->audit) : NULL;
	size_t n;
	char *text;

	if (key == NULL) {
		msr_reply_unavailable(r, "the audit log is not configured");
		return;
	}
	n = strlen(key);
	text = malloc(n + 2);
	if (text == NULL) {
		msr_reply_unavailable(r, "out of memory");
		return;
	}
	memcpy(text, key, n);
	memcpy(text + n, "\n", 2);
	msr_reply_text(r, 200, "text/plain; charset=utf-8", text);
}

void
msr_h_audit_consistency(struct msr_req *r)
{
	struct msr_merkle_nodes *s = NULL;
	uint8_t proof[MSR_MERKLE_PROOF_MAX][HLEN];
	uint64_t first, second, size;
	size_t n;

	if (arg_u64(r, "first", -1, &first) != 0 || msr_req_db(r) == NULL ||
	    current_size(r, &size) != 0 || arg_u64(r, "second", (int64_t)size, &second) != 0)
		return;
	if (second > size) {
		bad_field(r, "second", "second (%" PRIu64 ") exceeds the tree size (%" PRIu64 ")",
		    second, size);
		return;
	}
	if (first > second) {
		bad_field(r, "first", "first (%" PRIu64 ") exceeds second (%" PRIu64 ")",
		    first, second);
		return;
	}
	s = malloc(sizeof(*s));
	if (s == NULL) {
		msr_reply_unavailable(r, "out of memory");
		return;
	}
	msr_merkle_nodes_init(s);
	if (msr_merkle_plan_consistency(s, first, second) != 0 ||
	    msr_as_nodes(r->db, s) != MSR_AS_OK ||
	    msr_merkle_prove_consistency(first, second, msr_merkle_nodes_get, s, proof,
	    MSR_MERKLE_PROOF_MAX, &n) != 0) {
		msr_reply_unavailable(r, "the audit tree could not be read");
		goto done;
	}
	msr_reply_json(r, 200, json_pack("{s:I, s:I, s:o}", "first", (json_int_t)first,
	    "second", (json_int_t)second,
	    "hashes", hashes_json((const uint8_t (*)[HLEN])proof, n)));
done:
	free(s);
}

/* ---- auditors ---- */

void
msr_h_audit_entries(struct msr_req *r)
{
	uint64_t start, limit;
	PGresult *res = NULL;
	json_t *list;

	if (arg_u64(r, "start", 0, &start) != 0 ||
	    arg_u64(r, "limit", ENTRIES_DEFAULT, &limit) != 0)
		return;
	if (limit < 1 || limit > ENTRIES_MAX) {
		bad_field(r, "limit", "limit must be between 1 and %" PRIu64 " (got %" PRIu64 ")",
		    (uint64_t)ENTRIES_MAX, limit);
		return;
	}
	if (msr_req_db(r) == NULL)
		return;
	if (msr_as_entries(r->db, start, limit, &res) != MSR_AS_OK) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	list = json_array();
	for (int i = 0, bytes = 0; list != NULL && i < PQntuples(res) &&
	    (i == 0 || bytes < ENTRIES_PAGE_BYTES); i++) {
		const char *leaf = PQgetvalue(res, i, 1);
		size_t len = (size_t)PQgetlength(res, i, 1);
		json_int_t idx = (json_int_t)msr_load_be((const uint8_t *)PQgetvalue(res, i, 0), 8);
		json_t *entry;

		bytes += (int)len;
		entry = json_loadb(leaf, len, JSON_DECODE_ANY, NULL);
		json_array_append_new(list, json_pack("{s:I, s:o, s:o}", "index", idx,
		    "leaf", b64_json((const uint8_t *)leaf, len),
		    "entry", entry != NULL ? entry : json_null()));
	}
	msr_audit_note(r, "start", json_integer((json_int_t)start));
	msr_audit_note(r, "count", json_integer((json_int_t)json_array_size(list)));
	msr_reply_json(r, 200, json_pack("{s:o}", "entries", list));
done:
	PQclear(res);
}

void
msr_h_audit_inclusion(struct msr_req *r)
{
	struct msr_merkle_nodes *s = NULL;
	uint8_t proof[MSR_MERKLE_PROOF_MAX][HLEN];
	uint64_t index, tree_size, size;
	PGresult *entry = NULL;
	size_t n;

	if (arg_u64(r, "index", -1, &index) != 0 || msr_req_db(r) == NULL ||
	    current_size(r, &size) != 0 || arg_u64(r, "tree_size", (int64_t)size, &tree_size) != 0)
		return;
	msr_audit_note(r, "index", json_integer((json_int_t)index));
	if (tree_size > size) {
		bad_field(r, "tree_size", "tree_size (%" PRIu64 ") exceeds the tree size (%" PRIu64 ")",
		    tree_size, size);
		return;
	}
	if (index >= size) {
		msr_reply_error(r, 404, "not_found", json_pack("{s:I}", "index", (json_int_t)index),
		    "no audit entry %" PRIu64 " (the log has %" PRIu64 " entries)", index, size);
		return;
	}
	if (index >= tree_size) {
		bad_field(r, "index", "index (%" PRIu64 ") must be below tree_size (%" PRIu64 ")",
		    index, tree_size);
		return;
	}
	if (entry_for_caller(r, index, &entry) != 0)
		return;
	s = malloc(sizeof(*s));
	if (s == NULL) {
		msr_reply_unavailable(r, "out of memory");
		goto done;
	}
	msr_merkle_nodes_init(s);
	if (msr_merkle_plan_inclusion(s, index, tree_size) != 0 ||
	    msr_as_nodes(r->db, s) != MSR_AS_OK ||
	    msr_merkle_prove_inclusion(index, tree_size, msr_merkle_nodes_get, s, proof,
	    MSR_MERKLE_PROOF_MAX, &n) != 0) {
		msr_reply_unavailable(r, "the audit tree could not be read");
		goto done;
	}
	msr_reply_json(r, 200, json_pack("{s:I, s:I, s:o}", "index", (json_int_t)index,
	    "tree_size", (json_int_t)tree_size,
	    "hashes", hashes_json((const uint8_t (*)[HLEN])proof, n)));
done:
	PQclear(entry);
	free(s);
}

void
msr_h_audit_receipt(struct msr_req *r)
{
	struct msr_merkle_nodes *s = NULL;
	struct msr_note_receipt *rc = NULL;
	const char *arg = r->capture[0];
	struct msr_as_head cp;
	PGresult *entry = NULL;
	uint64_t index = 0, size;
	char *text = NULL, *cosigned = NULL;
	size_t len, i;

	for (i = 0; arg != NULL && arg[i] != '\0'; i++) {
		if (arg[i] < '0' || arg[i] > '9' || i >= 18) {
			msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "index"),
			    "the receipt index must be a non-negative integer below 10^18");
			return;
		}
		index = index * 10 + (uint64_t)(arg[i] - '0');
	}
	if (arg == NULL || i == 0) {
		msr_reply_error(r, 400, "invalid_field", json_pack("{s:s}", "field", "index"),
		    "the receipt index is required");
		return;
	}
	msr_audit_note(r, "index", json_integer((json_int_t)index));
	if (msr_req_db(r) == NULL)
		return;
	if (msr_as_head(r->db, &cp) != MSR_AS_OK || cp.note == NULL) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	size = cp.size;
	if (index >= size) {
		msr_reply_error(r, 404, "not_found", json_pack("{s:I}", "index", (json_int_t)index),
		    "no audit entry %" PRIu64 " (the log has %" PRIu64 " entries)", index, size);
		goto done;
	}
	if (entry_for_caller(r, index, &entry) != 0)
		goto done;
	s = malloc(sizeof(*s));
	rc = calloc(1, sizeof(*rc));
	if (s == NULL || rc == NULL) {
		msr_reply_unavailable(r, "out of memory");
		goto done;
	}
	msr_merkle_nodes_init(s);
	if (msr_merkle_plan_inclusion(s, index, size) != 0 ||
	    msr_as_nodes(r->db, s) != MSR_AS_OK ||
	    msr_merkle_prove_inclusion(index, size, msr_merkle_nodes_get, s, rc->proof,
	    MSR_MERKLE_PROOF_MAX, &rc->nproof) != 0) {
		msr_reply_unavailable(r, "the audit tree could not be read");
		goto done;
	}
	rc->index = index;
	rc->extra = (uint8_t *)PQgetvalue(entry, 0, 1);
	rc->extra_len = (size_t)PQgetlength(entry, 0, 1);
	rc->note = cp.note;
	rc->note_len = strlen(cp.note);
	cosigned = msr_witness_client_decorate(r->srv->witness, rc->note, rc->note_len);
	if (cosigned != NULL) {		/* with witness cosignatures */
		rc->note = cosigned;
		rc->note_len = strlen(cosigned);
	}
	if (msr_note_receipt_format(rc, &text, &len) != 0) {
		msr_reply_unavailable(r, "the receipt could not be formatted");
		goto done;
	}
	msr_reply_text(r, 200, "text/plain; charset=utf-8", text);
done:
	msr_as_head_clear(&cp);
	PQclear(entry);
	free(rc);
	free(s);
	free(cosigned);
}
