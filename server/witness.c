/*
 * witness.c — `msreg witness`: a transparency log witness an oversight body can
 * run (c2sp.org/tlog-witness), returning Ed25519 cosignatures
 * (c2sp.org/tlog-cosignature, cosignature/v1; keys and lines in cosig.c).
 *
 *   msreg witness keygen --name NAME --out FILE
 *       writes PRIVATE+KEY+NAME+<keyid>+base64(0x04 || seed) (mode 0600, never
 *       overwritten) and prints the vkey NAME+<keyid>+base64(0x04 || pub),
 *       which msregd's [witness] witnesses and `msreg audit monitor
 *       --require-witness` take.
 *   msreg witness --config FILE
 *       [witness]
 *       address    = 127.0.0.1      listen address (IPv4 or IPv6 literal)
 *       port       = 9101
 *       key_file   = witness.key    from `msreg witness keygen`
 *       state_file = witness.state  latest cosigned size and root per log
 *       log        = [ORIGIN] VKEY  one line per log followed; VKEY is the log's
 *                                   Ed25519 signed-note verifier key (msreg
 *                                   keygen); ORIGIN defaults to the key's name
 *
 * POST /add-checkpoint (body: "old <size>\n", <= 63 base64 proof lines, "\n",
 * the signed checkpoint), answered exactly as tlog-witness says:
 *   400 malformed body, or old > checkpoint size
 *   404 unknown origin
 *   403 no signature by the log's configured key verifies
 *   409 old differs from the size this witness holds (body "<size>\n",
 *       Content-Type text/x.tlog.size), or equal sizes with a different root
 *   422 the consistency proof from the held checkpoint does not verify
 *   200 one cosignature line; the new size and root are persisted first
 * Refusals of correctly signed checkpoints are logged (origin, size, root) as
 * evidence of log misbehaviour.
 *
 * State file: one line per log, "<size> <base64 root> <origin>\n", rewritten
 * atomically (write tmp, fsync, rename, fsync the directory) before any
 * cosignature for the new state is returned.
 *
 * Invariants
 *   1. Check and persist are atomic: one mutex covers reading the held state,
 *      verifying, persisting and signing, so no interleaving can roll a log
 *      back (the race the spec describes).
 *   2. Never cosign a checkpoint that does not extend the held one: sizes
 *      only grow, and growth needs a verified RFC 6962 consistency proof.
 *   3. A state that cannot be persisted is not cosigned (503).
 *   4. Bounded: request body <= BODY_MAX, proof <= 63 hashes, logs <= MAX_LOGS.
 */
#include "msreg/witness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <inttypes.h>
#include <libgen.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "msreg/cosig.h"
#include "msreg/merkle.h"
#include "msreg/note.h"

#define MAX_LOGS	64
#define MAX_STATES	1024
#define BODY_MAX	(MSR_NOTE_MAX_LEN + 64 * 46 + 32)
#define HLEN		MSR_MERKLE_HASH_LEN
#define B64		sodium_base64_VARIANT_ORIGINAL

struct wlog {
	char			 origin[MSR_NOTE_NAME_MAX + 1];
	struct msr_note_verifier v;
};

struct wstate {
	char		origin[MSR_NOTE_NAME_MAX + 1];
	uint64_t	size;
	uint8_t		root[HLEN];
};

struct witness {
	char			*address, *key_file, *state_file;
	int			 port;
	struct wlog		 logs[MAX_LOGS];
	int			 nlogs;
	struct wstate		*states;	/* MAX_STATES */
	int			 nstates;
	struct msr_cosig_signer	 signer;
	pthread_mutex_t		 mu;
	char			 err[512];
};

struct wreq {
	char	*body;
	size_t	 len;
	int	 too_large;
};

/* ---- configuration ---- */

