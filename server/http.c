/*
 * http.c — libmicrohttpd daemon, routing, request contexts and middleware.
 *
 * The daemon runs MHD's internal thread pool on epoll ([http] threads). Handlers
 * run on those threads and may block on PostgreSQL and on the audit sequencer's
 * group commit, so the pool is sized for concurrency, not for cores.
 *
 * Invariants:
 *  1. Every request gets exactly one struct msr_req, created when its headers
 *     arrive and freed only in on_completed() (MHD's completion callback),
 *     whatever path the request took.
 *  2. A body never grows past [http] body_limit: a larger Content-Length is
 *     answered 413 before reading it, a chunked body that overflows is dropped
 *     and answered 413 once complete.
 *  3. Every reply is JSON except the documented text/plain endpoints; errors are
 *     {"error":{"code","message","detail"}} with a stable code.
 *  4. An audited route's reply is queued only after msr_audit_append() made its
 *     entry durable; if that fails the reply is replaced by 503 unavailable.
 *  5. The request's database connection is released before the audit wait, so
 *     requests waiting for a group commit hold no pool slot — except a write
 *     whose transaction waits for its entry (invariant 6).
 *  6. A write transaction (msr_req_commit) commits only after its audit entry
 *     is durable; if the entry fails it is rolled back; if the commit fails
 *     after the entry, the reply is 503 and the sequencer records that nothing
 *     was stored (an audit.write_void entry, audit.c "Writes"). So every
 *     stored change has a durable entry, and the log never claims a change
 *     that was not made without saying so.
 */
#include "msreg/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "msreg/audit.h"
#include "msreg/auth.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/log.h"
#include "msreg/metrics.h"
#include "msreg/ratelimit.h"
#include "msreg/server.h"

struct msr_http {
	struct MHD_Daemon  *mhd;
	struct msr_server  *srv;
	char               *tls_cert, *tls_key;
	int                 inflight;      /* requests between req_new and on_completed */
};

/* ---- replies ---- */

static void
reply_reset(struct msr_req *r)
{
	json_decref(r->reply_json);
	r->reply_json = NULL;
	free(r->reply_text);
	r->reply_text = NULL;
}

void
msr_reply_json(struct msr_req *r, unsigned status, json_t *json)
{
	reply_reset(r);
	r->status = status;
	r->reply_json = json;
	r->reply_ctype = "application/json";
}

void
msr_reply_text(struct msr_req *r, unsigned status, const char *ctype, char *text)
{
	reply_reset(r);
	r->status = status;
	r->reply_text = text;
	r->reply_ctype = ctype;
}

void
msr_reply_error(struct msr_req *r, unsigned status, const char *code, json_t *detail,
    const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *err;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (detail != NULL)
		json_object_set_new(err, "detail", detail);
	msr_reply_json(r, status, json_pack("{s:o}", "error", err));
}

void
msr_reply_unavailable(struct msr_req *r, const char *why)
{
	msr_reply_error(r, 503, "unavailable", NULL, "%s", why);
	msr_reply_header(r, "Retry-After", "1");
}

void
msr_reply_header(struct msr_req *r, const char *name, const char *value)
{
	free(r->extra_header_name);
	free(r->extra_header_value);
	r->extra_header_name = strdup(name);
	r->extra_header_value = strdup(value);
}

void
msr_audit_note(struct msr_req *r, const char *key, json_t *value)
{
	if (r->audit == NULL)
		r->audit = json_object();
	json_object_set_new(r->audit, key, value);
}

