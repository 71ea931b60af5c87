/*
 * acceptor.c — msregd's own accept loop in front of libmicrohttpd (plain HTTP).
 *
 * Why: libmicrohttpd answers some requests by itself, before any callback of
 * ours, with compiled-in HTML pages: 400 for a malformed header or
 * Content-Length, 414/431 beyond its buffer, and for a request line whose HTTP
 * version is not 1.x (an HTTP/2 prior-knowledge preface "PRI * HTTP/2.0",
 * "HTTP/3.0", "HTTP/0.9") 505, a 5xx that API.md forbids. The acceptor
 * accepts each connection itself and peeks (MSG_PEEK: nothing is consumed) at
 * its first request: a version other than 1.x is answered with a JSON 400
 * unsupported_http_version, a malformed request line or header line (or
 * Content-Length) with a JSON 400 invalid_request, a request line longer than
 * [http] url_limit with a JSON 414, headers that do not end within url_limit +
 * header_limit bytes with a JSON 431; the connection is then closed. Every
 * other connection goes to MHD (MHD_add_connection, which closes the socket
 * if it cannot take it), where http.c applies the same limits with JSON
 * answers of its own.
 *
 * Invariants:
 *  1. At most PENDING_MAX connections are held here, and at most
 *     per_address from one source address (IPv4 address, IPv6 /64; more are
 *     closed at once). After peek_ms a connection whose request line has
 *     arrived is handed over even if its headers have not (a slow client
 *     costs the acceptor nothing, and the daemon's own deadlines apply to
 *     it); one whose request line has not arrived stays until it does, or is
 *     closed at deadline_ms — handing it over would let libmicrohttpd answer
 *     a late "HTTP/2.0" with its HTML 505.
 *  2. Only the requests in a connection's first bytes are examined (the
 *     first, and those pipelined behind it in the same peek): a later request
 *     on a kept-alive connection with a bad version still gets
 *     libmicrohttpd's own answer (documented in config.example.ini).
 *  3. Stopping closes the listening socket first (new connections are
 *     refused), then every pending connection.
 *  4. libmicrohttpd never reaches its own connection limit: *live counts the
 *     connections handed over and not yet closed (http.c decrements it when
 *     libmicrohttpd reports one closed), no connection is handed over while it
 *     is at max_conns, and http.c starts libmicrohttpd with a limit its
 *     workers cannot reach. (libmicrohttpd 0.9.75 checks a worker's limit
 *     before queueing an added connection but counts it only when the worker
 *     takes it; a burst over the limit left the worker deadlocked on its own
 *     mutex for good — every worker, after a few thousand connections.) A
 *     connection kept waiting for room past peek_ms is answered a JSON 503.
 *     (One that libmicrohttpd drops for want of memory before notifying us
 *     would stay counted: the count errs towards refusing, never towards
 *     overfilling a worker.)
 *  5. When the table is full, the oldest pending connection makes room (it is
 *     handed over if its request line is in, or answered 503 if there is no
 *     room in the daemon, or closed if it has sent no request line), so a
 *     flood of silent connections never leaves newer ones unexamined.
 *  6. A peer that closed its side before its first request was complete is
 *     dropped here: libmicrohttpd would not notice the close (it reads the
 *     bytes, then waits for an edge that already passed) and would hold the
 *     connection until [http] connection_timeout.
 *  7. When accept() fails for want of descriptors or memory, accepting pauses
 *     for ACCEPT_PAUSE_MS instead of spinning on a listening socket that stays
 *     readable.
 *
 * The examination itself is msr_reqhead_examine() (reqhead.c, pure, fuzzed).
 */
#include "msreg/acceptor.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "msreg/common.h"
#include "msreg/log.h"
#include "msreg/reqhead.h"

#define PENDING_MAX     256
#define ACCEPT_PAUSE_MS 100

struct pending {
	int                     fd;          /* -1 = free slot */
	int                     examined;    /* passed: waits only for room in the daemon */
	int                     peer_closed; /* the peer shut down its side */
	int                     line_done;   /* its request line has arrived (and is valid) */
	uint64_t                since_ns;
	struct sockaddr_storage addr;
	socklen_t               addrlen;
};

struct msr_acceptor {
	int                listen_fd, ep;
	struct MHD_Daemon *mhd;
	uint64_t           peek_ns, deadline_ns;
	size_t             url_limit, peek_max;
	int                max_conns, per_address;
	int               *live;            /* handed over, not yet closed (atomic) */
	uint64_t           paused_until;    /* accept() paused (invariant 7); 0 = not */
	uint64_t           warned_at;       /* last warning about a pause (one per 10 s) */
	unsigned long      pauses;          /* since that warning */
	char              *buf;             /* peek_max + 1 bytes, acceptor thread only */
	volatile int       stop;
	pthread_t          thread;
	struct pending     p[PENDING_MAX];
};

static int
has_room(struct msr_acceptor *a)
{
	return __atomic_load_n(a->live, __ATOMIC_ACQUIRE) < a->max_conns;
}

