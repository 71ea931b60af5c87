/*
 * fuzz_note.c — libFuzzer target for the signed-note, checkpoint, receipt and
 * key parsers (server/note.c, with server/merkle.c underneath).
 *
 * The first input byte picks a parser, the rest is its input (exactly `size`
 * bytes, not NUL-terminated, so ASan sees any over-read). Besides "no crash, no
 * leak", it checks:
 *   0 verifier key  parse ok  -> format gives back the input (minus one "\n")
 *   1 signer key    parse ok  -> format gives back the input; struct wiped
 *   2 signed note   open with a fixed key; if the input is a signable text,
 *                   the note we sign from it opens to exactly that text
 *   3 checkpoint    parse ok  -> format gives back the input byte for byte;
 *                   signed as a note, it opens and parses to the same values
 *   4 receipt       parse ok  -> format gives back the input byte for byte;
 *                   verify never succeeds (nothing here is signed by our key)
 *   5 receipt       a genuine receipt for a small tree (size and index from
 *                   the input) verifies; after the input's edits (16-bit
 *                   offset, xor byte) it verifies only if index, proof and
 *                   note are unchanged
 * Any broken invariant aborts, which libFuzzer reports as a crash.
 */
#include "msreg/merkle.h"
#include "msreg/note.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

static struct msr_note_signer signer;

static void
setup(void)
{
	static int done;
	uint8_t seed[MSR_NOTE_SEED_LEN];

	if (done)
		return;
	CHECK(sodium_init() >= 0);
	memset(seed, 7, sizeof(seed));
	CHECK(msr_note_signer_from_seed(&signer, "fuzz.example/log", seed) == 0);
	done = 1;
}

static size_t
strip_nl(const char *s, size_t n)
{
	return n > 0 && s[n - 1] == '\n' ? n - 1 : n;
}

static void
fuzz_verifier(const char *s, size_t n)
{
	struct msr_note_verifier v;
	char buf[MSR_NOTE_KEY_TEXT_MAX];

	if (msr_note_verifier_parse(&v, s, n) != 0)
		return;
	CHECK(msr_note_verifier_format(&v, buf, sizeof(buf)) == 0);
	/* The key id is read in either case but written in lower case. */
	CHECK(strlen(buf) == strip_nl(s, n));
	CHECK(strncasecmp(buf, s, strlen(buf)) == 0);
}

static void
fuzz_signer(const char *s, size_t n)
{
	struct msr_note_signer k;
	char buf[MSR_NOTE_KEY_TEXT_MAX];

	if (msr_note_signer_parse(&k, s, n) != 0) {
		CHECK(sodium_is_zero((const unsigned char *)&k, sizeof(k)));
		return;
	}
	CHECK(msr_note_signer_format(&k, buf, sizeof(buf)) == 0);
	CHECK(strlen(buf) == strip_nl(s, n));
	CHECK(strncasecmp(buf, s, strlen(buf)) == 0);
	sodium_memzero(buf, sizeof(buf));
	msr_note_signer_wipe(&k);
	CHECK(sodium_is_zero((const unsigned char *)&k, sizeof(k)));
}

static void
fuzz_open(const char *s, size_t n)
{
	const char *why = NULL;
	size_t text_len;
	char *note;
	size_t len;

	if (msr_note_open(&signer.v, s, n, &text_len, &why) == 0)
		CHECK(text_len < n && s[text_len] == '\n');
	else
		CHECK(why != NULL);
	if (msr_note_sign(&signer, s, n, &note, &len) != 0)
		return;
	CHECK(len > n && memcmp(note, s, n) == 0);
	CHECK(msr_note_open(&signer.v, note, len, &text_len, &why) == 0);
	CHECK(text_len == n);
	free(note);
}

static void
fuzz_checkpoint(const char *s, size_t n)
{
	struct msr_note_checkpoint c, d;
	char *text, *note;
	size_t len, nlen, text_len;

	if (msr_note_checkpoint_parse(&c, s, n) != 0)
		return;
	CHECK(msr_note_checkpoint_format(&c, &text, &len) == 0);
	CHECK(len == n && memcmp(text, s, n) == 0);
	CHECK(msr_note_checkpoint_sign(&signer, &c, &note, &nlen) == 0);
	CHECK(msr_note_open(&signer.v, note, nlen, &text_len, NULL) == 0);
	CHECK(text_len == n);
	CHECK(msr_note_checkpoint_parse(&d, note, text_len) == 0);
	CHECK(strcmp(c.origin, d.origin) == 0 && c.size == d.size &&
	    memcmp(c.root, d.root, sizeof(c.root)) == 0 && c.ext_len == d.ext_len);
	free(note);
	free(text);
}

