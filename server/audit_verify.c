/*
 * audit_verify.c — pure verification of the audit log (see audit_verify.h):
 * the streaming entry verifier, checkpoint signature checks and offline
 * receipts. No SQL, no network, no files: the drivers that read a log
 * (audit_store.c for the database, cli_audit.c for HTTP) feed it here, so both
 * modes and msregd's full start-up check judge a log by the same code.
 *
 * Formats
 *   RFC 9162 2.1.1 hashing (leaf SHA-256(0x00||entry), node SHA-256(0x01||l||r));
 *   checkpoints are c2sp.org/tlog-checkpoint bodies in c2sp.org/signed-note
 *   notes (Ed25519); receipts are c2sp.org/tlog-proof@v1 ("extra" carries the
 *   exact entry bytes, see handlers_audit.c).
 *
 * Invariants (what "verified" means) are listed in audit_verify.h at struct
 * msr_av. The leaf hash here is computed with OpenSSL's EVP (SHA extensions
 * where the CPU has them: about 3.5x libsodium's portable SHA-256 on 300-byte
 * entries); it is an independent implementation of the hash, which suits a
 * verifier; if EVP cannot be set up, msr_merkle_leaf_hash is used.
 */
#include "msreg/audit_verify.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HLEN MSR_MERKLE_HASH_LEN

void
msr_audit_report_init(struct msr_audit_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->bad_index = -1;
}

void
msr_audit_report_fail(struct msr_audit_report *rep, int64_t bad, const char *fmt, ...)
{
	va_list ap;

	if (rep->message[0] != '\0')
		return;		/* keep the first problem */
	rep->bad_index = bad;
	va_start(ap, fmt);
	vsnprintf(rep->message, sizeof(rep->message), fmt, ap);
	va_end(ap);
}

#define fail msr_audit_report_fail

/* --- leaf hashing --------------------------------------------------------------- */

struct leaf_hasher {
	EVP_MD		*md;
	EVP_MD_CTX	*ctx;
};

static struct leaf_hasher *
lh_new(void)
{
	struct leaf_hasher *lh = calloc(1, sizeof(*lh));

	if (lh == NULL)
		return NULL;
	lh->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	lh->ctx = lh->md != NULL ? EVP_MD_CTX_new() : NULL;
	return lh;
}

static void
lh_free(struct leaf_hasher *lh)
{
	if (lh == NULL)
		return;
	EVP_MD_CTX_free(lh->ctx);
	EVP_MD_free(lh->md);
	free(lh);
}

static void
lh_hash(struct leaf_hasher *lh, const uint8_t *data, size_t len, uint8_t out[HLEN])
{
	static const uint8_t prefix = 0x00;
	unsigned int n = 0;

	if (lh != NULL && lh->ctx != NULL && EVP_DigestInit_ex(lh->ctx, lh->md, NULL) == 1 &&
	    EVP_DigestUpdate(lh->ctx, &prefix, 1) == 1 &&
	    EVP_DigestUpdate(lh->ctx, data, len) == 1 &&
	    EVP_DigestFinal_ex(lh->ctx, out, &n) == 1 && n == HLEN)
		return;
	msr_merkle_leaf_hash(data, len, out);
}

/* RFC 9162 node hash SHA-256(0x01||l||r), through the same EVP context. */
static void
lh_node(struct leaf_hasher *lh, const uint8_t l[HLEN], const uint8_t r[HLEN],
    uint8_t out[HLEN])
{
	static const uint8_t prefix = 0x01;
	unsigned int n = 0;

	if (lh != NULL && lh->ctx != NULL && EVP_DigestInit_ex(lh->ctx, lh->md, NULL) == 1 &&
	    EVP_DigestUpdate(lh->ctx, &prefix, 1) == 1 &&
	    EVP_DigestUpdate(lh->ctx, l, HLEN) == 1 &&
	    EVP_DigestUpdate(lh->ctx, r, HLEN) == 1 &&
	    EVP_DigestFinal_ex(lh->ctx, out, &n) == 1 && n == HLEN)
		return;
	msr_merkle_node_hash(l, r, out);
}

