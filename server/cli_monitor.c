/*
 * cli_monitor.c — `msreg audit monitor`: an independent monitor that follows
 * the audit log through its C2SP tlog-tiles API, proves that every new
 * checkpoint extends the last one it saw, proves every new entry into the
 * signed root, checks the witness cosignatures it is told to require, and
 * applies watch rules to the entries, printing one line per finding.
 *
 *   msreg audit monitor --url URL --state FILE [--key-file FILE] [--vkey VKEY]
 *       [--rules FILE] [--require-witness VKEY]... [--once] [--interval SEC]
 *
 *   --url        the log's base URL (serves /checkpoint, /tile/..., /v1/audit/key)
 *   --state      the monitor's memory (created on first use): the log's vkey,
 *                the last verified checkpoint and the Merkle frontier at its size
 *   --key-file   file holding an auditor API key (entry bundles need it)
 *   --vkey       the log's verifier key; default: the one pinned in the state
 *                file, or on first use the one /v1/audit/key serves (pinned)
 *   --require-witness  a cosignature/v1 vkey whose cosignature every accepted
 *                checkpoint must carry (repeatable)
 *   --once       one pass, for cron. Exit status: 0 clean, 1 findings,
 *                2 integrity failure, 3 the log could not be read
 *
 * How a pass verifies (state holds size n and the frontier F of the tree of
 * the first n entries, whose root equals the last verified checkpoint's):
 *   1. GET /checkpoint; the log's Ed25519 signature must verify, the origin
 *      must be the key's name, the size must not be below n, and each required
 *      cosignature must verify (a missing one is retried; then the checkpoint
 *      is still verified below but not accepted, and that is a finding).
 *   2. Entry bundles /tile/entries/<N>[.p/<W>] for entries n .. size-1; every
 *      leaf hash must equal the level-0 hash tile /tile/0/<N>[.p/<W>].
 *   3. Append those leaf hashes to F; the root must equal the checkpoint's.
 *      That one comparison proves the new tree extends the old one (F is the
 *      old tree) and every new entry is in it (their hashes built it).
 *   4. Rules run on each new entry; then the state file is replaced atomically
 *      (tmp, fsync, rename).
 *   Any failure of 1 (signature), 2 or 3 is an integrity failure: the state
 *   is left as it was, so the evidence stays reproducible.
 *
 * Rules file: one rule per line, '#' starts a comment.
 *   rate N SECONDS                 more than N audited requests by one client
 *                                  within SECONDS
 *   disclosures N SECONDS client   more than N successful disclosures (code
 *   disclosures N SECONDS case     lookups and searches, firearm reads, entry
 *                                  bundles and audit entry pages) by one client,
 *                                  or for one case_number, within SECONDS
 *   watch code CODE                any entry whose code or query is CODE
 *   watch firearm ID               any entry naming firearm ID
 *   admin                          every request by an admin key
 *   alert                          entries that record trouble: status >= 500,
 *                                  commit_failed_for, audit.* bookkeeping
 *                                  entries (filler, outcome) written by msregd
 *   Windows span the entries one monitor process reads (in --once mode, one
 *   pass). Finding lines: "finding <rule> index=<i> client=<id> action=<a> ...".
 */
#include "msreg/witness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msreg/common.h"
#include "msreg/cosig.h"
#include "msreg/merkle.h"
#include "msreg/note.h"

#define HLEN		MSR_MERKLE_HASH_LEN
#define B64		sodium_base64_VARIANT_ORIGINAL
#define FETCH_MAX	(16 << 20)
#define MAX_WITNESSES	16
#define MAX_RULES	256
#define MAX_KEYS	10000
#define COSIG_RETRIES	5

enum { EX_CLEAN = 0, EX_FINDINGS = 1, EX_INTEGRITY = 2, EX_UNREADABLE = 3 };

enum rule_kind { R_RATE, R_DISCLOSE_CLIENT, R_DISCLOSE_CASE, R_CODE, R_FIREARM, R_ADMIN,
	R_ALERT };

struct rule {
	enum rule_kind	kind;
	long		n, window;
	char		arg[128];
};

/* Sliding window: the last n+1 times for one key of one rule. */
struct window {
	int		rule;
	char		key[96];
	double		*t;		/* ring of n + 1 */
	long		count, head;
	double		reported;	/* last finding time, -1 none */
};

