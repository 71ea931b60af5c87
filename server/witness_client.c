/*
 * witness_client.c — msregd's witness submitter: a thread that sends the
 * newest signed checkpoint to every configured witness (c2sp.org/tlog-witness
 * add-checkpoint) and keeps the cosignatures it gets (c2sp.org/tlog-cosignature)
 * so the checkpoint endpoints and receipts can carry them.
 *
 * Configuration ([witness] in msregd's config file)
 *   witness      "URL VKEY", one line per witness (repeatable): URL is
 *                http://host:port[/prefix] (the submission prefix), VKEY the
 *                witness's cosignature/v1 verifier key (type byte 0x04).
 *   quorum       cosignatures that must be fresh (default 0 = every witness)
 *   interval_ms  how often the newest checkpoint is looked at (default 1000)
 *   timeout_ms   per HTTP exchange (connect, send, receive; default 2000)
 *   max_age_s    a witness whose last cosignature is older counts as missing
 *                (default 60); an unchanged checkpoint is resubmitted after
 *                max_age_s / 2 so an idle log stays freshly cosigned
 *   policy       alert (default): missing cosignatures are logged and counted;
 *                refuse: in addition audited routes and /readyz answer 503
 *                while fewer than quorum are fresh (after a start-up grace of
 *                max_age_s), so a log nobody witnesses stops answering.
 *
 * Protocol (per witness, each round)
 *   old = the size this witness last acknowledged (0 when unknown); body =
 *   "old <old>\n" + RFC 6962 consistency proof old -> size (one base64 hash a
 *   line, none when old is 0 or equal) + "\n" + the signed checkpoint.
 *   200: every line must be a signature line; those by the configured key must
 *        verify as cosignatures on this checkpoint; kept, old := size.
 *   409 text/x.tlog.size: old := the witness's size, retried (at most 3 times).
 *   Any other answer, a witness ahead of the log (old > size: the log was
 *   rolled back, reported when it lasts two rounds, since another msregd on
 *   the same database may just have submitted a newer checkpoint) or a proof
 *   the store cannot produce is a failure: logged at error level, counted
 *   (msreg_witness_failures_total).
 *
 * The HTTP client is deliberately minimal (msregd links no libcurl): plain
 * HTTP/1.1 over TCP, one request per connection (Connection: close), every
 * step under timeout_ms (non-blocking connect, poll), the response bounded to
 * RESP_MAX bytes.
 *
 * Invariants
 *   1. Zero merge delay: nothing here is on the request path; answers wait only
 *      for the log's own signature. Readers take the mutex briefly to copy.
 *   2. A cosignature is kept only after it verifies against the witness's
 *      configured key over the exact checkpoint text it is served with
 *      (msr_witness_client_decorate compares texts).
 *   3. Bounded: at most MAX_WITNESSES witnesses, RESP_MAX bytes per answer,
 *      3 attempts per witness per round.
 */
#include "msreg/witness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "msreg/audit.h"
#include "msreg/audit_store.h"
#include "msreg/config.h"
#include "msreg/cosig.h"
#include "msreg/db.h"
#include "msreg/log.h"
#include "msreg/merkle.h"
#include "msreg/note.h"

#define MAX_WITNESSES	16
#define RESP_MAX	(64 * 1024)
#define ATTEMPTS	3
#define HLEN		MSR_MERKLE_HASH_LEN

struct witness {
	char			 host[256], port[8], prefix[256];
	struct msr_cosig_verifier v;
	/* state, under wc->mu */
	int			 size_known;
	uint64_t		 size;		/* last size the witness acknowledged */
	char			*text;		/* checkpoint text of `line`, NULL if none */
	char			 line[MSR_COSIG_LINE_MAX];
	time_t			 last_ok;	/* when `line` was obtained */
	uint64_t		 failures;
	int			 ahead_rounds;	/* consecutive rounds the witness was ahead */
};

struct msr_witness_client {
	struct msr_db_pool	*db;
	struct witness		 w[MAX_WITNESSES];
	int			 n, quorum, interval_ms, timeout_ms, max_age_s, refuse;
	time_t			 started;
	pthread_t		 thread;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 stopping;
};