static int
on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct witness *w = user;
	const char *sp;
	char **str = NULL;

	if (w == NULL)
		return 0;
	if (strcmp(section, "witness") != 0) {
		snprintf(w->err, sizeof(w->err), "unknown section [%s]", section);
		return 0;
	}
	if (strcmp(name, "address") == 0)
		str = &w->address;
	else if (strcmp(name, "key_file") == 0)
		str = &w->key_file;
	else if (strcmp(name, "state_file") == 0)
		str = &w->state_file;
	if (str != NULL) {
		free(*str);
		*str = strdup(value);
		return *str != NULL;
	}
	if (strcmp(name, "port") == 0) {
		char *e;
		long p = strtol(value, &e, 10);

		if (*value == '\0' || *e != '\0' || p < 1 || p > 65535) {
			snprintf(w->err, sizeof(w->err), "port: \"%s\" is not 1..65535", value);
			return 0;
		}
		w->port = (int)p;
		return 1;
	}
	if (strcmp(name, "log") == 0) {
		struct wlog *l = &w->logs[w->nlogs];

		if (w->nlogs == MAX_LOGS) {
			snprintf(w->err, sizeof(w->err), "more than %d logs", MAX_LOGS);
			return 0;
		}
		sp = strchr(value, ' ');
		if (msr_note_verifier_parse(&l->v, sp ? sp + 1 + strspn(sp + 1, " ") : value,
		    strlen(sp ? sp + 1 + strspn(sp + 1, " ") : value)) != 0) {
			snprintf(w->err, sizeof(w->err), "log: \"%s\" is not [ORIGIN] VKEY with an "
			    "Ed25519 signed-note verifier key", value);
			return 0;
		}
		if (sp != NULL && (size_t)(sp - value) <= MSR_NOTE_NAME_MAX)
			memcpy(l->origin, value, (size_t)(sp - value));
		else
			memcpy(l->origin, l->v.name, sizeof(l->origin));
		w->nlogs++;
		return 1;
	}
	snprintf(w->err, sizeof(w->err), "unknown key \"%s\" in [witness]", name);
	return 0;
}

static char *
read_small(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = malloc(max + 1);
	if (buf != NULL) {
		n = fread(buf, 1, max + 1, f);
		if (ferror(f) || n > max) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
			*len = n;
		}
	}
	fclose(f);
	return buf;
}

/* ---- state ---- */

static struct wstate *
state_find(struct witness *w, const char *origin)
{
	for (int i = 0; i < w->nstates; i++)
		if (strcmp(w->states[i].origin, origin) == 0)
			return &w->states[i];
	return NULL;
}

/* Load the state file (absent = empty). 0 or -1. */
static int
state_load(struct witness *w)
{
	size_t len = 0;
	char *buf = read_small(w->state_file, (size_t)MAX_STATES * 400, &len), *line, *save;
	int ret = -1;

	if (buf == NULL)
		return errno == ENOENT ? 0 : -1;
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		struct wstate *s = &w->states[w->nstates];
		char *sp1 = NULL, *sp2 = NULL, *end = NULL;
		unsigned long long size = 0;
		size_t got = 0;

		errno = 0;
		if (line[0] >= '0' && line[0] <= '9')
			size = strtoull(line, &end, 10);
		if (end != NULL && *end == ' ' && errno == 0) {
			sp1 = end;
			sp2 = strchr(sp1 + 1, ' ');
		}
		if (w->nstates == MAX_STATES || sp2 == NULL || sp2[1] == '\0' ||
		    strlen(sp2 + 1) > MSR_NOTE_NAME_MAX ||
		    sodium_base642bin(s->root, HLEN, sp1 + 1, (size_t)(sp2 - sp1 - 1), NULL, &got,
		    NULL, B64) != 0 || got != HLEN) {
			snprintf(w->err, sizeof(w->err), "%s: malformed line \"%.80s\"",
			    w->state_file, line);
			goto done;
		}
		s->size = size;
		snprintf(s->origin, sizeof(s->origin), "%s", sp2 + 1);
		w->nstates++;
	}
	ret = 0;
done:
	free(buf);
	return ret;
}

/* Write every state to tmp, fsync, rename over the state file, fsync the dir. */
static int
state_save(struct witness *w)
{
	char tmp[4096], dir[4096], b64[64];
	FILE *f;
	int fd, ret = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", w->state_file) >= (int)sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (f == NULL)
		return -1;
	for (int i = 0; i < w->nstates; i++) {
		sodium_bin2base64(b64, sizeof(b64), w->states[i].root, HLEN, B64);
		fprintf(f, "%" PRIu64 " %s %s\n", w->states[i].size, b64, w->states[i].origin);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		goto done;
	}
	if (fclose(f) != 0 || rename(tmp, w->state_file) != 0)
		goto done;
	snprintf(dir, sizeof(dir), "%s", w->state_file);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		ret = fsync(fd) == 0 ? 0 : -1;
		close(fd);
	}
done:
	if (ret != 0)
		unlink(tmp);
	return ret;
}

/* ---- add-checkpoint ---- */

