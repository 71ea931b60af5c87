/*
 * it_limits.c — integration tests of issue 8's bounds against a real msregd
 * and PostgreSQL over loopback: rate limits per role and per source address,
 * authentication before any body byte, per-route body limits, the JSON
 * pre-scan, the whole-request deadline, per-address connection limits, audit
 * entries of at most 8 KiB, error bodies that are always valid UTF-8 JSON
 * (also for requests libmicrohttpd parses itself, sent over raw sockets), and
 * the signer key mode check.
 *
 * The memory scenario: 200 slow unauthenticated connections (from 127.0.0.2..9,
 * 25 per address, under the per-address limit) plus 8 concurrent 16 MiB junk
 * bodies, while an investigator's audited lookups must keep answering and
 * msregd's VmRSS (sampled from /proc) must stay under 300 MB. It prints the
 * figures it measured.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct msr_it it;
static char inv_key[128], mfr_key[128], aud_key[128];

static const char *LOOKUP =
    "/v1/codes/0H5KB4M3?case_number=LIM-1&purpose=limits%20test";

static void
setup(void)
{
	msr_it_setup(&it, "limits", "[http]\nrequest_timeout = 5\nconnection_timeout = 3\n"
	    "per_address_connections = 64\n");
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/manufacturers", it.admin_key,
	    "{\"id\":\"limco\",\"name\":\"Limits Co\"}"), 201);
	msr_it_client(&it, "investigator", "lim-inv", "CA0194200", inv_key, sizeof(inv_key));
	msr_it_client(&it, "manufacturer", "lim-mfr", "limco", mfr_key, sizeof(mfr_key));
	msr_it_client(&it, "auditor", "lim-aud", NULL, aud_key, sizeof(aud_key));
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- raw sockets ---- */

/* A TCP connection to msregd from source address src (NULL: any), or -1. */
static int
connect_from(const char *src, int port)
{
	struct sockaddr_in a, b;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (src != NULL) {
		memset(&b, 0, sizeof(b));
		b.sin_family = AF_INET;
		inet_pton(AF_INET, src, &b.sin_addr);
		if (bind(fd, (struct sockaddr *)&b, sizeof(b)) != 0) {
			close(fd);
			return -1;
		}
	}
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Read until the peer closes, the buffer is full or timeout_ms pass. */
static size_t
recv_all(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t n = 0;
	double end = now_s() + timeout_ms / 1000.0;

	while (n + 1 < cap) {
		struct pollfd p = { fd, POLLIN, 0 };
		int left = (int)((end - now_s()) * 1000);
		ssize_t k;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		k = recv(fd, buf + n, cap - 1 - n, 0);
		if (k <= 0)
			break;
		n += (size_t)k;
		/* one complete response with Content-Length is enough */
		{
			char *h;
			const char *cl;
			buf[n] = '\0';
			h = strstr(buf, "\r\n\r\n");
			cl = strcasestr(buf, "\r\nContent-Length:");
			if (h != NULL && cl != NULL && cl < h &&
			    n >= (size_t)(h + 4 - buf) + strtoul(cl + 17, NULL, 10))
				break;
		}
	}
	buf[n] = '\0';
	return n;
}

struct raw_resp {
	long    status;          /* -1: no HTTP response (connection closed) */
	char    text[65536];
	json_t *json;            /* body parsed if JSON */
};

static void
raw_parse(struct raw_resp *r)
{
	const char *body = strstr(r->text, "\r\n\r\n");

	r->status = -1;
	r->json = NULL;
	if (strncmp(r->text, "HTTP/1.", 7) == 0 && strlen(r->text) > 12)
		r->status = strtol(r->text + 9, NULL, 10);
	if (body != NULL)
		r->json = json_loads(body + 4, 0, NULL);
}

/* Send req (n bytes) on a new connection and read the response. */
static void
raw_exchange(const char *req, size_t n, struct raw_resp *r)
{
	int fd = connect_from(NULL, it.port);

	ck_assert_int_ge(fd, 0);
	send_all(fd, req, n);
	recv_all(fd, r->text, sizeof(r->text), 5000);
	close(fd);
	raw_parse(r);
}

static long
rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

/* The audit entry at index (as an auditor), its canonical length in *len. */
static json_t *
audit_entry(struct msr_it *inst, long index, size_t *len)
{
	struct msr_it_resp r;
	char path[96];
	json_t *e, *entry = NULL;
	char *text;

	snprintf(path, sizeof(path), "/v1/audit/entries?start=%ld&limit=1", index);
	ck_assert_int_eq(msr_it_request(inst, "GET", path, aud_key, NULL, NULL, &r), 0);
	ck_assert_msg(r.status == 200, "audit entries: %ld %s", r.status, r.body);
	e = json_array_get(json_object_get(r.json, "entries"), 0);
	ck_assert_ptr_nonnull(e);
	entry = json_incref(json_object_get(e, "entry"));
	text = json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS);
	*len = strlen(text);
	free(text);
	msr_it_resp_free(&r);
	return entry;
}

