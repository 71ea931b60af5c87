/*
 * cli_client.c — msreg's HTTP client commands (linked into bin/msreg only,
 * never into msregd; libcurl):
 *
 *   msreg import --url URL [--key-file F] [--chunk N] [--journal F] [--restart]
 *                FILE.csv
 *   msreg search --url URL --case-number C --purpose P [--max-mismatches K]
 *                [--limit N] [--json] [--receipt FILE] READING...
 *   msreg lookup --url URL --case-number C --purpose P [--json]
 *                [--receipt FILE] CODE
 *
 * The API key comes from --key-file FILE (first line) or MSREG_API_KEY, never
 * from argv (argv is world-readable in /proc); it is wiped after use.
 *
 * Import (API.md "Production file") streams the CSV: at most one chunk of
 * firearms (--chunk, default 1000) is in memory, whatever the file's size.
 * Consecutive lines with the same serial are one firearm; a chunk always ends
 * at a firearm boundary, so a firearm is never split between two batches.
 * Each chunk goes to POST /v1/firearms/batch, which is all or nothing: when
 * the server names an offending item (detail.index, detail.code_index or
 * detail.code), that firearm's lines are reported with their line numbers, the
 * firearm is dropped and the rest is sent again, until the rest is accepted
 * (201) or empty. A set refused twice is split in halves (items are
 * contiguous in the file, so each half is a byte range of its own): a file
 * with E bad lines costs O(E log N) batches, not one resend per bad line.
 * The journal unit is such a range; each unit is committed by exactly one 201.
 *
 * Resume. A journal (FILE.csv.msreg-import unless --journal) records, each
 * line written with write(2)+fsync(2):
 *
 *   msreg-import 1 <file size> <sha256 of the header line>
 *   P <start> <end> <line> <excluded ordinals|->  before every POST of a unit
 *   C <start> <end> <next line> <lines ok> <lines rejected> <already>
 *                                                 after the unit's 201 (or
 *                                                 when nothing was left to send)
 *   D                                             the whole file is done
 *
 * <start>/<end> are byte offsets of the unit in the file. On a new run with
 * the same file, every C range is skipped (reading restarts at the last C's
 * <end>), so a committed unit is never sent twice. A P after the last C marks
 * the one unit that is "in doubt": its batch may have been committed by the
 * server while the client died before journaling the 201 (the same doubt
 * follows a transport error or 5xx in a running import). It is resolved
 * without writing anything twice:
 *
 *   1. The in-doubt set is the unit's firearms minus the excluded ordinals of
 *      the last P (those were dropped before that POST, so they were never in
 *      a committed batch; they are processed again normally and report their
 *      own errors again).
 *   2. Send the set. 201: it had not been committed, and now is.
 *   3. A 409 naming the set's first serial as already registered for this
 *      manufacturer is what a committed set answers (batches are atomic, the
 *      server names the earliest taken serial). Confirm it firearm by firearm
 *      with one-firearm batches: if every serial is taken, the set was
 *      committed by the interrupted run: count it as registered ("already").
 *      If one is accepted (201) or refused for another reason, the set was not
 *      committed (atomicity), so the taken serials before it are genuine
 *      conflicts (reported), and the rest continues normally.
 *   Any other answer to 2 means "not committed" and is handled normally.
 *   Limits: a crash while the probes run can leave one firearm registered by
 *   a probe and reported as a conflict on the next resume. And the API cannot
 *   show a manufacturer a firearm by serial, so "taken"
 *   means "this serial is registered for this manufacturer", not "with the
 *   same model and codes"; a serial registered by someone else in the same
 *   manufacturer account before the interrupted run is counted as already
 *   registered rather than rejected.
 *
 * The journal names the file by size and the header's hash; a different file
 * is refused (exit 2) unless --restart. Changing --chunk between runs is
 * safe: the in-doubt unit is re-read with exactly its journaled range.
 *
 * Exit status: 0 every line registered (now or by an earlier run of the same
 * import), 1 some lines rejected, 2 usage, I/O or server errors (search and
 * lookup: 1 when the server refused the query or found no such code).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "msreg/cli.h"
#include "msreg/common.h"

#define KEY_MAX        512
#define BODY_MAX       (64u << 20)      /* largest response accepted */
#define FIELD_MAX      256              /* bytes per CSV field */
#define FIELDS_MAX     32               /* columns per CSV record */
#define CODES_MAX      64               /* lines (codes) of one firearm kept */
#define CHUNK_DEFAULT  1000
#define CHUNK_MAX      10000            /* the API's batch limit */
#define RETRIES        6                /* transport errors, 5xx per request */
#define RETRY_AFTER_MAX 60

/* ---- options and the API key ----------------------------------------------- */

struct cc_opts {
	const char *url, *key_file, *cacert;
	int         json, help;
};

/* The API key from key_file (first line) or MSREG_API_KEY. 0 on success. */
static int
load_key(const char *key_file, char *key, size_t len)
{
	const char *env = getenv("MSREG_API_KEY");
	FILE *f;
	size_t n;
	int ret = -1;

	key[0] = '\0';
	if (key_file != NULL) {
		struct stat st;

		f = fopen(key_file, "r");
		if (f == NULL) {
			fprintf(stderr, "msreg: cannot read %s: %s\n", key_file, strerror(errno));
			return -1;
		}
		if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
			fprintf(stderr, "msreg: warning: the key file %s is readable by others "
			    "(chmod 600 it)\n", key_file);
		if (fgets(key, (int)len, f) == NULL)
			key[0] = '\0';
		fclose(f);
	} else if (env != NULL) {
		snprintf(key, len, "%s", env);
	} else {
		fprintf(stderr, "msreg: no API key: use --key-file FILE or set MSREG_API_KEY\n");
		return -1;
	}
	n = strlen(key);
	while (n > 0 && isspace((unsigned char)key[n - 1]))
		key[--n] = '\0';
	if (n == 0 || n + 1 >= len)
		fprintf(stderr, "msreg: the API key is empty or too long\n");
	else
		ret = 0;
	return ret;
}

/* ---- HTTP ------------------------------------------------------------------ */

struct cc_http {
	CURL               *h;
	struct curl_slist  *hdr;
	char                base[1024];
	char                auth[KEY_MAX + 32];
};

struct cc_resp {
	long    status;
	char   *body;
	size_t  len, cap;
	int     toobig;
	json_t *json;
	long    audit_index;
	long    retry_after;
	char    err[CURL_ERROR_SIZE];
};

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct cc_resp *r = arg;
	size_t add = sz * n;

	if (r->len + add + 1 > BODY_MAX) {
		r->toobig = 1;
		return 0;
	}
	if (r->len + add + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		char *np;

		while (cap < r->len + add + 1)
			cap *= 2;
		np = realloc(r->body, cap);
		if (np == NULL)
			return 0;
		r->body = np;
		r->cap = cap;
	}
	memcpy(r->body + r->len, p, add);
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t
on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct cc_resp *r = arg;
	size_t len = sz * n;
	char line[128];

	if (len < sizeof(line)) {
		memcpy(line, p, len);
		line[len] = '\0';
		if (strncasecmp(line, "Audit-Index:", 12) == 0)
			r->audit_index = strtol(line + 12, NULL, 10);
		else if (strncasecmp(line, "Retry-After:", 12) == 0)
			r->retry_after = strtol(line + 12, NULL, 10);
	}
	return len;
}

