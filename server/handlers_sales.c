/*
 * handlers_sales.c — first retail sales (role dealer; the caller's org is its
 * FFL number).
 *
 * A sale names the firearm by manufacturer id and serial number, as printed on
 * the gun; the dealer licence comes from the key, never from the body. No
 * purchaser identity is stored: the transaction reference (the Form 4473
 * serial) leads an investigator to the dealer's own records.
 *
 * Invariants:
 *  1. At most one first sale per firearm (first_sales primary key): the insert
 *     is ON CONFLICT DO NOTHING, so of two racing sales exactly one commits and
 *     the other is 409.
 *  2. One statement decides everything: the firearm exists (else 404), it
 *     was not sold before (else 409), the sale is not before its manufacture
 *     date (else 400) — no window between check and insert.
 *  3. Sales do not add or change codes, so they do not notify the search feed.
 *  4. A refused sale discloses nothing a dealer holding the firearm does not
 *     know already: no firearm id, no dates, no other dealer. A firearm sold
 *     before is 409 (reason already_sold) whatever the date given, so the
 *     manufacture date of another dealer's firearm cannot be probed; an unsold
 *     one sold before its manufacture is 400 (reason before_manufacture)
 *     without the date. Only a recorded sale's 201 names the firearm id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/db.h"
#include "msreg/handlers.h"
#include "msreg/jsonv.h"
#include "msreg/log.h"
#include "msreg/registry.h"

#define REF_MAX 64

/* US states, DC and the inhabited territories (USPS codes). */
static const char *const states[] = {
	"AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL",
	"IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT",
	"NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI",
	"SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
	"DC", "PR", "GU", "VI", "AS", "MP", NULL,
};

/*
 * Columns: firearm id (no row = no such firearm), inserted, too_early,
 * recorded_at, sold_before (a first sale already recorded, by anyone).
 */
static const struct msr_db_stmt stmt_sale = {
	"sale_insert",
	"WITH f AS (SELECT id, manufactured_on FROM firearms"
	"           WHERE manufacturer_id = $1 AND serial = $2),"
	" ins AS (INSERT INTO first_sales (firearm_id, dealer_ffl, sold_on,"
	"                                  transaction_ref, state, recorded_by)"
	"         SELECT f.id, $3, $4::date, $5, $6, $7::bigint FROM f"
	"         WHERE f.manufactured_on IS NULL OR f.manufactured_on <= $4::date"
	"         ON CONFLICT (firearm_id) DO NOTHING"
	"         RETURNING firearm_id, recorded_at)"
	" SELECT f.id, ins.firearm_id IS NOT NULL,"
	"        f.manufactured_on IS NOT NULL AND f.manufactured_on > $4::date,"
	"        to_json(ins.recorded_at) #>> '{}',"
	"        EXISTS (SELECT 1 FROM first_sales s WHERE s.firearm_id = f.id)"
	" FROM f LEFT JOIN ins ON ins.firearm_id = f.id",
	7,
};

void
msr_h_sale_create(struct msr_req *r)
{
	static const char *const keys[] = { "manufacturer", "serial", "sold_on",
	    "transaction_ref", "state", NULL };
	const char *manufacturer = NULL, *serial = NULL, *sold_on = NULL, *ref = NULL,
	    *state = NULL, *values[7];
	char by[24];
	PGresult *res = NULL;
	json_int_t id;

	/* parse */
	if (msr_jv_known_keys(r, r->json, keys) != 0 ||
	    msr_jv_string(r, r->json, "manufacturer", 1, 64, &manufacturer) != 0 ||
	    msr_jv_string(r, r->json, "serial", 1, 64, &serial) != 0 ||
	    msr_jv_date(r, r->json, "sold_on", 1, 1, &sold_on) != 0 ||
	    msr_jv_string(r, r->json, "transaction_ref", 1, REF_MAX, &ref) != 0 ||
	    msr_jv_enum(r, r->json, "state", 1, states, &state) != 0)
		goto done;
	/* authorize: the licence is the key's */
	if (!msr_ffl_valid(r->client.org)) {
		msr_reply_error(r, 403, "forbidden", NULL,
		    "this dealer key is not bound to a valid FFL number");
		goto done;
	}
	msr_audit_note(r, "manufacturer", json_string(manufacturer));
	msr_audit_note(r, "serial", json_string(serial));
	/* the sale as recorded: a later rewrite of the row contradicts the log */
	msr_audit_note(r, "sold_on", json_string(sold_on));
	msr_audit_note(r, "state", json_string(state));
	msr_audit_note(r, "transaction_ref", json_string(ref));
	/* do: one statement in a transaction committed with the audit entry */
	if (msr_req_begin(r) != 0)
		goto done;
	snprintf(by, sizeof(by), "%lld", (long long)r->client.id);
	values[0] = manufacturer;
	values[1] = serial;
	values[2] = r->client.org;
	values[3] = sold_on;
	values[4] = ref;
	values[5] = state;
	values[6] = by;
	res = msr_db_exec(r->db, &stmt_sale, values);
	if (!msr_db_ok(res)) {
		log_warn("sale insert failed: %s",
		    res ? PQresultErrorMessage(res) : "connection lost");
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	if (PQntuples(res) == 0) {
		msr_reply_error(r, 404, "not_found",
		    json_pack("{s:s, s:s}", "manufacturer", manufacturer, "serial", serial),
		    "no firearm %s of manufacturer %s is registered", serial, manufacturer);
		goto done;
	}
	/*
	 * A refused sale tells the dealer what to fix and nothing about the
	 * firearm (invariant 4): the audit entry names the firearm, the reply
	 * does not.
	 */
	id = (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	msr_audit_note(r, "firearm_id", json_integer(id));
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0 && strcmp(PQgetvalue(res, 0, 4), "t") != 0 &&
	    strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
		msr_reply_error(r, 400, "invalid_field",
		    json_pack("{s:s, s:s}", "field", "sold_on", "reason", "before_manufacture"),
		    "sold_on %s is before the firearm's date of manufacture", sold_on);
		goto done;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
		msr_reply_error(r, 409, "conflict",
		    json_pack("{s:s, s:s, s:s}", "manufacturer", manufacturer, "serial", serial,
		    "reason", "already_sold"),
		    "the first retail sale of this firearm is already recorded");
		goto done;
	}
	/* reply */
	msr_reply_json(r, 201, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
	    "firearm_id", id, "manufacturer", manufacturer, "serial", serial,
	    "dealer_ffl", r->client.org, "sold_on", sold_on, "transaction_ref", ref,
	    "state", state, "recorded_at", PQgetvalue(res, 0, 3)));
	msr_req_commit(r);
done:
	PQclear(res);
}
