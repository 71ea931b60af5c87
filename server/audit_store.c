/*
 * audit_verify.c — independent verification of the audit log: database mode,
 * HTTP mode, offline receipts, and the `msreg audit` command.
 *
 * Formats
 *   RFC 9162 2.1.1 hashing (leaf SHA-256(0x00||entry), node SHA-256(0x01||l||r));
 *   checkpoints are c2sp.org/tlog-checkpoint bodies in c2sp.org/signed-note
 *   notes (Ed25519); receipts are c2sp.org/tlog-proof@v1 ("extra" carries the
 *   exact entry bytes, see audit.h/handlers_audit.c).
 *
 * Database mode streams one query with binary COPY:
 *   COPY (SELECT e.idx, e.leaf, h.hash FROM audit_entries e LEFT JOIN
 *         audit_hashes h ON h.level = 0 AND h.idx = e.idx ORDER BY e.idx)
 *   TO STDOUT (FORMAT binary)
 * inside a REPEATABLE READ READ ONLY transaction that first loaded every
 * checkpoint, so entries, hashes and checkpoints are one consistent snapshot
 * even while msregd appends. PostgreSQL produces rows on one core while this
 * process hashes on the other.
 *
 * Invariants (what "verified" means)
 *   1. Entries are exactly 0 .. N-1 with N the newest checkpoint's size; no gap,
 *      nothing beyond N. The first missing or extra index is reported.
 *   2. Every entry's recomputed leaf hash equals its stored level-0 node.
 *   3. At every checkpoint size S the root recomputed from the entries equals
 *      the checkpoint root, and the checkpoint's signature and body are good. As
 *      all roots come from one leaf sequence, each checkpoint is consistent with
 *      the next (RFC 9162 2.1.4) by construction.
 *   4. The newest root computed from the stored complete subtrees (what proofs
 *      are served from) equals the signed root.
 */
#include "msreg/common.h"
#include "msreg/audit_verify.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msreg/audit.h"
#include "msreg/cli.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/log.h"
#include "msreg/merkle.h"
#include "msreg/note.h"

#define HLEN MSR_MERKLE_HASH_LEN
#define PAGE 1000

static const char copy_sql[] =
	"COPY (SELECT e.idx, e.leaf, h.hash FROM audit_entries e"
	" LEFT JOIN audit_hashes h ON h.level = 0 AND h.idx = e.idx ORDER BY e.idx)"
	" TO STDOUT (FORMAT binary)";
static const char checkpoints_sql[] =
	"SELECT tree_size, root, note FROM audit_checkpoints ORDER BY tree_size";
static const char head_sql[] =
	"SELECT tree_size, root FROM audit_tree_state ORDER BY tree_size DESC LIMIT 1";
static const char nodes_sql[] =
	"SELECT h.level, h.idx, h.hash FROM audit_hashes h"
	" JOIN unnest($1::smallint[], $2::bigint[]) AS u(level, idx)"
	" ON h.level = u.level AND h.idx = u.idx";

static void MSR_PRINTF(3, 4)
fail(struct msr_audit_report *rep, int64_t bad, const char *fmt, ...)
{
	va_list ap;

	if (rep->message[0] != '\0')
		return;		/* keep the first problem */
	rep->bad_index = bad;
	va_start(ap, fmt);
	vsnprintf(rep->message, sizeof(rep->message), fmt, ap);
	va_end(ap);
}

static void
report_init(struct msr_audit_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->bad_index = -1;
}

int
msr_audit_open_checkpoint(const struct msr_note_verifier *v, const char *note,
    struct msr_note_checkpoint *cp)
{
	size_t text_len;

	if (note == NULL || msr_note_open(v, note, strlen(note), &text_len, NULL) != 0 ||
	    msr_note_checkpoint_parse(cp, note, text_len) != 0 ||
	    strcmp(cp->origin, v->name) != 0)
		return -1;
	return 0;
}

/*
 * Leaf hashing for the streaming verifier: the same RFC 9162 leaf hash as
 * msr_merkle_leaf_hash, through OpenSSL's EVP (SHA extensions where the CPU
 * has them: about 3.5x libsodium's portable SHA-256 on 300-byte entries). It
 * is an independent implementation of the hash, which suits a verifier; if
 * EVP cannot be set up, msr_merkle_leaf_hash is used.
 */
struct leaf_hasher {
	EVP_MD		*md;
	EVP_MD_CTX	*ctx;
};

static void
lh_init(struct leaf_hasher *lh)
{
	lh->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	lh->ctx = lh->md != NULL ? EVP_MD_CTX_new() : NULL;
}

static void
lh_free(struct leaf_hasher *lh)
{
	EVP_MD_CTX_free(lh->ctx);
	EVP_MD_free(lh->md);
}