struct monitor {
	const char		*url, *state_path;
	char			 api_key[256];
	struct msr_note_verifier v;
	int			 have_v;
	struct msr_cosig_verifier w[MAX_WITNESSES];
	int			 nw;
	struct rule		 rules[MAX_RULES];
	int			 nrules;
	struct window		*win;
	int			 nwin;
	struct msr_merkle_frontier fr;	/* state */
	uint8_t			 root[HLEN];
	long			 findings;
	CURL			*curl;
};

/* ---- HTTP ---- */

struct body {
	char	*p;
	size_t	 len;
};

static size_t
on_data(char *ptr, size_t size, size_t n, void *ud)
{
	struct body *b = ud;
	size_t k = size * n;
	char *np;

	if (b->len + k > FETCH_MAX)
		return 0;
	np = realloc(b->p, b->len + k + 1);
	if (np == NULL)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, ptr, k);
	b->len += k;
	b->p[b->len] = '\0';
	return k;
}

/*
 * GET path; 0 with *out (malloc'd, NUL-terminated) on HTTP 200. A 429 or 503
 * answer is retried after its Retry-After (1..10 s), at most RETRIES times.
 */
#define RETRIES 10
static int
fetch(struct monitor *m, const char *path, int auth, char **out, size_t *len)
{
	struct curl_slist *h = NULL;
	struct body b = { NULL, 0 };
	char url[2048], hdr[300];
	long status = 0;
	CURLcode rc = CURLE_OK;

	snprintf(url, sizeof(url), "%s%s", m->url, path);
	if (auth && m->api_key[0] != '\0') {
		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", m->api_key);
		h = curl_slist_append(h, hdr);
		sodium_memzero(hdr, sizeof(hdr));
	}
	for (int attempt = 0; attempt < RETRIES; attempt++) {
		curl_off_t wait = 0;

		free(b.p);
		b.p = NULL;
		b.len = 0;
		curl_easy_reset(m->curl);
		curl_easy_setopt(m->curl, CURLOPT_URL, url);
		curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(m->curl, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(m->curl, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(m->curl, CURLOPT_TIMEOUT, 30L);
		curl_easy_setopt(m->curl, CURLOPT_ACCEPT_ENCODING, "");
		rc = curl_easy_perform(m->curl);
		status = 0;
		curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, &status);
		if (rc != CURLE_OK || (status != 429 && status != 503))
			break;
		curl_easy_getinfo(m->curl, CURLINFO_RETRY_AFTER, &wait);
		sleep((unsigned)(wait < 1 ? 1 : wait > 10 ? 10 : wait));
	}
	curl_slist_free_all(h);
	if (rc != CURLE_OK || status != 200) {
		fprintf(stderr, "msreg monitor: GET %s: %s\n", path,
		    rc != CURLE_OK ? curl_easy_strerror(rc) : b.p ? b.p : "(no body)");
		free(b.p);
		return -1;
	}
	if (b.p == NULL)
		b.p = calloc(1, 1);
	*out = b.p;
	*len = b.len;
	return b.p != NULL ? 0 : -1;
}

/* ---- state file ---- */

static int
state_load(struct monitor *m, int *exists)
{
	FILE *f = fopen(m->state_path, "r");
	char line[600], b64[64];
	unsigned long long size = 0;
	int ret = -1, lvl;
	size_t got;

	*exists = 0;
	msr_merkle_frontier_reset(&m->fr);
	msr_merkle_empty_root(m->root);
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	*exists = 1;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "vkey ", 5) == 0) {
			if (!m->have_v &&
			    msr_note_verifier_parse(&m->v, line + 5, strlen(line + 5)) != 0)
				goto done;
			m->have_v = 1;
		} else if (sscanf(line, "size %llu", &size) == 1) {
			m->fr.size = size;
		} else if (sscanf(line, "root %63s", b64) == 1) {
			if (sodium_base642bin(m->root, HLEN, b64, strlen(b64), NULL, &got, NULL, B64)
			    != 0 || got != HLEN)
				goto done;
		} else if (sscanf(line, "node %d %63s", &lvl, b64) == 2) {
			if (lvl < 0 || lvl >= MSR_MERKLE_LEVELS ||
			    sodium_base642bin(m->fr.hash[lvl], HLEN, b64, strlen(b64), NULL, &got,
			    NULL, B64) != 0 || got != HLEN)
				goto done;
		} else if (line[0] != '\0' && line[0] != '#') {
			goto done;
		}
	}
	ret = 0;