/* Give fd to the daemon, counted in *live (invariant 4). */
static void
give(struct msr_acceptor *a, int fd, const struct sockaddr_storage *addr, socklen_t addrlen)
{
	__atomic_add_fetch(a->live, 1, __ATOMIC_ACQ_REL);
	/* MHD owns the socket from here, and closes it if it cannot take it; a
	 * refusal here comes before its connection notifications, so it is ours
	 * to uncount */
	if (MHD_add_connection(a->mhd, fd, (const struct sockaddr *)addr, addrlen) != MHD_YES) {
		__atomic_sub_fetch(a->live, 1, __ATOMIC_ACQ_REL);
		log_debug("acceptor: connection refused by the daemon");
	}
}

static void
hand_over(struct msr_acceptor *a, struct pending *p)
{
	epoll_ctl(a->ep, EPOLL_CTL_DEL, p->fd, NULL);
	give(a, p->fd, &p->addr, p->addrlen);
	p->fd = -1;
}

static void
drop(struct msr_acceptor *a, struct pending *p)
{
	epoll_ctl(a->ep, EPOLL_CTL_DEL, p->fd, NULL);
	close(p->fd);
	p->fd = -1;
}

/* Answer a JSON error on fd; the caller closes it. */
static void
send_refusal(struct msr_acceptor *a, int fd, int status, const char *reason,
    const char *code, const char *message, const char *extra)
{
	char body[256], msg[768];
	int n;

	snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
	    code, message);
	n = snprintf(msg, sizeof(msg), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n%s",
	    status, reason, strlen(body), extra, body);
	/* consume what was peeked: closing with unread bytes would send a reset,
	 * which may destroy the answer before the client reads it */
	if (recv(fd, a->buf, a->peek_max, MSG_DONTWAIT) < 0)
		log_debug("acceptor: nothing to consume before a refusal");
	/* best effort: the socket is non-blocking and the reply is small */
	if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("acceptor: could not send a refusal");
	shutdown(fd, SHUT_WR);
}

static void
refuse(struct msr_acceptor *a, struct pending *p, const struct msr_head_refusal *r)
{
	send_refusal(a, p->fd, r->status, r->reason, r->code, r->message, "");
	drop(a, p);
}

/* No room in the daemon for p: 503, as for any other overload (invariant 4). */
static void
refuse_busy(struct msr_acceptor *a, struct pending *p)
{
	send_refusal(a, p->fd, 503, "Service Unavailable", "unavailable",
	    "too many connections; retry later", "Retry-After: 1\r\n");
	drop(a, p);
}

/*
 * Look at the first request: 1 = hand over, 0 = wait for more, -1 = refused
 * (answered and closed), -2 = the peer went away.
 */
static int
examine(struct msr_acceptor *a, struct pending *p)
{
	struct msr_head_refusal r;
	ssize_t n = recv(p->fd, a->buf, a->peek_max, MSG_PEEK | MSG_DONTWAIT);
	enum msr_head_verdict v;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		return -2;
	if (n < 0)
		return p->peer_closed ? -2 : 0;
	v = msr_reqhead_examine(a->buf, (size_t)n, (size_t)n == a->peek_max, a->url_limit, &r);
	if (v == MSR_HEAD_REFUSE) {
		refuse(a, p, &r);
		return -1;
	}
	if (v == MSR_HEAD_WAIT) {
		p->line_done = msr_reqhead_line_complete(a->buf, (size_t)n);
		return p->peer_closed ? -2 : 0;     /* invariant 6 */
	}
	return 1;
}

/* p passed (or its time is up): to the daemon if there is room. */
static void
forward(struct msr_acceptor *a, struct pending *p, int timed_out)
{
	if (has_room(a))
		hand_over(a, p);
	else if (timed_out)
		refuse_busy(a, p);
	else
		p->examined = 1;
}

/* The same source for per-address counting: IPv4 address, IPv6 /64. */
static int
same_address(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
	if (x->ss_family != y->ss_family)
		return 0;
	if (x->ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)x)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)(const void *)y)->sin_addr.s_addr;
	if (x->ss_family == AF_INET6)
		return memcmp(((const struct sockaddr_in6 *)(const void *)x)->sin6_addr.s6_addr,
		    ((const struct sockaddr_in6 *)(const void *)y)->sin6_addr.s6_addr, 8) == 0;
	return 0;
}