/* ---- configuration ---- */

/* "http://host:port[/prefix] VKEY" into w. 0, or -1 with err. */
static int
parse_witness(struct witness *w, const char *item, size_t len, char *err, size_t errlen)
{
	const char *p = item, *end = item + len, *sp, *hp, *colon, *slash;

	while (p < end && *p == ' ')
		p++;
	while (end > p && end[-1] == ' ')
		end--;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL || (size_t)(end - p) < 8 || strncmp(p, "http://", 7) != 0) {
		snprintf(err, errlen, "[witness] witness: \"%.*s\" is not \"http://host:port VKEY\"",
		    (int)(end - p), p);
		return -1;
	}
	hp = p + 7;
	slash = memchr(hp, '/', (size_t)(sp - hp));
	if (slash == NULL)
		slash = sp;
	colon = memchr(hp, ':', (size_t)(slash - hp));
	if (colon == NULL || colon == hp || (size_t)(colon - hp) >= sizeof(w->host) ||
	    (size_t)(slash - colon - 1) >= sizeof(w->port) || slash - colon - 1 < 1 ||
	    (size_t)(sp - slash) >= sizeof(w->prefix)) {
		snprintf(err, errlen, "[witness] witness: bad URL in \"%.*s\" (http://host:port[/prefix])",
		    (int)(end - p), p);
		return -1;
	}
	memcpy(w->host, hp, (size_t)(colon - hp));
	memcpy(w->port, colon + 1, (size_t)(slash - colon - 1));
	memcpy(w->prefix, slash, (size_t)(sp - slash));
	while (sp < end && *sp == ' ')
		sp++;
	if (msr_cosig_verifier_parse(&w->v, sp, (size_t)(end - sp)) != 0) {
		snprintf(err, errlen, "[witness] witness: \"%.*s\" is not a cosignature/v1 "
		    "verifier key (name+keyid+base64(0x04||key))", (int)(end - sp), sp);
		return -1;
	}
	return 0;
}

/* ---- HTTP/1.1 POST over TCP ---- */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to be ready for ev before the deadline. 0 or -1. */
static int
wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd pfd = { fd, ev, 0 };
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return -1;
	return poll(&pfd, 1, (int)left) == 1 && (pfd.revents & (ev | POLLHUP)) ? 0 : -1;
}

static int
connect_to(const struct witness *w, int64_t deadline)
{
	struct addrinfo hints, *ai = NULL, *a;
	int fd = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(w->host, w->port, &hints, &ai) != 0)
		return -1;
	for (a = ai; a != NULL && fd < 0; a = a->ai_next) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) != 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return fd;
}

struct http_resp {
	int	 status;
	char	 ctype[64];
	char	*body;		/* NUL-terminated, inside buf */
	size_t	 body_len;
	char	 buf[RESP_MAX + 1];
};

/* Parse status line and headers of a complete response in r->buf[0 .. n). */
static int
parse_resp(struct http_resp *r, size_t n)
{
	char *hend, *line, *eol;
	long clen = -1;

	r->buf[n] = '\0';
	hend = strstr(r->buf, "\r\n\r\n");
	if (hend == NULL || sscanf(r->buf, "HTTP/1.%*d %d", &r->status) != 1)
		return -1;
	*hend = '\0';
	r->ctype[0] = '\0';
	for (line = strstr(r->buf, "\r\n"); line != NULL; line = eol) {
		line += 2;
		eol = strstr(line, "\r\n");
		if (eol != NULL)
			*eol = '\0';
		if (strncasecmp(line, "Content-Type:", 13) == 0)
			snprintf(r->ctype, sizeof(r->ctype), "%s", line + 13 + strspn(line + 13, " "));
		else if (strncasecmp(line, "Content-Length:", 15) == 0)
			clen = strtol(line + 15, NULL, 10);
	}
	r->body = hend + 4;
	r->body_len = n - (size_t)(r->body - r->buf);
	if (clen >= 0 && (size_t)clen != r->body_len)
		return -1;	/* truncated or padded */
	return 0;
}