/*
 * msr_merkle_frontier_append (merkle.c) with the node hashes done by lh: the
 * same fold, one node hash per trailing set bit of the size.
 */
static void
lh_append(struct leaf_hasher *lh, struct msr_merkle_frontier *f, const uint8_t leaf[HLEN])
{
	uint8_t cur[HLEN];
	uint64_t n = f->size;
	unsigned level = 0;

	memcpy(cur, leaf, HLEN);
	while ((n >> level) & 1) {
		lh_node(lh, f->hash[level], cur, cur);
		level++;
	}
	memcpy(f->hash[level], cur, HLEN);
	f->size = n + 1;
}

/* msr_merkle_frontier_root with the node hashes done by lh (one per checkpoint). */
static void
lh_root(struct leaf_hasher *lh, const struct msr_merkle_frontier *f, uint8_t out[HLEN])
{
	int first = 1;

	if (f->size == 0) {
		msr_merkle_empty_root(out);
		return;
	}
	for (unsigned level = 0; level < MSR_MERKLE_LEVELS; level++) {
		if (((f->size >> level) & 1) == 0)
			continue;
		if (first)
			memcpy(out, f->hash[level], HLEN);
		else
			lh_node(lh, f->hash[level], out, out);
		first = 0;
	}
}

/* --- the streaming verifier ------------------------------------------------------ */

void
msr_av_init(struct msr_av *v, const struct msr_av_checkpoint *cps, size_t ncps,
    uint64_t expect, struct msr_audit_report *rep)
{
	memset(v, 0, sizeof(*v));
	msr_merkle_frontier_reset(&v->fr);
	v->cps = cps;
	v->ncps = ncps;
	v->expect = expect;
	v->rep = rep;
	v->hasher = lh_new();
	while (v->next < ncps && cps[v->next].size == 0)
		v->next++;	/* the empty checkpoint: nothing to compare */
}

void
msr_av_free(struct msr_av *v)
{
	lh_free(v->hasher);
	v->hasher = NULL;
}

int
msr_av_since(struct msr_av *v, const struct msr_note_checkpoint *since)
{
	uint8_t empty[HLEN];

	if (since->size > v->expect) {
		fail(v->rep, (int64_t)v->expect, "the log shrank: the saved checkpoint has %"
		    PRIu64 " entries, the log now has %" PRIu64 " (entries %" PRIu64 "..%" PRIu64
		    " are gone)", since->size, v->expect, v->expect, since->size - 1);
		v->bad = 1;
		return -1;
	}
	if (since->size == 0) {
		msr_merkle_empty_root(empty);
		if (sodium_memcmp(empty, since->root, HLEN) != 0) {
			fail(v->rep, 0, "the saved checkpoint has size 0 but a non-empty root");
			v->bad = 1;
			return -1;
		}
		return 0;
	}
	v->have_since = 1;
	v->since_size = since->size;
	memcpy(v->since_root, since->root, HLEN);
	return 0;
}

void *
msr_av_hasher_new(void)
{
	return lh_new();
}

void
msr_av_hasher_free(void *hasher)
{
	lh_free(hasher);
}

void
msr_av_leaf_hash(void *hasher, const uint8_t *leaf, size_t len, uint8_t out[HLEN])
{
	lh_hash(hasher, leaf, len, out);
}

int
msr_av_entry(struct msr_av *v, uint64_t idx, const uint8_t *leaf, size_t len,
    int check_stored, const uint8_t *stored)
{
	uint8_t h[HLEN];

	if (v->bad)
		return -1;
	lh_hash(v->hasher, leaf, len, h);
	return msr_av_entry_hashed(v, idx, h, check_stored, stored);
}

