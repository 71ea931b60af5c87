/*
 * handlers.h — every HTTP handler, grouped by resource. The route table that
 * binds them to methods, paths and roles is server/routes.c.
 *
 * A handler reads: parse → authorize (beyond the route's roles) → do → reply.
 * It always leaves a reply (msr_reply_*); the middleware audits and sends it.
 */
#ifndef MSREG_HANDLERS_H
#define MSREG_HANDLERS_H

#include "msreg/http.h"

/* handlers_meta.c */
void msr_h_healthz(struct msr_req *r);
void msr_h_readyz(struct msr_req *r);
void msr_h_metrics(struct msr_req *r);
void msr_h_openapi(struct msr_req *r);

/* handlers_codes.c (registry: allocation, exact lookup) */
void msr_h_codes_allocate(struct msr_req *r);
void msr_h_code_lookup(struct msr_req *r);

/* handlers_firearms.c (registry: firearms and their codes) */
void msr_h_firearm_create(struct msr_req *r);
void msr_h_firearm_batch(struct msr_req *r);
void msr_h_firearm_add_code(struct msr_req *r);
void msr_h_firearm_get(struct msr_req *r);

/* handlers_sales.c (registry: first retail sales) */
void msr_h_sale_create(struct msr_req *r);

/* handlers_admin.c */
void msr_h_client_create(struct msr_req *r);
void msr_h_client_revoke(struct msr_req *r);
void msr_h_manufacturer_create(struct msr_req *r);
void msr_h_budget_grant(struct msr_req *r);

/* handlers_audit.c */
void msr_h_audit_checkpoint(struct msr_req *r);
void msr_h_audit_key(struct msr_req *r);
void msr_h_audit_entries(struct msr_req *r);
void msr_h_audit_inclusion(struct msr_req *r);
void msr_h_audit_consistency(struct msr_req *r);
void msr_h_audit_receipt(struct msr_req *r);

/* handlers_tiles.c (c2sp.org/tlog-tiles read API) */
void msr_h_tlog_checkpoint(struct msr_req *r);
void msr_h_tile(struct msr_req *r);
void msr_h_tile_entries(struct msr_req *r);

/* handlers_search.c */
void msr_h_search(struct msr_req *r);

/* handlers_console.c (reads the web console needs: who am I, lists) */
void msr_h_me(struct msr_req *r);
void msr_h_client_list(struct msr_req *r);
void msr_h_firearm_list(struct msr_req *r);

/* handlers_ui.c (the web console's static files; public, not audited, not API) */
void msr_h_ui_redirect(struct msr_req *r);
void msr_h_ui_index(struct msr_req *r);
void msr_h_ui_asset(struct msr_req *r);

#endif
