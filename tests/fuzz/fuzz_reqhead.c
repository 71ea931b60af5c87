/*
 * fuzz_reqhead.c — libFuzzer target for the acceptor's request-head examiner
 * (server/reqhead.c), which reads the first bytes of every connection before
 * any authentication.
 *
 * The input is the peeked bytes; its first byte (if any) also picks `full`.
 * Checked:
 *   - only the input's bytes are read (ASan: libFuzzer's buffer is exact);
 *   - the verdict is one of wait, pass, refuse; with full set never wait;
 *   - a refusal has status 400, 414 or 431, a known code, and a message of
 *     plain ASCII that needs no JSON escaping: the answer the acceptor builds
 *     from it parses as JSON with that code;
 *   - a request passed or refused for its version has a whole request line
 *     (msr_reqhead_line_complete agrees with the examiner);
 *   - a cut of the input (at a length drawn from it) that is refused gives
 *     the whole input the same refusal, and a cut that passes never leaves
 *     the whole waiting: more bytes never take a decision back.
 * Any broken invariant aborts, which libFuzzer reports as a crash.
 */
#include "msreg/reqhead.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do {                                                \
	if (!(cond)) {                                                  \
		fprintf(stderr, "%s:%d: invariant failed: %s\n",        \
		    __FILE__, __LINE__, #cond);                         \
		abort();                                                \
	}                                                               \
} while (0)

#define URL_LIMIT 256

static void
check_refusal(const struct msr_head_refusal *r)
{
	char body[512];
	json_t *j;

	CHECK(r->status == 400 || r->status == 414 || r->status == 431);
	CHECK(strcmp(r->code, "invalid_request") == 0 ||
	    strcmp(r->code, "unsupported_http_version") == 0 ||
	    strcmp(r->code, "uri_too_long") == 0 || strcmp(r->code, "headers_too_large") == 0);
	CHECK(r->reason != NULL && r->reason[0] != '\0');
	for (const char *c = r->message; *c != '\0'; c++)
		CHECK(*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\');
	/* the body acceptor.c sends */
	snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
	    r->code, r->message);
	j = json_loads(body, 0, NULL);
	CHECK(j != NULL);
	CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
	    r->code) == 0);
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct msr_head_refusal r, rk;
	int full = size > 0 && (data[0] & 1) && (data[0] & 0x80);
	enum msr_head_verdict v, vk;
	size_t k;

	v = msr_reqhead_examine(buf, size, full, URL_LIMIT, &r);
	CHECK(v == MSR_HEAD_WAIT || v == MSR_HEAD_PASS || v == MSR_HEAD_REFUSE);
	if (full)
		CHECK(v != MSR_HEAD_WAIT);
	if (v == MSR_HEAD_REFUSE)
		check_refusal(&r);
	if (v == MSR_HEAD_PASS ||
	    (v == MSR_HEAD_REFUSE && strcmp(r.code, "unsupported_http_version") == 0))
		CHECK(msr_reqhead_line_complete(buf, size));
	if (size < 2)
		return 0;
	/* a cut: more bytes never take a decision back */
	k = ((size_t)data[size - 1] << 8 | data[size - 2]) % size;
	vk = msr_reqhead_examine(buf, k, 0, URL_LIMIT, &rk);
	if (vk == MSR_HEAD_REFUSE) {
		check_refusal(&rk);
		CHECK(v == MSR_HEAD_REFUSE);
		CHECK(strcmp(rk.code, r.code) == 0);
	}
	if (vk == MSR_HEAD_PASS)
		CHECK(v != MSR_HEAD_WAIT);
	return 0;
}
