/*
 * acceptor.h — msregd's accept loop in front of libmicrohttpd (see acceptor.c):
 * peeks at each connection's first request so that what libmicrohttpd would
 * answer by itself (505 for a version other than 1.x, HTML 400/414/431) gets
 * a JSON error with a stable code instead.
 */
#ifndef MSREG_ACCEPTOR_H
#define MSREG_ACCEPTOR_H

#include <stddef.h>

struct MHD_Daemon;
struct msr_acceptor;

/* What the acceptor keeps to (see acceptor.c). */
struct msr_acceptor_limits {
	int    peek_ms;       /* examine for this long; then only a request line is awaited */
	int    deadline_ms;   /* no request line by then: closed ([http] request_timeout) */
	size_t url_limit;     /* longest request line, plus 64 bytes for method and version */
	size_t header_limit;  /* headers, on top of url_limit */
	int    max_conns;     /* connections handed over and open, at most */
	int    per_address;   /* pending connections per source address (0: no limit) */
};

/*
 * Accept on listen_fd (listening, non-blocking; owned from now on) and hand
 * connections to mhd (started with MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC).
 * *live counts the connections handed to mhd and not yet closed: the
 * acceptor increments it, the caller decrements it (atomically) when mhd
 * reports one closed. NULL on failure.
 */
struct msr_acceptor *msr_acceptor_start(int listen_fd, struct MHD_Daemon *mhd,
                                        const struct msr_acceptor_limits *lim, int *live);
/* Stop accepting (the listening socket is closed), drop pending connections. */
void msr_acceptor_stop(struct msr_acceptor *a);

#endif