static void
resp_free(struct cc_resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static int
http_init(struct cc_http *c, const struct cc_opts *o, int need_key)
{
	char key[KEY_MAX];
	size_t n;

	memset(c, 0, sizeof(*c));
	if (o->url == NULL) {
		fprintf(stderr, "msreg: --url is required\n");
		return -1;
	}
	n = strlen(o->url);
	while (n > 0 && o->url[n - 1] == '/')
		n--;
	if (n == 0 || n >= sizeof(c->base) || (strncmp(o->url, "http://", 7) != 0 &&
	    strncmp(o->url, "https://", 8) != 0)) {
		fprintf(stderr, "msreg: --url must be http://HOST:PORT or https://...\n");
		return -1;
	}
	memcpy(c->base, o->url, n);
	c->base[n] = '\0';
	if (need_key) {
		if (load_key(o->key_file, key, sizeof(key)) != 0) {
			sodium_memzero(key, sizeof(key));
			return -1;
		}
		snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s", key);
		sodium_memzero(key, sizeof(key));
		c->hdr = curl_slist_append(c->hdr, c->auth);
	}
	c->hdr = curl_slist_append(c->hdr, "Content-Type: application/json");
	c->hdr = curl_slist_append(c->hdr, "Expect:");
	c->h = curl_easy_init();
	if (c->h == NULL || c->hdr == NULL) {
		fprintf(stderr, "msreg: libcurl failed to initialise\n");
		return -1;
	}
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdr);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 600L);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_USERAGENT, "msreg-cli/1");
	if (o->cacert != NULL)
		curl_easy_setopt(c->h, CURLOPT_CAINFO, o->cacert);
	return 0;
}

static void
http_free(struct cc_http *c)
{
	if (c->h != NULL)
		curl_easy_cleanup(c->h);
	curl_slist_free_all(c->hdr);
	sodium_memzero(c->auth, sizeof(c->auth));
	memset(c, 0, sizeof(*c));
}

/*
 * One request. body NULL: GET (or the method given). Returns 0 when a
 * response arrived (status in out->status, JSON parsed if it is JSON), -1 on
 * a transport error (out->err).
 */
static int
http_do(struct cc_http *c, const char *method, const char *path, const char *body,
    size_t blen, struct cc_resp *out)
{
	char url[4096];
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	out->audit_index = -1;
	out->retry_after = -1;
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c->h, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, out->err);
	if (body != NULL) {
		curl_easy_setopt(c->h, CURLOPT_POST, 1L);
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	} else {
		curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, strcmp(method, body ? "POST" : "GET") ?
	    method : NULL);
	rc = curl_easy_perform(c->h);
	if (rc != CURLE_OK) {
		if (out->err[0] == '\0' || out->toobig)
			snprintf(out->err, sizeof(out->err), "%s", out->toobig ?
			    "response too large" : curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &out->status);
	if (out->body != NULL)
		out->json = json_loadb(out->body, out->len, 0, NULL);
	return 0;
}