static void
lh_hash(struct leaf_hasher *lh, const uint8_t *data, size_t len, uint8_t out[HLEN])
{
	static const uint8_t prefix = 0x00;
	unsigned int n = 0;

	if (lh->ctx != NULL && EVP_DigestInit_ex(lh->ctx, lh->md, NULL) == 1 &&
	    EVP_DigestUpdate(lh->ctx, &prefix, 1) == 1 &&
	    EVP_DigestUpdate(lh->ctx, data, len) == 1 &&
	    EVP_DigestFinal_ex(lh->ctx, out, &n) == 1 && n == HLEN)
		return;
	msr_merkle_leaf_hash(data, len, out);
}

/* --- database mode ------------------------------------------------------------ */

struct cp {
	uint64_t	size;
	uint8_t		root[HLEN];
};

/*
 * Checkpoint signatures are the costliest part (an Ed25519 verification each,
 * one checkpoint per batch): a second thread checks them while the entries
 * stream. It reads the immutable PGresult and writes only its own fields.
 */
struct sigjob {
	const struct msr_note_verifier	*v;
	const PGresult			*res;
	const struct cp			*cps;
	int				 to;		/* rows [next, to) to check */
	atomic_int			 next;		/* shared work counter */
	atomic_int			 bad;		/* first bad row seen, or to */
	atomic_int			 body_bad;	/* signed body disagrees with row */
	atomic_ullong			 checked;
};

#define SIG_CHUNK 32

/* Check rows in chunks until none are left; run by the helper and the caller. */
static void *
sigjob_main(void *arg)
{
	struct sigjob *j = arg;
	int from;

	while ((from = atomic_fetch_add(&j->next, SIG_CHUNK)) < j->to) {
		int to = from + SIG_CHUNK < j->to ? from + SIG_CHUNK : j->to;

		for (int r = from; r < to && r < atomic_load(&j->bad); r++) {
			struct msr_note_checkpoint c;
			int body = 0;

			if (msr_audit_open_checkpoint(j->v, PQgetvalue(j->res, r, 2), &c) != 0 ||
			    (body = (c.size != j->cps[r].size ||
			    sodium_memcmp(c.root, j->cps[r].root, HLEN) != 0))) {
				int cur = atomic_load(&j->bad);

				while (r < cur && !atomic_compare_exchange_weak(&j->bad, &cur, r))
					;
				if (r <= atomic_load(&j->bad))
					atomic_store(&j->body_bad, body);
				break;
			}
			atomic_fetch_add(&j->checked, 1);
		}
	}
	return NULL;
}

/* Load every checkpoint row (size, root) in order; *resp keeps the notes. */
static int
load_checkpoints(PGconn *pg, PGresult **resp, struct cp **out, size_t *n,
    struct msr_audit_report *rep)
{
	PGresult *res = PQexecParams(pg, checkpoints_sql, 0, NULL, NULL, NULL, NULL, 1);
	struct cp *cps = NULL;
	int rows, ret = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rep->io_error = 1;
		fail(rep, -1, "reading checkpoints: %s", PQresultErrorMessage(res));
		goto done;
	}
	rows = PQntuples(res);
	cps = calloc((size_t)rows + 1, sizeof(*cps));
	if (cps == NULL) {
		fail(rep, -1, "out of memory");
		goto done;
	}
	for (int r = 0; r < rows; r++) {
		uint64_t size = msr_load_be((const uint8_t *)PQgetvalue(res, r, 0), 8);

		cps[r].size = size;
		if (PQgetlength(res, r, 1) != HLEN) {
			fail(rep, (int64_t)size - 1, "checkpoint at size %" PRIu64 ": bad root", size);
			goto done;
		}
		memcpy(cps[r].root, PQgetvalue(res, r, 1), HLEN);
	}
	*out = cps;
	*n = (size_t)rows;
	*resp = res;
	res = NULL;
	cps = NULL;
	ret = 0;
done:
	free(cps);
	PQclear(res);
	return ret;
}