/* ---- rate limits ---- */

START_TEST(rate_limits)
{
	struct msr_it lim;
	struct msr_it_resp r;
	int ok = 0, limited = 0, first_429 = -1;

	msr_it_instance(&it, &lim, "rate", "[rate]\nenabled = true\n"
	    "investigator_per_second = 0.5\ninvestigator_burst = 4\n"
	    "address_per_second = 0.5\naddress_burst = 6\n");
	/* an investigator key: its burst, then 429 rate_limited with Retry-After */
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(msr_it_request(&lim, "GET", LOOKUP, inv_key, NULL, NULL, &r), 0);
		if (r.status == 429) {
			ck_assert_str_eq(msr_it_error_code(&r), "rate_limited");
			ck_assert_int_ge(atoi(r.retry_after), 1);
			if (first_429 < 0)
				first_429 = i;
			limited++;
		} else {
			ck_assert_msg(r.status == 404, "lookup: %ld %s", r.status, r.body);
			ok++;
		}
		msr_it_resp_free(&r);
	}
	printf("rate: investigator burst 4 at 0.5/s: %d answered, %d refused 429 "
	    "(first at request %d)\n", ok, limited, first_429 + 1);
	ck_assert_int_ge(ok, 4);
	ck_assert_int_le(ok, 5);
	ck_assert_int_ge(limited, 3);
	/* another role has its own (default) limit: the admin still gets through */
	ck_assert_int_eq(msr_it_status(&lim, "GET", "/v1/clients/99999", it.admin_key, NULL),
	    405);
	/* unauthenticated traffic per address: /healthz included */
	ok = limited = 0;
	for (int i = 0; i < 10; i++) {
		long st = msr_it_status(&lim, "GET", "/healthz", NULL, NULL);
		ok += st == 200;
		limited += st == 429;
	}
	printf("rate: unauthenticated address burst 6 (the admin's request above was not "
	    "counted): %d answered, %d refused\n", ok, limited);
	ck_assert_int_ge(limited, 3);
	/* the address's public traffic does not hold up keyed requests from it */
	ck_assert_int_eq(msr_it_status(&lim, "GET", "/v1/clients/99999", it.admin_key, NULL),
	    405);
	/* wrong keys are limited per address too (a bucket of their own) */
	ok = limited = 0;
	for (int i = 0; i < 10; i++) {
		long st = msr_it_status(&lim, "GET", LOOKUP, "msr_guess", NULL);
		ok += st == 401;
		limited += st == 429;
	}
	printf("rate: 10 wrong keys from one address: %d answered 401, %d refused 429\n",
	    ok, limited);
	ck_assert_int_ge(limited, 3);
	ck_assert_int_le(ok, 7);
	msr_it_stop(&lim, SIGTERM);

	/* [rate] enabled = false (the harness default) turns every limit off */
	for (int i = 0; i < 60; i++)
		ck_assert_int_eq(msr_it_status(&it, "GET", "/healthz", NULL, NULL), 200);
}
END_TEST

/* ---- bounded requests ---- */