const char *
msr_req_arg(struct msr_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int
msr_req_begin(struct msr_req *r)
{
	if (msr_req_db(r) == NULL)
		return -1;
	if (msr_db_command(r->db, "BEGIN") != 0) {
		msr_reply_unavailable(r, "the database is unavailable");
		return -1;
	}
	return 0;
}

void
msr_req_commit(struct msr_req *r)
{
	r->commit_pending = 1;
}

struct msr_db_conn *
msr_req_db(struct msr_req *r)
{
	if (r->db == NULL)
		r->db = msr_db_acquire(r->srv->db);
	if (r->db == NULL)
		msr_reply_unavailable(r, "the database is unavailable");
	return r->db;
}

/* ---- routing ---- */

/*
 * Match path against pattern; "{}" matches one non-empty segment and is
 * captured (percent-decoding is MHD's: it decodes the URL before we see it).
 */
static int
route_match(const char *pattern, const char *path, struct msr_req *r, int capture)
{
	int nc = 0;

	while (*pattern != '\0' && *path != '\0') {
		if (pattern[0] == '{' && pattern[1] == '}') {
			size_t n = strcspn(path, "/");
			if (n == 0 || nc >= MSR_MAX_CAPTURES)
				return 0;
			if (capture)
				r->capture[nc] = strndup(path, n);
			nc++;
			path += n;
			pattern += 2;
			continue;
		}
		if (*pattern != *path)
			return 0;
		pattern++;
		path++;
	}
	return *pattern == '\0' && *path == '\0';
}

/* Returns route index, -1 = no path, -2 = path exists for other methods (allow filled). */
static int
route_find(struct msr_req *r, char *allow, size_t allowlen)
{
	int found_path = 0;

	allow[0] = '\0';
	for (size_t i = 0; i < msr_routes_len; i++) {
		const struct msr_route *rt = &msr_routes[i];
		if (!route_match(rt->pattern, r->path, r, 0))
			continue;
		if (strcmp(rt->method, r->method) == 0 ||
		    (strcmp(r->method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
			route_match(rt->pattern, r->path, r, 1);
			return (int)i;
		}
		if (found_path)
			strncat(allow, ", ", allowlen - strlen(allow) - 1);
		strncat(allow, rt->method, allowlen - strlen(allow) - 1);
		found_path = 1;
	}
	return found_path ? -2 : -1;
}

/* ---- middleware ---- */

static int
authenticate(struct msr_req *r)
{
	const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
	int rc;

	if (h == NULL) {
		if (r->route->flags & MSR_R_OPT_AUTH)
			return 0;
		msr_reply_error(r, 401, "unauthenticated", NULL,
		    "this endpoint requires an API key (Authorization: Bearer <key>)");
		msr_reply_header(r, "WWW-Authenticate", "Bearer");
		return -1;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		msr_reply_error(r, 401, "unauthenticated", NULL,
		    "the Authorization header must use the Bearer scheme");
		msr_reply_header(r, "WWW-Authenticate", "Bearer");
		return -1;
	}
	h += 7;
	while (*h == ' ')
		h++;
	if (msr_req_db(r) == NULL)
		return -1;
	if (!r->srv->key_secret_loaded) {
		/* First request after a start without the database: load it now. */
		if (msr_auth_load_secret(r->db, r->srv->key_secret) != 0) {
			msr_reply_unavailable(r, "the database is unavailable or not migrated");
			return -1;
		}
		__atomic_store_n(&r->srv->key_secret_loaded, 1, __ATOMIC_RELEASE);
	}
	rc = msr_auth_lookup(r->db, r->srv->key_secret, h, &r->client);
	if (rc < 0) {
		msr_reply_unavailable(r, "the database is unavailable");
		return -1;
	}
	if (rc == 0) {
		msr_reply_error(r, 401, "unauthenticated", NULL,
		    "the API key is invalid or has been revoked");
		msr_reply_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		return -1;
	}
	r->authed = 1;
	return 0;
}

static int
authorize(struct msr_req *r)
{
	if (r->route->roles == 0 || (r->route->roles & MSR_ROLE(r->client.role)))
		return 0;
	if (!r->authed && (r->route->flags & MSR_R_OPT_AUTH))
		return 0;
	msr_reply_error(r, 403, "forbidden", NULL, "role %s may not %s",
	    msr_role_name(r->client.role), r->route->action);
	return -1;
}

static int
content_type_is_json(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return 0;
	while (*ct == ' ')
		ct++;
	n = strlen("application/json");
	if (strncasecmp(ct, "application/json", n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static int
parse_body(struct msr_req *r)
{
	const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	json_error_t jerr;

	if (!content_type_is_json(ct)) {
		msr_reply_error(r, 415, "unsupported_media_type", NULL,
		    "the request body must be application/json");
		return -1;
	}
	r->json = json_loadb(r->body ? r->body : "", r->body_len,
	    JSON_REJECT_DUPLICATES, &jerr);
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

static void
format_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%06ldZ", ts.tv_nsec / 1000);
}

/*
 * Append this request's audit entry. The entry is canonical JSON (compact,
 * keys sorted): who, what, outcome, plus whatever the handler noted.
 */
static void
audit_request(struct msr_req *r)
{
	char when[40];
	json_t *entry;
	char *text = NULL;
	int64_t index = -1;

	format_time(when, sizeof(when));
	entry = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:i}",
	    "time", when, "client", (json_int_t)r->client.id,
	    "role", msr_role_name(r->client.role), "org", r->client.org,
	    "action", r->route->action, "method", r->method, "path", r->path,
	    "status", (int)r->status);
	if (entry != NULL && r->status >= 400 && r->reply_json != NULL) {
		json_t *code = json_object_get(json_object_get(r->reply_json, "error"), "code");
		if (code != NULL)
			json_object_set(entry, "error", code);
	}
	if (entry != NULL && r->audit != NULL)
		json_object_update_missing(entry, r->audit);
	if (entry != NULL)
		text = json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL || r->srv->audit == NULL ||
	    (r->commit_pending ?
	    msr_audit_append_write(r->srv->audit, text, strlen(text), r->client.id, &index) :
	    msr_audit_append(r->srv->audit, text, strlen(text), r->client.id, &index)) != 0) {
		log_warn("audit append failed for %s %s (client %lld); answering 503",
		    r->method, r->path, (long long)r->client.id);
		msr_reply_unavailable(r, "the audit log is unavailable; the request was not answered");
		r->audit_index = -1;
	} else {
		r->audit_index = index;
	}
	free(text);
	json_decref(entry);
}

/*
 * Commit a write left open by its handler, now that its audit entry (if the
 * route is audited) is durable. See invariant 6.
 */
static void
finish_write(struct msr_req *r, int audited)
{
	int64_t first = r->audit_index;

	r->commit_pending = 0;
	if (r->db == NULL)
		return;
	if (audited && first < 0)
		return;             /* the entry failed: released below, rolled back */
	/*
	 * An audited write commits with its intent resolved (audit.c, "Writes");
	 * if it does not, the sequencer appends an audit.write_void entry naming
	 * `first`, so no second entry is written here.
	 */
	if (audited ? msr_audit_commit_write(r->srv->audit, r->db, first) == 0 :
	    msr_db_command(r->db, "COMMIT") == 0)
		return;
	log_error("commit failed for %s %s after its audit entry %lld was durable;"
	    " nothing was stored", r->method, r->path, (long long)first);
	msr_reply_unavailable(r, "the database failed while committing; nothing was stored");
}

static void
dispatch(struct msr_req *r)
{
	const struct msr_route *rt = r->route;

	if (r->body_too_large) {
		msr_reply_error(r, 413, "body_too_large", NULL,
		    "the request body exceeds %zu bytes", r->srv->cfg->http_body_limit);
		return;
	}
	if (rt->roles != 0 && authenticate(r) != 0)
		goto release;
	if (authorize(r) != 0)
		goto audit;
	if (r->authed && msr_ratelimit_take(r->srv->rate, r->client.id) != 0) {
		msr_reply_error(r, 429, "rate_limited", NULL,
		    "too many requests for this API key; retry later");
		msr_reply_header(r, "Retry-After", "1");
		goto release;
	}
	if ((rt->flags & MSR_R_JSON_BODY) && parse_body(r) != 0)
		goto audit;
	rt->handler(r);
	if (r->status == 0) {
		log_error("handler for %s %s set no reply", r->method, r->path);
		msr_reply_unavailable(r, "internal error");
	}
audit:
	if (!r->commit_pending) {
		msr_db_release(r->db);
		r->db = NULL;
	}
	if (r->authed && (rt->flags & MSR_R_AUDITED))
		audit_request(r);
	if (r->commit_pending)
		finish_write(r, r->authed && (rt->flags & MSR_R_AUDITED));
release:
	msr_db_release(r->db);
	r->db = NULL;
}

static enum MHD_Result
queue_reply(struct msr_req *r)
{
	struct MHD_Response *resp;
	char *body = NULL;
	size_t len = 0;
	enum MHD_Result ret;
	char idx[24];

	if (r->reply_json != NULL) {
		body = json_dumps(r->reply_json, JSON_COMPACT);
		if (body == NULL)
			body = strdup("{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}");
		len = strlen(body);
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	} else {
		len = r->reply_text ? strlen(r->reply_text) : 0;
		resp = MHD_create_response_from_buffer(len, r->reply_text,
		    MHD_RESPMEM_MUST_FREE);
		r->reply_text = NULL;
	}
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    r->reply_ctype ? r->reply_ctype : "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (r->audit_index >= 0) {
		snprintf(idx, sizeof(idx), "%lld", (long long)r->audit_index);
		MHD_add_response_header(resp, "Audit-Index", idx);
	}
	if (r->extra_header_name != NULL)
		MHD_add_response_header(resp, r->extra_header_name, r->extra_header_value);
	ret = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
req_free(struct msr_req *r)
{
	msr_db_release(r->db);
	free(r->path);
	for (int i = 0; i < MSR_MAX_CAPTURES; i++)
		free(r->capture[i]);
	free(r->body);
	json_decref(r->json);
	json_decref(r->reply_json);
	free(r->reply_text);
	json_decref(r->audit);
	free(r->extra_header_name);
	free(r->extra_header_value);
	free(r);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct msr_http *h = cls;
	struct msr_req *r = *con_cls;

	(void)conn;
	(void)toe;
	if (r == NULL)
		return;
	msr_metrics_observe(h->srv->metrics, r->route_index, r->status,
	    msr_now_ns() - r->start_ns);
	req_free(r);
	*con_cls = NULL;
	__atomic_sub_fetch(&h->inflight, 1, __ATOMIC_RELEASE);
}

static struct msr_req *
req_new(struct msr_http *h, struct MHD_Connection *conn, const char *url,
    const char *method)
{
	struct msr_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->srv = h->srv;
	r->conn = conn;
	r->start_ns = msr_now_ns();
	r->audit_index = -1;
	r->route_index = -1;
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->path = strdup(url);
	if (r->path == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

/* First call for a request: route it and refuse early what can be refused. */
static int
on_headers(struct msr_req *r)
{
	char allow[64];
	const char *cl;
	int i;

	i = route_find(r, allow, sizeof(allow));
	if (i == -1) {
		msr_reply_error(r, 404, "not_found", NULL, "no such endpoint: %s", r->path);
		return -1;
	}
	if (i == -2) {
		msr_reply_error(r, 405, "method_not_allowed",
		    json_pack("{s:s}", "allow", allow),
		    "%s is not allowed on %s", r->method, r->path);
		msr_reply_header(r, "Allow", allow);
		return -1;
	}
	r->route = &msr_routes[i];
	r->route_index = i;
	cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL && strtoull(cl, NULL, 10) > r->srv->cfg->http_body_limit) {
		msr_reply_error(r, 413, "body_too_large", NULL,
		    "the request body exceeds %zu bytes", r->srv->cfg->http_body_limit);
		return -1;
	}
	return 0;
}

static int
body_append(struct msr_req *r, const char *data, size_t n)
{
	size_t limit = r->srv->cfg->http_body_limit;
	size_t cap;
	char *p;

	if (r->body_too_large || r->body_len + n > limit) {
		r->body_too_large = 1;
		return 0;
	}
	if (r->body_len + n + 1 > r->body_cap) {
		cap = r->body_cap ? r->body_cap : 4096;
		while (cap < r->body_len + n + 1)
			cap *= 2;
		if (cap > limit + 1)
			cap = limit + 1;
		p = realloc(r->body, cap);
		if (p == NULL)
			return -1;
		r->body = p;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return 0;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct msr_http *h = cls;
	struct msr_req *r = *con_cls;

	(void)version;
	if (r == NULL) {
		r = req_new(h, conn, url, method);
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		__atomic_add_fetch(&h->inflight, 1, __ATOMIC_ACQ_REL);
		if (on_headers(r) != 0)
			return queue_reply(r);
		return MHD_YES;
	}
	if (r->status != 0)          /* already answered early; discard the body */
		return MHD_YES;
	if (*upload_data_size != 0) {
		if (body_append(r, upload_data, *upload_data_size) != 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	dispatch(r);
	return queue_reply(r);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("mhd: %s", buf);
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
			buf[n] = '\0';
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

struct msr_http *
msr_http_start(struct msr_server *srv)
{
	const struct msr_config *cfg = srv->cfg;
	struct msr_http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_ERROR_LOG | MHD_USE_ITC;
	struct MHD_OptionItem opts[16];
	int n = 0;

	if (h == NULL)
		return NULL;
	h->srv = srv;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET6, cfg->http_address, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)cfg->http_port);
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		if (inet_pton(AF_INET, cfg->http_address, &s4->sin_addr) != 1) {
			log_error("[http] address %s is not an IPv4 or IPv6 address",
			    cfg->http_address);
			free(h);
			return NULL;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)cfg->http_port);
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE,
	    (intptr_t)cfg->http_threads, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
	    (intptr_t)cfg->http_max_connections, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
	    (intptr_t)cfg->http_connection_timeout, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED,
	    (intptr_t)on_completed, h };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER,
	    (intptr_t)on_mhd_log, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (intptr_t)(64 * 1024), NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL };
	if (cfg->http_tls_cert != NULL) {
		h->tls_cert = read_file(cfg->http_tls_cert);
		h->tls_key = read_file(cfg->http_tls_key);
		if (h->tls_cert == NULL || h->tls_key == NULL) {
			log_error("cannot read [http] tls_cert/tls_key");
			free(h->tls_cert);
			free(h->tls_key);
			free(h);
			return NULL;
		}
		flags |= MHD_USE_TLS;
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key };
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
	    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (h->mhd == NULL) {
		log_error("cannot listen on %s port %d", cfg->http_address, cfg->http_port);
		free(h->tls_cert);
		free(h->tls_key);
		free(h);
		return NULL;
	}
	return h;
}

void
msr_http_stop(struct msr_http *h)
{
	struct timespec tick = { 0, 10 * 1000000L };
	int waited_ms = 0, limit_ms;

	if (h == NULL)
		return;
	/*
	 * Stop accepting, then let every request already received finish and its
	 * reply be sent (MHD_stop_daemon itself would close connections with
	 * replies still unsent), for at most [http] connection_timeout seconds.
	 */
	if (MHD_quiesce_daemon(h->mhd) == MHD_INVALID_SOCKET)
		log_warn("could not stop accepting connections before shutdown");
	limit_ms = h->srv->cfg->http_connection_timeout * 1000;
	while (__atomic_load_n(&h->inflight, __ATOMIC_ACQUIRE) > 0 && waited_ms < limit_ms) {
		nanosleep(&tick, NULL);
		waited_ms += 10;
	}
	if (waited_ms >= limit_ms)
		log_warn("shutdown: %d request(s) still in flight after %d s; closing",
		    __atomic_load_n(&h->inflight, __ATOMIC_ACQUIRE), limit_ms / 1000);
	MHD_stop_daemon(h->mhd);
	if (h->tls_key != NULL)
		explicit_bzero(h->tls_key, strlen(h->tls_key));
	free(h->tls_cert);
	free(h->tls_key);
	free(h);
}