/* Fetch a node set over a raw connection (CLI; msregd uses msr_audit_fetch_nodes). */
static int
fetch_nodes_raw(PGconn *pg, struct msr_merkle_nodes *s)
{
	char *lv = NULL, *ix = NULL;
	size_t ll = 0, il = 0;
	FILE *fl = open_memstream(&lv, &ll), *fi = open_memstream(&ix, &il);
	PGresult *res = NULL;
	const char *vals[2];
	int ret = -1;

	if (fl == NULL || fi == NULL)
		goto done;
	fputc('{', fl);
	fputc('{', fi);
	for (size_t i = 0; i < s->n; i++)
		fprintf(fl, "%s%u", i ? "," : "", s->id[i].level),
		fprintf(fi, "%s%" PRIu64, i ? "," : "", s->id[i].index);
	fputc('}', fl);
	fputc('}', fi);
	fclose(fl);
	fclose(fi);
	fl = fi = NULL;
	vals[0] = lv;
	vals[1] = ix;
	res = PQexecParams(pg, nodes_sql, 2, NULL, vals, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		goto done;
	for (int r = 0; r < PQntuples(res); r++)
		if (PQgetlength(res, r, 2) == HLEN)
			msr_merkle_nodes_set(s, (unsigned)msr_load_be((const uint8_t *)PQgetvalue(res, r, 0), 2),
			    msr_load_be((const uint8_t *)PQgetvalue(res, r, 1), 8),
			    (const uint8_t *)PQgetvalue(res, r, 2));
	ret = msr_merkle_nodes_complete(s) ? 0 : -1;
done:
	if (fl != NULL)
		fclose(fl);
	if (fi != NULL)
		fclose(fi);
	PQclear(res);
	free(lv);
	free(ix);
	return ret;
}

/* Invariant 4: the stored complete subtrees yield the signed root. */
static int
check_stored_root(PGconn *pg, const struct cp *last, struct msr_audit_report *rep)
{
	struct msr_merkle_nodes *s = malloc(sizeof(*s));
	uint8_t root[HLEN];
	int ret = -1;

	if (s == NULL)
		return -1;
	msr_merkle_nodes_init(s);
	if (msr_merkle_plan_root(s, last->size) != 0 || fetch_nodes_raw(pg, s) != 0 ||
	    msr_merkle_root(last->size, msr_merkle_nodes_get, s, root) != 0) {
		fail(rep, -1, "stored tree nodes for size %" PRIu64 " are missing", last->size);
		goto done;
	}
	if (sodium_memcmp(root, last->root, HLEN) != 0) {
		fail(rep, -1, "stored tree nodes do not yield the signed root at size %" PRIu64
		    " (audit_hashes altered above level 0)", last->size);
		goto done;
	}
	ret = 0;
done:
	free(s);
	return ret;
}

/*
 * Parse one binary COPY tuple: (idx int8, leaf bytea, hash bytea or NULL).
 * Returns 0, or -1 if malformed.
 */
static int
parse_row(const uint8_t *p, int len, uint64_t *idx, const uint8_t **leaf,
    size_t *leaf_len, const uint8_t **hash)
{
	const uint8_t *end = p + len;
	int32_t fl;

	if (len < 2 || msr_load_be(p, 2) != 3)
		return -1;
	p += 2;
	if (end - p < 12 || msr_load_be(p, 4) != 8)
		return -1;
	*idx = msr_load_be(p + 4, 8);
	p += 12;
	if (end - p < 4)
		return -1;
	fl = (int32_t)msr_load_be(p, 4);
	p += 4;
	if (fl < 0 || end - p < fl)
		return -1;
	*leaf = p;
	*leaf_len = (size_t)fl;
	p += fl;
	if (end - p < 4)
		return -1;
	fl = (int32_t)msr_load_be(p, 4);
	p += 4;
	*hash = NULL;
	if (fl == HLEN && end - p >= HLEN)
		*hash = p;
	return 0;
}

static int
stream_entries(PGconn *pg, const struct cp *cps, size_t ncps,
    struct msr_audit_report *rep)
{
	struct msr_merkle_frontier fr;
	struct leaf_hasher lh;
	PGresult *res = PQexec(pg, copy_sql);
	uint64_t n = ncps > 0 ? cps[ncps - 1].size : 0;
	size_t next = 0;
	int header = 1, bad = 0, ret = -1;
	char *row = NULL;
	int len;

	msr_merkle_frontier_reset(&fr);
	while (next < ncps && cps[next].size == 0)
		next++;		/* the empty checkpoint: nothing to compare */
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		rep->io_error = 1;
		fail(rep, -1, "reading entries: %s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	lh_init(&lh);
	PQclear(res);
	while ((len = PQgetCopyData(pg, &row, 0)) > 0) {
		const uint8_t *p = (const uint8_t *)row, *leaf, *stored;
		uint8_t h[HLEN], root[HLEN];
		size_t leaf_len;
		uint64_t idx;

		if (header) {
			/* "PGCOPY\n\377\r\n\0", flags, header extension length */
			if (len < 19 || memcmp(p, "PGCOPY\n\377\r\n", 11) != 0)
				goto malformed;
			p += 19 + msr_load_be(p + 15, 4);
			len -= (int)(p - (const uint8_t *)row);
			header = 0;
		}
		if (len == 2 && msr_load_be(p, 2) == 0xffff)
			goto next_row;		/* trailer */
		if (bad)
			goto next_row;		/* drain after the first problem */
		if (parse_row(p, len, &idx, &leaf, &leaf_len, &stored) != 0)
			goto malformed;
		if (idx != fr.size) {
			fail(rep, (int64_t)fr.size, "entry %" PRIu64 " is missing (next stored "
			    "entry is %" PRIu64 ")", fr.size, idx);
			bad = 1;
			goto next_row;
		}
		if (idx >= n) {
			fail(rep, (int64_t)idx, "entry %" PRIu64 " lies beyond the newest signed "
			    "checkpoint (size %" PRIu64 ")", idx, n);
			bad = 1;
			goto next_row;
		}
		lh_hash(&lh, leaf, leaf_len, h);
		if (stored == NULL) {
			fail(rep, (int64_t)idx, "entry %" PRIu64 ": no stored leaf hash", idx);
			bad = 1;
			goto next_row;
		}
		if (sodium_memcmp(h, stored, HLEN) != 0) {
			fail(rep, (int64_t)idx, "entry %" PRIu64 ": content does not match its "
			    "stored leaf hash (entry altered)", idx);
			bad = 1;
			goto next_row;
		}
		msr_merkle_frontier_append(&fr, h, NULL, NULL);
		rep->entries++;
		if (next < ncps && fr.size == cps[next].size) {
			msr_merkle_frontier_root(&fr, root);
			if (sodium_memcmp(root, cps[next].root, HLEN) != 0) {
				uint64_t from = next > 0 ? cps[next - 1].size : 0;

				fail(rep, (int64_t)from, "checkpoint at size %" PRIu64 ": root does "
				    "not match the entries; an entry in %" PRIu64 "..%" PRIu64
				    " and its stored hash were altered", cps[next].size, from,
				    cps[next].size - 1);
				bad = 1;
			}
			rep->tree_size = cps[next].size;
			next++;
		}
next_row:
		PQfreemem(row);
		row = NULL;
		continue;
malformed:
		fail(rep, (int64_t)fr.size, "malformed COPY data near entry %" PRIu64, fr.size);
		bad = 1;
		rep->io_error = 1;
		PQfreemem(row);
		row = NULL;
	}
	if (len == -2) {
		rep->io_error = 1;
		fail(rep, -1, "reading entries: %s", PQerrorMessage(pg));
	}
	res = PQgetResult(pg);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rep->io_error = 1;
		fail(rep, -1, "reading entries: %s", PQresultErrorMessage(res));
	}
	PQclear(res);
	while ((res = PQgetResult(pg)) != NULL)
		PQclear(res);
	if (bad || rep->message[0] != '\0')
		goto done;
	if (fr.size < n) {
		fail(rep, (int64_t)fr.size, "entry %" PRIu64 " is missing (the newest "
		    "checkpoint covers %" PRIu64 " entries)", fr.size, n);
		goto done;
	}
	ret = 0;
done:
	lh_free(&lh);
	return ret;
}

int
msr_audit_verify_db(PGconn *pg, const struct msr_note_verifier *v, unsigned flags,
    struct msr_audit_report *rep)
{
	struct sigjob job;
	struct cp *cps = NULL;
	size_t ncps = 0;
	PGresult *res, *cpres = NULL;
	pthread_t th;
	double t0 = msr_now_s();
	int started = 0, ret = -1;

	report_init(rep);
	memset(&job, 0, sizeof(job));
	res = PQexec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rep->io_error = 1;
		fail(rep, -1, "database: %s", PQerrorMessage(pg));
		PQclear(res);
		goto done;
	}
	PQclear(res);
	/*
	 * One big ordered read: sort the level-0 hashes in memory rather than on
	 * disk, and skip JIT compilation (it costs more than it saves here).
	 */
	res = PQexec(pg, "SET LOCAL work_mem = '256MB'");
	PQclear(res);
	res = PQexec(pg, "SET LOCAL jit = off");
	PQclear(res);
	if (load_checkpoints(pg, &cpres, &cps, &ncps, rep) != 0)
		goto rollback;
	for (size_t i = 1; i < ncps; i++)
		if (cps[i - 1].size >= cps[i].size) {
			fail(rep, -1, "checkpoints out of order at size %" PRIu64, cps[i].size);
			goto rollback;
		}
	job.v = v;
	job.res = cpres;
	job.cps = cps;
	job.to = (int)ncps;
	atomic_init(&job.bad, (int)ncps);
	atomic_init(&job.body_bad, 0);
	atomic_init(&job.checked, 0);
	atomic_init(&job.next, (flags & MSR_AV_LAST_SIGNATURE) && ncps > 0 ? (int)ncps - 1 : 0);
	if (pthread_create(&th, NULL, sigjob_main, &job) == 0)
		started = 1;
	else
		sigjob_main(&job);
	res = PQexecParams(pg, head_sql, 0, NULL, NULL, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rep->io_error = 1;
		fail(rep, -1, "reading the tree state: %s", PQresultErrorMessage(res));
		PQclear(res);
		goto rollback;
	}
	if (PQntuples(res) != (ncps > 0) || (ncps > 0 &&
	    (msr_load_be((const uint8_t *)PQgetvalue(res, 0, 0), 8) != cps[ncps - 1].size ||
	    PQgetlength(res, 0, 1) != HLEN ||
	    sodium_memcmp(PQgetvalue(res, 0, 1), cps[ncps - 1].root, HLEN) != 0))) {
		fail(rep, -1, "the newest tree state disagrees with the newest checkpoint");
		PQclear(res);
		goto rollback;
	}
	PQclear(res);
	if (stream_entries(pg, cps, ncps, rep) == 0 && ncps > 0)
		check_stored_root(pg, &cps[ncps - 1], rep);
	sigjob_main(&job);	/* help with what is left */
	if (started)
		pthread_join(th, NULL);
	started = 0;
	rep->checkpoints = atomic_load(&job.checked);
	if (atomic_load(&job.bad) < (int)ncps) {
		uint64_t size = cps[atomic_load(&job.bad)].size;
		int64_t at = size > 0 ? (int64_t)size - 1 : 0;

		/* Report whichever problem comes first in the log. */
		if (rep->message[0] == '\0' || rep->bad_index < 0 || rep->bad_index > at) {
			rep->message[0] = '\0';
			fail(rep, at, "checkpoint at size %" PRIu64 ": %s", size,
			    atomic_load(&job.body_bad) ?
			    "signed body disagrees with its row" :
			    "signature does not verify with the log key");
		}
	}
	if (rep->message[0] != '\0')
		goto rollback;
	if (ncps > 0)
		rep->tree_size = cps[ncps - 1].size;
	ret = 0;
rollback:
	if (started)
		pthread_join(th, NULL);
	res = PQexec(pg, "ROLLBACK");
	PQclear(res);
done:
	PQclear(cpres);
	free(cps);
	rep->seconds = msr_now_s() - t0;
	return ret;
}