/* "code: message" of an error reply, or the HTTP status. */
static void
error_text(const struct cc_resp *r, char *buf, size_t len)
{
	json_t *e = json_object_get(r->json, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	if (code != NULL)
		snprintf(buf, len, "%s: %s", code, msg ? msg : "");
	else
		snprintf(buf, len, "HTTP %ld", r->status);
}

/* Sleep for a 429's Retry-After (bounded), or ms when there is none. */
static void
backoff(long retry_after, long ms)
{
	struct timespec ts;

	if (retry_after > 0)
		ms = (retry_after > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : retry_after) * 1000;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

/*
 * A request retried over 429 (Retry-After), 503 and transport errors, RETRIES
 * times with growing pauses. *doubt is set when an attempt may have reached
 * the server without its answer reaching us (transport error or 5xx).
 * 0 with a response, -1 when every attempt failed (message printed).
 */
static int
http_retry(struct cc_http *c, const char *method, const char *path, const char *body,
    size_t blen, struct cc_resp *out, int *doubt)
{
	long pause = 200;

	for (int attempt = 0;; attempt++) {
		int rc = http_do(c, method, path, body, blen, out);

		if (rc == 0 && out->status == 429) {
			backoff(out->retry_after, 1000);
			resp_free(out);
			attempt--;     /* refusals for rate are not failures */
			continue;
		}
		if (rc == 0 && out->status < 500)
			return 0;
		if (doubt != NULL)
			*doubt = 1;
		if (attempt + 1 >= RETRIES) {
			if (rc != 0)
				fprintf(stderr, "msreg: %s %s: %s\n", method, path, out->err);
			else {
				char t[512];

				error_text(out, t, sizeof(t));
				fprintf(stderr, "msreg: %s %s: %s\n", method, path, t);
			}
			return -1;
		}
		backoff(rc == 0 ? out->retry_after : -1, pause);
		pause *= 2;
		resp_free(out);
	}
}

/* ---- CSV ------------------------------------------------------------------- */

/*
 * RFC 4180 reader over a FILE, one record at a time. Keeps the byte offset
 * and the physical line number (quoted fields may span lines). Oversized
 * fields and records are consumed and flagged, never stored past their bounds.
 */
struct csv {
	FILE   *f;
	int64_t off;          /* offset of the next byte */
	long    line;         /* physical line of the next byte */
};

struct csv_rec {
	int64_t start, end;   /* byte range of the record, end after its newline */
	long    line;
	int     nf;
	char    f[FIELDS_MAX][FIELD_MAX + 1];
	int     bad;          /* 1 field too long, 2 too many fields, 3 bad quotes */
};

/* 1 record, 0 end of file, -1 read error. */
static int
csv_next(struct csv *c, struct csv_rec *r)
{
	size_t flen = 0;
	int ch, quoted = 0, was_quoted = 0, closed = 0, any = 0;

	r->start = c->off;
	r->line = c->line;
	r->nf = 0;
	r->bad = 0;
	r->f[0][0] = '\0';
	for (;;) {
		ch = getc_unlocked(c->f);
		if (ch == EOF) {
			if (ferror(c->f))
				return -1;
			if (!any)
				return 0;
			if (quoted)
				r->bad = 3;
			break;
		}
		any = 1;
		c->off++;
		if (ch == '\n')
			c->line++;
		if (quoted) {
			if (ch == '"') {
				int next = getc_unlocked(c->f);

				if (next == '"') {
					c->off++;
				} else {
					if (next != EOF)
						ungetc(next, c->f);
					quoted = 0;
					closed = 1;
					continue;
				}
			}
		} else if (ch == '"' && flen == 0 && !was_quoted) {
			quoted = was_quoted = 1;
			continue;
		} else if (ch == '"') {
			r->bad = 3;
		} else if (ch == ',') {
			if (r->nf < FIELDS_MAX)
				r->f[r->nf][flen < FIELD_MAX ? flen : FIELD_MAX] = '\0';
			r->nf++;
			if (r->nf >= FIELDS_MAX) {
				r->bad = 2;
				r->nf = FIELDS_MAX - 1;
			}
			flen = 0;
			was_quoted = closed = 0;
			continue;
		} else if (ch == '\n') {
			break;
		} else if (ch == '\r') {
			continue;
		}
		if (closed && !quoted)
			r->bad = 3;        /* text after a closing quote */
		if (flen < FIELD_MAX)
			r->f[r->nf][flen] = (char)ch;
		else
			r->bad = r->bad ? r->bad : 1;
		flen++;
	}
	r->f[r->nf][flen < FIELD_MAX ? flen : FIELD_MAX] = '\0';
	r->nf++;
	r->end = c->off;
	return 1;
}

/* ---- the production file as firearms --------------------------------------- */

enum { COL_SERIAL, COL_MODEL, COL_TYPE, COL_CALIBER, COL_MADE, COL_CODE, COL_COMPONENT,
       COL_SCHEME, NCOLS };
static const char *const col_names[NCOLS] = { "serial", "model", "type", "caliber",
    "manufactured_on", "code", "component", "scheme" };

struct line_code {
	char code[FIELD_MAX + 1];
	char component[32];
	char scheme[8];
	long line;
};

struct item {
	char              serial[FIELD_MAX + 1], model[FIELD_MAX + 1], type[FIELD_MAX + 1],
	                  caliber[FIELD_MAX + 1], made[FIELD_MAX + 1];
	long              line, nlines;
	int64_t           end;          /* offset after its last line */
	long              next_line;    /* line number after its last line */
	int64_t           start;        /* offset after the previous item (its unit start) */
	long              start_line;
	struct line_code *codes;
	int               ncodes;
	int               rejected;     /* reported already (client-side or server) */
	int               state;        /* 0 pending, 1 registered, 2 rejected */
};

struct import {
	const char   *path;
	struct csv    csv;
	int           col[NCOLS];      /* record field of each column, -1 absent */
	struct csv_rec *rec;           /* the record read ahead */
	int           have_rec;
	int64_t       size;
	int           tty;
	/* journal */
	int           jfd;
	/* this chunk */
	struct item  *items;
	size_t        nitems, cap;
	int64_t       cstart, cend;
	long          cline, cnext_line;   /* first line, line after the chunk */
	size_t        lo, hi;          /* the journal unit being sent: items [lo, hi) */
	int           no_split;
	/* totals */
	long          lines_ok, lines_bad, lines_already, firearms_ok;
	long          run_lines;       /* lines processed by this run */
	int64_t       run_start_off;
	double        t0, last_progress;
	long          progress_every_ms;
	/* testing */
	long          max_chunks;
	int           crash_window;    /* MSREG_IMPORT_TEST_CRASH set */
	int           crash_now;       /* exit after this chunk's 201 */
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
item_clear(struct item *it)
{
	free(it->codes);
	memset(it, 0, sizeof(*it));
}

static const char *
col(const struct import *im, const struct csv_rec *r, int c)
{
	int i = im->col[c];

	return (i >= 0 && i < r->nf) ? r->f[i] : "";
}

static void
reject_line(struct import *im, long line, const char *fmt, ...) MSR_PRINTF(3, 4);

static void
reject_line(struct import *im, long line, const char *fmt, ...)
{
	va_list ap;

	if (im->tty)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "%s:%ld: ", im->path, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Mark an item rejected (its lines count as rejected once). */
static void
item_reject(struct import *im, struct item *it)
{
	if (it->state == 0) {
		it->state = 2;
		im->lines_bad += it->nlines;
	}
}

/* RFC 3629 UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int
utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != 0) {
		unsigned c = *p, n, cp;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		for (unsigned k = 1; k <= n; k++) {
			if ((p[k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[k] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return 0;
		p += n + 1;
	}
	return 1;
}

static int
item_add_line(struct import *im, struct item *it, const struct csv_rec *r)
{
	struct line_code *lc;
	int r_bad_utf8 = 0;

	it->nlines++;
	it->end = r->end;
	it->next_line = im->csv.line;
	if (it->nlines == 1) {
		it->line = r->line;
		snprintf(it->serial, sizeof(it->serial), "%s", col(im, r, COL_SERIAL));
		snprintf(it->model, sizeof(it->model), "%s", col(im, r, COL_MODEL));
		snprintf(it->type, sizeof(it->type), "%s", col(im, r, COL_TYPE));
		snprintf(it->caliber, sizeof(it->caliber), "%s", col(im, r, COL_CALIBER));
		snprintf(it->made, sizeof(it->made), "%s", col(im, r, COL_MADE));
	}
	if (it->rejected)
		return 0;
	for (int i = 0; r->bad == 0 && i < r->nf; i++)
		if (!utf8_valid(r->f[i]))
			r_bad_utf8 = 1;
	if (r_bad_utf8) {
		reject_line(im, r->line, "invalid_csv: not valid UTF-8");
		goto reject;
	}
	if (r->bad) {
		reject_line(im, r->line, "invalid_csv: %s", r->bad == 1 ?
		    "a field is longer than 256 bytes" : r->bad == 2 ?
		    "too many fields" : "misplaced or unterminated quote");
		goto reject;
	}
	if (strcmp(it->model, col(im, r, COL_MODEL)) != 0 ||
	    strcmp(it->type, col(im, r, COL_TYPE)) != 0 ||
	    strcmp(it->caliber, col(im, r, COL_CALIBER)) != 0 ||
	    strcmp(it->made, col(im, r, COL_MADE)) != 0) {
		reject_line(im, r->line, "invalid_field: serial %s: model, type, caliber and "
		    "manufactured_on must be the same on every line of a firearm (line %ld)",
		    it->serial, it->line);
		goto reject;
	}
	if (it->ncodes >= CODES_MAX) {
		reject_line(im, r->line, "invalid_field: serial %s has more than %d codes",
		    it->serial, CODES_MAX);
		goto reject;
	}
	if (it->ncodes % 4 == 0) {
		lc = realloc(it->codes, (size_t)(it->ncodes + 4) * sizeof(*lc));
		if (lc == NULL) {
			fprintf(stderr, "msreg: out of memory\n");
			return -1;
		}
		it->codes = lc;
	}
	lc = &it->codes[it->ncodes++];
	snprintf(lc->code, sizeof(lc->code), "%s", col(im, r, COL_CODE));
	snprintf(lc->component, sizeof(lc->component), "%s", col(im, r, COL_COMPONENT));
	snprintf(lc->scheme, sizeof(lc->scheme), "%s", col(im, r, COL_SCHEME));
	lc->line = r->line;
	return 0;
reject:
	it->rejected = 1;
	return 0;
}

static int
chunk_push(struct import *im)
{
	if (im->nitems == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 64;
		struct item *n = realloc(im->items, cap * sizeof(*n));

		if (n == NULL) {
			fprintf(stderr, "msreg: out of memory\n");
			return -1;
		}
		im->items = n;
		im->cap = cap;
	}
	memset(&im->items[im->nitems++], 0, sizeof(im->items[0]));
	return 0;
}

static void
chunk_clear(struct import *im)
{
	for (size_t i = 0; i < im->nitems; i++)
		item_clear(&im->items[i]);
	im->nitems = 0;
}

/*
 * Read the next chunk: up to max firearms, or exactly up to offset stop when
 * stop > 0 (the in-doubt chunk of a resume). 1 with a chunk, 0 at end of
 * file, -1 on a read error.
 */
static int
chunk_read(struct import *im, size_t max, int64_t stop)
{
	struct item *it = NULL;
	int rc;

	chunk_clear(im);
	im->cstart = im->have_rec ? im->rec->start : im->csv.off;
	im->cline = im->have_rec ? im->rec->line : im->csv.line;
	for (;;) {
		if (!im->have_rec) {
			rc = csv_next(&im->csv, im->rec);
			if (rc < 0) {
				fprintf(stderr, "msreg: cannot read %s: %s\n", im->path, strerror(errno));
				return -1;
			}
			if (rc == 0)
				break;
			im->have_rec = 1;
		}
		if (im->rec->nf == 1 && im->rec->f[0][0] == '\0') {   /* blank line */
			im->have_rec = 0;
			if (it == NULL) {
				im->cstart = im->csv.off;
				im->cline = im->csv.line;
			} else {
				it->end = im->rec->end;
				it->next_line = im->csv.line;
			}
			continue;
		}
		if (stop > 0 && im->rec->start >= stop)
			break;
		if (it == NULL || strcmp(it->serial, col(im, im->rec, COL_SERIAL)) != 0) {
			if (stop <= 0 && im->nitems == max)
				break;
			if (chunk_push(im) != 0)
				return -1;
			it = &im->items[im->nitems - 1];
		}
		if (item_add_line(im, it, im->rec) != 0)
			return -1;
		im->have_rec = 0;
	}
	im->cend = it != NULL ? it->end : im->cstart;
	im->cnext_line = it != NULL ? it->next_line : im->cline;
	for (size_t i = 0; i < im->nitems; i++) {
		im->items[i].start = i == 0 ? im->cstart : im->items[i - 1].end;
		im->items[i].start_line = i == 0 ? im->cline : im->items[i - 1].next_line;
		if (im->items[i].rejected)
			item_reject(im, &im->items[i]);
	}
	im->lo = 0;
	im->hi = im->nitems;
	return im->nitems > 0;
}

/*
 * Make items [lo, hi) the journal unit: a contiguous byte range of the file
 * that P and C records name, and that a resume re-reads as one chunk.
 */
static void
unit_set(struct import *im, size_t lo, size_t hi)
{
	im->lo = lo;
	im->hi = hi;
	im->cstart = im->items[lo].start;
	im->cline = im->items[lo].start_line;
	im->cend = im->items[hi - 1].end;
	im->cnext_line = im->items[hi - 1].next_line;
}

/* ---- journal --------------------------------------------------------------- */

static int
journal_write(struct import *im, const char *fmt, ...) MSR_PRINTF(2, 3);

static int
journal_write(struct import *im, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || write(im->jfd, line, (size_t)n) != n ||
	    fsync(im->jfd) != 0) {
		fprintf(stderr, "msreg: cannot write the import journal: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * "P start end line ordinals": the set about to be sent (skip[i] set =
 * excluded), one write(2) of at most 64 + 7 * CHUNK_MAX bytes.
 */
static int
journal_pending(struct import *im, const unsigned char *skip)
{
	size_t cap = 96 + 8 * (im->hi - im->lo), len;
	char *buf = malloc(cap);
	int ret = -1, any = 0;

	if (buf == NULL)
		return -1;
	len = (size_t)snprintf(buf, cap, "P %" PRId64 " %" PRId64 " %ld ", im->cstart,
	    im->cend, im->cline);
	for (size_t i = im->lo; i < im->hi; i++)
		if (skip[i]) {
			len += (size_t)snprintf(buf + len, cap - len, "%s%zu", any ? "," : "",
			    i - im->lo);
			any = 1;
		}
	len += (size_t)snprintf(buf + len, cap - len, "%s\n", any ? "" : "-");
	if (len < cap && write(im->jfd, buf, len) == (ssize_t)len && fsync(im->jfd) == 0)
		ret = 0;
	else
		fprintf(stderr, "msreg: cannot write the import journal: %s\n", strerror(errno));
	free(buf);
	return ret;
}

/* ---- sending a chunk ------------------------------------------------------- */

/* The firearm as the API's FirearmInput; NULL only when out of memory (fields
 * are valid UTF-8, checked when read). */
static json_t *
item_json(const struct item *it)
{
	json_t *codes = json_array();

	for (int k = 0; codes != NULL && k < it->ncodes; k++) {
		json_t *c = json_pack("{s:s, s:s}", "code", it->codes[k].code,
		    "component", it->codes[k].component);

		if (c != NULL && it->codes[k].scheme[0] != '\0' &&
		    json_object_set_new(c, "scheme", json_string(it->codes[k].scheme)) != 0) {
			json_decref(c);
			c = NULL;
		}
		if (c == NULL || json_array_append_new(codes, c) != 0) {
			json_decref(codes);
			codes = NULL;
		}
	}
	if (codes == NULL)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "serial", it->serial,
	    "model", it->model, "type", it->type, "caliber", it->caliber,
	    "manufactured_on", it->made, "codes", codes);
}

/* The body for the items not skipped; map[j] = chunk ordinal of batch item j. */
static char *
batch_body(struct import *im, const unsigned char *skip, size_t *map, size_t *n,
    size_t *blen)
{
	json_t *arr = json_array(), *root;
	char *s;

	*n = 0;
	for (size_t i = im->lo; arr != NULL && i < im->hi; i++) {
		if (skip[i])
			continue;
		if (json_array_append_new(arr, item_json(&im->items[i])) != 0) {
			json_decref(arr);
			arr = NULL;
			break;
		}
		map[(*n)++] = i;
	}
	if (arr == NULL)
		return NULL;
	root = json_pack("{s:o}", "firearms", arr);
	s = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	*blen = s ? strlen(s) : 0;
	return s;
}

/* The line a server error points at: the code's line when it names one. */
static long
error_line(const struct item *it, json_t *detail)
{
	json_t *ci = json_object_get(detail, "code_index");
	const char *code = json_string_value(json_object_get(detail, "code"));

	if (json_is_integer(ci) && json_integer_value(ci) >= 0 &&
	    json_integer_value(ci) < it->ncodes)
		return it->codes[json_integer_value(ci)].line;
	if (code != NULL)
		for (int k = 0; k < it->ncodes; k++)
			if (strcmp(it->codes[k].code, code) == 0)
				return it->codes[k].line;
	return it->line;
}

/* Is r "serial <serial> is already registered for this manufacturer"? */
static int
is_taken(const struct cc_resp *r, const char *serial)
{
	json_t *d = json_object_get(json_object_get(r->json, "error"), "detail");
	const char *s = json_string_value(json_object_get(d, "serial"));

	return r->status == 409 && s != NULL && strcmp(s, serial) == 0 &&
	    json_object_get(d, "manufacturer") != NULL;
}

enum { SEND_DONE = 0, SEND_FATAL = -1, SEND_SPLIT = 1 };

/*
 * A unit that keeps being refused is split in halves, each its own unit, so a
 * file with many bad lines costs O(E log N) batches of shrinking size instead
 * of one resend of the whole chunk per bad line. Safe because every attempt
 * so far was refused: nothing of the unit is committed.
 */
#define SPLIT_AFTER   2      /* refusals in one unit */
#define SPLIT_MIN     8      /* firearms left to send */

static int send_normal(struct import *im, struct cc_http *c, unsigned char *skip, int doubt);

/*
 * Resolve an in-doubt set (design comment, "Resume"): every firearm not in
 * skip. first is the server's answer to the whole set, a 409 naming its first
 * serial as taken.
 */
static int
resolve_doubt(struct import *im, struct cc_http *c, unsigned char *skip, size_t first)
{
	struct cc_resp r;
	size_t map[1], n, blen, i;
	unsigned char *one = malloc(im->nitems);
	char *body = NULL;
	int ret = SEND_FATAL, taken;

	if (one == NULL)
		return SEND_FATAL;
	for (i = first + 1; i < im->hi; i++) {
		if (skip[i])
			continue;
		memset(one, 1, im->nitems);
		one[i] = 0;
		free(body);
		body = batch_body(im, one, map, &n, &blen);
		if (body == NULL)
			goto done;
		if (http_retry(c, "POST", "/v1/firearms/batch", body, blen, &r, NULL) != 0)
			goto done;
		taken = is_taken(&r, im->items[i].serial);
		if (r.status == 201) {
			/* the probe registered it: the set was not committed */
			im->items[i].state = 1;
			im->lines_ok += im->items[i].nlines;
			im->firearms_ok++;
			skip[i] = 1;
		}
		resp_free(&r);
		if (!taken)
			break;
	}
	if (i == im->hi) {
		/* every serial taken: committed by the interrupted run */
		for (i = im->lo; i < im->hi; i++)
			if (!skip[i]) {
				im->items[i].state = 1;
				im->lines_already += im->items[i].nlines;
				skip[i] = 1;
			}
		if (im->tty)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "msreg: %s: lines %ld-%ld were registered by the interrupted "
		    "run (every serial is taken); not sent again\n", im->path,
		    im->items[first].line, im->items[im->hi - 1].line +
		    im->items[im->hi - 1].nlines - 1);
		ret = send_normal(im, c, skip, 0);
		goto done;
	}
	/* not committed: the taken serials before i are genuine conflicts */
	for (size_t k = first; k < i; k++) {
		if (skip[k])
			continue;
		reject_line(im, im->items[k].line, "conflict: serial %s is already registered",
		    im->items[k].serial);
		item_reject(im, &im->items[k]);
		skip[k] = 1;
	}
	ret = send_normal(im, c, skip, 0);
done:
	free(body);
	free(one);
	return ret;
}

/*
 * Send the items not in skip until the server accepts the rest (one 201) or
 * nothing is left; rejected items are reported and added to skip. doubt: the
 * set may already be committed (resume, or an earlier transport error).
 */
static int
send_normal(struct import *im, struct cc_http *c, unsigned char *skip, int doubt)
{
	struct cc_resp r;
	size_t *map = malloc((im->hi - im->lo + 1) * sizeof(*map)), n, blen;
	char *body = NULL, t[1024];
	int ret = SEND_FATAL, concurrent = 0, refused = 0;

	if (map == NULL)
		return SEND_FATAL;
	for (;;) {
		json_t *detail, *idx;
		int lost = 0;

		free(body);
		body = batch_body(im, skip, map, &n, &blen);
		if (body == NULL) {
			fprintf(stderr, "msreg: out of memory\n");
			goto done;
		}
		if (n == 0) {
			ret = SEND_DONE;
			goto done;
		}
		if (!doubt && !im->no_split && refused >= SPLIT_AFTER && n > SPLIT_MIN) {
			ret = SEND_SPLIT;
			goto done;
		}
		if (journal_pending(im, skip) != 0)
			goto done;
		if (http_retry(c, "POST", "/v1/firearms/batch", body, blen, &r, &lost) != 0)
			goto done;
		if (r.status == 201) {
			for (size_t j = 0; j < n; j++) {
				im->items[map[j]].state = 1;
				im->lines_ok += im->items[map[j]].nlines;
				im->firearms_ok++;
			}
			resp_free(&r);
			if (im->crash_now) {
				fprintf(stderr, "msreg: test crash after a 201, before the journal\n");
				_exit(3);
			}
			ret = SEND_DONE;
			goto done;
		}
		if ((doubt || lost) && is_taken(&r, im->items[map[0]].serial)) {
			resp_free(&r);
			ret = resolve_doubt(im, c, skip, map[0]);
			goto done;
		}
		doubt = 0;
		detail = json_object_get(json_object_get(r.json, "error"), "detail");
		idx = json_object_get(detail, "index");
		error_text(&r, t, sizeof(t));
		if (r.status == 401 || r.status == 403 || r.status == 413 ||
		    r.status == 415) {
			fprintf(stderr, "msreg: the server refused the batch: %s%s\n", t,
			    r.status == 413 ? " (try a smaller --chunk)" : "");
			resp_free(&r);
			goto done;
		}
		if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
		    (size_t)json_integer_value(idx) >= n) {
			/* 409 "being registered concurrently; retry", or no index */
			resp_free(&r);
			if (++concurrent < RETRIES) {
				backoff(-1, 200L * concurrent);
				continue;
			}
			fprintf(stderr, "msreg: the server refused the batch without naming an "
			    "item: %s\n", t);
			goto done;
		}
		{
			struct item *bad = &im->items[map[json_integer_value(idx)]];

			reject_line(im, error_line(bad, detail), "%s (serial %s)", t, bad->serial);
			item_reject(im, bad);
			skip[map[json_integer_value(idx)]] = 1;
			refused++;
		}
		resp_free(&r);
	}
done:
	free(body);
	free(map);
	return ret;
}

/* Send items [lo, hi) as a journal unit (halves when it splits); C when done. */
static int
unit_run(struct import *im, struct cc_http *c, unsigned char *skip, size_t lo, size_t hi,
    int doubt)
{
	size_t mid = lo + (hi - lo) / 2;
	int rc;

	unit_set(im, lo, hi);
	rc = send_normal(im, c, skip, doubt);
	if (rc == SEND_SPLIT) {
		rc = unit_run(im, c, skip, lo, mid, 0);
		if (rc == SEND_DONE)
			rc = unit_run(im, c, skip, mid, hi, 0);
		return rc;
	}
	if (rc != SEND_DONE)
		return rc;
	unit_set(im, lo, hi);
	if (journal_write(im, "C %" PRId64 " %" PRId64 " %ld %ld %ld %ld\n", im->cstart,
	    im->cend, im->cnext_line, im->lines_ok, im->lines_bad, im->lines_already) != 0)
		return SEND_FATAL;
	return SEND_DONE;
}

/* ---- progress -------------------------------------------------------------- */

static void
progress(struct import *im, int final)
{
	double t = now_s(), el = t - im->t0, rate, frac = 0, eta = -1;
	int64_t done_b = im->csv.off - im->run_start_off;
	long lines = im->lines_ok + im->lines_bad + im->lines_already;

	if (!final && (t - im->last_progress) * 1000 < (double)im->progress_every_ms)
		return;
	im->last_progress = t;
	rate = el > 0 ? (double)im->run_lines / el : 0;
	if (im->size > 0)
		frac = (double)im->csv.off / (double)im->size;
	if (done_b > 0 && el > 0 && im->size > 0)
		eta = (double)(im->size - im->csv.off) / ((double)done_b / el);
	if (im->tty) {
		char bar[31];
		int w = (int)(frac * 30);

		for (int i = 0; i < 30; i++)
			bar[i] = i < w ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r\033[K%3.0f%% [%s] %ld lines  %.0f lines/s  ETA ", frac * 100,
		    bar, lines, rate);
		if (eta >= 0)
			fprintf(stderr, "%d:%02d", (int)eta / 60, (int)eta % 60);
		else
			fputs("-", stderr);
		if (final)
			fputc('\n', stderr);
	} else {
		fprintf(stderr, "msreg import: %ld lines (%.0f%%), %ld rejected, %.0f lines/s, "
		    "ETA %.0f s\n", lines, frac * 100, im->lines_bad, rate, eta >= 0 ? eta : 0);
	}
}

/* ---- import: the command --------------------------------------------------- */

static void
import_usage(FILE *f)
{
	fprintf(f,
	    "usage: msreg import --url URL [--key-file FILE] [--chunk N] [--journal FILE]\n"
	    "                    [--restart] [--progress-ms MS] [--cacert FILE] FILE.csv\n"
	    "\n"
	    "Registers a production file (API.md \"Production file\": header line, one line\n"
	    "per code, lines with the same serial are one firearm and must be adjacent)\n"
	    "through POST /v1/firearms/batch, --chunk firearms per batch (default %d, at\n"
	    "most %d). The file is streamed, never loaded whole. Rejected lines are\n"
	    "printed as FILE:LINE: code: message and the rest is registered.\n"
	    "\n"
	    "Resumable: FILE.csv.msreg-import (or --journal) records every committed\n"
	    "chunk; running the same command again continues where it stopped and never\n"
	    "sends a committed chunk twice. --restart ignores an existing journal.\n"
	    "The API key comes from --key-file FILE or MSREG_API_KEY (never argv).\n"
	    "\n"
	    "Progress goes to stderr: a bar with rate and ETA on a terminal (redrawn every\n"
	    "200 ms), else a line every --progress-ms (default 10000). Rejected lines go to\n"
	    "stderr as they are found, the summary to stdout. The file must be seekable\n"
	    "(not a pipe). --max-chunks N stops after N chunks (for testing resumes).\n"
	    "Exit: 0 every line registered, 1 some lines rejected, 2 usage, I/O or\n"
	    "server errors (or stopped early: run again to resume).\n",
	    CHUNK_DEFAULT, CHUNK_MAX);
}

/* Map the header to columns. 0 on success. */
static int
import_header(struct import *im, unsigned char hash[32])
{
	int rc = csv_next(&im->csv, im->rec);
	crypto_hash_sha256_state st;

	if (rc <= 0) {
		fprintf(stderr, "msreg: %s: %s\n", im->path, rc < 0 ? strerror(errno) :
		    "empty file (a header line is required)");
		return -1;
	}
	for (int c = 0; c < NCOLS; c++)
		im->col[c] = -1;
	crypto_hash_sha256_init(&st);
	for (int i = 0; i < im->rec->nf; i++) {
		char *name = im->rec->f[i];

		if (i == 0 && (unsigned char)name[0] == 0xEF && (unsigned char)name[1] == 0xBB &&
		    (unsigned char)name[2] == 0xBF)
			memmove(name, name + 3, strlen(name + 3) + 1);
		crypto_hash_sha256_update(&st, (const unsigned char *)name, strlen(name) + 1);
		for (int c = 0; c < NCOLS; c++)
			if (strcmp(name, col_names[c]) == 0)
				im->col[c] = i;
	}
	crypto_hash_sha256_final(&st, hash);
	for (int c = 0; c < COL_SCHEME; c++)
		if (im->col[c] < 0) {
			fprintf(stderr, "msreg: %s:%ld: the header has no column \"%s\"\n",
			    im->path, im->rec->line, col_names[c]);
			return -1;
		}
	return 0;
}

/*
 * Parse "<tag> N1 N2 ... Nn[ rest]": n non-negative decimal numbers after the
 * tag letter; *rest (if wanted) points after the n-th number's separator.
 * 0 on success, -1 if the line is not of that form.
 */
static int
journal_fields(char *line, char tag, int64_t *v, int n, char **rest)
{
	char *p = line + 1, *end;

	if (line[0] != tag)
		return -1;
	for (int i = 0; i < n; i++) {
		if (*p != ' ' || p[1] < '0' || p[1] > '9')
			return -1;
		errno = 0;
		v[i] = strtoll(p + 1, &end, 10);
		if (errno != 0)
			return -1;
		p = end;
	}
	if (rest != NULL) {
		if (*p != ' ')
			return -1;
		*rest = p + 1;
	} else if (*p != '\0') {
		return -1;
	}
	return 0;
}

/*
 * Open or create the journal and find where to start. *resume_at: offset to
 * continue from (0: after the header); *doubt_end: end of the in-doubt chunk
 * (0: none); *skip_list: excluded ordinals of the last P (malloc'd, or NULL).
 * Returns 0, 1 if the journal says the import is complete, -1 on error.
 */
static int
journal_open(struct import *im, const char *jpath, int restart, const char *hash_hex,
    int64_t *resume_at, long *resume_line, int64_t *doubt_start, int64_t *doubt_end,
    long *doubt_line, char **skip_list)
{
	char head[256], *line = NULL;
	size_t lcap = 0;
	FILE *f;
	int ret = -1, done = 0;

	*resume_at = 0;
	*doubt_start = *doubt_end = 0;
	*skip_list = NULL;
	snprintf(head, sizeof(head), "msreg-import 1 %" PRId64 " %s\n", im->size, hash_hex);
	im->jfd = open(jpath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | (restart ? O_TRUNC : 0),
	    0600);
	if (im->jfd < 0) {
		fprintf(stderr, "msreg: cannot open the journal %s: %s\n", jpath, strerror(errno));
		return -1;
	}
	f = fdopen(dup(im->jfd), "r");
	if (f == NULL)
		return -1;
	if (getline(&line, &lcap, f) <= 0) {
		fclose(f);
		free(line);
		return journal_write(im, "%s", head);
	}
	if (strcmp(line, head) != 0) {
		fprintf(stderr, "msreg: the journal %s belongs to another file (size or header "
		    "differ); use --restart to import this file from the start\n", jpath);
		goto done;
	}
	while (getline(&line, &lcap, f) > 0) {
		int64_t v[6];
		char *rest = NULL;

		if (line[strlen(line) - 1] != '\n')
			break;           /* a torn last line: never completed */
		line[strlen(line) - 1] = '\0';
		if (journal_fields(line, 'C', v, 6, NULL) == 0) {
			*resume_at = v[1];
			*resume_line = (long)v[2];
			*doubt_start = *doubt_end = 0;
			im->lines_ok = (long)v[3];        /* totals are cumulative */
			im->lines_bad = (long)v[4];
			im->lines_already = (long)v[5];
		} else if (journal_fields(line, 'P', v, 3, &rest) == 0 && *rest != '\0') {
			*doubt_start = v[0];
			*doubt_end = v[1];
			*doubt_line = (long)v[2];
			free(*skip_list);
			*skip_list = strdup(rest);
		} else if (strcmp(line, "D") == 0) {
			done = 1;
		}
	}
	ret = done;
done:
	free(line);
	fclose(f);
	return ret;
}

int
msr_cli_import(const struct msr_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "cacert", required_argument, NULL, 'C' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "journal", required_argument, NULL, 'j' },
		{ "restart", no_argument, NULL, 'r' },
		{ "progress-ms", required_argument, NULL, 'p' },
		{ "max-chunks", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cc_opts o = { 0 };
	struct cc_http c = { 0 };
	struct import im;
	struct stat st;
	unsigned char hash[32], *skip = NULL;
	char hash_hex[65], jpath[4096], *skip_list = NULL, *end;
	const char *jopt = NULL;
	long chunk = CHUNK_DEFAULT, nchunks = 0;
	int64_t resume_at = 0, doubt_start = 0, doubt_end = 0;
	long resume_line = 0, doubt_line = 0;
	int ch, restart = 0, ret = 2, rc, progress_set = 0;

	(void)cfg;
	memset(&im, 0, sizeof(im));
	im.jfd = -1;
	im.progress_every_ms = 10000;
	im.max_chunks = -1;
	im.rec = malloc(sizeof(*im.rec));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': o.url = optarg; break;
		case 'k': o.key_file = optarg; break;
		case 'C': o.cacert = optarg; break;
		case 'j': jopt = optarg; break;
		case 'r': restart = 1; break;
		case 'c':
			chunk = strtol(optarg, &end, 10);
			if (*end != '\0' || chunk < 1 || chunk > CHUNK_MAX) {
				fprintf(stderr, "msreg: --chunk must be 1..%d\n", CHUNK_MAX);
				goto done;
			}
			break;
		case 'p':
			im.progress_every_ms = strtol(optarg, NULL, 10);
			progress_set = 1;
			break;
		case 'm': im.max_chunks = strtol(optarg, NULL, 10); break;
		case 'h': import_usage(stdout); ret = 0; goto done;
		default: import_usage(stderr); goto done;
		}
	}
	if (optind != argc - 1 || o.url == NULL || im.rec == NULL) {
		import_usage(stderr);
		goto done;
	}
	im.path = argv[optind];
	im.crash_window = getenv("MSREG_IMPORT_TEST_CRASH") != NULL;
	im.tty = isatty(STDERR_FILENO);
	if (im.tty && !progress_set)
		im.progress_every_ms = 200;
	im.csv.f = fopen(im.path, "r");
	if (im.csv.f == NULL || fstat(fileno(im.csv.f), &st) != 0) {
		fprintf(stderr, "msreg: cannot open %s: %s\n", im.path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "msreg: %s is not a regular file (imports must be resumable, so "
		    "a pipe will not do)\n", im.path);
		goto done;
	}
	setvbuf(im.csv.f, NULL, _IOFBF, 1 << 20);
	im.size = (int64_t)st.st_size;
	im.csv.line = 1;
	if (import_header(&im, hash) != 0)
		goto done;
	sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, sizeof(hash));
	snprintf(jpath, sizeof(jpath), "%s%s", jopt ? jopt : im.path, jopt ? "" : ".msreg-import");
	rc = journal_open(&im, jpath, restart, hash_hex, &resume_at, &resume_line, &doubt_start,
	    &doubt_end, &doubt_line, &skip_list);
	if (rc < 0)
		goto done;
	if (rc == 1) {
		printf("%s: already imported (journal %s): %ld lines registered, %ld rejected\n",
		    im.path, jpath, im.lines_ok + im.lines_already, im.lines_bad);
		ret = im.lines_bad ? 1 : 0;
		goto done;
	}
	if (http_init(&c, &o, 1) != 0)
		goto done;
	if (doubt_end > 0) {
		resume_at = doubt_start;
		resume_line = doubt_line;
	}
	if (resume_at > 0) {
		if (fseeko(im.csv.f, (off_t)resume_at, SEEK_SET) != 0) {
			fprintf(stderr, "msreg: cannot seek %s: %s\n", im.path, strerror(errno));
			goto done;
		}
		im.csv.off = resume_at;
		im.csv.line = resume_line;
		fprintf(stderr, "msreg: resuming %s at byte %" PRId64 " (%ld lines done%s)\n",
		    im.path, resume_at, im.lines_ok + im.lines_bad + im.lines_already,
		    doubt_end > 0 ? "; the last chunk is in doubt and will be checked" : "");
	}
	im.run_start_off = im.csv.off;
	im.t0 = im.last_progress = now_s();
	for (;;) {
		int indoubt = doubt_end > 0;

		rc = chunk_read(&im, (size_t)chunk, indoubt ? doubt_end : 0);
		if (rc < 0)
			goto done;
		if (rc == 0)
			break;
		if (im.max_chunks >= 0 && nchunks >= im.max_chunks && !im.crash_window) {
			fprintf(stderr, "msreg: stopped after %ld chunks (--max-chunks); run the "
			    "same command again to resume\n", nchunks);
			goto done;
		}
		free(skip);
		skip = calloc(im.nitems + 1, 1);
		if (skip == NULL)
			goto done;
		for (size_t i = 0; i < im.nitems; i++)
			skip[i] = im.items[i].state != 0;
		if (indoubt && skip_list != NULL && strcmp(skip_list, "-") != 0) {
			/* items excluded before the last POST: never committed, send normally */
			unsigned char *ex = calloc(im.nitems + 1, 1);
			char *p = skip_list;

			if (ex == NULL)
				goto done;
			while (*p != '\0') {
				unsigned long v = strtoul(p, &p, 10);

				if (v < im.nitems)
					ex[v] = 1;
				if (*p == ',')
					p++;
				else
					break;
			}
			for (size_t i = 0; i < im.nitems; i++)
				skip[i] = skip[i] || ex[i];
			im.no_split = 1;    /* the in-doubt set is decided as one */
			rc = send_normal(&im, &c, skip, 1);
			im.no_split = 0;
			if (rc != SEND_DONE) {
				free(ex);
				goto done;
			}
			for (size_t i = 0; i < im.nitems; i++)
				skip[i] = im.items[i].state != 0;
			free(ex);
			indoubt = 0;
		}
		im.crash_now = im.crash_window && im.max_chunks >= 0 && nchunks >= im.max_chunks;
		if (unit_run(&im, &c, skip, 0, im.nitems, indoubt) != SEND_DONE)
			goto done;
		doubt_end = 0;
		for (size_t i = 0; i < im.nitems; i++)
			im.run_lines += im.items[i].nlines;
		nchunks++;
		progress(&im, 0);
	}
	if (journal_write(&im, "D\n") != 0)
		goto done;
	progress(&im, 1);
	{
		double el = now_s() - im.t0;

		printf("%s: %ld lines registered (%ld firearms in this run), %ld lines rejected, "
		    "%ld registered before an interruption; %.1f s, %.0f lines/s\n", im.path,
		    im.lines_ok + im.lines_already, im.firearms_ok, im.lines_bad, im.lines_already,
		    el, el > 0 ? (double)im.run_lines / el : 0);
	}
	ret = im.lines_bad > 0 ? 1 : 0;