static void
fuzz_receipt(const char *s, size_t n)
{
	struct msr_note_receipt r;
	const char *why = NULL;
	uint8_t h[MSR_MERKLE_HASH_LEN] = { 0 };
	char *text;
	size_t len;

	if (msr_note_receipt_parse(&r, s, n, &why) != 0) {
		CHECK(why != NULL);
	} else {
		CHECK(r.note > s && r.note + r.note_len == s + n);
		CHECK(msr_note_receipt_format(&r, &text, &len) == 0);
		CHECK(len == n && memcmp(text, s, n) == 0);
		free(text);
		msr_note_receipt_clear(&r);
	}
	CHECK(msr_note_receipt_verify(&signer.v, s, n, NULL, 0, h, NULL, NULL,
	    &why) != 0);
}

/* Mode 5: a real receipt, then the input's edits. */
static void
fuzz_genuine(const uint8_t *d, size_t n)
{
	struct msr_merkle_frontier f;
	struct msr_note_checkpoint c;
	struct msr_note_receipt r, e;
	struct msr_merkle_nodes *s;
	uint8_t leaf[MSR_MERKLE_HASH_LEN];
	uint64_t i, size, index;
	char *note, *text;
	size_t len, nlen, k, j;
	unsigned level;

	if (n < 2)
		return;
	size = (uint64_t)d[0] % 40 + 1;
	index = (uint64_t)d[1] % size;
	d += 2;
	n -= 2;
	s = malloc(sizeof(*s));
	CHECK(s != NULL);
	msr_merkle_nodes_init(s);
	CHECK(msr_merkle_plan_inclusion(s, index, size) == 0);
	/* Leaf i is the single byte i; nodes are computed the slow way. */
	for (k = 0; k < s->n; k++) {
		struct msr_merkle_frontier g;

		msr_merkle_frontier_reset(&g);
		level = s->id[k].level;
		for (i = s->id[k].index << level;
		    i < (s->id[k].index + 1) << level; i++) {
			uint8_t b = (uint8_t)i;

			msr_merkle_leaf_hash(&b, 1, leaf);
			CHECK(msr_merkle_frontier_append(&g, leaf, NULL, NULL) == 0);
		}
		msr_merkle_frontier_root(&g, leaf);
		CHECK(msr_merkle_nodes_set(s, level, s->id[k].index, leaf) == 0);
	}
	msr_merkle_frontier_reset(&f);
	for (i = 0; i < size; i++) {
		uint8_t b = (uint8_t)i;

		msr_merkle_leaf_hash(&b, 1, leaf);
		CHECK(msr_merkle_frontier_append(&f, leaf, NULL, NULL) == 0);
	}
	memset(&c, 0, sizeof(c));
	memcpy(c.origin, signer.v.name, strlen(signer.v.name));
	c.size = size;
	msr_merkle_frontier_root(&f, c.root);
	CHECK(msr_note_checkpoint_sign(&signer, &c, &note, &nlen) == 0);

	memset(&r, 0, sizeof(r));
	r.index = index;
	r.note = note;
	r.note_len = nlen;
	CHECK(msr_merkle_prove_inclusion(index, size, msr_merkle_nodes_get, s,
	    r.proof, MSR_MERKLE_PROOF_MAX, &r.nproof) == 0);
	CHECK(msr_note_receipt_format(&r, &text, &len) == 0);
	{
		uint8_t b = (uint8_t)index;

		CHECK(msr_note_receipt_verify(&signer.v, text, len, &b, 1, NULL,
		    NULL, NULL, NULL) == 0);
		for (j = 0; j + 2 < n; j += 3)
			text[((size_t)d[j] << 8 | d[j + 1]) % len] ^= (char)d[j + 2];
		if (msr_note_receipt_verify(&signer.v, text, len, &b, 1, NULL, NULL,
		    NULL, NULL) == 0) {
			CHECK(msr_note_receipt_parse(&e, text, len, NULL) == 0);
			CHECK(e.index == r.index && e.nproof == r.nproof);
			CHECK(memcmp(e.proof, r.proof, r.nproof * MSR_MERKLE_HASH_LEN)
			    == 0);
			CHECK(e.note_len == nlen && memcmp(e.note, note, nlen) == 0);
			msr_note_receipt_clear(&e);
		}
	}
	free(text);
	free(note);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s;
	size_t n;

	setup();
	if (size < 1)
		return 0;
	s = (const char *)data + 1;
	n = size - 1;
	switch (data[0] % 6) {
	case 0:
		fuzz_verifier(s, n);
		break;
	case 1:
		fuzz_signer(s, n);
		break;
	case 2:
		fuzz_open(s, n);
		break;
	case 3:
		fuzz_checkpoint(s, n);
		break;
	case 4:
		fuzz_receipt(s, n);
		break;
	default:
		fuzz_genuine(data + 1, n);
		break;
	}
	return 0;
}
