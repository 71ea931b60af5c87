/*
 * http.c — libmicrohttpd daemon, routing, request contexts and middleware.
 *
 * The daemon runs MHD's internal thread pool on epoll ([http] threads). Handlers
 * run on those threads and may block on PostgreSQL, so the pool is sized for
 * concurrency, not for cores. An audited read does not block on the audit
 * sequencer's group commit: its connection is suspended
 * (MHD_ALLOW_SUSPEND_RESUME) while its entry is appended asynchronously, and
 * resumed by the sequencer's callback (audit_request_async); a write still
 * waits on its worker thread, holding its transaction (invariant 6).
 *
 * Invariants:
 *  1. Every request gets exactly one struct msr_req, created when its headers
 *     arrive and freed only in on_completed() (MHD's completion callback),
 *     whatever path the request took.
 *  2. No body byte is read before the caller is authenticated, authorized and
 *     within its rate (401/403/429 first). A body never grows past its route's
 *     limit: a larger Content-Length is answered 413 before reading it, a
 *     chunked body that overflows is discarded and answered 413 once complete.
 *     All bodies in flight, with the estimated size of their parsed JSON, fit
 *     in [http] body_memory_limit (h->body_bytes; 503 beyond), and a JSON body
 *     is pre-scanned for depth and number of values before it is parsed.
 *     Requests on batch routes (a body limit above body_limit_small) hold at
 *     most large_cap() of it (h->large_bytes), so that bodies announced on
 *     batch routes and never sent cannot leave single-item routes (a search,
 *     a sale) without memory; a JSON body whose parse could not fit even an
 *     idle budget is 413, not 503.
 *  7. A request must arrive whole (headers and body) within
 *     [http] request_timeout of its connection becoming ready (accepted, or
 *     its previous reply finished), however slowly it trickles: the reaper
 *     thread shuts down the socket of any connection over its deadline that
 *     is not being answered. The connection records (struct conn_track) are
 *     created and destroyed by MHD's connection notifications under h->lock,
 *     and the reaper only touches a socket under that lock, so it never shuts
 *     down a descriptor that was closed and reused.
 *  8. Every audit entry is at most MSR_AUDIT_ENTRY_MAX bytes: long or invalid
 *     strings are recorded as their length and SHA-256 (msr_audit_note and
 *     audit_request), never as the client's bytes.
 *  9. Every error body is valid UTF-8 JSON (msr_utf8_clean on every message).
 *  3. Every reply is JSON except the documented text/plain endpoints; errors are
 *     {"error":{"code","message","detail"}} with a stable code.
 *  4. An audited route's reply is queued only after msr_audit_append() (or, for
 *     a suspended read, msr_audit_append_async()'s callback) made its entry
 *     durable; if that fails the reply is replaced by 503 unavailable. A
 *     suspended connection is resumed only by that callback (after at most
 *     [audit] wait_ms), and msr_http_stop waits for every one before it stops
 *     MHD (h->suspended).
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
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "msreg/acceptor.h"
#include "msreg/audit.h"
#include "msreg/auth.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/jsonv.h"
#include "msreg/log.h"
#include "msreg/metrics.h"
#include "msreg/ratelimit.h"
#include "msreg/server.h"
#include "msreg/witness.h"

/* msr_req.audit_wait: a read suspended for its audit entry (audit_request_async) */
enum { AW_NONE, AW_WAITING, AW_DONE };

/* Estimated bytes of a parsed JSON value (jansson: json_t, allocator, slot). */
#define JSON_VALUE_COST 128

/* One open connection, for the whole-request deadline (invariant 7). */
struct conn_track {
	struct conn_track  *prev, *next;
	int                 fd;
	int                 addr_slot;     /* counted in h->addr_conns[], -1 if not */
	int                 answering;     /* our code is answering: never reaped */
	int                 reaped;
	uint64_t            since_ns;      /* became ready for its next request */
};

struct msr_http {
	struct MHD_Daemon    *mhd;
	struct msr_server    *srv;
	struct msr_acceptor  *acceptor;      /* plain HTTP: our accept loop (acceptor.c) */
	char                 *tls_cert, *tls_key;
	int                   inflight;      /* requests between req_new and on_completed */
	int                   live;          /* connections the acceptor handed over, open (atomic) */
	int                   suspended;     /* connections waiting for their audit entry (atomic) */
	size_t                body_bytes;    /* reserved by bodies in flight (atomic) */
	size_t                large_bytes;   /* of which by batch routes' requests (atomic) */
	struct msr_ratelimit *rate_addr;     /* unauthenticated traffic per source address */
	double                rate[MSR_RATE_NCLASSES][2];
	/* connections and the reaper (invariant 7) */
	pthread_mutex_t       lock;
	pthread_cond_t        wake;
	struct conn_track    *conns;
	int                   reaper_stop, reaper_started;
	pthread_t             reaper;
	unsigned long         reaped;
	/* open connections per source address ([http] per_address_connections) */
	struct {
		int64_t key;                 /* addr_key(); 0 = never used */
		int     n;
	}                     addr_conns[4096];
};

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (n > 0 bytes available), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

static int
utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		k = utf8_seq(p + i, n - i);
		if (k == 0 || p[i] == 0)
			return 0;
		i += k;
	}
	return 1;
}