struct answer {
	unsigned	 status;
	const char	*ctype;
	char		 body[MSR_COSIG_LINE_MAX + 128];
};

/* msg is the whole body (ends in "\n"). */
static void
answer(struct answer *a, unsigned status, const char *msg)
{
	a->status = status;
	a->ctype = "text/plain; charset=utf-8";
	snprintf(a->body, sizeof(a->body), "%s", msg);
}

/* "old <n>\n" with no leading zeros. Returns the line length or 0. */
static size_t
parse_old(const char *b, size_t len, uint64_t *old)
{
	size_t i = 4;
	uint64_t v = 0;

	if (len < 6 || memcmp(b, "old ", 4) != 0)
		return 0;
	for (; i < len && b[i] >= '0' && b[i] <= '9'; i++) {
		if (i - 4 >= 19 || (i > 4 && b[4] == '0'))
			return 0;
		v = v * 10 + (uint64_t)(b[i] - '0');
	}
	if (i == 4 || i >= len || b[i] != '\n')
		return 0;
	*old = v;
	return i + 1;
}

static void
log_refusal(const char *why, const struct msr_note_checkpoint *cp, uint64_t old)
{
	char b64[64];

	sodium_bin2base64(b64, sizeof(b64), cp->root, HLEN, B64);
	fprintf(stderr, "msreg witness: REFUSED checkpoint of %s size %" PRIu64 " root %s "
	    "(old %" PRIu64 "): %s\n", cp->origin, cp->size, b64, old, why);
}

int
msr_witness_parse_request(const char *b, size_t len, uint64_t *old,
    uint8_t proof[][MSR_WITNESS_HASH_LEN], size_t *nproof, size_t *note_off,
    const char **why)
{
	size_t pos, got;

	*nproof = 0;
	pos = parse_old(b, len, old);
	if (pos == 0) {
		*why = "the body must start with \"old <size>\\n\"";
		return -1;
	}
	while (pos < len && b[pos] != '\n') {
		const char *eol = memchr(b + pos, '\n', len - pos);

		if (eol == NULL || *nproof == MSR_WITNESS_PROOF_MAX || eol - (b + pos) != 44 ||
		    sodium_base642bin(proof[*nproof], HLEN, b + pos, 44, NULL, &got, NULL, B64) != 0 ||
		    got != HLEN) {
			*why = "bad consistency proof line (at most 63 base64 hashes)";
			return -1;
		}
		(*nproof)++;
		pos = (size_t)(eol - b) + 1;
	}
	if (pos >= len) {
		*why = "no empty line before the checkpoint";
		return -1;
	}
	*note_off = pos + 1;
	return 0;
}