/* --- HTTP mode ------------------------------------------------------------------ */

struct body {
	char	*p;
	size_t	 len;
	int	 too_big;
};

static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;
	char *p;

	if (b->len + n > 64u << 20) {	/* bounded: 64 MiB per response */
		b->too_big = 1;
		return 0;
	}
	p = realloc(b->p, b->len + n + 1);
	if (p == NULL)
		return 0;
	b->p = p;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* GET base+path; returns the body (caller frees) on 200, else NULL with rep set. */
static char *
http_get(CURL *h, const char *base, const char *path, const char *auth,
    struct msr_audit_report *rep)
{
	struct curl_slist *hdr = NULL;
	struct body b = { 0 };
	char url[2048], ah[600];
	long status = 0;
	CURLcode rc;

	snprintf(url, sizeof(url), "%s%s", base, path);
	if (auth != NULL) {
		snprintf(ah, sizeof(ah), "Authorization: Bearer %s", auth);
		hdr = curl_slist_append(hdr, ah);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	if (auth != NULL)
		sodium_memzero(ah, sizeof(ah));
	if (rc != CURLE_OK || status != 200 || b.p == NULL) {
		rep->io_error = 1;
		fail(rep, -1, "GET %s: %s", path, rc != CURLE_OK ? curl_easy_strerror(rc) :
		    status != 200 ? (b.p ? b.p : "error") : "empty reply");
		if (status != 0 && status != 200 && rc == CURLE_OK)
			snprintf(rep->message, sizeof(rep->message), "GET %s: HTTP %ld: %.400s",
			    path, status, b.p ? b.p : "");
		free(b.p);
		return NULL;
	}
	return b.p;
}

static int
b64_decode(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	return sodium_base642bin(out, cap, s, strlen(s), NULL, len, NULL,
	    sodium_base64_VARIANT_ORIGINAL);
}

int
msr_audit_verify_url(const char *base_url, const char *auditor_key,
    const struct msr_note_verifier *v, const char *prev_checkpoint,
    struct msr_audit_report *rep, char **checkpoint_out)
{
	struct msr_note_checkpoint cp, prev;
	struct msr_note_verifier served;
	struct msr_merkle_frontier fr;
	CURL *h = curl_easy_init();
	char *served_key = NULL, *note = NULL, *page = NULL;
	uint8_t *leaf = NULL;
	uint8_t root[HLEN], lh[HLEN];
	json_t *doc = NULL;
	double t0 = msr_now_s();
	int have_prev = 0, ret = -1;