size_t
msr_utf8_clean(const char *text, size_t len, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0, o = 0, k;

	while (i < len && p[i] != 0) {
		k = utf8_seq(p + i, len - i);
		if (k == 0) {
			if (o + 4 >= outlen)
				break;
			snprintf(out + o, outlen - o, "\\x%02X", p[i]);
			o += 4;
			i++;
			continue;
		}
		if (o + k >= outlen)
			break;
		memcpy(out + o, p + i, k);
		o += k;
		i += k;
	}
	out[o] = '\0';
	return o;
}

/* ---- bounded audit values (invariant 8) ---- */

/* {"length": n, "sha256": hex} standing in for bytes that may not be recorded. */
static json_t *
digest_of(const void *p, size_t n)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1];

	crypto_hash_sha256(h, p, n);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	return json_pack("{s:I, s:s}", "length", (json_int_t)n, "sha256", hex);
}

static json_t *
bounded_text(const char *s, size_t n)
{
	if (n <= MSR_AUDIT_STRING_MAX && utf8_valid(s, n))
		return json_stringn(s, n);
	return digest_of(s, n);
}

/* A copy of v in which no string, array or nesting is unbounded (new reference). */
static json_t *
bounded_value(json_t *v, int depth)
{
	json_t *out;
	const char *k;
	json_t *m;
	size_t i;

	if (json_is_string(v))
		return bounded_text(json_string_value(v), json_string_length(v));
	if (!json_is_array(v) && !json_is_object(v))
		return json_incref(v);
	if (depth >= 4 || json_object_size(v) > 64 || json_array_size(v) > 64) {
		char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		size_t n = json_is_array(v) ? json_array_size(v) : json_object_size(v);

		out = text != NULL ? digest_of(text, strlen(text)) : json_object();
		json_object_set_new(out, "elements", json_integer((json_int_t)n));
		free(text);
		return out;
	}
	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, m) {
			json_array_append_new(out, bounded_value(m, depth + 1));
		}
		return out;
	}
	out = json_object();
	json_object_foreach(v, k, m) {
		if (strlen(k) > MSR_AUDIT_STRING_MAX)
			json_object_set_new(out, "long_key", digest_of(k, strlen(k)));
		else
			json_object_set_new(out, k, bounded_value(m, depth + 1));
	}
	return out;
}

/* ---- replies ---- */

