/*
 * reqhead.h — the acceptor's examiner of a connection's first bytes: a pure
 * function (no I/O, no allocation) so that it can be unit-tested and fuzzed.
 * See reqhead.c for what it accepts and refuses.
 */
#ifndef MSREG_REQHEAD_H
#define MSREG_REQHEAD_H

#include <stddef.h>

enum msr_head_verdict {
	MSR_HEAD_WAIT = 0,     /* not enough bytes yet to decide */
	MSR_HEAD_PASS = 1,     /* hand the connection to libmicrohttpd */
	MSR_HEAD_REFUSE = -1,  /* answer *refusal and close */
};

struct msr_head_refusal {
	int         status;    /* 400, 414 or 431 */
	const char *reason;    /* the status line's reason phrase */
	const char *code;      /* the stable error code */
	const char *message;   /* constant ASCII text, no JSON escaping needed */
};

/*
 * Examine buf[0..n) (the bytes a peek returned; NUL bytes allowed). full is
 * nonzero when n is the most the caller can ever show (its peek buffer is
 * full). url_limit bounds the request line (plus 64 bytes for method and
 * version). On MSR_HEAD_REFUSE, *out says what to answer.
 */
enum msr_head_verdict msr_reqhead_examine(const char *buf, size_t n, int full,
                                          size_t url_limit, struct msr_head_refusal *out);

/*
 * Whether buf[0..n) holds the first request's whole request line (after any
 * blank lines). When msr_reqhead_examine() says wait and this says yes, the
 * request line was valid and only headers are missing.
 */
int msr_reqhead_line_complete(const char *buf, size_t n);

#endif