	report_init(rep);
	msr_merkle_frontier_reset(&fr);
	if (h == NULL) {
		fail(rep, -1, "libcurl failed to initialise");
		goto done;
	}
	served_key = http_get(h, base_url, "/v1/audit/key", NULL, rep);
	if (served_key == NULL)
		goto done;
	served_key[strcspn(served_key, "\r\n")] = '\0';
	if (msr_note_verifier_parse(&served, served_key, strlen(served_key)) != 0) {
		fail(rep, -1, "the server's verifier key is malformed");
		goto done;
	}
	if (v == NULL)
		v = &served;
	else if (strcmp(v->name, served.name) != 0 || v->key_id != served.key_id ||
	    memcmp(v->pub, served.pub, sizeof(v->pub)) != 0) {
		fail(rep, -1, "the server's verifier key (%s) is not the expected key", served_key);
		goto done;
	}
	note = http_get(h, base_url, "/v1/audit/checkpoint", NULL, rep);
	if (note == NULL)
		goto done;
	if (msr_audit_open_checkpoint(v, note, &cp) != 0) {
		fail(rep, -1, "the served checkpoint does not verify with the log key");
		goto done;
	}
	if (prev_checkpoint != NULL) {
		if (msr_audit_open_checkpoint(v, prev_checkpoint, &prev) != 0) {
			fail(rep, -1, "the previous checkpoint does not verify with the log key");
			goto done;
		}
		if (prev.size > cp.size) {
			fail(rep, (int64_t)cp.size, "the log shrank: previous checkpoint has %"
			    PRIu64 " entries, the served one %" PRIu64, prev.size, cp.size);
			goto done;
		}
		have_prev = 1;
	}
	leaf = malloc(1u << 20);
	if (leaf == NULL)
		goto done;
	while (fr.size < cp.size) {
		char path[128];
		json_t *entries;
		size_t i, n;

		snprintf(path, sizeof(path), "/v1/audit/entries?start=%" PRIu64 "&limit=%" PRIu64,
		    fr.size, cp.size - fr.size < PAGE ? cp.size - fr.size : (uint64_t)PAGE);
		free(page);
		page = http_get(h, base_url, path, auditor_key, rep);
		if (page == NULL)
			goto done;
		json_decref(doc);
		doc = json_loads(page, 0, NULL);
		entries = json_object_get(doc, "entries");
		n = json_array_size(entries);
		if (!json_is_array(entries) || n == 0) {
			fail(rep, (int64_t)fr.size, "entry %" PRIu64 " is missing from the served "
			    "log", fr.size);
			goto done;
		}
		for (i = 0; i < n && fr.size < cp.size; i++) {
			json_t *e = json_array_get(entries, i), *parsed;
			const char *b64 = json_string_value(json_object_get(e, "leaf"));
			json_int_t idx = json_integer_value(json_object_get(e, "index"));
			size_t ll;
			int same;

			if (!json_is_integer(json_object_get(e, "index")) || (uint64_t)idx != fr.size) {
				fail(rep, (int64_t)fr.size, "entry %" PRIu64 " is missing (server "
				    "sent index %lld)", fr.size, (long long)idx);
				goto done;
			}
			if (b64 == NULL || b64_decode(b64, leaf, 1u << 20, &ll) != 0) {
				fail(rep, idx, "entry %lld: leaf is not base64", (long long)idx);
				goto done;
			}
			parsed = json_loadb((const char *)leaf, ll, 0, NULL);
			same = parsed != NULL && json_equal(parsed, json_object_get(e, "entry"));
			json_decref(parsed);
			if (!same) {
				fail(rep, idx, "entry %lld: parsed entry differs from its leaf bytes",
				    (long long)idx);
				goto done;
			}
			msr_merkle_leaf_hash(leaf, ll, lh);
			msr_merkle_frontier_append(&fr, lh, NULL, NULL);
			rep->entries++;
			if (have_prev && fr.size == prev.size) {
				msr_merkle_frontier_root(&fr, root);
				if (sodium_memcmp(root, prev.root, HLEN) != 0) {
					fail(rep, 0, "the served log does not extend the previous "
					    "checkpoint (size %" PRIu64 ")", prev.size);
					goto done;
				}
			}
		}
	}
	msr_merkle_frontier_root(&fr, root);
	if (sodium_memcmp(root, cp.root, HLEN) != 0) {
		fail(rep, -1, "the root recomputed from %" PRIu64 " served entries does not "
		    "match the signed checkpoint", cp.size);
		goto done;
	}
	if (have_prev && prev.size == 0) {
		uint8_t empty[HLEN];

		msr_merkle_empty_root(empty);
		if (sodium_memcmp(empty, prev.root, HLEN) != 0) {
			fail(rep, 0, "the previous checkpoint has size 0 but a non-empty root");
			goto done;
		}
	}
	rep->tree_size = cp.size;
	rep->checkpoints = 1 + (uint64_t)have_prev;
	if (checkpoint_out != NULL) {
		*checkpoint_out = note;
		note = NULL;
	}
	ret = 0;
done:
	json_decref(doc);
	free(page);
	free(leaf);
	free(note);
	free(served_key);
	if (h != NULL)
		curl_easy_cleanup(h);
	rep->seconds = msr_now_s() - t0;
	return ret;
}

/* --- receipts -------------------------------------------------------------------- */

int
msr_audit_receipt_verify(const char *receipt, const struct msr_note_verifier *v,
    const uint8_t *leaf, size_t leaf_len, struct msr_audit_report *rep)
{
	struct msr_note_receipt *r = calloc(1, sizeof(*r));
	struct msr_note_checkpoint cp;
	size_t len = strlen(receipt);
	uint64_t index = 0;
	const char *why = NULL;
	int ret = -1;

	report_init(rep);
	if (r == NULL || msr_note_receipt_parse(r, receipt, len, &why) != 0) {
		fail(rep, -1, "not a c2sp.org/tlog-proof@v1 receipt: %s", why ? why : "?");
		goto done;
	}
	if (leaf != NULL && r->extra != NULL &&
	    (r->extra_len != leaf_len || memcmp(r->extra, leaf, leaf_len) != 0)) {
		fail(rep, (int64_t)r->index, "the given entry differs from the one the "
		    "receipt carries");
		goto done;
	}
	if (leaf == NULL) {
		leaf = r->extra;
		leaf_len = r->extra_len;
	}
	if (leaf == NULL) {
		fail(rep, (int64_t)r->index, "the receipt carries no entry; give it with --leaf");
		goto done;
	}
	if (msr_note_receipt_verify(v, receipt, len, leaf, leaf_len, NULL, &cp, &index,
	    &why) != 0) {
		fail(rep, (int64_t)r->index, "entry %" PRIu64 ": %s", r->index,
		    why ? why : "the receipt does not verify");
		goto done;
	}
	rep->tree_size = cp.size;
	rep->entries = 1;
	rep->checkpoints = 1;
	snprintf(rep->message, sizeof(rep->message), "entry %" PRIu64 " is in the log "
	    "at tree size %" PRIu64, index, cp.size);
	ret = 0;
done:
	if (r != NULL)
		msr_note_receipt_clear(r);
	free(r);
	return ret;
}

/* --- msreg audit ... ---------------------------------------------------------------- */

/* Read a whole file (bounded); caller frees. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf = NULL, *p;
	size_t n = 0, cap = 0, r;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > (64u << 20)) {
				free(buf);
				buf = NULL;
				break;
			}
			p = realloc(buf, cap);
			if (p == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	if (f != stdin)
		fclose(f);
	if (buf != NULL) {
		buf[n] = '\0';
		if (len != NULL)
			*len = n;
	}
	return buf;
}

/* A key given inline or as @FILE / a readable file path. */
static char *
key_arg(const char *arg)
{
	char *k;

	if (arg[0] == '@')
		k = slurp(arg + 1, NULL);
	else if (strchr(arg, '/') != NULL && strchr(arg, '+') == NULL)
		k = slurp(arg, NULL);
	else
		k = strdup(arg);
	if (k != NULL)
		k[strcspn(k, "\r\n")] = '\0';
	return k;
}

static void
print_report(const char *what, int rc, const struct msr_audit_report *rep)
{
	if (rc == 0) {
		printf("%s: OK: tree size %" PRIu64 ", %" PRIu64 " entries, %" PRIu64
		    " checkpoints in %.2f s (%.0f entries/s)\n", what, rep->tree_size,
		    rep->entries, rep->checkpoints, rep->seconds,
		    rep->seconds > 0 ? (double)rep->entries / rep->seconds : 0.0);
		return;
	}
	/* The verdict is the command's output: stdout, like the OK line. */
	if (rep->bad_index >= 0)
		printf("%s: FAILED at entry %" PRId64 ": %s\n", what, rep->bad_index,
		    rep->message);
	else
		printf("%s: FAILED: %s\n", what, rep->message);
}

static int
cli_verify(const struct msr_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },
		{ "vkey", required_argument, NULL, 'v' },
		{ "db", no_argument, NULL, 'd' },
		{ "previous", required_argument, NULL, 'p' },
		{ "save", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct msr_audit_report rep;
	struct msr_note_verifier v;
	const char *url = NULL, *prev_path = NULL, *save = NULL;
	char *key = NULL, *vkey = NULL, *prev = NULL, *cp = NULL;
	char err[256];
	PGconn *pg = NULL;
	int c, db = 0, rc, ret = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 'k': free(key); key = key_arg(optarg); break;
		case 'v': free(vkey); vkey = key_arg(optarg); break;
		case 'd': db = 1; break;
		case 'p': prev_path = optarg; break;
		case 's': save = optarg; break;
		default: goto usage;
		}
	}
	if (db == (url != NULL))
		goto usage;
	if (vkey != NULL && msr_note_verifier_parse(&v, vkey, strlen(vkey)) != 0) {
		fprintf(stderr, "msreg audit verify: --vkey is not a verifier key\n");
		goto done;
	}
	if (db) {
		struct msr_note_signer signer;

		if (vkey == NULL) {
			/* The operator's own key file gives the verifier key. */
			if (msr_audit_load_key(cfg->audit_key_file, &signer, err,
			    sizeof(err)) != 0) {
				fprintf(stderr, "msreg audit verify: %s (or give --vkey)\n", err);
				ret = 1;
				goto done;
			}
			v = signer.v;
			msr_note_signer_wipe(&signer);
		}
		pg = msr_db_connect(cfg->db_url, err, sizeof(err));
		if (pg == NULL) {
			fprintf(stderr, "msreg audit verify: %s\n", err);
			ret = 1;
			goto done;
		}
		rc = msr_audit_verify_db(pg, &v, 0, &rep);
		print_report("audit verify --db", rc, &rep);
		ret = rc == 0 ? 0 : 1;
		goto done;
	}
	if (key == NULL)
		goto usage;
	if (prev_path != NULL && (prev = slurp(prev_path, NULL)) == NULL) {
		fprintf(stderr, "msreg audit verify: cannot read %s\n", prev_path);
		ret = 1;
		goto done;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = msr_audit_verify_url(url, key, vkey != NULL ? &v : NULL, prev, &rep, &cp);
	print_report("audit verify", rc, &rep);
	if (rc == 0 && save != NULL) {
		FILE *f = fopen(save, "w");

		if (f == NULL || fputs(cp, f) < 0 || fclose(f) != 0) {
			fprintf(stderr, "msreg audit verify: cannot write %s\n", save);
			rc = -1;
		}
	}
	ret = rc == 0 ? 0 : 1;
	goto done;
usage:
	fprintf(stderr, "usage: msreg [--config FILE] audit verify --db [--vkey VKEY]\n"
	    "       msreg audit verify --url URL --key AUDITOR_KEY [--vkey VKEY]\n"
	    "                          [--previous CHECKPOINT] [--save CHECKPOINT]\n"
	    "  keys may be given inline or as @FILE\n");
done:
	if (key != NULL)
		sodium_memzero(key, strlen(key));
	free(key);
	free(vkey);
	free(prev);
	free(cp);
	if (pg != NULL)
		PQfinish(pg);
	return ret;
}