/* POST body to w's prefix + path. 0 when a response was read into r. */
static int
http_post(const struct witness *w, const char *path, const char *body, size_t len,
    int timeout_ms, struct http_resp *r)
{
	int64_t deadline = now_ms() + timeout_ms;
	char head[768];
	size_t got = 0, off = 0;
	int fd, hl, ret = -1;

	hl = snprintf(head, sizeof(head), "POST %s%s HTTP/1.1\r\nHost: %s:%s\r\n"
	    "User-Agent: msregd\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", w->prefix, path, w->host,
	    w->port, len);
	if (hl <= 0 || (size_t)hl >= sizeof(head))
		return -1;
	fd = connect_to(w, deadline);
	if (fd < 0)
		return -1;
	while (off < (size_t)hl + len) {
		const char *p = off < (size_t)hl ? head + off : body + (off - (size_t)hl);
		size_t n = off < (size_t)hl ? (size_t)hl - off : len - (off - (size_t)hl);
		ssize_t k;

		if (wait_fd(fd, POLLOUT, deadline) != 0)
			goto done;
		k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			goto done;
		off += (size_t)k;
	}
	for (;;) {
		ssize_t k;

		if (got >= RESP_MAX || wait_fd(fd, POLLIN, deadline) != 0)
			goto done;
		k = recv(fd, r->buf + got, RESP_MAX - got, 0);
		if (k < 0)
			goto done;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	ret = parse_resp(r, got);
done:
	close(fd);
	return ret;
}

/* ---- one submission ---- */

/* The consistency proof old -> size as base64 lines into out. 0 or -1. */
static int
proof_lines(struct msr_db_conn *c, uint64_t old, uint64_t size, char *out, size_t cap)
{
	struct msr_merkle_nodes *s = malloc(sizeof(*s));
	uint8_t proof[MSR_MERKLE_PROOF_MAX][HLEN];
	size_t n = 0, pos = 0;
	int ret = -1;

	out[0] = '\0';
	if (s == NULL)
		return -1;
	msr_merkle_nodes_init(s);
	if (old > 0 && old < size &&
	    (msr_merkle_plan_consistency(s, old, size) != 0 || msr_as_nodes(c, s) != MSR_AS_OK ||
	    msr_merkle_prove_consistency(old, size, msr_merkle_nodes_get, s, proof,
	    MSR_MERKLE_PROOF_MAX, &n) != 0))
		goto done;
	for (size_t i = 0; i < n; i++) {
		if (cap - pos < 46)
			goto done;
		sodium_bin2base64(out + pos, cap - pos, proof[i], HLEN,
		    sodium_base64_VARIANT_ORIGINAL);
		pos += strlen(out + pos);
		out[pos++] = '\n';
		out[pos] = '\0';
	}
	ret = 0;
done:
	free(s);
	return ret;
}

/*
 * Check a 200 answer: only signature lines; the one by w's key verifies on
 * note. Copies that line into line. 0 or -1.
 */
static int
accept_cosig(const struct witness *w, const char *note, size_t note_len,
    const char *body, size_t blen, char *line, size_t cap)
{
	const char *p = body, *end = body + blen;
	size_t nlen = strlen(w->v.name);
	int ret = -1;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t llen;
		char *msg;

		if (eol == NULL || strncmp(p, "\xe2\x80\x94 ", 4) != 0)
			return -1;
		llen = (size_t)(eol - p) + 1;
		if (llen > 4 + nlen && memcmp(p + 4, w->v.name, nlen) == 0 &&
		    p[4 + nlen] == ' ' && llen < cap && ret != 0) {
			msg = malloc(note_len + llen);
			if (msg == NULL)
				return -1;
			memcpy(msg, note, note_len);
			memcpy(msg + note_len, p, llen);
			if (msr_cosig_verify(&w->v, msg, note_len + llen, NULL) == 0) {
				memcpy(line, p, llen);
				line[llen] = '\0';
				ret = 0;
			}
			free(msg);
		}
		p = eol + 1;
	}
	return ret;
}