int
msr_av_entry_hashed(struct msr_av *v, uint64_t idx, const uint8_t h[HLEN], int check_stored,
    const uint8_t *stored)
{
	uint8_t root[HLEN];

	if (v->bad)
		return -1;
	if (idx != v->fr.size) {
		fail(v->rep, (int64_t)v->fr.size, "entry %" PRIu64 " is missing (next entry is %"
		    PRIu64 ")", v->fr.size, idx);
		goto bad;
	}
	if (idx >= v->expect) {
		fail(v->rep, (int64_t)idx, "entry %" PRIu64 " lies beyond the newest signed "
		    "checkpoint (size %" PRIu64 ")", idx, v->expect);
		goto bad;
	}
	if (check_stored && stored == NULL) {
		fail(v->rep, (int64_t)idx, "entry %" PRIu64 ": no stored leaf hash", idx);
		goto bad;
	}
	/* Hashes are public: a plain compare (no secret to time). */
	if (check_stored && memcmp(h, stored, HLEN) != 0) {
		fail(v->rep, (int64_t)idx, "entry %" PRIu64 ": content does not match its "
		    "stored leaf hash (entry altered)", idx);
		goto bad;
	}
	if (v->fr.size == UINT64_MAX) {
		fail(v->rep, (int64_t)idx, "the log is full");
		goto bad;
	}
	lh_append(v->hasher, &v->fr, h);
	v->rep->entries++;
	if (v->have_since && v->fr.size == v->since_size) {
		lh_root(v->hasher, &v->fr, root);
		if (sodium_memcmp(root, v->since_root, HLEN) != 0) {
			fail(v->rep, 0, "the log does not extend the saved checkpoint (size %"
			    PRIu64 "): its entries 0..%" PRIu64 " were rewritten", v->since_size,
			    v->since_size - 1);
			goto bad;
		}
	}
	if (v->next < v->ncps && v->fr.size == v->cps[v->next].size) {
		lh_root(v->hasher, &v->fr, root);
		if (sodium_memcmp(root, v->cps[v->next].root, HLEN) != 0) {
			uint64_t from = v->next > 0 ? v->cps[v->next - 1].size : 0;

			if (v->cps[v->next].size - from == 1)
				fail(v->rep, (int64_t)from, "entry %" PRIu64 " was altered (the "
				    "checkpoint at size %" PRIu64 " does not match it)", from,
				    v->cps[v->next].size);
			else
				fail(v->rep, (int64_t)from, "checkpoint at size %" PRIu64 ": root "
				    "does not match the entries; an entry in %" PRIu64 "..%" PRIu64
				    " was altered", v->cps[v->next].size, from,
				    v->cps[v->next].size - 1);
			v->bad_from = from;
			v->bad_to = v->cps[v->next].size;
			goto bad;
		}
		v->rep->tree_size = v->cps[v->next].size;
		v->next++;
	}
	return 0;
bad:
	v->bad = 1;
	return -1;
}

int
msr_av_finish(struct msr_av *v)
{
	if (v->bad)
		return -1;
	if (v->fr.size < v->expect) {
		fail(v->rep, (int64_t)v->fr.size, "entry %" PRIu64 " is missing (the newest "
		    "checkpoint covers %" PRIu64 " entries)", v->fr.size, v->expect);
		v->bad = 1;
		return -1;
	}
	if (v->next < v->ncps) {
		fail(v->rep, -1, "checkpoint at size %" PRIu64 " was not reached",
		    v->cps[v->next].size);
		v->bad = 1;
		return -1;
	}
	return 0;
}

/* --- checkpoint signatures --------------------------------------------------------- */

/*
 * Signatures are the costliest part (an Ed25519 verification each, one
 * checkpoint per batch): a second thread shares the rows with the caller. Each
 * reads the immutable inputs and writes only the atomics.
 */
struct sigjob {
	const struct msr_note_verifier	*v;
	const char *const		*notes;
	const struct msr_av_checkpoint	*cps;
	int				 to;		/* rows [next, to) to check */
	int				 all;		/* verify every signature */
	atomic_int			 next;		/* shared work counter */
	atomic_int			 bad;		/* first bad row seen, or to */
	atomic_int			 body_bad;	/* signed body disagrees with row */
	atomic_ullong			 checked;
	atomic_ullong			 signatures;
};