static void
accept_new(struct msr_acceptor *a)
{
	for (;;) {
		struct pending tmp, *p = NULL, *oldest = NULL;
		struct epoll_event ev;
		int same;

		tmp.addrlen = sizeof(tmp.addr);
		tmp.fd = accept4(a->listen_fd, (struct sockaddr *)&tmp.addr, &tmp.addrlen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (tmp.fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* the socket stays readable: pause (invariant 7) */
				uint64_t now = msr_now_ns();

				a->pauses++;
				if (now - a->warned_at > 10000000000ull) {
					log_warn("acceptor: accept: %s; paused %lu time(s) for %d ms",
					    strerror(errno), a->pauses, ACCEPT_PAUSE_MS);
					a->warned_at = now;
					a->pauses = 0;
				}
				epoll_ctl(a->ep, EPOLL_CTL_DEL, a->listen_fd, NULL);
				a->paused_until = now + ACCEPT_PAUSE_MS * 1000000ull;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				log_debug("acceptor: accept: %s", strerror(errno));
			}
			return;
		}
		tmp.since_ns = msr_now_ns();
		tmp.examined = tmp.peer_closed = tmp.line_done = 0;
		same = 0;
		for (size_t i = 0; i < PENDING_MAX; i++) {
			if (a->p[i].fd < 0) {
				if (p == NULL)
					p = &a->p[i];
				continue;
			}
			same += same_address(&a->p[i].addr, &tmp.addr);
			if (oldest == NULL || a->p[i].since_ns < oldest->since_ns)
				oldest = &a->p[i];
		}
		if (a->per_address > 0 && same >= a->per_address) {
			close(tmp.fd);                /* invariant 1 */
			continue;
		}
		if (p == NULL) {
			/* full: the oldest makes room (invariant 5) */
			if (oldest->examined || oldest->line_done)
				forward(a, oldest, 1);
			else
				drop(a, oldest);
			p = oldest;
		}
		*p = tmp;
		memset(&ev, 0, sizeof(ev));
		/* edge-triggered: a peek consumes nothing, so only new bytes wake us */
		ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = p;
		if (epoll_ctl(a->ep, EPOLL_CTL_ADD, p->fd, &ev) != 0)
			forward(a, p, 1);
	}
}

static void *
acceptor_main(void *arg)
{
	struct msr_acceptor *a = arg;
	struct epoll_event ev[64];

	while (!a->stop) {
		int n = epoll_wait(a->ep, ev, 64, 50);
		uint64_t now;

		for (int i = 0; i < n; i++) {
			struct pending *p = ev[i].data.ptr;
			int rc;

			if (p == NULL) {
				accept_new(a);
				continue;
			}
			if (p->fd < 0 || p->examined)
				continue;
			if (ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				p->peer_closed = 1;
			rc = examine(a, p);
			if (rc == 1)
				forward(a, p, 0);
			else if (rc == -2)
				drop(a, p);
		}
		now = msr_now_ns();
		if (a->paused_until != 0 && now >= a->paused_until) {
			struct epoll_event lev;

			memset(&lev, 0, sizeof(lev));
			lev.events = EPOLLIN;
			lev.data.ptr = NULL;
			if (epoll_ctl(a->ep, EPOLL_CTL_ADD, a->listen_fd, &lev) == 0)
				a->paused_until = 0;
			else
				a->paused_until = now + ACCEPT_PAUSE_MS * 1000000ull;
		}
		for (size_t i = 0; i < PENDING_MAX; i++) {
			struct pending *p = &a->p[i];

			if (p->fd < 0)
				continue;
			if (now - p->since_ns > a->peek_ns) {
				/* invariant 1 */
				if (p->examined || p->line_done)
					forward(a, p, 1);
				else if (now - p->since_ns > a->deadline_ns)
					drop(a, p);
			} else if (p->examined && has_room(a)) {
				hand_over(a, p);
			}
		}
	}
	return NULL;
}

struct msr_acceptor *
msr_acceptor_start(int listen_fd, struct MHD_Daemon *mhd, const struct msr_acceptor_limits *lim,
    int *live)
{
	struct msr_acceptor *a = calloc(1, sizeof(*a));
	struct epoll_event ev;

	if (a == NULL)
		return NULL;
	a->listen_fd = listen_fd;
	a->mhd = mhd;
	a->peek_ns = (uint64_t)lim->peek_ms * 1000000u;
	a->deadline_ns = (uint64_t)lim->deadline_ms * 1000000u;
	a->url_limit = lim->url_limit;
	a->peek_max = lim->url_limit + lim->header_limit + 1024;
	a->max_conns = lim->max_conns;
	a->per_address = lim->per_address;
	a->live = live;
	a->buf = malloc(a->peek_max + 1);
	if (a->buf == NULL) {
		free(a);
		return NULL;
	}
	for (size_t i = 0; i < PENDING_MAX; i++)
		a->p[i].fd = -1;
	a->ep = epoll_create1(EPOLL_CLOEXEC);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (a->ep < 0 || epoll_ctl(a->ep, EPOLL_CTL_ADD, listen_fd, &ev) != 0 ||
	    pthread_create(&a->thread, NULL, acceptor_main, a) != 0) {
		if (a->ep >= 0)
			close(a->ep);
		free(a->buf);
		free(a);
		return NULL;
	}
	return a;
}

void
msr_acceptor_stop(struct msr_acceptor *a)
{
	if (a == NULL)
		return;
	a->stop = 1;
	pthread_join(a->thread, NULL);
	close(a->listen_fd);
	for (size_t i = 0; i < PENDING_MAX; i++)
		if (a->p[i].fd >= 0)
			drop(a, &a->p[i]);
	close(a->ep);
	free(a->buf);
	free(a);
}