/*
 * Submit (size, note) to witness i. Returns 0 on a verified cosignature, -1 on
 * a failure (logged).
 */
static int
submit(struct msr_witness_client *wc, int i, struct msr_db_conn *c, uint64_t size,
    const char *note, size_t note_len, size_t text_len)
{
	struct witness *w = &wc->w[i];
	struct http_resp *r = malloc(sizeof(*r));
	char *body = NULL, line[MSR_COSIG_LINE_MAX];
	size_t cap = 64 + MSR_MERKLE_PROOF_MAX * 46 + note_len, pos;
	uint64_t old = 0;
	int ret = -1, learned = 0;

	body = malloc(cap);
	if (r == NULL || body == NULL)
		goto done;
	pthread_mutex_lock(&wc->mu);
	old = w->size_known ? w->size : 0;
	pthread_mutex_unlock(&wc->mu);
	for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
		if (old > size) {
			/*
			 * Another msregd on this database may have submitted a newer
			 * checkpoint than the one we read: an error only when it lasts.
			 */
			if (++w->ahead_rounds >= 2)
				log_error("witness %s has seen tree size %" PRIu64 " but the log's "
				    "newest checkpoint is %" PRIu64 ": the log was rolled back",
				    w->v.name, old, size);
			goto done;
		}
		w->ahead_rounds = 0;
		pos = (size_t)snprintf(body, cap, "old %" PRIu64 "\n", old);
		if (proof_lines(c, old, size, body + pos, cap - pos) != 0) {
			log_error("witness %s: no consistency proof %" PRIu64 " -> %" PRIu64
			    " from the stored tree", w->v.name, old, size);
			goto done;
		}
		pos += strlen(body + pos);
		body[pos++] = '\n';
		memcpy(body + pos, note, note_len);
		pos += note_len;
		if (http_post(w, "/add-checkpoint", body, pos, wc->timeout_ms, r) != 0) {
			log_warn("witness %s (%s:%s): no answer", w->v.name, w->host, w->port);
			goto done;
		}
		if (r->status == 409 && strncmp(r->ctype, "text/x.tlog.size", 16) == 0) {
			char *e;
			unsigned long long v = strtoull(r->body, &e, 10);

			if (e == r->body || *e != '\n') {
				log_warn("witness %s: malformed 409 answer", w->v.name);
				goto done;
			}
			if (v == old) {
				log_error("witness %s refuses tree size %" PRIu64 " (409 at its own "
				    "size): it holds another root for that size", w->v.name, size);
				goto done;
			}
			old = v;
			learned = 1;
			continue;
		}
		if (r->status != 200) {
			log_error("witness %s refused checkpoint %" PRIu64 " (old %" PRIu64
			    "): HTTP %d %.*s", w->v.name, size, old, r->status,
			    (int)strcspn(r->body, "\n"), r->body);
			goto done;
		}
		if (accept_cosig(w, note, note_len, r->body, r->body_len, line, sizeof(line)) != 0) {
			log_error("witness %s: answer carries no valid cosignature", w->v.name);
			goto done;
		}
		pthread_mutex_lock(&wc->mu);
		free(w->text);
		w->text = strndup(note, text_len);
		memcpy(w->line, line, sizeof(line));
		w->size_known = 1;
		w->size = size;
		w->last_ok = time(NULL);
		pthread_mutex_unlock(&wc->mu);
		ret = 0;
		goto done;
	}
	log_warn("witness %s: size conflicts did not settle", w->v.name);
done:
	if (ret != 0) {
		pthread_mutex_lock(&wc->mu);
		w->failures++;
		if (learned) {
			w->size_known = 1;	/* remember what the witness told us */
			w->size = old;
		}
		pthread_mutex_unlock(&wc->mu);
	}
	free(body);
	free(r);
	return ret;
}