done:
	chunk_clear(&im);
	free(im.items);
	free(im.rec);
	free(skip);
	free(skip_list);
	if (im.csv.f != NULL)
		fclose(im.csv.f);
	if (im.jfd >= 0)
		close(im.jfd);
	http_free(&c);
	return ret;
}

/* ---- search and lookup ----------------------------------------------------- */

static const char *
jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (json_is_string(v))
		return json_string_value(v);
	return "-";
}

static void
table_header(void)
{
	printf("%-16s %2s %-7s %-11s %-12s %-12s %-14s %-8s %-8s %-10s %-20s %-5s %s\n",
	    "CODE", "MM", "STATUS", "COMPONENT", "MANUFACTURER", "MODEL", "SERIAL", "TYPE",
	    "CALIBER", "SOLD_ON", "DEALER_FFL", "STATE", "TRANSACTION");
}

/* One row: a search candidate or a lookup result. */
static void
table_row(json_t *c)
{
	json_t *f = json_object_get(c, "firearm"), *s = json_object_get(c, "first_sale");
	json_t *mm = json_object_get(c, "mismatches");
	char mms[16];

	if (json_is_integer(mm))
		snprintf(mms, sizeof(mms), "%lld", (long long)json_integer_value(mm));
	else
		snprintf(mms, sizeof(mms), "-");
	printf("%-16s %2s %-7s %-11s %-12s %-12s %-14s %-8s %-8s %-10s %-20s %-5s %s\n",
	    jstr(c, "code"), mms, jstr(c, "status"), jstr(c, "component"),
	    jstr(f, "manufacturer"), jstr(f, "model"), jstr(f, "serial"), jstr(f, "type"),
	    jstr(f, "caliber"), jstr(s, "sold_on"), jstr(s, "dealer_ffl"), jstr(s, "state"),
	    jstr(s, "transaction_ref"));
}