static void
add_checkpoint(struct witness *w, const char *b, size_t len, struct answer *a)
{
	uint8_t proof[MSR_WITNESS_PROOF_MAX][HLEN];
	struct msr_note_checkpoint cp;
	const struct wlog *log = NULL;
	struct wstate *st;
	const char *note, *why;
	size_t pos, nproof = 0, text_len, note_len;
	uint64_t old = 0, held;
	char line[MSR_COSIG_LINE_MAX], sz[32];

	/* parse */
	if (msr_witness_parse_request(b, len, &old, proof, &nproof, &pos, &why) != 0) {
		snprintf(line, sizeof(line), "%s\n", why);
		answer(a, 400, line);
		return;
	}
	note = b + pos;
	note_len = len - pos;
	if (msr_cosig_note_text(note, note_len, &text_len) != 0 ||
	    msr_note_checkpoint_parse(&cp, note, text_len) != 0) {
		answer(a, 400, "malformed checkpoint note\n");
		return;
	}
	for (int i = 0; i < w->nlogs && log == NULL; i++)
		if (strcmp(w->logs[i].origin, cp.origin) == 0)
			log = &w->logs[i];
	if (log == NULL) {
		answer(a, 404, "unknown log origin\n");
		return;
	}
	if (msr_note_open(&log->v, note, note_len, &text_len, &why) != 0) {
		answer(a, 403, "no signature by the log's key verifies\n");
		return;
	}
	if (old > cp.size) {
		answer(a, 400, "old size exceeds the checkpoint size\n");
		return;
	}
	/* check, persist, sign: one critical section (invariant 1) */
	pthread_mutex_lock(&w->mu);
	st = state_find(w, cp.origin);
	held = st != NULL ? st->size : 0;
	if (old != held) {
		snprintf(sz, sizeof(sz), "%" PRIu64 "\n", held);
		answer(a, 409, sz);
		a->ctype = "text/x.tlog.size";
		if (cp.size < held)
			log_refusal("smaller than the checkpoint this witness holds", &cp, old);
		goto done;
	}
	if (st != NULL && old == cp.size) {
		if (sodium_memcmp(st->root, cp.root, HLEN) != 0) {
			snprintf(sz, sizeof(sz), "%" PRIu64 "\n", held);
			answer(a, 409, sz);
			a->ctype = "text/x.tlog.size";
			log_refusal("another root for the size this witness holds (fork)", &cp, old);
			goto done;
		}
		if (nproof != 0) {
			answer(a, 422, "a proof between equal sizes must be empty\n");
			goto done;
		}
	} else if (st != NULL && old > 0) {
		if (msr_merkle_verify_consistency(old, cp.size,
		    (const uint8_t (*)[HLEN])proof, nproof, st->root, cp.root) != 0) {
			answer(a, 422, "the consistency proof does not verify\n");
			log_refusal("consistency proof from the held checkpoint fails (fork)",
			    &cp, old);
			goto done;
		}
	} else if (nproof != 0) {
		answer(a, 422, "the proof must be empty when old is 0\n");
		goto done;
	}
	if (st == NULL || st->size != cp.size) {
		struct wstate saved;
		int added = st == NULL;

		if (added) {
			if (w->nstates == MAX_STATES) {
				answer(a, 503, "witness state is full\n");
				goto done;
			}
			st = &w->states[w->nstates++];
			memset(st, 0, sizeof(*st));
			snprintf(st->origin, sizeof(st->origin), "%s", cp.origin);
		}
		saved = *st;
		st->size = cp.size;
		memcpy(st->root, cp.root, HLEN);
		if (state_save(w) != 0) {
			if (added)
				w->nstates--;
			else
				*st = saved;
			fprintf(stderr, "msreg witness: cannot persist %s: %s\n", w->state_file,
			    strerror(errno));
			answer(a, 503, "the witness cannot persist its state\n");
			goto done;
		}
	}
	if (msr_cosig_sign(&w->signer, note, text_len, (uint64_t)time(NULL), line,
	    sizeof(line)) != 0) {
		answer(a, 503, "cannot sign\n");
		goto done;
	}
	answer(a, 200, line);
done:
	pthread_mutex_unlock(&w->mu);
}

/* ---- HTTP ---- */

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, const char *ctype, const char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *data, size_t *size, void **con_cls)
{
	struct witness *w = cls;
	struct wreq *q = *con_cls;
	struct answer *a;
	enum MHD_Result ret;

	(void)version;
	if (q == NULL) {
		if (strcmp(url, "/add-checkpoint") != 0)
			return reply(c, 404, "text/plain; charset=utf-8", "not found\n");
		if (strcmp(method, "POST") != 0)
			return reply(c, 405, "text/plain; charset=utf-8", "use POST\n");
		q = calloc(1, sizeof(*q));
		if (q == NULL)
			return MHD_NO;
		*con_cls = q;
		return MHD_YES;
	}
	if (*size > 0) {
		if (q->too_large || q->len + *size > BODY_MAX) {
			q->too_large = 1;
		} else {
			char *nb = realloc(q->body, q->len + *size + 1);

			if (nb == NULL)
				return MHD_NO;
			q->body = nb;
			memcpy(q->body + q->len, data, *size);
			q->len += *size;
		}
		*size = 0;
		return MHD_YES;
	}
	if (q->too_large)
		return reply(c, 413, "text/plain; charset=utf-8", "request body too large\n");
	a = malloc(sizeof(*a));
	if (a == NULL)
		return MHD_NO;
	add_checkpoint(w, q->body != NULL ? q->body : "", q->len, a);
	ret = reply(c, a->status, a->ctype, a->body);
	free(a);
	return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct wreq *q = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (q != NULL) {
		free(q->body);
		free(q);
	}
	*con_cls = NULL;
}

/* ---- commands ---- */