static void
round_once(struct msr_witness_client *wc)
{
	struct msr_db_conn *c = msr_db_acquire(wc->db);
	struct msr_as_head h;
	const char *note;
	size_t note_len, text_len;
	uint64_t size;

	memset(&h, 0, sizeof(h));
	if (c == NULL)
		return;
	if (msr_as_head(c, &h) != MSR_AS_OK || h.note == NULL)
		goto done;
	size = h.size;
	note = h.note;
	note_len = strlen(h.note);
	if (msr_cosig_note_text(note, note_len, &text_len) != 0)
		goto done;
	for (int i = 0; i < wc->n; i++) {
		struct witness *w = &wc->w[i];
		int current;

		pthread_mutex_lock(&wc->mu);
		current = w->text != NULL && strlen(w->text) == text_len &&
		    memcmp(w->text, note, text_len) == 0 &&
		    time(NULL) - w->last_ok < (wc->max_age_s + 1) / 2;
		pthread_mutex_unlock(&wc->mu);
		if (!current)
			submit(wc, i, c, size, note, note_len, text_len);
	}
done:
	msr_as_head_clear(&h);
	msr_db_release(c);
}

static void *
run(void *arg)
{
	struct msr_witness_client *wc = arg;

	pthread_mutex_lock(&wc->mu);
	while (!wc->stopping) {
		struct timespec ts;

		pthread_mutex_unlock(&wc->mu);
		round_once(wc);
		pthread_mutex_lock(&wc->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wc->interval_ms / 1000;
		ts.tv_nsec += (long)(wc->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!wc->stopping)
			pthread_cond_timedwait(&wc->cv, &wc->mu, &ts);
	}
	pthread_mutex_unlock(&wc->mu);
	return NULL;
}

/* ---- public ---- */

struct msr_witness_client *
msr_witness_client_start(const struct msr_config *cfg, struct msr_db_pool *db, int *bad,
    char *err, size_t errlen)
{
	struct msr_witness_client *wc;
	const char *p = cfg->witness_witnesses, *comma;

	*bad = 0;
	if (p == NULL || p[strspn(p, " ")] == '\0')
		return NULL;
	wc = calloc(1, sizeof(*wc));
	if (wc == NULL) {
		*bad = 1;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	wc->db = db;
	for (; *p != '\0'; p = *comma ? comma + 1 : comma) {
		comma = p + strcspn(p, ",");
		if (wc->n == MAX_WITNESSES) {
			snprintf(err, errlen, "[witness] witness: more than %d", MAX_WITNESSES);
			goto bad;
		}
		if (parse_witness(&wc->w[wc->n], p, (size_t)(comma - p), err, errlen) != 0)
			goto bad;
		wc->n++;
	}
	wc->quorum = cfg->witness_quorum > 0 ? cfg->witness_quorum : wc->n;
	wc->interval_ms = cfg->witness_interval_ms > 0 ? cfg->witness_interval_ms : 1000;
	wc->timeout_ms = cfg->witness_timeout_ms > 0 ? cfg->witness_timeout_ms : 2000;
	wc->max_age_s = cfg->witness_max_age_s > 0 ? cfg->witness_max_age_s : 60;
	if (cfg->witness_policy == NULL || strcmp(cfg->witness_policy, "alert") == 0) {
		wc->refuse = 0;
	} else if (strcmp(cfg->witness_policy, "refuse") == 0) {
		wc->refuse = 1;
	} else {
		snprintf(err, errlen, "[witness] policy must be alert or refuse");
		goto bad;
	}
	if (wc->quorum > wc->n) {
		snprintf(err, errlen, "[witness] quorum %d exceeds the %d witnesses", wc->quorum, wc->n);
		goto bad;
	}
	wc->started = time(NULL);
	pthread_mutex_init(&wc->mu, NULL);
	pthread_cond_init(&wc->cv, NULL);
	if (pthread_create(&wc->thread, NULL, run, wc) != 0) {
		snprintf(err, errlen, "cannot start the witness thread");
		goto bad;
	}
	log_info("witness submitter: %d witness(es), quorum %d, policy %s", wc->n, wc->quorum,
	    wc->refuse ? "refuse" : "alert");
	return wc;
bad:
	*bad = 1;
	free(wc);
	return NULL;
}

void
msr_witness_client_stop(struct msr_witness_client *wc)
{
	if (wc == NULL)
		return;
	pthread_mutex_lock(&wc->mu);
	wc->stopping = 1;
	pthread_cond_broadcast(&wc->cv);
	pthread_mutex_unlock(&wc->mu);
	pthread_join(wc->thread, NULL);
	for (int i = 0; i < wc->n; i++)
		free(wc->w[i].text);
	pthread_mutex_destroy(&wc->mu);
	pthread_cond_destroy(&wc->cv);
	free(wc);
}

char *
msr_witness_client_decorate(struct msr_witness_client *wc, const char *note, size_t len)
{
	char *out = NULL;
	size_t text_len, pos = len, extra = 0;

	if (wc == NULL || msr_cosig_note_text(note, len, &text_len) != 0)
		return NULL;
	pthread_mutex_lock(&wc->mu);
	for (int i = 0; i < wc->n; i++) {
		const struct witness *w = &wc->w[i];
		if (w->text != NULL && strlen(w->text) == text_len &&
		    memcmp(w->text, note, text_len) == 0)
			extra += strlen(w->line);
	}
	if (extra > 0)
		out = malloc(len + extra + 1);
	if (out != NULL) {
		memcpy(out, note, len);
		for (int i = 0; i < wc->n; i++) {
			const struct witness *w = &wc->w[i];
			if (w->text != NULL && strlen(w->text) == text_len &&
			    memcmp(w->text, note, text_len) == 0) {
				memcpy(out + pos, w->line, strlen(w->line));
				pos += strlen(w->line);
			}
		}
		out[pos] = '\0';
	}
	pthread_mutex_unlock(&wc->mu);
	return out;
}

/* Witnesses whose cosignature is younger than max_age_s. Caller holds mu. */
static int
fresh_count(const struct msr_witness_client *wc, time_t now)
{
	int k = 0;

	for (int i = 0; i < wc->n; i++)
		if (wc->w[i].text != NULL && now - wc->w[i].last_ok <= wc->max_age_s)
			k++;
	return k;
}

int
msr_witness_client_refusing(struct msr_witness_client *wc)
{
	time_t now = time(NULL);
	int refusing;

	if (wc == NULL || !wc->refuse)
		return 0;
	pthread_mutex_lock(&wc->mu);
	refusing = now - wc->started > wc->max_age_s && fresh_count(wc, now) < wc->quorum;
	pthread_mutex_unlock(&wc->mu);
	return refusing;
}

void
msr_witness_client_metrics(struct msr_witness_client *wc, char *buf, size_t cap)
{
	size_t pos = strlen(buf);
	time_t now = time(NULL);
	int n;

	if (wc == NULL)
		return;
	pthread_mutex_lock(&wc->mu);
	n = snprintf(buf + pos, cap - pos,
	    "# HELP msreg_witness_cosigned Witnesses with a fresh cosignature.\n"
	    "# TYPE msreg_witness_cosigned gauge\nmsreg_witness_cosigned %d\n"
	    "# HELP msreg_witness_quorum Cosignatures required.\n"
	    "# TYPE msreg_witness_quorum gauge\nmsreg_witness_quorum %d\n"
	    "# TYPE msreg_witness_cosignature_age_seconds gauge\n"
	    "# TYPE msreg_witness_failures_total counter\n",
	    fresh_count(wc, now), wc->quorum);
	for (int i = 0; i < wc->n && n > 0 && (size_t)n < cap - pos; i++) {
		const struct witness *w = &wc->w[i];

		pos += (size_t)n;
		n = snprintf(buf + pos, cap - pos,
		    "msreg_witness_cosignature_age_seconds{witness=\"%s\"} %lld\n"
		    "msreg_witness_failures_total{witness=\"%s\"} %" PRIu64 "\n", w->v.name,
		    w->text != NULL ? (long long)(now - w->last_ok) : -1LL, w->v.name, w->failures);
	}
	if (n < 0 || (size_t)n >= cap - pos)
		buf[pos] = '\0';
	pthread_mutex_unlock(&wc->mu);
}
