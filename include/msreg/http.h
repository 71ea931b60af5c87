/*
 * http.h — the HTTP layer: libmicrohttpd daemon, routing, request contexts,
 * JSON replies, and the middleware every route passes through.
 *
 * A request's life (one struct msr_req, freed in MHD's completion callback):
 *   1. headers arrive: the route is found (404/405 otherwise), an oversized
 *      Content-Length is refused with 413 before any body is read;
 *   2. the body is accumulated into a buffer bounded by [http] body_limit;
 *   3. middleware: authenticate (401), authorize the role (403), rate-limit
 *      (429), check Content-Type (415) and parse JSON (400);
 *   4. the handler runs: parse → authorize → do → reply (msr_reply_*);
 *   5. if the route is audited and the caller authenticated, one audit entry
 *      describing the request and its outcome is appended and made durable
 *      before the reply is queued (Audit-Index header); if that fails the reply
 *      becomes 503 unavailable and nothing else is sent;
 *   6. a write's transaction, left open by the handler with msr_req_commit(),
 *      is committed only after its audit entry is durable, and rolled back if
 *      the entry cannot be written: no registry change exists without a
 *      durable record of the request that made it.
 */
#ifndef MSREG_HTTP_H
#define MSREG_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "msreg/common.h"

struct MHD_Connection;
struct msr_server;
struct msr_db_conn;

enum msr_role {
	MSR_ROLE_NONE = 0,
	MSR_ROLE_MANUFACTURER,
	MSR_ROLE_DEALER,
	MSR_ROLE_INVESTIGATOR,
	MSR_ROLE_AUDITOR,
	MSR_ROLE_ADMIN,
};
#define MSR_ROLE(r)   (1u << (r))
#define MSR_ROLES_ALL (MSR_ROLE(MSR_ROLE_MANUFACTURER) | MSR_ROLE(MSR_ROLE_DEALER) | \
                       MSR_ROLE(MSR_ROLE_INVESTIGATOR) | MSR_ROLE(MSR_ROLE_AUDITOR) | \
                       MSR_ROLE(MSR_ROLE_ADMIN))

const char *msr_role_name(enum msr_role r);
enum msr_role msr_role_parse(const char *s);   /* MSR_ROLE_NONE if unknown */

struct msr_client {
	int64_t       id;
	enum msr_role role;
	char          name[201];
	char          org[201];      /* manufacturer id, dealer FFL, agency ORI; "" if none */
};

struct msr_req;
typedef void (*msr_handler)(struct msr_req *r);

/* Route flags. */
#define MSR_R_JSON_BODY  0x1   /* requires a JSON object body */
#define MSR_R_AUDITED    0x2   /* authenticated requests get an audit entry */
#define MSR_R_OPT_AUTH   0x4   /* auth optional (roles apply only if a key is given) */

struct msr_route {
	const char  *method;
	const char  *pattern;      /* "/v1/firearms/{}/codes": {} captures a segment */
	unsigned     roles;        /* MSR_ROLE() bitmask; 0 = public */
	unsigned     flags;
	msr_handler  handler;
	const char  *action;       /* stable name: audit entries and metrics */
};

#define MSR_MAX_CAPTURES 2

struct msr_req {
	struct msr_server       *srv;
	struct MHD_Connection   *conn;
	const struct msr_route  *route;
	int                      route_index;
	char                     method[8];
	char                    *path;
	char                    *capture[MSR_MAX_CAPTURES];
	/* body */
	char                    *body;
	size_t                   body_len, body_cap;
	int                      body_too_large;
	json_t                  *json;          /* parsed body (owned) */
	/* caller */
	int                      authed;
	struct msr_client        client;
	/* database connection, acquired lazily by msr_req_db(), released after the handler */
	struct msr_db_conn      *db;
	int                      commit_pending; /* msr_req_commit() was called */
	/* reply */
	unsigned                 status;
	json_t                  *reply_json;    /* owned */
	char                    *reply_text;    /* owned */
	const char              *reply_ctype;
	char                    *extra_header_name, *extra_header_value;
	const char *const       *static_headers; /* name, value, ..., NULL (static) */
	/* audit: details the handler adds to its entry (owned object) */
	json_t                  *audit;
	int64_t                  audit_index;   /* -1 if not audited */
	uint64_t                 start_ns;
};

/* The route table (routes.c). */
extern const struct msr_route msr_routes[];
extern const size_t msr_routes_len;

/* Start/stop the daemon. Returns NULL on failure (logged). */
struct msr_http;
struct msr_http *msr_http_start(struct msr_server *srv);
/* Stop accepting, finish in-flight requests, free. */
void msr_http_stop(struct msr_http *h);

/* --- for handlers --- */

/* Query-string argument or NULL. */
const char *msr_req_arg(struct msr_req *r, const char *name);
/* A database connection for this request, or NULL after replying 503. */
struct msr_db_conn *msr_req_db(struct msr_req *r);

/*
 * Begin a write transaction on the request's connection (0, or -1 after
 * replying 503). End it with msr_req_commit() on success; any other path is
 * rolled back when the connection is released.
 */
int msr_req_begin(struct msr_req *r);
/*
 * The handler's writes are complete: the middleware commits them after the
 * request's audit entry is durable (invariant 6), and answers 503 instead of
 * the handler's reply if either step fails. Call it last, after the reply.
 */
void msr_req_commit(struct msr_req *r);

/* Replies. json/text are stolen (freed with the request). */
void msr_reply_json(struct msr_req *r, unsigned status, json_t *json);
void msr_reply_text(struct msr_req *r, unsigned status, const char *ctype, char *text);
void msr_reply_error(struct msr_req *r, unsigned status, const char *code,
                     json_t *detail, const char *fmt, ...) MSR_PRINTF(5, 6);
void msr_reply_unavailable(struct msr_req *r, const char *why);
void msr_reply_header(struct msr_req *r, const char *name, const char *value);
/*
 * More headers for this reply: pairs is name, value, name, value, ..., NULL in
 * static storage (not copied). A Cache-Control among them replaces the default
 * "no-store" (the console's assets, handlers_ui.c).
 */
void msr_reply_static_headers(struct msr_req *r, const char *const *pairs);
/* Add key=value (stolen) to this request's audit entry. */
void msr_audit_note(struct msr_req *r, const char *key, json_t *value);


#endif
