/*
 * check_reqhead.c — unit tests of the acceptor's request-head examiner
 * (reqhead.c): data-driven cases, bytes in, verdict and error code out. Each
 * case is also run cut at every length below its own, where the verdict must
 * be "wait" or the same refusal (a prefix never passes what the whole refuses,
 * and never refuses what the whole passes — except when the cut is at the
 * buffer's limit, which the full flag says).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/reqhead.h"
#include "harness.h"

#define URL_LIMIT 256

struct head_case {
	const char *name;
	const char *bytes;
	size_t      len;        /* 0: strlen(bytes) */
	int         verdict;    /* MSR_HEAD_* */
	const char *code;       /* the refusal's code, or NULL */
	int         status;
};

static const struct head_case cases[] = {
	{ "plain", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0, MSR_HEAD_PASS, NULL, 0 },
	{ "bare LF lines", "GET /healthz HTTP/1.1\nHost: x\n\n", 0, MSR_HEAD_PASS, NULL, 0 },
	{ "mixed line ends", "GET /healthz HTTP/1.1\r\nHost: x\n\r\n", 0, MSR_HEAD_PASS, NULL, 0 },
	{ "HTTP/1.0 without headers", "GET /healthz HTTP/1.0\r\n\r\n", 0, MSR_HEAD_PASS, NULL, 0 },
	{ "HTTP/1.0 bare LF", "GET /healthz HTTP/1.0\n\n", 0, MSR_HEAD_PASS, NULL, 0 },
	{ "leading blank lines", "\r\n\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0,
	  MSR_HEAD_PASS, NULL, 0 },
	{ "absolute form", "GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0,
	  MSR_HEAD_PASS, NULL, 0 },
	{ "body with Content-Length", "POST /v1/search HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
	  0, MSR_HEAD_PASS, NULL, 0 },
	{ "obs-text in a value", "GET / HTTP/1.1\r\nX-A: caf\xc3\xa9\r\n\r\n", 0,
	  MSR_HEAD_PASS, NULL, 0 },
	{ "pipelined, both fine", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
	  0, MSR_HEAD_PASS, NULL, 0 },
	{ "pipelined after a body", "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
	  "GET /b HTTP/1.1\r\n\r\n", 0, MSR_HEAD_PASS, NULL, 0 },
	{ "HTTP/2.0", "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "unsupported_http_version", 400 },
	{ "h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "unsupported_http_version", 400 },
	{ "blank line, then HTTP/2.0", "\r\nGET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 0,
	  MSR_HEAD_REFUSE, "unsupported_http_version", 400 },
	{ "bare LF, then HTTP/3.0", "\nGET /healthz HTTP/3.0\r\n\r\n", 0,
	  MSR_HEAD_REFUSE, "unsupported_http_version", 400 },
	{ "pipelined HTTP/2.0", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/2.0\r\n\r\n", 0,
	  MSR_HEAD_REFUSE, "unsupported_http_version", 400 },
	{ "pipelined HTTP/2.0 after a body", "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
	  "GET /b HTTP/2.0\r\n\r\n", 0, MSR_HEAD_REFUSE, "unsupported_http_version", 400 },
	{ "HTTP/0.9", "GET /healthz\r\n\r\n", 0, MSR_HEAD_REFUSE, "invalid_request", 400 },
	{ "lower-case version", "GET / http/1.1\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "two-digit version", "GET / HTTP/1.10\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "three spaces", "GET /a b HTTP/1.1\r\n\r\n", 0, MSR_HEAD_REFUSE, "invalid_request", 400 },
	{ "no target", "GET  HTTP/1.1\r\n\r\n", 0, MSR_HEAD_REFUSE, "invalid_request", 400 },
	{ "method not a token", "G(T / HTTP/1.1\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "control character in the path", "GET /a\x01z HTTP/1.1\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "NUL in the request line", "GET /a\0z HTTP/1.1\r\n\r\n", 22, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "NUL in a header", "GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n", 29, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "bare CR in a header", "GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "obs-fold", "GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "no colon", "GET / HTTP/1.1\r\nHost x\r\n\r\n", 0, MSR_HEAD_REFUSE,
	  "invalid_request", 400 },
	{ "Content-Length not digits", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0,
	  MSR_HEAD_REFUSE, "invalid_request", 400 },
	{ "Content-Length 20 digits", "POST / HTTP/1.1\r\nContent-Length: 12345678901234567890"
	  "\r\n\r\n", 0, MSR_HEAD_REFUSE, "invalid_request", 400 },
	{ "two different Content-Lengths", "POST / HTTP/1.1\r\nContent-Length: 5\r\n"
	  "content-length: 7\r\n\r\n", 0, MSR_HEAD_REFUSE, "invalid_request", 400 },
	{ "incomplete", "GET /healthz HTTP/1.1\r\nHo", 0, MSR_HEAD_WAIT, NULL, 0 },
	{ "only blank lines", "\r\n\r\n", 0, MSR_HEAD_WAIT, NULL, 0 },
	{ "empty", "", 0, MSR_HEAD_WAIT, NULL, 0 },
	{ "pipelined, second incomplete", "GET /a HTTP/1.1\r\n\r\nGET /b HT", 0, MSR_HEAD_PASS,
	  NULL, 0 },
	{ "chunked, then anything", "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "3\r\nabc\r\n0\r\n\r\nGET /b HTTP/2.0\r\n\r\n", 0, MSR_HEAD_PASS, NULL, 0 },
};

static void
expect(const struct head_case *c, size_t len, int full, int verdict, const char *code,
    int status)
{
	struct msr_head_refusal r;
	char *copy = malloc(len + 1);     /* exactly len bytes: ASan catches overreads */
	int v;

	memcpy(copy, c->bytes, len);
	v = msr_reqhead_examine(copy, len, full, URL_LIMIT, &r);
	free(copy);
	ck_assert_msg(v == verdict, "%s (%zu bytes): verdict %d, expected %d", c->name, len, v,
	    verdict);
	if (verdict == MSR_HEAD_REFUSE) {
		ck_assert_msg(strcmp(r.code, code) == 0, "%s: code %s, expected %s", c->name,
		    r.code, code);
		ck_assert_int_eq(r.status, status);
		ck_assert_ptr_nonnull(r.reason);
		ck_assert_ptr_nonnull(r.message);
	}
}

START_TEST(table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct head_case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->bytes);

		expect(c, len, 0, c->verdict, c->code, c->status);
	}
}
END_TEST

/* A prefix waits or gives the same refusal; it never passes what the whole refuses. */
START_TEST(prefixes)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct head_case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->bytes);

		for (size_t k = 0; k < len; k++) {
			struct msr_head_refusal r;
			int v = msr_reqhead_examine(c->bytes, k, 0, URL_LIMIT, &r);

			if (c->verdict == MSR_HEAD_REFUSE)
				ck_assert_msg(v == MSR_HEAD_WAIT || v == MSR_HEAD_PASS ||
				    strcmp(r.code, c->code) == 0,
				    "%s cut at %zu: %s", c->name, k, r.code);
			else if (c->verdict == MSR_HEAD_PASS)
				ck_assert_msg(v != MSR_HEAD_REFUSE, "%s cut at %zu refused: %s",
				    c->name, k, r.code);
		}
	}
}
END_TEST