START_TEST(auth_before_body)
{
	struct raw_resp *r = calloc(1, sizeof(*r));
	char req[512];
	double t0;
	int fd;

	/* headers promise 10 MB; no key: 401 at once, not a byte of body read */
	snprintf(req, sizeof(req), "POST /v1/firearms/batch HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n");
	fd = connect_from(NULL, it.port);
	ck_assert_int_ge(fd, 0);
	t0 = now_s();
	send_all(fd, req, strlen(req));
	recv_all(fd, r->text, sizeof(r->text), 5000);
	close(fd);
	raw_parse(r);
	ck_assert_msg(r->status == 401, "got %ld: %s", r->status, r->text);
	ck_assert_ptr_nonnull(r->json);
	ck_assert_double_lt(now_s() - t0, 3.0);
	json_decref(r->json);
	/* and with chunked encoding */
	snprintf(req, sizeof(req), "POST /v1/search HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"readings\":[\"A\r\n");
	raw_exchange(req, strlen(req), r);
	ck_assert_msg(r->status == 401, "got %ld: %s", r->status, r->text);
	json_decref(r->json);
	/* a wrong role: 403 before the body too */
	snprintf(req, sizeof(req), "POST /v1/firearms/batch HTTP/1.1\r\nHost: x\r\n"
	    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: 10000000\r\n\r\n", inv_key);
	raw_exchange(req, strlen(req), r);
	ck_assert_msg(r->status == 403, "got %ld: %s", r->status, r->text);
	json_decref(r->json);
	free(r);
}
END_TEST

START_TEST(body_limits)
{
	struct msr_it_resp r;
	size_t n = 100 * 1024;
	char *big = malloc(n + 64);

	/* a single-item route: 64 KiB */
	snprintf(big, n + 64, "{\"case_number\":\"C\",\"purpose\":\"p\",\"readings\":[\"");
	memset(big + strlen(big), 'A', n);
	strcpy(big + n, "\"]}");
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", inv_key, NULL, big, &r), 0);
	ck_assert_msg(r.status == 413, "search 100 KiB: %ld", r.status);
	ck_assert_str_eq(msr_it_error_code(&r), "body_too_large");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_object_get(
	    r.json, "error"), "detail"), "limit")), 65536);
	msr_it_resp_free(&r);
	/* the batch route takes it (and refuses the content, not the size) */
	snprintf(big, n + 64, "{\"firearms\":[{\"serial\":\"");
	memset(big + strlen(big), 'A', n);
	strcpy(big + n, "\"}]}");
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/firearms/batch", mfr_key, NULL, big,
	    &r), 0);
	ck_assert_msg(r.status == 400, "batch 100 KiB: %ld %s", r.status, r.body);
	msr_it_resp_free(&r);
	free(big);
}
END_TEST

START_TEST(json_amplification)
{
	struct msr_it_resp r;
	size_t n = 4 * 1024 * 1024, i;
	char *junk = malloc(n + 8);
	double t0;

	/* 4 MiB of [],[],... : 1.4 million values, refused before building a tree */
	junk[0] = '[';
	for (i = 1; i + 3 < n; i += 3)
		memcpy(junk + i, "[],", 3);
	memcpy(junk + i - 1, "]", 2);
	t0 = now_s();
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/firearms/batch", mfr_key, NULL, junk,
	    &r), 0);
	printf("json: 4 MiB of [],[],... answered %ld %s in %.2f s\n", r.status,
	    msr_it_error_code(&r), now_s() - t0);
	ck_assert_int_eq(r.status, 413);
	ck_assert_str_eq(msr_it_error_code(&r), "body_too_large");
	msr_it_resp_free(&r);
	/* nesting deeper than [http] json_max_depth */
	for (i = 0; i < 40; i++)
		junk[i] = '[';
	for (; i < 80; i++)
		junk[i] = ']';
	junk[i] = '\0';
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/firearms/batch", mfr_key, NULL, junk,
	    &r), 0);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(msr_it_error_code(&r), "invalid_json");
	msr_it_resp_free(&r);
	free(junk);
}
END_TEST

struct junk_sender {
	int         port;        /* 0: it's */
	const char *src;
	const char *key;         /* NULL: unauthenticated */
	int         chunked;
	size_t      sent;
	long        status;
	int         body_memory; /* the answer named the global body budget */
};

