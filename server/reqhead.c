/*
 * reqhead.c — the acceptor's examiner of a connection's first bytes (see
 * acceptor.c for why msregd looks at them before libmicrohttpd does).
 *
 * msr_reqhead_examine() reads what a peek returned and decides: wait for more,
 * pass the connection on, or refuse it with a JSON error. It is pure (no I/O,
 * no allocation, reads only buf[0..n)) so that it is unit-tested and fuzzed
 * (tests/fuzz/fuzz_reqhead.c).
 *
 * What it accepts, as libmicrohttpd does:
 *   - blank lines (CRLF or bare LF) before a request line (RFC 9112 2.2);
 *   - lines ending in CRLF or a bare LF, also the empty line ending the head;
 *   - several requests in the bytes seen (pipelining): each complete one is
 *     examined, up to PIPELINE_MAX, as long as the body of the one before has
 *     a known length (Content-Length, or none) and lies within the bytes seen.
 * What it refuses (400 unless said): a request line that is not
 * "METHOD SP TARGET SP HTTP/d.d" with a token method; any control character
 * in the request line; a version other than 1.x (400
 * unsupported_http_version, where libmicrohttpd would answer 505); a header
 * line that is not "token: value", a control character other than HTAB in a
 * value, a Content-Length that is not 1-19 digits or differs from an earlier
 * one; a request line longer than url_limit + 64 (414); a head that does not
 * end within the buffer (431).
 *
 * Invariants:
 *  1. Only bytes in buf[0..n) are read; no byte is assumed to be NUL.
 *  2. MSR_HEAD_WAIT is returned only when more bytes could change the answer,
 *     and never when full is set for the first request.
 *  3. A refusal's strings are constants, plain ASCII with nothing to escape.
 */
#include "msreg/reqhead.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#define PIPELINE_MAX 8

/* One request examined: a verdict, or COMPLETE with where the next begins. */
enum one_result { ONE_REFUSE = -1, ONE_WAIT = 0, ONE_COMPLETE = 1 };

static int
is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static enum one_result
refuse(struct msr_head_refusal *out, int status, const char *code, const char *message)
{
	out->status = status;
	out->reason = status == 414 ? "URI Too Long" :
	    status == 431 ? "Request Header Fields Too Large" : "Bad Request";
	out->code = code;
	out->message = message;
	return ONE_REFUSE;
}

static enum one_result
bad_request(struct msr_head_refusal *out, const char *message)
{
	return refuse(out, 400, "invalid_request", message);
}