done:
	fclose(f);
	if (ret == 0) {
		uint8_t r[HLEN];

		msr_merkle_frontier_root(&m->fr, r);
		if (sodium_memcmp(r, m->root, HLEN) != 0) {
			fprintf(stderr, "msreg monitor: %s: frontier and root disagree\n",
			    m->state_path);
			ret = -1;
		}
	}
	return ret;
}

static int
state_save(struct monitor *m, const char *checkpoint)
{
	char tmp[4096], dir[4096], vkey[MSR_NOTE_KEY_TEXT_MAX], b64[64];
	FILE *f;
	int fd, ret = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp", m->state_path);
	if (msr_note_verifier_format(&m->v, vkey, sizeof(vkey)) != 0)
		return -1;
	f = fopen(tmp, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "# msreg audit monitor state: the last verified checkpoint\n");
	fprintf(f, "vkey %s\nsize %" PRIu64 "\n", vkey, m->fr.size);
	sodium_bin2base64(b64, sizeof(b64), m->root, HLEN, B64);
	fprintf(f, "root %s\n", b64);
	for (int l = 0; l < MSR_MERKLE_LEVELS; l++) {
		if (!(m->fr.size >> l & 1))
			continue;
		sodium_bin2base64(b64, sizeof(b64), m->fr.hash[l], HLEN, B64);
		fprintf(f, "node %d %s\n", l, b64);
	}
	for (const char *p = checkpoint; *p != '\0'; ) {	/* the evidence, commented */
		size_t n = strcspn(p, "\n");

		fprintf(f, "# %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		goto done;
	}
	if (fclose(f) != 0 || rename(tmp, m->state_path) != 0)
		goto done;
	snprintf(dir, sizeof(dir), "%s", m->state_path);
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

/* ---- rules ---- */

/* Codes compare as msregd records them: upper case, no hyphens or spaces. */
static void
code_normalize(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	for (; *in != '\0' && n + 1 < cap; in++)
		if (*in != '-' && *in != ' ')
			out[n++] = (char)(*in >= 'a' && *in <= 'z' ? *in - 'a' + 'A' : *in);
	out[n] = '\0';
}


static int
rules_load(struct monitor *m, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512], a[64], b[128];
	long n = 0, w = 0;
	int lineno = 0, ret = -1;

	if (f == NULL) {
		fprintf(stderr, "msreg monitor: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		struct rule *r = &m->rules[m->nrules];
		char *hash = strchr(line, '#');
		int k;

		lineno++;
		if (hash != NULL)
			*hash = '\0';
		if (sscanf(line, " %63s", a) != 1)
			continue;
		if (m->nrules == MAX_RULES)
			goto bad;
		memset(r, 0, sizeof(*r));
		if (strcmp(a, "rate") == 0 && sscanf(line, " rate %ld %ld %n", &n, &w, &k) == 2 &&
		    n >= 0 && w > 0) {
			r->kind = R_RATE;
		} else if (strcmp(a, "disclosures") == 0 &&
		    sscanf(line, " disclosures %ld %ld %127s", &n, &w, b) == 3 && n >= 0 && w > 0 &&
		    (strcmp(b, "client") == 0 || strcmp(b, "case") == 0)) {
			r->kind = strcmp(b, "client") == 0 ? R_DISCLOSE_CLIENT : R_DISCLOSE_CASE;
		} else if (strcmp(a, "watch") == 0 && sscanf(line, " watch code %127s", b) == 1) {
			r->kind = R_CODE;
			code_normalize(b, r->arg, sizeof(r->arg));
		} else if (strcmp(a, "watch") == 0 && sscanf(line, " watch firearm %127s", b) == 1) {
			r->kind = R_FIREARM;
			snprintf(r->arg, sizeof(r->arg), "%s", b);
		} else if (strcmp(a, "admin") == 0) {
			r->kind = R_ADMIN;
		} else if (strcmp(a, "alert") == 0) {
			r->kind = R_ALERT;
		} else {
			goto bad;
		}
		if (r->kind == R_RATE || r->kind == R_DISCLOSE_CLIENT || r->kind == R_DISCLOSE_CASE) {
			if (n > 100000)
				goto bad;
			r->n = n;
			r->window = w;
		}
		m->nrules++;
	}
	ret = 0;
	goto done;
bad:
	fprintf(stderr, "msreg monitor: %s:%d: not a rule (see `msreg audit monitor --help`)\n",
	    path, lineno);
done:
	fclose(f);
	return ret;
}

static void
finding(struct monitor *m, const char *rule, uint64_t index, json_t *e, const char *detail)
{
	json_t *c = json_object_get(e, "client"), *a = json_object_get(e, "action");

	printf("finding %s index=%" PRIu64 " client=%" JSON_INTEGER_FORMAT " action=%s%s%s\n",
	    rule, index, json_is_integer(c) ? json_integer_value(c) : (json_int_t)-1,
	    json_is_string(a) ? json_string_value(a) : "?", detail[0] ? " " : "", detail);
	fflush(stdout);
	m->findings++;
}

/* "2026-11-25T17:31:19.123456Z" -> seconds since the epoch; -1 if malformed. */
static double
entry_time(json_t *e)
{
	const char *s = json_string_value(json_object_get(e, "time"));
	struct tm tm;
	double frac = 0;
	char *end;

	if (s == NULL)
		return -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return -1;
	if (*end == '.')
		frac = strtod(end, NULL);
	return (double)timegm(&tm) + frac;
}

/* Count one event for (rule, key) at t; 1 when the window overflows now. */
static int
window_hit(struct monitor *m, int rule, const char *key, double t)
{
	const struct rule *r = &m->rules[rule];
	struct window *w = NULL;
	long cap = r->n + 1, oldest;

	for (int i = 0; i < m->nwin && w == NULL; i++)
		if (m->win[i].rule == rule && strcmp(m->win[i].key, key) == 0)
			w = &m->win[i];
	if (w == NULL) {
		if (m->nwin == MAX_KEYS)
			return 0;	/* bounded: further keys are not tracked */
		w = &m->win[m->nwin];
		memset(w, 0, sizeof(*w));
		w->t = calloc((size_t)cap, sizeof(double));
		if (w->t == NULL)
			return 0;
		m->nwin++;
		w->rule = rule;
		snprintf(w->key, sizeof(w->key), "%s", key);
		w->reported = -1;
	}
	w->t[w->head] = t;
	w->head = (w->head + 1) % cap;
	if (w->count < cap)
		w->count++;
	if (w->count < cap)
		return 0;
	oldest = w->head;	/* the ring is full: head is the oldest slot */
	if (t - w->t[oldest] > (double)r->window)
		return 0;
	if (w->reported >= 0 && t - w->reported <= (double)r->window)
		return 0;	/* one finding per key per window */
	w->reported = t;
	return 1;
}

static int
is_disclosure(json_t *e)
{
	static const char *const acts[] = { "code.lookup", "code.search", "firearm.get",
	    "audit.entries", "tlog.entries", NULL };
	const char *a = json_string_value(json_object_get(e, "action"));
	json_int_t st = json_integer_value(json_object_get(e, "status"));

	if (a == NULL || st < 200 || st > 299)
		return 0;
	for (int i = 0; acts[i] != NULL; i++)
		if (strcmp(a, acts[i]) == 0)
			return 1;
	return 0;
}

static int
names_code(json_t *e, const char *field, const char *want)
{
	const char *v = json_string_value(json_object_get(e, field));
	char norm[128];

	if (v == NULL)
		return 0;
	code_normalize(v, norm, sizeof(norm));
	return strcmp(norm, want) == 0;
}

static int
names(json_t *e, const char *field, const char *want)
{
	json_t *v = json_object_get(e, field);
	char buf[32];

	if (json_is_string(v))
		return strcmp(json_string_value(v), want) == 0;
	if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return strcmp(buf, want) == 0;
	}
	return 0;
}

static void
apply_rules(struct monitor *m, uint64_t index, const uint8_t *leaf, size_t len)
{
	json_t *e = json_loadb((const char *)leaf, len, 0, NULL);
	const char *action, *role, *cs;
	char key[96], detail[256];
	double t;

	if (e == NULL) {
		char d[64];

		snprintf(d, sizeof(d), "entry is not JSON (%zu bytes)", len);
		if (m->nrules > 0)
			finding(m, "malformed", index, NULL, d);
		return;
	}
	t = entry_time(e);
	action = json_string_value(json_object_get(e, "action"));
	role = json_string_value(json_object_get(e, "role"));
	cs = json_string_value(json_object_get(e, "case_number"));
	snprintf(key, sizeof(key), "%" JSON_INTEGER_FORMAT,
	    json_integer_value(json_object_get(e, "client")));
	for (int i = 0; i < m->nrules; i++) {
		const struct rule *r = &m->rules[i];

		detail[0] = '\0';
		switch (r->kind) {
		case R_RATE:
			if (t >= 0 && window_hit(m, i, key, t)) {
				snprintf(detail, sizeof(detail), "more than %ld requests in %lds",
				    r->n, r->window);
				finding(m, "rate", index, e, detail);
			}
			break;
		case R_DISCLOSE_CLIENT:
			if (t >= 0 && is_disclosure(e) && window_hit(m, i, key, t)) {
				snprintf(detail, sizeof(detail), "more than %ld disclosures in %lds",
				    r->n, r->window);
				finding(m, "disclosures_client", index, e, detail);
			}
			break;
		case R_DISCLOSE_CASE:
			if (t >= 0 && cs != NULL && is_disclosure(e) && window_hit(m, i, cs, t)) {
				snprintf(detail, sizeof(detail), "case=%.64s more than %ld disclosures "
				    "in %lds", cs, r->n, r->window);
				finding(m, "disclosures_case", index, e, detail);
			}
			break;
		case R_CODE:
			if (names_code(e, "code", r->arg) || names_code(e, "query", r->arg)) {
				snprintf(detail, sizeof(detail), "code=%s", r->arg);
				finding(m, "watch_code", index, e, detail);
			}
			break;
		case R_FIREARM:
			if (names(e, "firearm_id", r->arg)) {
				snprintf(detail, sizeof(detail), "firearm=%s", r->arg);
				finding(m, "watch_firearm", index, e, detail);
			}
			break;
		case R_ADMIN:
			if (role != NULL && strcmp(role, "admin") == 0)
				finding(m, "admin", index, e, "");
			break;
		case R_ALERT:
			if (json_integer_value(json_object_get(e, "status")) >= 500 ||
			    json_object_get(e, "commit_failed_for") != NULL ||
			    (action != NULL && strncmp(action, "audit.", 6) == 0 &&
			    json_object_get(e, "method") == NULL))
				finding(m, "alert", index, e, "");
			break;
		}
	}
	json_decref(e);
}

/* ---- one pass ---- */

static int MSR_PRINTF(1, 2)
integrity(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("integrity ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	return EX_INTEGRITY;
}

/*
 * Read, verify and apply entries [from, to) onto f (a copy of the state).
 * Returns EX_CLEAN, EX_INTEGRITY or EX_UNREADABLE.
 */
static int
read_entries(struct monitor *m, struct msr_merkle_frontier *f, uint64_t from, uint64_t to)
{
	char path[160], idx[MSR_TILE_PATH_MAX], *bundle = NULL, *tile = NULL;
	size_t blen, tlen;
	int ret = EX_UNREADABLE;

	for (uint64_t n = from / MSR_TILE_WIDTH; n * MSR_TILE_WIDTH < to; n++) {
		uint64_t start = n * MSR_TILE_WIDTH;
		unsigned w = to - start >= MSR_TILE_WIDTH ? MSR_TILE_WIDTH : (unsigned)(to - start);
		size_t pos = 0;

		free(bundle);
		free(tile);
		bundle = tile = NULL;
		if (msr_tile_format_index(n, w, idx, sizeof(idx)) != 0)
			goto done;
		snprintf(path, sizeof(path), "/tile/entries/%s", idx);
		if (fetch(m, path, 1, &bundle, &blen) != 0)
			goto done;
		snprintf(path, sizeof(path), "/tile/0/%s", idx);
		if (fetch(m, path, 0, &tile, &tlen) != 0)
			goto done;
		if (tlen != (size_t)w * HLEN) {
			ret = integrity("%s%" PRIu64 " is %" PRIu64 " bytes", "hash tile 0/", n, (uint64_t)tlen);
			goto done;
		}
		for (unsigned i = 0; i < w; i++) {
			uint8_t leaf[HLEN];
			size_t len;

			if (blen - pos < 2 || blen - pos - 2 < ((size_t)(uint8_t)bundle[pos] << 8 |
			    (uint8_t)bundle[pos + 1])) {
				ret = integrity("%sentry bundle %" PRIu64 " truncated at %" PRIu64, "",
				    n, start + i);
				goto done;
			}
			len = (size_t)(uint8_t)bundle[pos] << 8 | (uint8_t)bundle[pos + 1];
			pos += 2;
			msr_merkle_leaf_hash((const uint8_t *)bundle + pos, len, leaf);
			if (sodium_memcmp(leaf, tile + (size_t)i * HLEN, HLEN) != 0) {
				ret = integrity("%sentry %" PRIu64 " does not hash to hash tile %"
				    PRIu64, "", start + i, n);
				goto done;
			}
			if (start + i >= from) {
				if (msr_merkle_frontier_append(f, leaf, NULL, NULL) != 0)
					goto done;
				apply_rules(m, start + i, (const uint8_t *)bundle + pos, len);
			}
			pos += len;
		}
		if (pos != blen) {
			ret = integrity("%sentry bundle %" PRIu64 " has %" PRIu64 " extra bytes", "",
			    n, (uint64_t)(blen - pos));
			goto done;
		}
	}
	ret = EX_CLEAN;
done:
	free(bundle);
	free(tile);
	return ret;
}

static int
pass(struct monitor *m, int once)
{
	struct msr_merkle_frontier *f = NULL;
	struct msr_note_checkpoint cp;
	char *note = NULL;
	size_t len, text_len;
	uint8_t root[HLEN];
	const char *why = NULL;
	int ret = EX_UNREADABLE, missing = 0;

	memset(&cp, 0, sizeof(cp));
	for (int attempt = 0; attempt < (once ? COSIG_RETRIES : 1); attempt++) {
		free(note);
		note = NULL;
		if (fetch(m, "/checkpoint", 0, &note, &len) != 0)
			goto done;
		if (msr_note_open(&m->v, note, len, &text_len, &why) != 0 ||
		    msr_note_checkpoint_parse(&cp, note, text_len) != 0 ||
		    strcmp(cp.origin, m->v.name) != 0) {
			ret = integrity("the checkpoint is not a checkpoint signed by the log's key"
			    " (%s; monitor at size %" PRIu64 ")", why != NULL ? why : "origin",
			    m->fr.size);
			goto done;
		}
		missing = 0;
		for (int i = 0; i < m->nw; i++)
			if (msr_cosig_verify(&m->w[i], note, len, NULL) != 0)
				missing++;
		if (missing == 0 || cp.size < m->fr.size)
			break;
		sleep(1);
	}
	if (cp.size < m->fr.size) {
		ret = integrity("%s: checkpoint size %" PRIu64 " is below the verified %" PRIu64,
		    "rollback", cp.size, m->fr.size);
		goto done;
	}
	f = malloc(sizeof(*f));
	if (f == NULL)
		goto done;
	*f = m->fr;
	if (cp.size > m->fr.size) {
		ret = read_entries(m, f, m->fr.size, cp.size);
		if (ret != EX_CLEAN)
			goto done;
	}
	msr_merkle_frontier_root(f, root);
	if (sodium_memcmp(root, cp.root, HLEN) != 0) {
		ret = integrity("%s: the entries up to %" PRIu64 " do not yield the signed root "
		    "(last verified size %" PRIu64 ")", "fork", cp.size, m->fr.size);
		goto done;
	}
	if (missing > 0) {
		/* verified, but not accepted: the next pass starts from the old state */
		printf("finding witness_missing size=%" PRIu64 " %d required cosignature(s) missing;"
		    " checkpoint not accepted\n", cp.size, missing);
		m->findings++;
		ret = EX_CLEAN;
		goto done;
	}
	if (cp.size != m->fr.size || sodium_memcmp(m->root, root, HLEN) != 0) {
		m->fr = *f;
		memcpy(m->root, root, HLEN);
		if (state_save(m, note) != 0) {
			fprintf(stderr, "msreg monitor: cannot write %s: %s\n", m->state_path,
			    strerror(errno));
			ret = EX_UNREADABLE;
			goto done;
		}
	}
	ret = EX_CLEAN;
done:
	free(f);
	free(note);
	return ret;
}

static int
pin_key(struct monitor *m)
{
	char *key = NULL;
	size_t len;
	int ret = -1;

	if (fetch(m, "/v1/audit/key", 0, &key, &len) != 0)
		return -1;
	if (msr_note_verifier_parse(&m->v, key, len) == 0) {
		fprintf(stderr, "msreg monitor: pinned the log key %.*s (first use)\n",
		    (int)strcspn(key, "\n"), key);
		m->have_v = 1;
		ret = 0;
	}
	free(key);
	return ret;
}

int
msr_cli_monitor(const struct msr_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "state", required_argument, NULL, 's' },
		{ "rules", required_argument, NULL, 'r' },
		{ "once", no_argument, NULL, 'o' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "vkey", required_argument, NULL, 'v' },
		{ "require-witness", required_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	struct monitor *m = calloc(1, sizeof(*m));
	const char *rules = NULL, *key_file = NULL;
	int ch, once = 0, exists, ret = EX_UNREADABLE;
	long interval = 10;

	(void)cfg;
	if (m == NULL)
		return EX_UNREADABLE;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': m->url = optarg; break;
		case 's': m->state_path = optarg; break;
		case 'r': rules = optarg; break;
		case 'o': once = 1; break;
		case 'k': key_file = optarg; break;
		case 'v':
			if (msr_note_verifier_parse(&m->v, optarg, strlen(optarg)) != 0) {
				fprintf(stderr, "msreg monitor: --vkey is not a verifier key\n");
				goto usage;
			}
			m->have_v = 1;
			break;
		case 'w':
			if (m->nw == MAX_WITNESSES ||
			    msr_cosig_verifier_parse(&m->w[m->nw], optarg, strlen(optarg)) != 0) {
				fprintf(stderr, "msreg monitor: --require-witness takes a "
				    "cosignature/v1 vkey (msreg witness keygen)\n");
				goto usage;
			}
			m->nw++;
			break;
		case 'i': interval = strtol(optarg, NULL, 10); break;
		default: goto usage;
		}
	}
	if (m->url == NULL || m->state_path == NULL || optind != argc || interval < 1 ||
	    interval > 86400)
		goto usage;
	if (key_file != NULL) {
		FILE *f = fopen(key_file, "r");

		if (f == NULL || fgets(m->api_key, sizeof(m->api_key), f) == NULL) {
			fprintf(stderr, "msreg monitor: cannot read %s\n", key_file);
			if (f != NULL)
				fclose(f);
			goto done;
		}
		fclose(f);
		m->api_key[strcspn(m->api_key, "\r\n")] = '\0';
	}
	m->win = calloc(MAX_KEYS, sizeof(*m->win));
	if (m->win == NULL || (rules != NULL && rules_load(m, rules) != 0))
		goto done;
	m->curl = curl_easy_init();
	if (m->curl == NULL)
		goto done;
	if (state_load(m, &exists) != 0) {
		fprintf(stderr, "msreg monitor: %s is not a monitor state file\n", m->state_path);
		goto done;
	}
	if (!m->have_v && pin_key(m) != 0)
		goto done;
	for (;;) {
		ret = pass(m, once);
		if (once || ret == EX_INTEGRITY)
			break;
		sleep((unsigned)interval);
	}
	if (ret == EX_CLEAN && m->findings > 0)
		ret = EX_FINDINGS;
	goto done;
usage:
	fprintf(stderr, "usage: msreg audit monitor --url URL --state FILE [--key-file FILE]\n"
	    "           [--vkey VKEY] [--rules FILE] [--require-witness VKEY]... [--once]\n"
	    "           [--interval SEC]\n"
	    "exit: 0 clean, 1 findings, 2 integrity failure, 3 the log could not be read\n"
	    "rules (one a line): rate N SEC | disclosures N SEC client|case |\n"
	    "           watch code CODE | watch firearm ID | admin | alert\n");
	ret = EX_UNREADABLE;
done:
	if (m->curl != NULL)
		curl_easy_cleanup(m->curl);
	for (int i = 0; m->win != NULL && i < m->nwin; i++)
		free(m->win[i].t);
	free(m->win);
	sodium_memzero(m->api_key, sizeof(m->api_key));
	free(m);
	return ret;
}