#define SIG_CHUNK 32

static void *
sigjob_main(void *arg)
{
	struct sigjob *j = arg;
	int from;

	while ((from = atomic_fetch_add(&j->next, SIG_CHUNK)) < j->to) {
		int to = from + SIG_CHUNK < j->to ? from + SIG_CHUNK : j->to;

		for (int r = from; r < to && r < atomic_load(&j->bad); r++) {
			struct msr_note_checkpoint c;
			int body = 0, sig = j->all || r == j->to - 1;

			/* the usual unsigned case at a glance; anything else in full */
			if (!sig && msr_note_checkpoint_is(j->v, j->notes[r], j->cps[r].size,
			    j->cps[r].root) == 0) {
				atomic_fetch_add(&j->checked, 1);
				continue;
			}
			if ((sig ? msr_note_checkpoint_open(j->v, j->notes[r], &c) :
			    msr_note_checkpoint_read(j->v, j->notes[r], &c)) != 0 ||
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
			if (sig)
				atomic_fetch_add(&j->signatures, 1);
		}
	}
	return NULL;
}

struct msr_av_sigs {
	struct sigjob	job;
	pthread_t	th;
	int		started;
};

struct msr_av_sigs *
msr_av_sig_start(const struct msr_note_verifier *v, const char *const *notes,
    const struct msr_av_checkpoint *cps, size_t n, unsigned flags)
{
	struct msr_av_sigs *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->job.v = v;
	s->job.notes = notes;
	s->job.cps = cps;
	s->job.to = (int)n;
	s->job.all = !(flags & MSR_AV_LAST_SIGNATURE);
	atomic_init(&s->job.bad, (int)n);
	atomic_init(&s->job.body_bad, 0);
	atomic_init(&s->job.checked, 0);
	atomic_init(&s->job.signatures, 0);
	atomic_init(&s->job.next, 0);
	/* The background thread starts at once: it overlaps the caller's reading and hashing. */
	if (n > 1 && pthread_create(&s->th, NULL, sigjob_main, &s->job) == 0)
		s->started = 1;
	return s;
}

int
msr_av_sig_finish(struct msr_av_sigs *s, int abandon, struct msr_audit_report *rep)
{
	struct sigjob *j;
	int ret = 0;

	if (s == NULL) {
		fail(rep, -1, "out of memory");
		return -1;
	}
	j = &s->job;
	if (abandon)
		atomic_store(&j->next, j->to);	/* stop handing out work */
	else
		sigjob_main(j);			/* the caller joins in */
	if (s->started)
		pthread_join(s->th, NULL);
	if (abandon)
		goto done;
	rep->checkpoints += atomic_load(&j->checked);
	rep->signatures += atomic_load(&j->signatures);
	if (atomic_load(&j->bad) < j->to) {
		uint64_t size = j->cps[atomic_load(&j->bad)].size;
		int64_t at = size > 0 ? (int64_t)size - 1 : 0;

		/* Report whichever problem comes first in the log. */
		if (rep->message[0] == '\0' || rep->bad_index < 0 || rep->bad_index > at) {
			rep->message[0] = '\0';
			fail(rep, at, "checkpoint at size %" PRIu64 ": %s", size,
			    atomic_load(&j->body_bad) ? "signed body disagrees with its row" :
			    j->all || atomic_load(&j->bad) == j->to - 1 ?
			    "signature does not verify with the log key" :
			    "not a well-formed note signed by the log key");
		}
		ret = -1;
	}
done:
	free(s);
	return ret;
}

int
msr_av_signatures(const struct msr_note_verifier *v, const char *const *notes,
    const struct msr_av_checkpoint *cps, size_t n, unsigned flags,
    struct msr_audit_report *rep)
{
	return msr_av_sig_finish(msr_av_sig_start(v, notes, cps, n, flags), 0, rep);
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

	msr_audit_report_init(rep);
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
