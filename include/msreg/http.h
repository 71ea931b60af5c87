/*
 * http.h — the HTTP layer: libmicrohttpd daemon, routing, request contexts,
 * JSON replies, and the middleware every route passes through.
 *
 * A request's life (one struct msr_req, freed in MHD's completion callback):
 *   1. headers arrive, and before any body byte is read: the URL and header
 *      sizes are checked (414/431), the route is found (404/405), the caller
 *      authenticated (401; unauthenticated traffic is rate-limited per source
 *      address, 429), the role authorized (403), the key rate-limited (429),
 *      an oversized Content-Length refused (413) and the body's memory
 *      reserved in the global budget (503 when bodies in flight exceed it);
 *   2. the body is accumulated into a buffer bounded by the route's body limit
 *      ([http] body_limit_small, or body_limit for batch routes), and must
 *      arrive with the headers within [http] request_timeout;
 *   3. Content-Type is checked (415), the JSON is pre-scanned for depth and
 *      number of values (400/413) before it is parsed (400);
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
#define MSR_R_PATH_TAIL  0x40  /* the pattern's final {} captures the rest of the path */

/* Route body limits (the last column of the route table). */
#define MSR_BODY_SMALL   0            /* [http] body_limit_small: single-item routes */
#define MSR_BODY_LARGE   ((size_t)-1) /* [http] body_limit: batch routes only */

struct msr_route {
	const char  *method;
	const char  *pattern;      /* "/v1/firearms/{}/codes": {} captures a segment */
	unsigned     roles;        /* MSR_ROLE() bitmask; 0 = public */
	unsigned     flags;
	msr_handler  handler;
	const char  *action;       /* stable name: audit entries and metrics */
	size_t       body_limit;   /* MSR_BODY_SMALL (default), MSR_BODY_LARGE or bytes */
};

/* Longest audit entry (bytes of canonical JSON); see msr_audit_note(). */
#define MSR_AUDIT_ENTRY_MAX  8192
/* Longest string kept verbatim in an entry; longer or invalid: length + SHA-256. */
#define MSR_AUDIT_STRING_MAX 512

#define MSR_MAX_CAPTURES 2

struct msr_http;

struct msr_req {
	struct msr_server       *srv;
	struct msr_http         *http;
	struct MHD_Connection   *conn;
	const struct msr_route  *route;
	int                      route_index;
	char                     method[8];
	char                    *path;
	char                    *capture[MSR_MAX_CAPTURES];
	/* body */
	char                    *body;
	size_t                   body_len, body_cap;
	size_t                   body_limit;    /* this route's */
	size_t                   reserved;      /* bytes held in the global body budget */
	size_t                   body_reserved; /* of which for the body buffer */
	int                      no_audit;      /* refused before any audited work (429) */
	int                      body_too_large;
	int                      body_refused;  /* the global body budget was exhausted */
	int                      body_large;    /* a batch route's: held in the large share */
	uint64_t                 deadline_ns;   /* the whole request must have arrived by then */
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
	size_t                   reply_text_len; /* bytes of reply_text; 0 = strlen */
	const char              *reply_ctype;
	char                    *extra_header_name, *extra_header_value;
	const char *const       *static_headers; /* name, value, ..., NULL (static) */
	/* audit: details the handler adds to its entry (owned object) */
	json_t                  *audit;
	int64_t                  audit_index;   /* -1 if not audited */
	uint64_t                 start_ns;
	/* phase boundaries (msr_now_ns; 0: not reached), for msreg_request_phase_seconds */
	uint64_t                 t_dispatch, t_handled, t_audited, t_committed, t_queued;
	/* a read's entry appended asynchronously, the connection suspended (http.c) */
	int                      audit_wait;    /* AW_* in http.c */
	int64_t                  audit_async_index;
};

/* The route table (routes.c). */
extern const struct msr_route msr_routes[];
extern const size_t msr_routes_len;

/* Start/stop the daemon. Returns NULL on failure (logged). */
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
/*
 * Parse the request body as a JSON object into r->json, as the middleware does
 * for MSR_R_JSON_BODY routes: Content-Type, the pre-scan bounds (depth,
 * values), the tree charged to the global body-memory budget, then jansson.
 * 0, or -1 after replying 400/413/415/503. For routes that parse their own
 * body and fall back to a tree (the batch route).
 */
int msr_req_parse_json(struct msr_req *r);

/* Replies. json/text are stolen (freed with the request). */
void msr_reply_json(struct msr_req *r, unsigned status, json_t *json);
void msr_reply_text(struct msr_req *r, unsigned status, const char *ctype, char *text);
/* Binary reply: len bytes of data (stolen, len > 0). */
void msr_reply_bytes(struct msr_req *r, unsigned status, const char *ctype, char *data,
                     size_t len);
void msr_reply_error(struct msr_req *r, unsigned status, const char *code,
                     json_t *detail, const char *fmt, ...) MSR_PRINTF(5, 6);
void msr_reply_unavailable(struct msr_req *r, const char *why);
/* One extra header; a Cache-Control given here replaces the default no-store. */
void msr_reply_header(struct msr_req *r, const char *name, const char *value);
/*
 * More headers for this reply: pairs is name, value, name, value, ..., NULL in
 * static storage (not copied). A Cache-Control among them replaces the default
 * "no-store" (the console's assets, handlers_ui.c).
 */
void msr_reply_static_headers(struct msr_req *r, const char *const *pairs);
/*
 * Add key=value (stolen) to this request's audit entry. Bounded centrally:
 * a string longer than MSR_AUDIT_STRING_MAX bytes becomes
 * {"length": n, "sha256": hex} (so do the request path and any array of more
 * than 64 elements), and if the whole entry would still exceed
 * MSR_AUDIT_ENTRY_MAX its notes are replaced by the length and SHA-256 of
 * their canonical JSON. The note named by a refusal's detail.field is
 * recorded as its length and SHA-256 too. Handlers should note validated,
 * normalised values.
 */
void msr_audit_note(struct msr_req *r, const char *key, json_t *value);
/*
 * Copy text into out (outlen > 0) as valid UTF-8: invalid bytes become the
 * four characters \xNN, and the copy stops on a character boundary. Returns
 * the bytes written (NUL excluded).
 */
size_t msr_utf8_clean(const char *text, size_t len, char *out, size_t outlen);


#endif
