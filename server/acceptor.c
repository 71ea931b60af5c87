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
 *  1. A connection is held here at most peek_ms and at most PENDING_MAX at a
 *     time; after that, or when the pending table is full, it is handed over
 *     unexamined (so a slow client costs the acceptor nothing, and the
 *     daemon's own deadlines apply to it).
 *  2. Only the first request of a connection is examined: a later request on
 *     a kept-alive connection with a bad version still gets libmicrohttpd's
 *     own answer (documented in config.example.ini).
 *  3. Stopping closes the listening socket first (new connections are
 *     refused), then every pending connection.
 */
#include "msreg/acceptor.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "msreg/common.h"
#include "msreg/log.h"

#define PENDING_MAX 256

struct pending {
	int                     fd;          /* -1 = free slot */
	uint64_t                since_ns;
	struct sockaddr_storage addr;
	socklen_t               addrlen;
};

struct msr_acceptor {
	int                listen_fd, ep;
	struct MHD_Daemon *mhd;
	uint64_t           peek_ns;
	size_t             url_limit, peek_max;
	char              *buf;             /* peek_max + 1 bytes, acceptor thread only */
	volatile int       stop;
	pthread_t          thread;
	struct pending     p[PENDING_MAX];
};

static void
hand_over(struct msr_acceptor *a, struct pending *p)
{
	epoll_ctl(a->ep, EPOLL_CTL_DEL, p->fd, NULL);
	/* MHD owns the socket from here, and closes it if it cannot take it */
	if (MHD_add_connection(a->mhd, p->fd, (const struct sockaddr *)&p->addr,
	    p->addrlen) != MHD_YES)
		log_debug("acceptor: connection refused by the daemon's limits");
	p->fd = -1;
}

static void
drop(struct msr_acceptor *a, struct pending *p)
{
	epoll_ctl(a->ep, EPOLL_CTL_DEL, p->fd, NULL);
	close(p->fd);
	p->fd = -1;
}

/* Answer a JSON error on p and close it. */
static void
refuse(struct msr_acceptor *a, struct pending *p, int status, const char *reason,
    const char *code, const char *message)
{
	char body[256], msg[640];
	int n;

	snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
	    code, message);
	n = snprintf(msg, sizeof(msg), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
	    status, reason, strlen(body), body);
	/* best effort: the socket is non-blocking and the reply is small */
	if (send(p->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("acceptor: could not send a refusal");
	shutdown(p->fd, SHUT_WR);
	drop(a, p);
}

/* Each header line is "name: value" with a token name; Content-Length digits. */
static int
headers_valid(const char *h, const char *end)
{
	const char *cl = NULL;
	size_t cl_len = 0;

	while (h < end) {
		const char *eol = memchr(h, '\n', (size_t)(end - h));
		const char *colon, *v, *ve;

		if (eol == NULL)
			eol = end;
		ve = eol > h && eol[-1] == '\r' ? eol - 1 : eol;
		colon = memchr(h, ':', (size_t)(ve - h));
		if (colon == NULL || colon == h)
			return 0;
		for (const char *c = h; c < colon; c++)
			if (*c <= ' ' || *c >= 0x7f)
				return 0;
		v = colon + 1;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if ((size_t)(colon - h) == 14 && strncasecmp(h, "Content-Length", 14) == 0) {
			if (ve == v || ve - v > 19)
				return 0;
			for (const char *c = v; c < ve; c++)
				if (*c < '0' || *c > '9')
					return 0;
			if (cl != NULL && ((size_t)(ve - v) != cl_len || memcmp(cl, v, cl_len) != 0))
				return 0;
			cl = v;
			cl_len = (size_t)(ve - v);
		}
		h = eol + 1;
	}
	return 1;
}

/*
 * Look at the first request (line and headers): 1 = hand over, 0 = wait for
 * more, -1 = refused (answered and closed), -2 = the peer went away.
 */
static int
examine(struct msr_acceptor *a, struct pending *p)
{
	char *buf = a->buf;
	const char *nl, *sp, *eoh, *line_end;
	ssize_t n = recv(p->fd, buf, a->peek_max, MSG_PEEK | MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		return -2;
	if (n < 0)
		return 0;
	buf[n] = '\0';
	nl = memchr(buf, '\n', (size_t)n);
	if (nl == NULL) {
		if ((size_t)n > a->url_limit + 64) {
			refuse(a, p, 414, "URI Too Long", "uri_too_long",
			    "the request line is too long");
			return -1;
		}
		return (size_t)n == a->peek_max ? 1 : 0;
	}
	line_end = nl;
	while (line_end > buf && (line_end[-1] == '\r' || line_end[-1] == ' '))
		line_end--;
	if (line_end == buf)
		return 1;                         /* a leading empty line: MHD's business */
	sp = memchr(buf, ' ', (size_t)(line_end - buf));
	if (sp != NULL)
		sp = memchr(sp + 1, ' ', (size_t)(line_end - sp - 1));
	if (sp == NULL || line_end - sp - 1 != 8 || strncmp(sp + 1, "HTTP/", 5) != 0 ||
	    sp[7] != '.' || sp[8] < '0' || sp[8] > '9') {
		refuse(a, p, 400, "Bad Request", "invalid_request",
		    "the request line must be METHOD PATH HTTP/1.x");
		return -1;
	}
	if (sp[6] != '1') {
		refuse(a, p, 400, "Bad Request", "unsupported_http_version",
		    "msregd speaks HTTP/1.0 and HTTP/1.1 only");
		return -1;
	}
	eoh = strstr(nl + 1, "\r\n\r\n");
	if (eoh == NULL && strncmp(nl + 1, "\r\n", 2) == 0)
		eoh = nl - 1;                     /* no headers at all */
	if (eoh == NULL) {
		if ((size_t)n == a->peek_max) {
			refuse(a, p, 431, "Request Header Fields Too Large", "headers_too_large",
			    "the request headers are too large");
			return -1;
		}
		return 0;
	}
	if (eoh > nl && !headers_valid(nl + 1, eoh)) {
		refuse(a, p, 400, "Bad Request", "invalid_request",
		    "a request header is malformed");
		return -1;
	}
	return 1;
}

static void
accept_new(struct msr_acceptor *a)
{
	for (;;) {
		struct pending tmp, *p = NULL;
		struct epoll_event ev;

		tmp.addrlen = sizeof(tmp.addr);
		tmp.fd = accept4(a->listen_fd, (struct sockaddr *)&tmp.addr, &tmp.addrlen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (tmp.fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_debug("acceptor: accept: %s", strerror(errno));
			return;
		}
		tmp.since_ns = msr_now_ns();
		for (size_t i = 0; i < PENDING_MAX && p == NULL; i++)
			if (a->p[i].fd < 0)
				p = &a->p[i];
		if (p == NULL) {
			if (MHD_add_connection(a->mhd, tmp.fd, (const struct sockaddr *)&tmp.addr,
			    tmp.addrlen) != MHD_YES)
				log_debug("acceptor: connection refused by the daemon's limits");
			continue;
		}
		*p = tmp;
		memset(&ev, 0, sizeof(ev));
		/* edge-triggered: a peek consumes nothing, so only new bytes wake us */
		ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = p;
		if (epoll_ctl(a->ep, EPOLL_CTL_ADD, p->fd, &ev) != 0)
			hand_over(a, p);
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
			if (p->fd < 0)
				continue;
			rc = examine(a, p);
			if (rc == 1)
				hand_over(a, p);
			else if (rc == -2)
				drop(a, p);
		}
		now = msr_now_ns();
		for (size_t i = 0; i < PENDING_MAX; i++)
			if (a->p[i].fd >= 0 && now - a->p[i].since_ns > a->peek_ns)
				hand_over(a, &a->p[i]);
	}
	return NULL;
}

struct msr_acceptor *
msr_acceptor_start(int listen_fd, struct MHD_Daemon *mhd, int peek_ms, size_t url_limit,
    size_t header_limit)
{
	struct msr_acceptor *a = calloc(1, sizeof(*a));
	struct epoll_event ev;

	if (a == NULL)
		return NULL;
	a->listen_fd = listen_fd;
	a->mhd = mhd;
	a->peek_ns = (uint64_t)peek_ms * 1000000u;
	a->url_limit = url_limit;
	a->peek_max = url_limit + header_limit + 1024;
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
