/*
 * routes.c — the route table: method, path pattern, roles, flags, handler,
 * action name, body limit. This table is the whole map of the API (see API.md
 * and the OpenAPI document); the middleware in http.c applies roles and flags.
 * The body limit column defaults to MSR_BODY_SMALL ([http] body_limit_small);
 * only batch routes take MSR_BODY_LARGE ([http] body_limit).
 */
#include "msreg/handlers.h"
#include "msreg/routes.h"

#define R(x) MSR_ROLE(MSR_ROLE_##x)

/* The body-limit column may be left out: it is then MSR_BODY_SMALL. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

const struct msr_route msr_routes[] = {
	/* health and meta (public) */
	{ "GET", "/healthz", 0, 0, msr_h_healthz, "healthz" },
	{ "GET", "/readyz", 0, 0, msr_h_readyz, "readyz" },
	{ "GET", "/metrics", 0, 0, msr_h_metrics, "metrics" },
	{ "GET", "/v1/openapi.json", 0, 0, msr_h_openapi, "openapi" },

	/* registry (handlers_codes.c, handlers_firearms.c, handlers_sales.c) */
	{ "POST", "/v1/codes/allocate", R(MANUFACTURER), MSR_R_JSON_BODY | MSR_R_AUDITED,
	  msr_h_codes_allocate, "code.allocate" },
	{ "GET", "/v1/codes/{}", R(INVESTIGATOR), MSR_R_AUDITED,
	  msr_h_code_lookup, "code.lookup" },
	{ "POST", "/v1/firearms", R(MANUFACTURER), MSR_R_JSON_BODY | MSR_R_AUDITED,
	  msr_h_firearm_create, "firearm.create" },
	/* parses its own JSON body: a fast path for its one big shape (handlers_firearms.c) */
	{ "POST", "/v1/firearms/batch", R(MANUFACTURER), MSR_R_AUDITED,
	  msr_h_firearm_batch, "firearm.batch", MSR_BODY_LARGE },
	{ "POST", "/v1/firearms/{}/codes", R(MANUFACTURER), MSR_R_JSON_BODY | MSR_R_AUDITED,
	  msr_h_firearm_add_code, "firearm.add_code" },
	{ "GET", "/v1/firearms/{}", R(MANUFACTURER), MSR_R_AUDITED,
	  msr_h_firearm_get, "firearm.get" },
	{ "POST", "/v1/sales", R(DEALER), MSR_R_JSON_BODY | MSR_R_AUDITED,
	  msr_h_sale_create, "sale.create" },

	/* investigators: partial-code search */
	{ "POST", "/v1/search", R(INVESTIGATOR), MSR_R_JSON_BODY | MSR_R_AUDITED,
	  msr_h_search, "code.search" },

	/* admin */
	{ "POST", "/v1/clients", R(ADMIN), MSR_R_JSON_BODY | MSR_R_AUDITED,
	  msr_h_client_create, "client.create" },
	{ "DELETE", "/v1/clients/{}", R(ADMIN), MSR_R_AUDITED,
	  msr_h_client_revoke, "client.revoke" },
	{ "POST", "/v1/manufacturers", R(ADMIN), MSR_R_JSON_BODY | MSR_R_AUDITED,
	  msr_h_manufacturer_create, "manufacturer.create" },
	{ "POST", "/v1/budgets/grants", R(ADMIN), MSR_R_JSON_BODY | MSR_R_AUDITED,
	  msr_h_budget_grant, "budget.grant" },

	/* audit log (handlers_audit.c); auditors' reads are audited too */
	{ "GET", "/v1/audit/checkpoint", 0, 0, msr_h_audit_checkpoint, "audit.checkpoint" },
	{ "GET", "/v1/audit/key", 0, 0, msr_h_audit_key, "audit.key" },
	{ "GET", "/v1/audit/proof/consistency", 0, 0, msr_h_audit_consistency,
	  "audit.proof.consistency" },
	{ "GET", "/v1/audit/entries", R(AUDITOR), MSR_R_AUDITED, msr_h_audit_entries,
	  "audit.entries" },
	{ "GET", "/v1/audit/proof/inclusion", MSR_ROLES_ALL, MSR_R_AUDITED,
	  msr_h_audit_inclusion, "audit.proof.inclusion" },
	{ "GET", "/v1/audit/receipt/{}", MSR_ROLES_ALL, MSR_R_AUDITED, msr_h_audit_receipt,
	  "audit.receipt" },

	/* the audit log as tiles, c2sp.org/tlog-tiles (handlers_tiles.c) */
	{ "GET", "/checkpoint", 0, 0, msr_h_tlog_checkpoint, "tlog.checkpoint" },
	{ "GET", "/tile/entries/{}", R(AUDITOR), MSR_R_AUDITED | MSR_R_PATH_TAIL,
	  msr_h_tile_entries, "tlog.entries" },
	{ "GET", "/tile/{}/{}", 0, MSR_R_PATH_TAIL, msr_h_tile, "tlog.tile" },

	/* reads for the web console and other clients (handlers_console.c) */
	{ "GET", "/v1/me", MSR_ROLES_ALL, MSR_R_AUDITED, msr_h_me, "client.me" },
	{ "GET", "/v1/clients", R(ADMIN), MSR_R_AUDITED, msr_h_client_list, "client.list" },
	{ "GET", "/v1/firearms", R(MANUFACTURER), MSR_R_AUDITED, msr_h_firearm_list,
	  "firearm.list" },

	/* the web console's static files (handlers_ui.c): public, not audited, not API */
	{ "GET", "/ui", 0, 0, msr_h_ui_redirect, "ui.redirect" },
	{ "GET", "/ui/", 0, 0, msr_h_ui_index, "ui.index" },
	{ "GET", "/ui/{}", 0, 0, msr_h_ui_asset, "ui.asset" },
};

const size_t msr_routes_len = sizeof(msr_routes) / sizeof(msr_routes[0]);

const char *
msr_route_pattern(size_t i)
{
	return i < msr_routes_len ? msr_routes[i].pattern : "";
}

const char *
msr_route_method(size_t i)
{
	return i < msr_routes_len ? msr_routes[i].method : "";
}