START_TEST(limits)
{
	struct msr_head_refusal r;
	char *buf = malloc(4096);
	size_t n;

	/* a request line over url_limit + 64 without its end: 414 at once */
	n = (size_t)snprintf(buf, 4096, "GET /");
	memset(buf + n, 'a', URL_LIMIT + 64);
	n += URL_LIMIT + 64;
	ck_assert_int_eq(msr_reqhead_examine(buf, n, 0, URL_LIMIT, &r), MSR_HEAD_REFUSE);
	ck_assert_int_eq(r.status, 414);
	ck_assert_str_eq(r.code, "uri_too_long");
	/* and with its end */
	n += (size_t)snprintf(buf + n, 4096 - n, " HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(msr_reqhead_examine(buf, n, 0, URL_LIMIT, &r), MSR_HEAD_REFUSE);
	ck_assert_int_eq(r.status, 414);
	/* a very long method counts as request line too */
	memset(buf, 'A', 1000);
	ck_assert_int_eq(msr_reqhead_examine(buf, 1000, 0, URL_LIMIT, &r), MSR_HEAD_REFUSE);
	ck_assert_int_eq(r.status, 414);
	/* headers that do not end in a full buffer: 431 */
	n = (size_t)snprintf(buf, 4096, "GET / HTTP/1.1\r\nX-A: ");
	memset(buf + n, 'b', 4096 - n);
	ck_assert_int_eq(msr_reqhead_examine(buf, 4096, 0, URL_LIMIT, &r), MSR_HEAD_WAIT);
	ck_assert_int_eq(msr_reqhead_examine(buf, 4096, 1, URL_LIMIT, &r), MSR_HEAD_REFUSE);
	ck_assert_int_eq(r.status, 431);
	ck_assert_str_eq(r.code, "headers_too_large");
	/* a full buffer of blank lines is not a request */
	for (size_t i = 0; i < 4096; i += 2)
		memcpy(buf + i, "\r\n", 2);
	ck_assert_int_eq(msr_reqhead_examine(buf, 4096, 0, URL_LIMIT, &r), MSR_HEAD_WAIT);
	ck_assert_int_eq(msr_reqhead_examine(buf, 4096, 1, URL_LIMIT, &r), MSR_HEAD_REFUSE);
	ck_assert_int_eq(r.status, 400);
	free(buf);
}
END_TEST

START_TEST(line_complete)
{
	ck_assert_int_eq(msr_reqhead_line_complete("", 0), 0);
	ck_assert_int_eq(msr_reqhead_line_complete("\r\n\r\n", 4), 0);
	ck_assert_int_eq(msr_reqhead_line_complete("GET / HT", 8), 0);
	ck_assert_int_eq(msr_reqhead_line_complete("GET / HTTP/1.1\r\n", 16), 1);
	ck_assert_int_eq(msr_reqhead_line_complete("\r\nGET / HTTP/1.1\n", 17), 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("reqhead");
	TCase *tc = tcase_create("reqhead");

	tcase_add_test(tc, table);
	tcase_add_test(tc, prefixes);
	tcase_add_test(tc, limits);
	tcase_add_test(tc, line_complete);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