static int
cli_receipt_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vkey", required_argument, NULL, 'v' },
		{ "leaf", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct msr_audit_report rep;
	struct msr_note_verifier v;
	char *vkey = NULL, *receipt = NULL, *leaf = NULL;
	const char *leaf_path = NULL;
	size_t leaf_len = 0;
	int c, rc, ret = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'v': free(vkey); vkey = key_arg(optarg); break;
		case 'l': leaf_path = optarg; break;
		default: goto usage;
		}
	}
	if (optind + 1 != argc || vkey == NULL)
		goto usage;
	if (msr_note_verifier_parse(&v, vkey, strlen(vkey)) != 0) {
		fprintf(stderr, "msreg audit receipt verify: --vkey is not a verifier key\n");
		goto done;
	}
	receipt = slurp(argv[optind], NULL);
	if (receipt == NULL) {
		fprintf(stderr, "msreg audit receipt verify: cannot read %s\n", argv[optind]);
		ret = 1;
		goto done;
	}
	if (leaf_path != NULL && (leaf = slurp(leaf_path, &leaf_len)) == NULL) {
		fprintf(stderr, "msreg audit receipt verify: cannot read %s\n", leaf_path);
		ret = 1;
		goto done;
	}
	rc = msr_audit_receipt_verify(receipt, &v, (const uint8_t *)leaf, leaf_len, &rep);
	if (rc == 0)
		printf("receipt: OK: %s\n", rep.message);
	else
		print_report("receipt", rc, &rep);
	ret = rc == 0 ? 0 : 1;
	goto done;
usage:
	fprintf(stderr, "usage: msreg audit receipt verify FILE --vkey VKEY [--leaf FILE]\n"
	    "  the receipt carries its entry; --leaf gives it explicitly (exact bytes)\n");
done:
	free(vkey);
	free(receipt);
	free(leaf);
	return ret;
}

int
msr_cli_audit(const struct msr_config *cfg, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return cli_verify(cfg, argc - 1, argv + 1);
	if (argc >= 3 && strcmp(argv[1], "receipt") == 0 && strcmp(argv[2], "verify") == 0)
		return cli_receipt_verify(argc - 2, argv + 2);
	fprintf(stderr, "usage: msreg [--config FILE] audit verify ...\n"
	    "       msreg audit receipt verify FILE --vkey VKEY [--leaf FILE]\n");
	return 2;
}