/*
 * Save the receipt of audit entry idx (GET /v1/audit/receipt/{idx}) to path.
 * The entry is durable before the answer that names it, but the checkpoint
 * that covers it may follow a moment later: 404 is retried for a few seconds.
 */
static int
save_receipt(struct cc_http *c, long idx, const char *path)
{
	struct cc_resp r;
	char p[64], t[512];
	FILE *f;
	int ret = -1;

	if (idx < 0) {
		fprintf(stderr, "msreg: the answer named no Audit-Index; no receipt\n");
		return -1;
	}
	snprintf(p, sizeof(p), "/v1/audit/receipt/%ld", idx);
	for (int i = 0;; i++) {
		if (http_retry(c, "GET", p, NULL, 0, &r, NULL) != 0)
			return -1;
		if (r.status != 404 || i >= 50)
			break;
		resp_free(&r);
		backoff(-1, 100);
	}
	if (r.status != 200) {
		error_text(&r, t, sizeof(t));
		fprintf(stderr, "msreg: cannot fetch the receipt of audit entry %ld: %s\n", idx, t);
		goto done;
	}
	f = fopen(path, "w");
	if (f == NULL || fwrite(r.body, 1, r.len, f) != r.len || fflush(f) != 0 ||
	    fsync(fileno(f)) != 0) {
		fprintf(stderr, "msreg: cannot write %s: %s\n", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		goto done;
	}
	fclose(f);
	fprintf(stderr, "msreg: receipt for audit entry %ld saved to %s\n", idx, path);
	ret = 0;
done:
	resp_free(&r);
	return ret;
}

/* Print the answer (table or JSON), save the receipt; the exit status. */
static int
answer(struct cc_http *c, struct cc_resp *r, int json, const char *receipt, int lookup)
{
	char t[1024];
	int ret = 0;

	if (r->audit_index >= 0)
		fprintf(stderr, "msreg: audit entry %ld\n", r->audit_index);
	if (r->status != 200 && !(lookup && r->status == 404 && r->json != NULL)) {
		error_text(r, t, sizeof(t));
		fprintf(stderr, "msreg: the server refused the query: %s\n", t);
		if (json && r->json != NULL)
			json_dumpf(r->json, stdout, JSON_INDENT(2)), putchar('\n');
		ret = r->status >= 400 && r->status < 500 ? 1 : 2;
	} else if (json) {
		json_dumpf(r->json, stdout, JSON_INDENT(2));
		putchar('\n');
		ret = r->status == 200 ? 0 : 1;
	} else if (lookup && r->status == 404) {
		printf("no such code is registered\n");
		ret = 1;
	} else if (lookup) {
		table_header();
		table_row(r->json);
	} else {
		json_t *cands = json_object_get(r->json, "candidates");
		size_t i;

		table_header();
		for (i = 0; i < json_array_size(cands); i++)
			table_row(json_array_get(cands, i));
		printf("%lld candidate(s)%s\n",
		    (long long)json_integer_value(json_object_get(r->json, "total")),
		    json_is_true(json_object_get(r->json, "truncated")) ? ", truncated: raise "
		    "--limit or narrow the readings" : "");
	}
	fflush(stdout);
	if (receipt != NULL && r->audit_index >= 0 && save_receipt(c, r->audit_index, receipt) != 0)
		ret = 2;
	return ret;
}

static void
search_usage(FILE *f, int lookup)
{
	if (lookup)
		fprintf(f,
		    "usage: msreg lookup --url URL --case-number C --purpose P [--json]\n"
		    "                    [--receipt FILE] [--key-file FILE] [--cacert FILE] CODE\n"
		    "\n"
		    "Looks up one registered code (GET /v1/codes/CODE, role investigator) and\n"
		    "prints the firearm and its first sale as a table, or the JSON answer with\n"
		    "--json. The query is audited; --receipt saves the audit entry's receipt\n"
		    "(verify it with `msreg audit receipt verify FILE --vkey KEY`).\n"
		    "The API key comes from --key-file FILE or MSREG_API_KEY (never argv).\n"
		    "Exit: 0 found, 1 not registered or refused, 2 usage, I/O or server errors.\n");
	else
		fprintf(f,
		    "usage: msreg search --url URL --case-number C --purpose P\n"
		    "                    [--max-mismatches K] [--limit N] [--json] [--receipt FILE]\n"
		    "                    [--key-file FILE] [--cacert FILE] READING...\n"
		    "\n"
		    "Searches the registry for the code behind partial readings of one code\n"
		    "(POST /v1/search, role investigator): each READING is symbols, '?' for an\n"
		    "unreadable one and [..] for alternatives (e.g. 0H[5S]K?4M3), or gear:BITS\n"
		    "for a gear-code reading. Prints the candidates as a table, or the JSON\n"
		    "answer with --json. The query is audited; --receipt saves the audit\n"
		    "entry's receipt (verify it with `msreg audit receipt verify`).\n"
		    "The API key comes from --key-file FILE or MSREG_API_KEY (never argv).\n"
		    "Exit: 0 answered, 1 refused (e.g. query_too_broad), 2 usage, I/O or\n"
		    "server errors.\n");
}

static int
investigate(int argc, char **argv, int lookup)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "cacert", required_argument, NULL, 'C' },
		{ "case-number", required_argument, NULL, 'c' },
		{ "purpose", required_argument, NULL, 'p' },
		{ "max-mismatches", required_argument, NULL, 'm' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "receipt", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cc_opts o = { 0 };
	struct cc_http c = { 0 };
	struct cc_resp r = { 0 };
	const char *cn = NULL, *purpose = NULL, *receipt = NULL;
	long mm = -1, limit = -1;
	char *end, *body = NULL;
	json_t *req = NULL;
	int ch, ret = 2;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': o.url = optarg; break;
		case 'k': o.key_file = optarg; break;
		case 'C': o.cacert = optarg; break;
		case 'c': cn = optarg; break;
		case 'p': purpose = optarg; break;
		case 'j': o.json = 1; break;
		case 'r': receipt = optarg; break;
		case 'm':
		case 'l':
			if (lookup)
				goto usage;
			*(ch == 'm' ? &mm : &limit) = strtol(optarg, &end, 10);
			if (*end != '\0' || *optarg == '\0')
				goto usage;
			break;
		case 'h': search_usage(stdout, lookup); return 0;
		default: goto usage;
		}
	}
	if (o.url == NULL || cn == NULL || purpose == NULL || optind >= argc ||
	    (lookup && optind != argc - 1))
		goto usage;
	if (http_init(&c, &o, 1) != 0)
		goto done;
	if (lookup) {
		char *ecode = curl_easy_escape(c.h, argv[optind], 0);
		char *ecn = curl_easy_escape(c.h, cn, 0);
		char *ep = curl_easy_escape(c.h, purpose, 0);
		char path[4096];

		if (ecode == NULL || ecn == NULL || ep == NULL ||
		    (size_t)snprintf(path, sizeof(path), "/v1/codes/%s?case_number=%s&purpose=%s",
		    ecode, ecn, ep) >= sizeof(path)) {
			fprintf(stderr, "msreg: the query is too long\n");
		} else if (http_retry(&c, "GET", path, NULL, 0, &r, NULL) == 0) {
			ret = answer(&c, &r, o.json, receipt, 1);
		}
		curl_free(ecode);
		curl_free(ecn);
		curl_free(ep);
		goto done;
	}
	req = json_pack("{s:s, s:s, s:[]}", "case_number", cn, "purpose", purpose, "readings");
	for (int i = optind; req != NULL && i < argc; i++) {
		json_t *rd = strncmp(argv[i], "gear:", 5) == 0 ?
		    json_pack("{s:s}", "gear", argv[i] + 5) : json_string(argv[i]);

		if (rd == NULL) {
			fprintf(stderr, "msreg: reading %d is not valid UTF-8\n", i - optind + 1);
			goto done;
		}
		json_array_append_new(json_object_get(req, "readings"), rd);
	}
	if (req != NULL && mm >= 0)
		json_object_set_new(req, "max_mismatches", json_integer(mm));
	if (req != NULL && limit >= 0)
		json_object_set_new(req, "limit", json_integer(limit));
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (body == NULL) {
		fprintf(stderr, "msreg: cannot build the request\n");
		goto done;
	}
	if (http_retry(&c, "POST", "/v1/search", body, strlen(body), &r, NULL) == 0)
		ret = answer(&c, &r, o.json, receipt, 0);
	goto done;
usage:
	search_usage(stderr, lookup);
done:
	resp_free(&r);
	json_decref(req);
	free(body);
	http_free(&c);
	return ret;
}

int
msr_cli_search(const struct msr_config *cfg, int argc, char **argv)
{
	(void)cfg;
	return investigate(argc, argv, 0);
}

int
msr_cli_lookup(const struct msr_config *cfg, int argc, char **argv)
{
	(void)cfg;
	return investigate(argc, argv, 1);
}