/* The request line [p, e) (line end stripped): 0, or refused. */
static enum one_result
check_request_line(const char *p, const char *e, struct msr_head_refusal *out)
{
	const char *sp1, *sp2, *v;

	for (const char *c = p; c < e; c++)
		if (is_ctl((unsigned char)*c))
			return bad_request(out, "the request line holds a control character");
	sp1 = p;
	while (sp1 < e && is_tchar((unsigned char)*sp1))
		sp1++;
	if (sp1 == p || sp1 == e || *sp1 != ' ')
		return bad_request(out, "the request line must be METHOD PATH HTTP/1.x");
	sp2 = memchr(sp1 + 1, ' ', (size_t)(e - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1 || memchr(sp2 + 1, ' ', (size_t)(e - sp2 - 1)) != NULL)
		return bad_request(out, "the request line must be METHOD PATH HTTP/1.x");
	v = sp2 + 1;
	if (e - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
	    v[6] != '.' || v[7] < '0' || v[7] > '9')
		return bad_request(out, "the request line must be METHOD PATH HTTP/1.x");
	if (v[5] != '1')
		return refuse(out, 400, "unsupported_http_version",
		    "msregd speaks HTTP/1.0 and HTTP/1.1 only");
	return ONE_COMPLETE;
}

/*
 * Examine the request starting at p. ONE_COMPLETE sets *next to where the
 * following request starts, or NULL if that cannot be known from the bytes
 * seen (a chunked or unknown body, or one that extends past end).
 */
/* Past the blank lines that may precede a request line. */
static const char *
skip_blank_lines(const char *p, const char *end)
{
	while (p < end && (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')))
		p += *p == '\n' ? 1 : 2;
	return p;
}

static enum one_result
examine_one(const char *p, const char *end, int full, size_t url_limit,
    struct msr_head_refusal *out, const char **next)
{
	const char *nl, *le, *h, *cl = NULL;
	size_t cl_len = 0;
	uint64_t body = 0;
	int framed = 1;                /* the body's length is known */

	*next = NULL;
	p = skip_blank_lines(p, end);       /* before the request line */
	if (p == end || (*p == '\r' && p + 1 == end)) {
		if (full)
			return bad_request(out, "no request line");
		return ONE_WAIT;
	}
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL || (size_t)(nl - p) > url_limit + 64) {
		if ((size_t)(end - p) > url_limit + 64)
			return refuse(out, 414, "uri_too_long", "the request line is too long");
		if (full)
			return bad_request(out, "no request line");
		return ONE_WAIT;
	}
	le = nl;
	while (le > p && (le[-1] == '\r' || le[-1] == ' '))
		le--;
	if (check_request_line(p, le, out) != ONE_COMPLETE)
		return ONE_REFUSE;
	/* header lines, up to the empty line */
	for (h = nl + 1;; h = nl + 1) {
		const char *colon, *v, *ve;

		nl = h < end ? memchr(h, '\n', (size_t)(end - h)) : NULL;
		if (nl == NULL) {
			if (full)
				return refuse(out, 431, "headers_too_large",
				    "the request headers are too large");
			return ONE_WAIT;
		}
		ve = nl > h && nl[-1] == '\r' ? nl - 1 : nl;
		if (ve == h)
			break;                           /* the end of the head */
		colon = memchr(h, ':', (size_t)(ve - h));
		if (colon == NULL || colon == h)
			return bad_request(out, "a request header is malformed");
		for (const char *c = h; c < colon; c++)
			if (!is_tchar((unsigned char)*c))
				return bad_request(out, "a request header is malformed");
		for (const char *c = colon + 1; c < ve; c++)
			if (is_ctl((unsigned char)*c) && *c != '\t')
				return bad_request(out, "a request header holds a control character");
		v = colon + 1;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (colon - h == 14 && strncasecmp(h, "Content-Length", 14) == 0) {
			if (ve == v || ve - v > 19)
				return bad_request(out, "a request header is malformed");
			for (const char *c = v; c < ve; c++)
				if (*c < '0' || *c > '9')
					return bad_request(out, "a request header is malformed");
			if (cl != NULL && ((size_t)(ve - v) != cl_len ||
			    memcmp(cl, v, cl_len) != 0))
				return bad_request(out, "a request header is malformed");
			cl = v;
			cl_len = (size_t)(ve - v);
			body = 0;
			for (const char *c = v; c < ve; c++)
				body = body * 10 + (uint64_t)(*c - '0');   /* 19 digits fit */
		} else if (colon - h == 17 && strncasecmp(h, "Transfer-Encoding", 17) == 0) {
			framed = 0;
		}
	}
	if (framed && body <= (uint64_t)(end - (nl + 1)))
		*next = nl + 1 + body;
	return ONE_COMPLETE;
}

enum msr_head_verdict
msr_reqhead_examine(const char *buf, size_t n, int full, size_t url_limit,
    struct msr_head_refusal *out)
{
	const char *p = buf, *end = buf + n, *next;

	for (int i = 0; i < PIPELINE_MAX; i++) {
		enum one_result r = examine_one(p, end, full && i == 0, url_limit, out, &next);

		if (r == ONE_REFUSE)
			return MSR_HEAD_REFUSE;
		if (r == ONE_WAIT)
			return i == 0 ? MSR_HEAD_WAIT : MSR_HEAD_PASS;
		if (next == NULL || next == end)
			return MSR_HEAD_PASS;
		p = next;
	}
	return MSR_HEAD_PASS;
}

int
msr_reqhead_line_complete(const char *buf, size_t n)
{
	const char *p = skip_blank_lines(buf, buf + n);

	return p < buf + n && memchr(p, '\n', (size_t)(buf + n - p)) != NULL;
}
