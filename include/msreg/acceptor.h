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

/*
 * Accept on listen_fd (listening, non-blocking; owned from now on) and hand
 * connections to mhd (started with MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC).
 * A connection is examined for at most peek_ms; its first request line may be
 * url_limit bytes, its headers header_limit more. NULL on failure.
 */
struct msr_acceptor *msr_acceptor_start(int listen_fd, struct MHD_Daemon *mhd, int peek_ms,
                                        size_t url_limit, size_t header_limit);
/* Stop accepting (the listening socket is closed), drop pending connections. */
void msr_acceptor_stop(struct msr_acceptor *a);

#endif
