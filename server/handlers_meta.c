/*
 * handlers_meta.c — health, readiness, metrics and the OpenAPI document.
 * All public: no key, no audit entry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/audit.h"
#include "msreg/budget.h"
#include "msreg/db.h"
#include "msreg/embedded.h"
#include "msreg/handlers.h"
#include "msreg/metrics.h"
#include "msreg/feed.h"
#include "msreg/server.h"
#include "msreg/witness.h"

void
msr_h_healthz(struct msr_req *r)
{
	msr_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void
msr_h_readyz(struct msr_req *r)
{
	int db = msr_db_ping(r->srv->db);
	int audit = r->srv->audit != NULL && msr_audit_ready(r->srv->audit);
	int search = r->srv->feed != NULL && msr_feed_ready(r->srv->feed);
	int witness = !msr_witness_client_refusing(r->srv->witness);
	int ok = db && audit && search && witness && !r->srv->stopping;

	msr_reply_json(r, ok ? 200 : 503, json_pack("{s:s, s:b, s:b, s:b}",
	    "status", ok ? "ready" : "unavailable", "database", db, "audit_log", audit,
	    "search_index", search));
}

void
msr_h_metrics(struct msr_req *r)
{
	char extra[8192] = "";
	char *text;

	if (r->srv->feed != NULL)
		msr_feed_metrics(r->srv->feed, extra, sizeof(extra));
	msr_db_metrics(r->srv->db, extra + strlen(extra), sizeof(extra) - strlen(extra));
	msr_witness_client_metrics(r->srv->witness, extra, sizeof(extra));
	msr_budget_metrics(extra, sizeof(extra));
	if (r->srv->audit != NULL)
		msr_audit_metrics(r->srv->audit, extra, sizeof(extra));
	text = msr_metrics_render(r->srv->metrics, extra);
	if (text == NULL) {
		msr_reply_unavailable(r, "out of memory");
		return;
	}
	msr_reply_text(r, 200, "text/plain; version=0.0.4", text);
}

void
msr_h_openapi(struct msr_req *r)
{
	const char *doc = msr_embedded_get("server/openapi.json");
	char *copy = doc ? strdup(doc) : NULL;

	if (copy == NULL) {
		msr_reply_unavailable(r, "OpenAPI document unavailable");
		return;
	}
	msr_reply_text(r, 200, "application/json", copy);
}