static int
keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct msr_cosig_signer s;
	char key[MSR_COSIG_KEY_TEXT_MAX], vkey[MSR_COSIG_KEY_TEXT_MAX];
	const char *name = NULL, *out = NULL;
	int ch, fd = -1, ret = 1;
	size_t len;

	memset(&s, 0, sizeof(s));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': name = optarg; break;
		case 'o': out = optarg; break;
		default: return 2;
		}
	}
	if (name == NULL || out == NULL || optind != argc) {
		fprintf(stderr, "usage: msreg witness keygen --name NAME --out FILE\n");
		return 2;
	}
	if (msr_cosig_signer_generate(&s, name) != 0 ||
	    msr_cosig_signer_format(&s, key, sizeof(key)) != 0 ||
	    msr_cosig_verifier_format(&s.v, vkey, sizeof(vkey)) != 0) {
		fprintf(stderr, "msreg: invalid witness name \"%s\" (no spaces or '+')\n", name);
		goto done;
	}
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "msreg: cannot create %s: %s\n", out, strerror(errno));
		goto done;
	}
	len = strlen(key);
	key[len] = '\n';
	if (write(fd, key, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0) {
		fprintf(stderr, "msreg: cannot write %s: %s\n", out, strerror(errno));
		unlink(out);
		goto done;
	}
	printf("%s\n", vkey);
	ret = 0;
done:
	if (fd >= 0)
		close(fd);
	sodium_memzero(key, sizeof(key));
	msr_cosig_signer_wipe(&s);
	return ret;
}

static int
serve(const char *config)
{
	struct witness *w = calloc(1, sizeof(*w));
	struct sockaddr_in sa;
	struct MHD_Daemon *d = NULL;
	char *key = NULL;
	size_t klen = 0;
	sigset_t set;
	int sig, line, ret = 1;

	if (w == NULL)
		return 1;
	w->states = calloc(MAX_STATES, sizeof(*w->states));
	w->port = 9101;
	pthread_mutex_init(&w->mu, NULL);
	snprintf(w->err, sizeof(w->err), "syntax error");
	line = ini_parse(config, on_ini, w);
	if (line != 0 || w->states == NULL) {
		fprintf(stderr, "msreg witness: %s:%d: %s\n", config, line, w->err);
		goto done;
	}
	if (w->key_file == NULL || w->state_file == NULL || w->nlogs == 0) {
		fprintf(stderr, "msreg witness: %s: key_file, state_file and at least one log "
		    "are required\n", config);
		goto done;
	}
	key = read_small(w->key_file, 1024, &klen);
	if (key == NULL || msr_cosig_signer_parse(&w->signer, key, klen) != 0) {
		fprintf(stderr, "msreg witness: %s is not a witness key (msreg witness keygen)\n",
		    w->key_file);
		goto done;
	}
	if (state_load(w) != 0) {
		fprintf(stderr, "msreg witness: cannot load state: %s\n",
		    w->err[0] ? w->err : strerror(errno));
		goto done;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)w->port);
	if (inet_pton(AF_INET, w->address ? w->address : "127.0.0.1", &sa.sin_addr) != 1) {
		fprintf(stderr, "msreg witness: address must be an IPv4 literal\n");
		goto done;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
	    (uint16_t)w->port, NULL, NULL, on_request, w,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)4,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, w, MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "msreg witness: cannot listen on port %d\n", w->port);
		goto done;
	}
	{
		char vkey[MSR_COSIG_KEY_TEXT_MAX];

		msr_cosig_verifier_format(&w->signer.v, vkey, sizeof(vkey));
		fprintf(stderr, "msreg witness %s listening on port %d, following %d log(s)\n",
		    vkey, w->port, w->nlogs);
	}
	if (sigwait(&set, &sig) == 0)
		fprintf(stderr, "msreg witness: signal %d, stopping\n", sig);
	ret = 0;
done:
	if (d != NULL)
		MHD_stop_daemon(d);
	if (key != NULL) {
		sodium_memzero(key, klen);
		free(key);
	}
	msr_cosig_signer_wipe(&w->signer);
	free(w->address);
	free(w->key_file);
	free(w->state_file);
	free(w->states);
	pthread_mutex_destroy(&w->mu);
	free(w);
	return ret;
}

int
msr_cli_witness(const struct msr_config *cfg, int argc, char **argv)
{
	(void)cfg;
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return keygen(argc - 1, argv + 1);
	if (argc == 3 && strcmp(argv[1], "--config") == 0)
		return serve(argv[2]);
	if (argc == 2 && strncmp(argv[1], "--config=", 9) == 0)
		return serve(argv[1] + 9);
	fprintf(stderr, "usage: msreg witness --config FILE\n"
	    "       msreg witness keygen --name NAME --out FILE\n");
	return 2;
}