static void
reply_reset(struct msr_req *r)
{
	json_decref(r->reply_json);
	r->reply_json = NULL;
	free(r->reply_text);
	r->reply_text = NULL;
	r->reply_text_len = 0;
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
msr_reply_bytes(struct msr_req *r, unsigned status, const char *ctype, char *data,
    size_t len)
{
	msr_reply_text(r, status, ctype, data);
	r->reply_text_len = len;
}

void
msr_reply_error(struct msr_req *r, unsigned status, const char *code, json_t *detail,
    const char *fmt, ...)
{
	char raw[2048], msg[512];
	va_list ap;
	json_t *err;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (n < 0)
		raw[0] = '\0';
	/* valid UTF-8, cut on a character boundary (invariant 9) */
	msr_utf8_clean(raw, strlen(raw), msg, sizeof(msg));
	err = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (detail != NULL)
		json_object_set_new(err, "detail", detail);
	msr_reply_json(r, status, json_pack("{s:o}", "error", err));
	msr_metrics_refusal(code);
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
msr_reply_static_headers(struct msr_req *r, const char *const *pairs)
{
	r->static_headers = pairs;
}

void
msr_audit_note(struct msr_req *r, const char *key, json_t *value)
{
	json_t *bounded;

	if (value == NULL)      /* e.g. json_string() of invalid UTF-8 */
		value = json_pack("{s:b}", "invalid", 1);
	bounded = bounded_value(value, 0);
	json_decref(value);
	if (r->audit == NULL)
		r->audit = json_object();
	json_object_set_new(r->audit, key, bounded);
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
route_match(const char *pattern, const char *path, struct msr_req *r, int capture,
    int tail)
{
	int nc = 0;

	while (*pattern != '\0' && *path != '\0') {
		if (pattern[0] == '{' && pattern[1] == '}') {
			/* MSR_R_PATH_TAIL: a final {} takes the rest of the path */
			size_t n = tail && pattern[2] == '\0' ? strlen(path) :
			    strcspn(path, "/");
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
		int tail = (rt->flags & MSR_R_PATH_TAIL) != 0;

		if (!route_match(rt->pattern, r->path, r, 0, tail))
			continue;
		if (strcmp(rt->method, r->method) == 0 ||
		    (strcmp(r->method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
			route_match(rt->pattern, r->path, r, 1, tail);
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

static struct msr_http *
h_of(struct msr_req *r)
{
	return r->http;
}

/*
 * The rate-limit key of the caller's address: IPv4 addresses one by one, IPv6
 * by /64 (one host usually holds a whole /64). Tagged in the top byte so that
 * the two kinds never collide.
 */
static int64_t
addr_key_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
	uint64_t k = 0;

	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		k = (UINT64_C(4) << 56) | ntohl(s4->sin_addr.s_addr);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *a = s6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			k = (UINT64_C(4) << 56) | (uint64_t)a[12] << 24 | (uint64_t)a[13] << 16 |
			    (uint64_t)a[14] << 8 | a[15];
		} else {
			for (int i = 0; i < 7; i++)
				k = k << 8 | a[i];
			k = (UINT64_C(6) << 56) | (k ^ a[7]);
		}
	}
	return (int64_t)k;
}

static int64_t
addr_key(struct msr_req *r)
{
	return addr_key_of(r->conn);
}

static void
reply_rate_limited(struct msr_req *r, double retry_after, const char *who)
{
	char ra[24];

	snprintf(ra, sizeof(ra), "%.0f", ceil(retry_after < 1 ? 1 : retry_after));
	msr_reply_error(r, 429, "rate_limited", NULL,
	    "too many requests for this %s; retry later", who);
	msr_reply_header(r, "Retry-After", ra);
}

/*
 * Unauthenticated traffic, per source address: 0, or -1 after replying 429.
 * kind 0 counts requests without a key; ADDR_GUESSES counts wrong keys in a
 * bucket of their own, so that an address's public traffic (a monitoring
 * scraper) never holds up the keyed requests of the same host.
 */
#define ADDR_GUESSES ((int64_t)1 << 62)

static int
rate_address(struct msr_req *r, int64_t kind, double cost)
{
	struct msr_http *h = h_of(r);
	double ra;

	if (msr_ratelimit_take_rate(h->rate_addr, addr_key(r) ^ kind, h->rate[MSR_RATE_ADDRESS][0],
	    h->rate[MSR_RATE_ADDRESS][1], cost, &ra) == 0)
		return 0;
	reply_rate_limited(r, ra, "address");
	return -1;
}

static int
rate_class(enum msr_role role)
{
	switch (role) {
	case MSR_ROLE_MANUFACTURER: return MSR_RATE_MANUFACTURER;
	case MSR_ROLE_DEALER: return MSR_RATE_DEALER;
	case MSR_ROLE_AUDITOR: return MSR_RATE_AUDITOR;
	case MSR_ROLE_ADMIN: return MSR_RATE_ADMIN;
	default: return MSR_RATE_INVESTIGATOR;
	}
}

/* An authenticated key, at its role's rate: 0, or -1 after replying 429. */
static int
rate_key(struct msr_req *r)
{
	struct msr_http *h = h_of(r);
	int c = rate_class(r->client.role);
	double ra;

	if (msr_ratelimit_take_rate(r->srv->rate, r->client.id, h->rate[c][0], h->rate[c][1],
	    1, &ra) == 0)
		return 0;
	reply_rate_limited(r, ra, "API key");
	return -1;
}

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
		/* a wrong key costs its address a token: guessing is rate-limited */
		msr_ratelimit_take_rate(h_of(r)->rate_addr, addr_key(r) ^ ADDR_GUESSES,
		    h_of(r)->rate[MSR_RATE_ADDRESS][0], h_of(r)->rate[MSR_RATE_ADDRESS][1], 1, NULL);
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

/*
 * What requests on batch routes may hold of the body budget together: three
 * quarters, and always room for one body of [http] body_limit (invariant 2).
 */
static size_t
large_cap(const struct msr_config *cfg)
{
	size_t cap = cfg->http_body_memory_limit / 4 * 3;

	if (cap < cfg->http_body_limit + 1)
		cap = cfg->http_body_limit + 1;
	return cap < cfg->http_body_memory_limit ? cap : cfg->http_body_memory_limit;
}

/* What r may ever hold of the budget. */
static size_t
tier_cap(struct msr_req *r)
{
	return r->body_large ? large_cap(r->srv->cfg) : r->srv->cfg->http_body_memory_limit;
}

/* Reserve n bytes of the global body budget for r: 0, or -1 if it is spent. */
static int
mem_reserve(struct msr_req *r, size_t n)
{
	struct msr_http *h = r->http;
	size_t total;

	if (r->body_large &&
	    __atomic_add_fetch(&h->large_bytes, n, __ATOMIC_ACQ_REL) > large_cap(r->srv->cfg)) {
		__atomic_sub_fetch(&h->large_bytes, n, __ATOMIC_ACQ_REL);
		return -1;
	}
	total = __atomic_add_fetch(&h->body_bytes, n, __ATOMIC_ACQ_REL);
	if (total > r->srv->cfg->http_body_memory_limit) {
		__atomic_sub_fetch(&h->body_bytes, n, __ATOMIC_ACQ_REL);
		if (r->body_large)
			__atomic_sub_fetch(&h->large_bytes, n, __ATOMIC_ACQ_REL);
		return -1;
	}
	r->reserved += n;
	return 0;
}

static void
mem_release(struct msr_req *r, size_t n)
{
	if (n > r->reserved)
		n = r->reserved;
	__atomic_sub_fetch(&r->http->body_bytes, n, __ATOMIC_ACQ_REL);
	if (r->body_large)
		__atomic_sub_fetch(&r->http->large_bytes, n, __ATOMIC_ACQ_REL);
	r->reserved -= n;
}

static void
reply_busy(struct msr_req *r)
{
	msr_reply_error(r, 503, "unavailable", json_pack("{s:s}", "reason", "body_memory"),
	    "too many request bodies in flight; retry later");
	msr_reply_header(r, "Retry-After", "1");
}

static void
reply_too_large(struct msr_req *r)
{
	msr_reply_error(r, 413, "body_too_large",
	    json_pack("{s:I}", "limit", (json_int_t)r->body_limit),
	    "the request body exceeds %zu bytes", r->body_limit);
}

int
msr_req_parse_json(struct msr_req *r)
{
	const struct msr_config *cfg = r->srv->cfg;
	const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	json_error_t jerr;
	size_t values;
	int depth;

	if (!content_type_is_json(ct)) {
		msr_reply_error(r, 415, "unsupported_media_type", NULL,
		    "the request body must be application/json");
		return -1;
	}
	/* bound what the tree can cost before building it (invariant 2) */
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
	if (r->reserved + values * JSON_VALUE_COST > tier_cap(r)) {
		/* could not be parsed even with the budget to itself: not a retry */
		size_t room = tier_cap(r) > r->reserved ? tier_cap(r) - r->reserved : 0;

		msr_reply_error(r, 413, "body_too_large",
		    json_pack("{s:I}", "max_values", (json_int_t)(room / JSON_VALUE_COST)),
		    "the JSON holds more values than the body memory budget can parse");
		return -1;
	}
	if (mem_reserve(r, values * JSON_VALUE_COST) != 0) {
		reply_busy(r);
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
 * This request's audit entry: canonical JSON (compact, keys sorted): who,
 * what, outcome, plus whatever the handler noted. NULL when it cannot be
 * built within MSR_AUDIT_ENTRY_MAX. The caller frees it.
 */
static char *
audit_text(struct msr_req *r)
{
	char when[40];
	json_t *entry;
	char *text = NULL;

	format_time(when, sizeof(when));
	entry = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:o, s:i}",
	    "time", when, "client", (json_int_t)r->client.id,
	    "role", msr_role_name(r->client.role), "org", r->client.org,
	    "action", r->route->action, "method", r->method,
	    "path", bounded_text(r->path, strlen(r->path)),
	    "status", (int)r->status);
	if (entry != NULL && r->status >= 400 && r->reply_json != NULL) {
		json_t *err = json_object_get(r->reply_json, "error");
		json_t *code = json_object_get(err, "code");
		const char *field = json_string_value(json_object_get(
		    json_object_get(err, "detail"), "field"));
		json_t *bad = field != NULL && r->audit != NULL ?
		    json_object_get(r->audit, field) : NULL;

		if (code != NULL)
			json_object_set(entry, "error", code);
		if (bad != NULL && !json_is_object(bad)) {
			/* the field the refusal names: its length and digest, not its bytes */
			char *dumped = json_is_string(bad) ? NULL :
			    json_dumps(bad, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
			json_object_set_new(r->audit, field, dumped != NULL ?
			    digest_of(dumped, strlen(dumped)) :
			    digest_of(json_string_value(bad), json_string_length(bad)));
			free(dumped);
		}
	}
	if (entry != NULL && r->audit != NULL)
		json_object_update_missing(entry, r->audit);
	if (entry != NULL)
		text = json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS);
	if (text != NULL && strlen(text) > MSR_AUDIT_ENTRY_MAX && r->audit != NULL) {
		/* Too long even with bounded notes: keep their digest only (invariant 8). */
		char *notes = json_dumps(r->audit, JSON_COMPACT | JSON_SORT_KEYS);
		const char *k;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(r->audit, tmp, k, v) {
			json_object_del(entry, k);
		}
		if (notes != NULL)
			json_object_set_new(entry, "notes", digest_of(notes, strlen(notes)));
		free(notes);
		free(text);
		text = json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS);
	}
	json_decref(entry);
	if (text != NULL && strlen(text) > MSR_AUDIT_ENTRY_MAX) {
		free(text);
		text = NULL;
	}
	return text;
}

/* The audit entry could not be made durable: 503 (invariant 4). */
static void
audit_failed(struct msr_req *r)
{
	log_warn("audit append failed for %s (client %lld); answering 503",
	    r->route->action, (long long)r->client.id);
	msr_reply_unavailable(r, "the audit log is unavailable; the request was not answered");
	r->audit_index = -1;
}

/* Append this request's audit entry, blocking until it is durable. */
static void
audit_request(struct msr_req *r)
{
	char *text = audit_text(r);
	int64_t index = -1;

	if (text == NULL || r->srv->audit == NULL ||
	    (r->commit_pending ?
	    msr_audit_append_write(r->srv->audit, text, strlen(text), r->client.id, &index) :
	    msr_audit_append(r->srv->audit, text, strlen(text), r->client.id, &index)) != 0)
		audit_failed(r);
	else
		r->audit_index = index;
	free(text);
}

/*
 * The sequencer's callback for a suspended request (on its thread): record
 * the outcome, then resume the connection; MHD calls on_request again, which
 * answers (audit_resumed). r is not touched after the resume: the worker
 * may answer and free it at once.
 */
static void
audit_done(void *arg, int64_t index)
{
	struct msr_req *r = arg;
	struct MHD_Connection *conn = r->conn;
	struct msr_http *h = r->http;

	r->audit_async_index = index;
	__atomic_store_n(&r->audit_wait, AW_DONE, __ATOMIC_RELEASE);
	MHD_resume_connection(conn);
	__atomic_sub_fetch(&h->suspended, 1, __ATOMIC_RELEASE);
}

/*
 * A read (nothing to commit, no pool slot held): suspend the connection and
 * append the entry asynchronously, so that no worker thread waits for the
 * group commit (invariant 5). 1 when suspended (the reply is queued by
 * audit_resumed), 0 to append blocking instead.
 */
static int
audit_request_async(struct msr_req *r)
{
	struct msr_http *h = r->http;
	char *text;
	int rc;

	if (r->srv->audit == NULL || !msr_audit_ready(r->srv->audit))
		return 0;
	text = audit_text(r);
	if (text == NULL)
		return 0;
	/* suspended before the append, so that the callback can only resume it */
	__atomic_add_fetch(&h->suspended, 1, __ATOMIC_ACQ_REL);
	r->audit_wait = AW_WAITING;
	MHD_suspend_connection(r->conn);
	rc = msr_audit_append_async(r->srv->audit, text, strlen(text), r->client.id,
	    audit_done, r);
	free(text);
	if (rc != 0)
		audit_done(r, -1);      /* refused at once: resume, answer 503 */
	return 1;
}

/* on_request after the resume: the entry's outcome decides the answer. */
static void
audit_resumed(struct msr_req *r)
{
	r->audit_wait = AW_NONE;
	r->t_audited = msr_now_ns();
	if (__atomic_load_n(&r->audit_async_index, __ATOMIC_ACQUIRE) < 0)
		audit_failed(r);
	else
		r->audit_index = r->audit_async_index;
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

/*
 * After a reply is set: release the connection, append the audit entry of an
 * audited route's authenticated caller, commit a pending write. 1 when the
 * request was suspended for its entry (a read, audit_request_async): the
 * reply is queued when it resumes. Only a whole request may be suspended
 * (may_suspend): an early refusal is answered before its body is read.
 */
static int
complete(struct msr_req *r, int may_suspend)
{
	int audited = r->authed && !r->no_audit && (r->route->flags & MSR_R_AUDITED);

	if (!r->commit_pending) {
		msr_db_release(r->db);
		r->db = NULL;
		if (audited && may_suspend && audit_request_async(r))
			return 1;
	}
	if (audited) {
		audit_request(r);
		r->t_audited = msr_now_ns();
	}
	if (r->commit_pending) {
		finish_write(r, audited);
		r->t_committed = msr_now_ns();
	}
	msr_db_release(r->db);
	r->db = NULL;
	return 0;
}

static struct conn_track *
conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;

	if (conn == NULL)
		return NULL;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

/* Mark r's connection as being answered (not reaped) or ready for a request. */
static void
conn_mark(struct msr_http *h, struct MHD_Connection *conn, int answering)
{
	struct conn_track *ct = conn_of(conn);

	if (ct == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	ct->answering = answering;
	if (!answering)
		ct->since_ns = msr_now_ns();
	pthread_mutex_unlock(&h->lock);
}

/* The whole request has arrived: answer it. 1 when suspended (complete). */
static int
dispatch(struct msr_req *r)
{
	const struct msr_route *rt = r->route;

	conn_mark(r->http, r->conn, 1);
	r->t_dispatch = msr_now_ns();
	if (r->body_too_large) {
		reply_too_large(r);
		goto done;
	}
	if (r->body_refused) {
		reply_busy(r);
		goto done;
	}
	if ((rt->flags & MSR_R_JSON_BODY) && msr_req_parse_json(r) != 0)
		goto done;
	rt->handler(r);
	if (r->status == 0) {
		log_error("handler for %s set no reply", rt->action);
		msr_reply_unavailable(r, "internal error");
	}
done:
	r->t_handled = msr_now_ns();
	return complete(r, 1);
}

static enum MHD_Result
queue_reply(struct msr_req *r)
{
	struct MHD_Response *resp;
	char *body = NULL;
	size_t len = 0;
	enum MHD_Result ret;
	char idx[24];
	int cache_set = 0;

	r->t_queued = msr_now_ns();
	if (r->reply_json != NULL) {
		body = json_dumps(r->reply_json, JSON_COMPACT);
		if (body == NULL)
			body = strdup("{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}");
		len = strlen(body);
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	} else if (r->reply_text == NULL && r->status >= 400) {
		/* an error whose JSON could not be built: still JSON (invariant 3) */
		body = strdup("{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}");
		len = body != NULL ? strlen(body) : 0;
		r->status = 503;
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	} else {
		len = r->reply_text_len > 0 ? r->reply_text_len :
		    r->reply_text ? strlen(r->reply_text) : 0;
		resp = MHD_create_response_from_buffer(len, r->reply_text,
		    MHD_RESPMEM_MUST_FREE);
		r->reply_text = NULL;
	}
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    r->reply_ctype ? r->reply_ctype : "application/json");
	for (const char *const *h = r->static_headers; h != NULL && h[0] != NULL; h += 2) {
		MHD_add_response_header(resp, h[0], h[1]);
		if (strcasecmp(h[0], "Cache-Control") == 0)
			cache_set = 1;
	}
	if (r->extra_header_name != NULL &&
	    strcasecmp(r->extra_header_name, "Cache-Control") == 0)
		cache_set = 1;
	if (!cache_set)
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
	mem_release(r, r->reserved);
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

/*
 * After a reply on a kept-alive connection: if the client has already shut
 * down its side, shut down ours so that libmicrohttpd closes the connection.
 * It would not notice otherwise when the client's FIN came with the request,
 * before the connection was handed to it (acceptor.c): it reads the request,
 * then waits for an edge that already passed, and held the connection (and
 * the address's count) until [http] connection_timeout.
 */
static void
shut_if_peer_gone(struct MHD_Connection *conn)
{
	struct conn_track *ct = conn_of(conn);
	char c;

	if (ct != NULL && recv(ct->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		shutdown(ct->fd, SHUT_RDWR);
}

/* Where this request's time went (msreg_request_phase_seconds). */
static void
observe_phases(const struct msr_req *r)
{
	uint64_t now = msr_now_ns();

	if (r->t_dispatch == 0)
		return;		/* refused before its body: nothing to split */
	msr_metrics_phase(MSR_PHASE_RECEIVE, r->t_dispatch - r->start_ns);
	if (r->t_handled != 0)
		msr_metrics_phase(MSR_PHASE_HANDLER, r->t_handled - r->t_dispatch);
	if (r->t_audited != 0 && r->t_handled != 0)
		msr_metrics_phase(MSR_PHASE_AUDIT, r->t_audited - r->t_handled);
	if (r->t_committed != 0)
		msr_metrics_phase(MSR_PHASE_COMMIT, r->t_committed -
		    (r->t_audited != 0 ? r->t_audited : r->t_handled));
	if (r->t_queued != 0)
		msr_metrics_phase(MSR_PHASE_SEND, now - r->t_queued);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct msr_http *h = cls;
	struct msr_req *r = *con_cls;

	if (r == NULL)
		return;
	msr_metrics_observe(h->srv->metrics, r->route_index, r->status,
	    msr_now_ns() - r->start_ns);
	observe_phases(r);
	req_free(r);
	*con_cls = NULL;
	conn_mark(h, conn, 0);      /* the deadline of the next request starts now */
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		shut_if_peer_gone(conn);
	__atomic_sub_fetch(&h->inflight, 1, __ATOMIC_RELEASE);
}

static struct msr_req *
req_new(struct msr_http *h, struct MHD_Connection *conn, const char *url,
    const char *method)
{
	struct msr_req *r = calloc(1, sizeof(*r));
	struct conn_track *ct = conn_of(conn);
	uint64_t since;

	if (r == NULL)
		return NULL;
	r->srv = h->srv;
	r->http = h;
	r->conn = conn;
	r->start_ns = msr_now_ns();
	r->audit_index = -1;
	r->route_index = -1;
	since = r->start_ns;
	if (ct != NULL) {
		pthread_mutex_lock(&h->lock);
		since = ct->since_ns;
		pthread_mutex_unlock(&h->lock);
	}
	r->deadline_ns = since + (uint64_t)h->srv->cfg->http_request_timeout * 1000000000u;
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->path = strdup(url);
	if (r->path == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

static enum MHD_Result
add_header_size(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	size_t *n = cls;

	(void)kind;
	*n += strlen(key) + (value != NULL ? strlen(value) : 0) + 4;
	return MHD_YES;
}

/*
 * First call for a request, with its headers and no body byte read yet: refuse
 * early what can be refused (invariant 2). 0 to read the body, -1 after
 * replying (and auditing where the refusal is audited).
 */
static int
on_headers(struct msr_req *r)
{
	const struct msr_config *cfg = r->srv->cfg;
	char allow[64];
	const char *cl, *auth, *te;
	unsigned long long clen = 0;
	size_t hdr = 0;
	int i;

	auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
	/* without a key, every request costs its address; with one, a guessing
	 * address is stopped before the lookup and charged for each wrong key */
	if (auth == NULL ? rate_address(r, 0, 1) != 0 : rate_address(r, ADDR_GUESSES, 0) != 0)
		return -1;
	if (strlen(r->path) > (size_t)cfg->http_url_limit) {
		msr_reply_error(r, 414, "uri_too_long",
		    json_pack("{s:i}", "limit", cfg->http_url_limit),
		    "the request path exceeds %d bytes", cfg->http_url_limit);
		return -1;
	}
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_header_size, &hdr);
	if (hdr > (size_t)cfg->http_header_limit) {
		msr_reply_error(r, 431, "headers_too_large",
		    json_pack("{s:i}", "limit", cfg->http_header_limit),
		    "the request headers exceed %d bytes", cfg->http_header_limit);
		return -1;
	}
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
	/* [http] body_limit caps every route, body_limit_small the single-item ones */
	r->body_limit = r->route->body_limit == MSR_BODY_SMALL ? cfg->http_body_limit_small :
	    r->route->body_limit;
	if (r->body_limit > cfg->http_body_limit)
		r->body_limit = cfg->http_body_limit;
	r->body_large = r->body_limit > cfg->http_body_limit_small;
	if (auth != NULL && r->route->roles == 0 && rate_address(r, 0, 1) != 0)
		return -1;          /* a public route: the key is not looked at */
	if (r->route->roles != 0 && authenticate(r) != 0)
		goto refused;
	if (authorize(r) != 0)
		goto refused;
	if (r->authed && rate_key(r) != 0) {
		r->no_audit = 1;    /* a flood of refusals must not flood the log */
		goto refused;
	}
	if ((r->route->flags & MSR_R_AUDITED) && msr_witness_client_refusing(r->srv->witness)) {
		r->no_audit = 1;    /* [witness] policy = refuse, quorum missing */
		msr_reply_unavailable(r, "the audit log lacks its quorum of witness cosignatures");
		goto refused;
	}
	cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (cl != NULL)
		clen = strtoull(cl, NULL, 10);
	if (clen > r->body_limit) {
		reply_too_large(r);
		goto refused;
	}
	if (clen > 0) {
		if (mem_reserve(r, (size_t)clen + 1) != 0) {
			reply_busy(r);
			goto refused;
		}
		r->body_reserved = (size_t)clen + 1;
	}
	if (clen > 0 || te != NULL) {
		/* no pool slot is held while a body arrives */
		msr_db_release(r->db);
		r->db = NULL;
	}
	return 0;
refused:
	complete(r, 0);
	return -1;
}

static void
body_drop(struct msr_req *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
	mem_release(r, r->body_reserved);
	r->body_reserved = 0;
}

static int
body_append(struct msr_req *r, const char *data, size_t n)
{
	size_t limit = r->body_limit;
	size_t cap;
	char *p;

	if (r->body_too_large || r->body_refused)
		return 0;               /* discarding the rest; answered once complete */
	if (r->body_len + n > limit) {
		r->body_too_large = 1;
		body_drop(r);
		return 0;
	}
	if (r->body_len + n + 1 > r->body_cap) {
		cap = r->body_cap ? r->body_cap : r->body_reserved ? r->body_reserved : 4096;
		while (cap < r->body_len + n + 1)
			cap *= 2;
		if (cap > limit + 1)
			cap = limit + 1;
		if (cap < r->body_len + n + 1) {
			r->body_too_large = 1;  /* limit + 1 overflowed: cannot hold it */
			body_drop(r);
			return 0;
		}
		if (cap > r->body_reserved) {
			if (mem_reserve(r, cap - r->body_reserved) != 0) {
				r->body_refused = 1;
				body_drop(r);
				return 0;
			}
			r->body_reserved = cap;
		}
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
	switch (__atomic_load_n(&r->audit_wait, __ATOMIC_ACQUIRE)) {
	case AW_WAITING:
		return MHD_YES;         /* not resumed yet (not called while suspended) */
	case AW_DONE:
		audit_resumed(r);
		return queue_reply(r);
	default:
		break;
	}
	if (r->status != 0) {        /* already answered early; discard the body */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		if (msr_now_ns() > r->deadline_ns) {
			log_debug("request body still arriving after [http] request_timeout;"
			    " closing the connection");
			return MHD_NO;
		}
		if (body_append(r, upload_data, *upload_data_size) != 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (dispatch(r))
		return MHD_YES;         /* suspended for its audit entry */
	return queue_reply(r);
}

/* ---- connections and the whole-request deadline (invariant 7) ---- */

/*
 * Count a new connection from key (h->lock held): 0 if within the limit,
 * -1 if the address already holds [http] per_address_connections. A full
 * probe window fails open (counts nothing, refuses nothing).
 */
static int
addr_count(struct msr_http *h, struct conn_track *ct, int64_t key)
{
	const size_t slots = MSR_ARRAY_LEN(h->addr_conns);
	size_t base = (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15u) >> 40), free_slot = slots;

	for (size_t i = 0; i < 32; i++) {
		size_t j = (base + i) % slots;
		if (h->addr_conns[j].key == key && key != 0) {
			free_slot = j;
			break;
		}
		if (free_slot == slots && h->addr_conns[j].n == 0)
			free_slot = j;
	}
	if (free_slot == slots)
		return 0;
	if (h->addr_conns[free_slot].key != key) {
		h->addr_conns[free_slot].key = key;
		h->addr_conns[free_slot].n = 0;
	}
	if (h->addr_conns[free_slot].n >= h->srv->cfg->http_per_address_connections)
		return -1;
	h->addr_conns[free_slot].n++;
	ct->addr_slot = (int)free_slot;
	return 0;
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct msr_http *h = cls;
	struct conn_track *ct;
	const union MHD_ConnectionInfo *ci;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		ct = calloc(1, sizeof(*ct));
		if (ct == NULL || ci == NULL) {
			free(ct);
			*socket_context = NULL;
			return;
		}
		ct->fd = ci->connect_fd;
		ct->since_ns = msr_now_ns();
		ct->addr_slot = -1;
		pthread_mutex_lock(&h->lock);
		if (h->srv->cfg->http_per_address_connections > 0 &&
		    addr_count(h, ct, addr_key_of(conn)) != 0) {
			/* over the per-address limit: MHD closes it on seeing the shutdown */
			shutdown(ct->fd, SHUT_RDWR);
			ct->reaped = 1;
		}
		ct->next = h->conns;
		if (h->conns != NULL)
			h->conns->prev = ct;
		h->conns = ct;
		pthread_mutex_unlock(&h->lock);
		*socket_context = ct;
		return;
	}
	/* counted by the acceptor when it handed the connection over (its
	 * invariant 4); with TLS there is no acceptor and nobody reads h->live */
	__atomic_sub_fetch(&h->live, 1, __ATOMIC_ACQ_REL);
	ct = *socket_context;
	if (ct == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	if (ct->addr_slot >= 0)
		h->addr_conns[ct->addr_slot].n--;
	if (ct->prev != NULL)
		ct->prev->next = ct->next;
	else
		h->conns = ct->next;
	if (ct->next != NULL)
		ct->next->prev = ct->prev;
	pthread_mutex_unlock(&h->lock);
	*socket_context = NULL;
	free(ct);
}

/*
 * Shut down (not close: MHD owns the descriptor and closes it when it sees the
 * shutdown) every connection whose request has not arrived whole within
 * [http] request_timeout and that is not being answered.
 */
static void *
reaper_main(void *arg)
{
	struct msr_http *h = arg;
	uint64_t limit = (uint64_t)h->srv->cfg->http_request_timeout * 1000000000u;
	struct timespec ts;

	pthread_mutex_lock(&h->lock);
	while (!h->reaper_stop) {
		uint64_t now = msr_now_ns();

		for (struct conn_track *ct = h->conns; ct != NULL; ct = ct->next) {
			if (ct->answering || ct->reaped || ct->since_ns >= now ||
			    now - ct->since_ns <= limit)
				continue;
			shutdown(ct->fd, SHUT_RDWR);
			ct->reaped = 1;
			h->reaped++;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->wake, &h->lock, &ts);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
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

/* A listening, non-blocking socket on ss (IPv6 only for an IPv6 address), or -1. */
static int
listen_on(const struct sockaddr_storage *ss)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int on = 1;
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    (ss->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
	    bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, 1024) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

struct msr_http *
msr_http_start(struct msr_server *srv)
{
	const struct msr_config *cfg = srv->cfg;
	struct msr_http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
	struct MHD_OptionItem opts[16];
	int n = 0, listen_fd = -1;

	if (h == NULL)
		return NULL;
	h->srv = srv;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->wake, NULL);
	for (int c = 0; c < MSR_RATE_NCLASSES; c++) {
		msr_config_rate(cfg, c, &h->rate[c][0], &h->rate[c][1]);
		if (!cfg->rate_enabled)
			h->rate[c][0] = 0;          /* [rate] enabled = false: every limit off */
	}
	if (cfg->rate_enabled && h->rate[MSR_RATE_ADDRESS][0] > 0)
		h->rate_addr = msr_ratelimit_new(1, 1);
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
			goto fail;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)cfg->http_port);
	}
	if (cfg->http_tls_cert == NULL) {
		/* plain HTTP: our accept loop hands connections to MHD (acceptor.c) */
		listen_fd = listen_on(&ss);
		if (listen_fd < 0) {
			log_error("cannot listen on %s port %d: %s", cfg->http_address,
			    cfg->http_port, strerror(errno));
			goto fail;
		}
		flags |= MHD_USE_NO_LISTEN_SOCKET;
	} else {
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE,
	    (intptr_t)cfg->http_threads, NULL };
	/* behind the acceptor, which keeps max_connections itself, libmicrohttpd's
	 * per-worker share of its limit must be unreachable (acceptor.c invariant 4) */
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
	    listen_fd >= 0 ? (intptr_t)cfg->http_max_connections * (cfg->http_threads + 1) :
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
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
	    (intptr_t)on_connection, h };
	if (cfg->http_tls_cert != NULL) {
		h->tls_cert = read_file(cfg->http_tls_cert);
		h->tls_key = read_file(cfg->http_tls_key);
		if (h->tls_cert == NULL || h->tls_key == NULL) {
			log_error("cannot read [http] tls_cert/tls_key");
			goto fail;
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
		goto fail;
	}
	if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
		log_error("cannot start the request deadline thread");
		MHD_stop_daemon(h->mhd);
		goto fail;
	}
	h->reaper_started = 1;
	if (listen_fd >= 0) {
		struct msr_acceptor_limits lim = {
			.peek_ms = 1000,
			.deadline_ms = cfg->http_request_timeout * 1000,
			.url_limit = (size_t)cfg->http_url_limit,
			.header_limit = (size_t)cfg->http_header_limit,
			.max_conns = cfg->http_max_connections,
			.per_address = cfg->http_per_address_connections,
		};

		h->acceptor = msr_acceptor_start(listen_fd, h->mhd, &lim, &h->live);
		if (h->acceptor == NULL) {
			log_error("cannot start the accept loop");
			msr_http_stop(h);
			close(listen_fd);
			return NULL;
		}
	}
	return h;
fail:
	if (listen_fd >= 0)
		close(listen_fd);
	msr_ratelimit_free(h->rate_addr);
	free(h->tls_cert);
	free(h->tls_key);
	free(h);
	return NULL;
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
	if (h->acceptor != NULL)
		msr_acceptor_stop(h->acceptor);
	else if (MHD_quiesce_daemon(h->mhd) == MHD_INVALID_SOCKET)
		log_warn("could not stop accepting connections before shutdown");
	limit_ms = h->srv->cfg->http_connection_timeout * 1000;
	while (__atomic_load_n(&h->inflight, __ATOMIC_ACQUIRE) > 0 && waited_ms < limit_ms) {
		nanosleep(&tick, NULL);
		waited_ms += 10;
	}
	if (waited_ms >= limit_ms)
		log_warn("shutdown: %d request(s) still in flight after %d s; closing",
		    __atomic_load_n(&h->inflight, __ATOMIC_ACQUIRE), limit_ms / 1000);
	/*
	 * A suspended connection is resumed by the sequencer's callback, at the
	 * latest after [audit] wait_ms (its reaper); MHD must not be stopped
	 * with one still suspended, nor h freed before its callback ran.
	 */
	waited_ms = 0;
	while (__atomic_load_n(&h->suspended, __ATOMIC_ACQUIRE) > 0) {
		if (waited_ms % 5000 == 0)
			log_warn("shutdown: %d request(s) still waiting for their audit entry",
			    __atomic_load_n(&h->suspended, __ATOMIC_ACQUIRE));
		nanosleep(&tick, NULL);
		waited_ms += 10;
	}
	if (h->reaper_started) {
		pthread_mutex_lock(&h->lock);
		h->reaper_stop = 1;
		pthread_cond_signal(&h->wake);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->reaper, NULL);
	}
	MHD_stop_daemon(h->mhd);
	msr_ratelimit_free(h->rate_addr);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->wake);
	if (h->tls_key != NULL)
		explicit_bzero(h->tls_key, strlen(h->tls_key));
	free(h->tls_cert);
	free(h->tls_key);
	free(h);
}