/* Push 16 MiB of junk as fast as the server takes it, then read the answer. */
static void *
junk_main(void *arg)
{
	struct junk_sender *j = arg;
	size_t total = 16u * 1024 * 1024, blk = 65536;
	char *buf = malloc(blk + 32), hdr[512], resp[4096];
	int fd = connect_from(j->src, j->port ? j->port : it.port);

	j->status = -1;
	if (fd < 0) {
		free(buf);
		return NULL;
	}
	memset(buf, '[', blk);
	snprintf(hdr, sizeof(hdr), "POST /v1/firearms/batch HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\n%s%s%s%s\r\n",
	    j->key ? "Authorization: Bearer " : "", j->key ? j->key : "", j->key ? "\r\n" : "",
	    j->chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: 16777216\r\n");
	send_all(fd, hdr, strlen(hdr));
	for (size_t off = 0; off < total; off += blk) {
		char ch[16];
		ssize_t w;
		if (j->chunked) {
			snprintf(ch, sizeof(ch), "%zx\r\n", blk);
			send_all(fd, ch, strlen(ch));
		}
		w = send(fd, buf, blk, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		j->sent += (size_t)w;
		if (j->chunked)
			send_all(fd, "\r\n", 2);
	}
	if (j->chunked)
		send_all(fd, "0\r\n\r\n", 5);
	recv_all(fd, resp, sizeof(resp), 20000);
	if (strncmp(resp, "HTTP/1.", 7) == 0)
		j->status = strtol(resp + 9, NULL, 10);
	j->body_memory = strstr(resp, "body_memory") != NULL;
	close(fd);
	free(buf);
	return NULL;
}

struct rss_sampler {
	pid_t          pid;
	volatile int   stop;
	long           max_kb;
};

static void *
rss_main(void *arg)
{
	struct rss_sampler *s = arg;

	while (!s->stop) {
		long kb = rss_kb(s->pid);
		if (kb > s->max_kb)
			s->max_kb = kb;
		nanosleep(&(struct timespec){ 0, 20 * 1000000L }, NULL);
	}
	return NULL;
}

START_TEST(hostile_connections)
{
	enum { SLOW = 200, JUNK = 8 };
	static int slow[SLOW];
	struct junk_sender j[JUNK];
	pthread_t jt[JUNK], st;
	struct rss_sampler rs = { it.pid, 0, 0 };
	char src[32], msg[256];
	int open_slow = 0, lookups = 0, answered = 0, closed_by_server = 0;
	double worst = 0, t0;
	long rss_before = rss_kb(it.pid);

	pthread_create(&st, NULL, rss_main, &rs);
	/* 200 slow connections: 100 trickle headers, 100 trickle a chunked body */
	for (int i = 0; i < SLOW; i++) {
		snprintf(src, sizeof(src), "127.0.0.%d", 2 + i / 25);
		slow[i] = connect_from(src, it.port);
		ck_assert_msg(slow[i] >= 0, "slow connection %d from %s", i, src);
		if (i % 2 == 0)
			snprintf(msg, sizeof(msg), "POST /v1/firearms/batch HTTP/1.1\r\nHost: x\r\nX-Slow: ");
		else
			snprintf(msg, sizeof(msg), "POST /v1/firearms/batch HTTP/1.1\r\nHost: x\r\n"
			    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
		send_all(slow[i], msg, strlen(msg));
		open_slow++;
	}
	/* 8 junk bodies of 16 MiB: 4 without a key, 4 with a manufacturer's key */
	for (int i = 0; i < JUNK; i++) {
		memset(&j[i], 0, sizeof(j[i]));
		j[i].src = "127.0.0.20";
		j[i].key = i % 2 ? mfr_key : NULL;
		j[i].chunked = i % 4 >= 2;
		pthread_create(&jt[i], NULL, junk_main, &j[i]);
	}
	/* audited lookups keep answering while the slow ones trickle */
	t0 = now_s();
	while (now_s() - t0 < 8) {
		struct msr_it_resp r;
		double t1 = now_s();

		for (int i = 0; i < SLOW; i++)
			if (slow[i] >= 0)
				send_all(slow[i], i % 2 == 0 ? "a" : "1\r\n[\r\n", i % 2 == 0 ? 1 : 6);
		ck_assert_int_eq(msr_it_request(&it, "GET", LOOKUP, inv_key, NULL, NULL, &r), 0);
		lookups++;
		if (r.status == 404 && r.audit_index >= 0)
			answered++;
		if (now_s() - t1 > worst)
			worst = now_s() - t1;
		msr_it_resp_free(&r);
		nanosleep(&(struct timespec){ 0, 400 * 1000000L }, NULL);
	}
	for (int i = 0; i < JUNK; i++)
		pthread_join(jt[i], NULL);
	rs.stop = 1;
	pthread_join(st, NULL);
	/* the whole-request deadline (5 s here) closed the tricklers: they were
	 * opened more than 8 s ago; a loaded daemon gets up to 30 s more to act */
	t0 = now_s();
	for (int i = 0; i < SLOW; i++) {
		char b[4096];
		struct pollfd p = { slow[i], POLLIN, 0 };
		int left = (int)((t0 + 30 - now_s()) * 1000);
		ssize_t k = 1;
		/* drain what the server sent (an error reply) until it closes */
		while (poll(&p, 1, left > 0 ? left : 0) > 0 &&
		    (k = recv(slow[i], b, sizeof(b), MSG_DONTWAIT)) > 0)
			left = (int)((t0 + 30 - now_s()) * 1000);
		if (k <= 0 || (p.revents & (POLLHUP | POLLERR)))
			closed_by_server++;
		close(slow[i]);
	}
	printf("hostile: %d slow connections + %d x 16 MiB junk bodies: msregd VmRSS %ld kB "
	    "before, %ld kB max (%.0f MB); %d/%d audited lookups answered, slowest %.2f s; "
	    "%d/%d slow connections closed by the request deadline\n", open_slow, JUNK,
	    rss_before, rs.max_kb, rs.max_kb / 1024.0, answered, lookups, worst,
	    closed_by_server, SLOW);
	for (int i = 0; i < JUNK; i++)
		printf("  junk %d (%s, %s): sent %zu bytes, answered %ld\n", i,
		    j[i].key ? "manufacturer key" : "no key",
		    j[i].chunked ? "chunked" : "Content-Length", j[i].sent, j[i].status);
	ck_assert_int_lt(rs.max_kb, 300 * 1024);
	ck_assert_int_eq(answered, lookups);
	ck_assert_int_ge(closed_by_server, SLOW * 9 / 10);
	for (int i = 0; i < JUNK; i++) {
		if (j[i].key == NULL)
			ck_assert_msg(j[i].status == 401 || j[i].status == -1,
			    "unauthenticated junk answered %ld", j[i].status);
		else
			ck_assert_msg(j[i].status == 413 || j[i].status == 503 || j[i].status == 400,
			    "junk with a key answered %ld", j[i].status);
	}
}
END_TEST

START_TEST(body_memory_budget)
{
	enum { N = 4 };
	struct msr_it small;
	struct junk_sender j[N];
	pthread_t t[N];
	int busy = 0;

	/* room for two 16 MiB bodies at once: of four, at least two wait their turn */
	msr_it_instance(&it, &small, "budget", "[http]\nbody_memory_limit = 33554432\n");
	for (int i = 0; i < N; i++) {
		memset(&j[i], 0, sizeof(j[i]));
		j[i].port = small.port;
		j[i].src = "127.0.0.40";
		j[i].key = mfr_key;
		pthread_create(&t[i], NULL, junk_main, &j[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		printf("budget: 16 MiB body %d of %d answered %ld%s\n", i + 1, N, j[i].status,
		    j[i].body_memory ? " (body_memory)" : "");
		busy += j[i].status == 503 && j[i].body_memory;
		ck_assert_msg(j[i].status == 503 || j[i].status == 400, "answered %ld",
		    j[i].status);
	}
	ck_assert_int_ge(busy, 1);
	ck_assert_int_eq(msr_it_status(&small, "GET", "/healthz", NULL, NULL), 200);
	msr_it_stop(&small, SIGTERM);
}
END_TEST

START_TEST(per_address_connections)
{
	enum { N = 80 };
	int fd[N], alive = 0;

	for (int i = 0; i < N; i++)
		fd[i] = connect_from("127.0.0.30", it.port);
	/*
	 * silent connections reach the HTTP layer after the acceptor's 1 s peek;
	 * count the live ones until the excess has been closed (polled up to 30 s,
	 * not a fixed pause a loaded machine can outrun; no limit never gets there)
	 */
	for (double end = now_s() + 30;;) {
		nanosleep(&(struct timespec){ 0, 250 * 1000000L }, NULL);
		alive = 0;
		for (int i = 0; i < N; i++) {
			char b[16];
			struct pollfd p = { fd[i], POLLIN, 0 };
			if (fd[i] < 0)
				continue;
			if (poll(&p, 1, 0) == 0 || recv(fd[i], b, sizeof(b), MSG_DONTWAIT | MSG_PEEK) > 0)
				alive++;
		}
		if (alive <= 64 || now_s() > end)
			break;
	}
	for (int i = 0; i < N; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	printf("per address: %d of %d connections from one address kept (limit 64)\n", alive, N);
	ck_assert_int_le(alive, 64);
	ck_assert_int_ge(alive, 32);
	/* another address is unaffected */
	ck_assert_int_eq(msr_it_status(&it, "GET", "/healthz", NULL, NULL), 200);
}
END_TEST

/* ---- bounded audit entries ---- */

START_TEST(audit_entry_bounds)
{
	struct msr_it big;
	struct msr_it_resp r;
	size_t n = 15 * 1024 * 1024, len = 0;
	char *body = malloc(n + 128);
	json_t *e;

	/* with the default small body limit the reading never reaches the handler */
	snprintf(body, n + 128, "{\"case_number\":\"LIM-2\",\"purpose\":\"bounds\",\"readings\":[\"");
	memset(body + strlen(body), '*', n);
	strcpy(body + n, "\"]}");
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", inv_key, NULL, body, &r), 0);
	ck_assert_int_eq(r.status, 413);
	ck_assert_int_ge(r.audit_index, 0);
	e = audit_entry(&it, r.audit_index, &len);
	printf("audit: 15 MiB reading refused by size: entry %zu bytes\n", len);
	ck_assert_uint_le(len, 8192);
	json_decref(e);
	msr_it_resp_free(&r);

	/* the field a refusal names is recorded as its length and digest */
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/search", inv_key, NULL,
	    "{\"case_number\":\"LIM-3\",\"purpose\":\"bounds\",\"readings\":\"XYZ\"}", &r), 0);
	ck_assert_int_eq(r.status, 400);
	e = audit_entry(&it, r.audit_index, &len);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(e, "readings"),
	    "length")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(e, "case_number")), "LIM-3");
	json_decref(e);
	msr_it_resp_free(&r);

	/* let it reach the handler: refused as invalid, recorded as length + SHA-256 */
	msr_it_instance(&it, &big, "bigbody", "[http]\nbody_limit_small = 16777216\n");
	ck_assert_int_eq(msr_it_request(&big, "POST", "/v1/search", inv_key, NULL, body, &r), 0);
	ck_assert_msg(r.status == 400 || r.status == 422, "search: %ld %s", r.status,
	    msr_it_error_code(&r));
	ck_assert_int_ge(r.audit_index, 0);
	e = audit_entry(&big, r.audit_index, &len);
	printf("audit: 15 MiB invalid reading answered %ld %s: entry %zu bytes\n", r.status,
	    msr_it_error_code(&r), len);
	ck_assert_uint_le(len, 8192);
	ck_assert_ptr_nonnull(json_object_get(e, "error"));
	{
		char *text = json_dumps(e, JSON_COMPACT);
		printf("audit: the entry: %s\n", text);
		ck_assert_ptr_nonnull(strstr(text, "\"readings\":[{\"length\":"));
		ck_assert_ptr_nonnull(strstr(text, "\"sha256\""));
		free(text);
	}
	json_decref(e);
	msr_it_resp_free(&r);
	msr_it_stop(&big, SIGTERM);
	free(body);
}
END_TEST

/* ---- errors are always JSON ---- */

static void
expect_json_error(const char *path, const char *key, long lo, long hi)
{
	struct msr_it_resp r;

	ck_assert_int_eq(msr_it_request(&it, "GET", path, key, NULL, NULL, &r), 0);
	ck_assert_msg(r.status >= lo && r.status <= hi, "%.60s: status %ld %.300s", path,
	    r.status, r.body);
	ck_assert_msg(r.json != NULL, "%.60s: body is not JSON: %.200s", path, r.body);
	ck_assert_msg(msr_it_error_code(&r)[0] != '\0', "%.60s: no error code", path);
	msr_it_resp_free(&r);
}

START_TEST(errors_json)
{
	char path[8192];
	size_t n;

	/* invalid UTF-8 in the path: a 4xx JSON error, not 503 */
	expect_json_error("/v1/codes/%ff?case_number=C&purpose=p", inv_key, 400, 499);
	expect_json_error("/v1/codes/%ff%fe%c3", inv_key, 400, 499);
	expect_json_error("/nope/%ff%c3%28", NULL, 404, 404);
	/* a message longer than 512 bytes, cut on a character boundary */
	n = (size_t)snprintf(path, sizeof(path), "/x");
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(path + n, sizeof(path) - n, "%%E2%%82%%AC");
	expect_json_error(path, NULL, 404, 404);
	/* a path longer than [http] url_limit (raw: the harness's URL buffer is short) */
	{
		struct raw_resp *r = calloc(1, sizeof(*r));

		n = (size_t)snprintf(path, sizeof(path), "GET /v1/codes/");
		memset(path + n, 'A', 5000);
		n += 5000;
		n += (size_t)snprintf(path + n, sizeof(path) - n,
		    " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
		raw_exchange(path, n, r);
		ck_assert_msg(r->status == 414, "5000-byte path: %ld", r->status);
		ck_assert_ptr_nonnull(r->json);
		json_decref(r->json);
		free(r);
	}
}
END_TEST

START_TEST(raw_protocol_errors)
{
	static const struct {
		const char *name;
		const char *req;
	} cases[] = {
		{ "HTTP/1.2", "GET /healthz HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n" },
		{ "HTTP/2.0", "GET /healthz HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n" },
		{ "HTTP/3.1", "GET /healthz HTTP/3.1\r\nHost: x\r\nConnection: close\r\n\r\n" },
		{ "HTTP/0.9", "GET /healthz\r\n\r\n" },
		{ "garbage version", "GET /healthz FOO/1.1\r\nHost: x\r\n\r\n" },
		{ "bad Content-Length", "POST /v1/search HTTP/1.1\r\nHost: x\r\n"
		  "Content-Length: abc\r\nConnection: close\r\n\r\n" },
		{ "two Content-Lengths", "POST /v1/search HTTP/1.1\r\nHost: x\r\n"
		  "Content-Length: 5\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{}" },
		{ "bad chunk size", "POST /v1/search HTTP/1.1\r\nHost: x\r\n"
		  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n" },
		{ "huge chunk size", "POST /v1/search HTTP/1.1\r\nHost: x\r\n"
		  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		  "fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n" },
		{ "bad header line", "GET /healthz HTTP/1.1\r\nHost x\r\nConnection: close\r\n\r\n" },
		{ "no Host", "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n" },
	};
	struct raw_resp *r = calloc(1, sizeof(*r));
	char *big = malloc(200 * 1024);
	size_t n;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw_exchange(cases[i].req, strlen(cases[i].req), r);
		printf("raw: %-20s -> %ld%s\n", cases[i].name, r->status,
		    r->status < 0 ? " (closed)" : r->json != NULL ? " JSON" : " not JSON");
		ck_assert_msg(r->status < 500 || r->status == 503, "%s answered %ld",
		    cases[i].name, r->status);
		json_decref(r->json);
	}
	/* headers over [http] header_limit, under libmicrohttpd's buffer: our 431 JSON */
	n = (size_t)snprintf(big, 200 * 1024, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + n, 'b', 20000);
	n += 20000;
	n += (size_t)snprintf(big + n, 200 * 1024 - n, "\r\nConnection: close\r\n\r\n");
	raw_exchange(big, n, r);
	printf("raw: %-20s -> %ld%s\n", "20 KB header", r->status, r->json ? " JSON" : "");
	ck_assert_int_eq(r->status, 431);
	ck_assert_ptr_nonnull(r->json);
	json_decref(r->json);
	/* far beyond: libmicrohttpd answers itself; a 4xx, never a 5xx */
	n = (size_t)snprintf(big, 200 * 1024, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + n, 'b', 150000);
	n += 150000;
	n += (size_t)snprintf(big + n, 200 * 1024 - n, "\r\nConnection: close\r\n\r\n");
	raw_exchange(big, n, r);
	printf("raw: %-20s -> %ld%s\n", "150 KB header", r->status, r->json ? " JSON" : "");
	ck_assert_msg(r->status < 500, "150 KB header: %ld", r->status);
	json_decref(r->json);
	n = (size_t)snprintf(big, 200 * 1024, "GET /v1/codes/");
	memset(big + n, 'A', 150000);
	n += 150000;
	n += (size_t)snprintf(big + n, 200 * 1024 - n, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	raw_exchange(big, n, r);
	printf("raw: %-20s -> %ld%s\n", "150 KB URL", r->status, r->json ? " JSON" : "");
	ck_assert_msg(r->status < 500, "150 KB URL: %ld", r->status);
	json_decref(r->json);
	/* the daemon is still fine */
	ck_assert_int_eq(msr_it_status(&it, "GET", "/healthz", NULL, NULL), 200);
	free(big);
	free(r);
}
END_TEST

/* ---- the signer key's mode ---- */

START_TEST(key_mode)
{
	char cfg[700], key[700], cmd[4096], *out = NULL;
	FILE *in, *f;
	char line[1024];
	int st;

	snprintf(key, sizeof(key), "%s/loose.key", it.dir);
	snprintf(cfg, sizeof(cfg), "%s/loose.ini", it.dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s && chmod 0644 %s", it.keyfile, key, key);
	ck_assert_int_eq(system(cmd), 0);
	in = fopen(it.config, "r");
	f = fopen(cfg, "w");
	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), in) != NULL)
		if (strncmp(line, "key_file", 8) != 0)
			fputs(line, f);
	fprintf(f, "\n[audit]\nkey_file = %s\n", key);
	fclose(in);
	fclose(f);
	/* --check-config and msregd itself refuse it, naming the problem */
	for (int i = 0; i < 2; i++) {
		char err[700], text[1024] = "";
		FILE *e;
		size_t k;

		snprintf(err, sizeof(err), "%s/loose.err", it.dir);
		snprintf(cmd, sizeof(cmd), "timeout 20 %s/msregd --config %s %s 2>%s >/dev/null",
		    it.bin, cfg, i == 0 ? "--check-config" : "", err);
		st = system(cmd);
		ck_assert_int_ne(st, 0);
		e = fopen(err, "r");
		ck_assert_ptr_nonnull(e);
		k = fread(text, 1, sizeof(text) - 1, e);
		text[k] = '\0';
		fclose(e);
		ck_assert_msg(strstr(text, "must not be accessible by group or others") != NULL,
		    "msregd said: %s", text);
	}
	chmod(key, 0600);
	snprintf(cmd, sizeof(cmd), "%s/msregd --config %s --check-config >/dev/null", it.bin, cfg);
	ck_assert_int_eq(system(cmd), 0);
	(void)out;
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");

	signal(SIGPIPE, SIG_IGN);
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, auth_before_body);
	tcase_add_test(tc, body_limits);
	tcase_add_test(tc, json_amplification);
	tcase_add_test(tc, errors_json);
	tcase_add_test(tc, raw_protocol_errors);
	tcase_add_test(tc, audit_entry_bounds);
	tcase_add_test(tc, key_mode);
	tcase_add_test(tc, body_memory_budget);
	tcase_add_test(tc, per_address_connections);
	tcase_add_test(tc, hostile_connections);
	tcase_add_test(tc, rate_limits);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 1);
}
