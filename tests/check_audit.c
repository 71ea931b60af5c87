/*
 * check_audit.c — unit tests for the offline parts of the audit verifier
 * (server/audit_verify.c), on the Go sumdb/note and sumdb/tlog vectors:
 *
 * 1. msr_audit_open_checkpoint accepts the reference signed checkpoint and
 *    refuses it under another key, with a changed body, or with an origin that
 *    is not the key's name.
 * 2. Receipts (c2sp.org/tlog-proof) built for every leaf of the 8-leaf vector
 *    tree verify with the entry carried in "extra", with the entry given
 *    explicitly, and fail for a wrong entry, a wrong index, a mutated proof
 *    hash, or a checkpoint signed by another key.
 * 3. The streaming verifier (msr_av_*) on the same leaves: checkpoints at
 *    sizes 3 and 8 pass; a wrong root, a missing, repeated or altered entry, an
 *    entry beyond the newest checkpoint each fail and name the first bad
 *    entry; a saved checkpoint ("--since") passes when the log extends it and
 *    fails when the log was cut below it or rewritten under it.
 * 4. msr_note_checkpoint_load / msr_note_signer_load read files and refuse a
 *    checkpoint by another key; a missing file is reported as missing.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "msreg/audit_verify.h"
#include <unistd.h>
#include "msreg/merkle.h"
#include "msreg/note.h"

#define HLEN MSR_MERKLE_HASH_LEN

static json_t *vec;
static struct msr_note_signer signer;
static struct msr_note_verifier verifier;
static uint8_t leaves[8][32];
static size_t leaf_len[8];
static char *note;

static void
setup(void)
{
	json_t *sn, *lv;
	uint8_t seed[32];
	const char *vk;
	size_t i;

	ck_assert_int_ge(sodium_init(), 0);
	vec = msr_test_load_json("tlog-vectors.json");
	sn = json_object_get(vec, "signed_note");
	vk = json_string_value(json_object_get(sn, "verifier_key"));
	ck_assert_int_eq(msr_note_verifier_parse(&verifier, vk, strlen(vk)), 0);
	ck_assert_int_eq(sodium_hex2bin(seed, sizeof(seed),
	    json_string_value(json_object_get(sn, "ed25519_seed_hex")), 64, NULL, NULL, NULL), 0);
	ck_assert_int_eq(msr_note_signer_from_seed(&signer,
	    json_string_value(json_object_get(sn, "key_name")), seed), 0);
	note = strdup(json_string_value(json_object_get(sn, "note")));
	lv = json_object_get(vec, "leaves_hex");
	for (i = 0; i < 8; i++) {
		const char *hx = json_string_value(json_array_get(lv, i));

		ck_assert_int_eq(sodium_hex2bin(leaves[i], sizeof(leaves[i]), hx, strlen(hx), NULL,
		    &leaf_len[i], NULL), 0);
	}
}

static void
teardown(void)
{
	free(note);
	msr_note_signer_wipe(&signer);
	json_decref(vec);
}

START_TEST(checkpoint_open)
{
	struct msr_note_checkpoint cp;
	struct msr_note_signer other;
	struct msr_note_checkpoint c2;
	char *forged = NULL, *bad;
	size_t len;

	ck_assert_int_eq(msr_audit_open_checkpoint(&verifier, note, &cp), 0);
	ck_assert_uint_eq(cp.size, 8);
	ck_assert_str_eq(cp.origin, "registry.example/msreg");

	/* a body change breaks the signature */
	bad = strdup(note);
	bad[strlen("registry.example/msreg\n")] = '9';
	ck_assert_int_ne(msr_audit_open_checkpoint(&verifier, bad, &cp), 0);
	free(bad);

	/* another key with the same name: refused */
	ck_assert_int_eq(msr_note_signer_generate(&other, "registry.example/msreg"), 0);
	memset(&c2, 0, sizeof(c2));
	snprintf(c2.origin, sizeof(c2.origin), "registry.example/msreg");
	c2.size = 8;
	ck_assert_int_eq(msr_note_checkpoint_sign(&other, &c2, &forged, &len), 0);
	ck_assert_int_ne(msr_audit_open_checkpoint(&verifier, forged, &cp), 0);
	free(forged);
	msr_note_signer_wipe(&other);

	/* our key, but an origin that is not the key's name */
	snprintf(c2.origin, sizeof(c2.origin), "elsewhere.example/log");
	ck_assert_int_eq(msr_note_checkpoint_sign(&signer, &c2, &forged, &len), 0);
	ck_assert_int_ne(msr_audit_open_checkpoint(&verifier, forged, &cp), 0);
	free(forged);
}
END_TEST

/* Leaf-hash getter over the 8 vector leaves. */
static int
get(void *ctx, unsigned level, uint64_t index, uint8_t out[HLEN])
{
	uint8_t a[HLEN], b[HLEN];

	(void)ctx;
	if (level == 0) {
		msr_merkle_leaf_hash(leaves[index], leaf_len[index], out);
		return 0;
	}
	get(ctx, level - 1, 2 * index, a);
	get(ctx, level - 1, 2 * index + 1, b);
	msr_merkle_node_hash(a, b, out);
	return 0;
}

static char *
receipt(uint64_t index, uint64_t claimed, const char *cpnote, int mutate, int with_extra)
{
	struct msr_note_receipt r;
	char *text = NULL;
	size_t len;

	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(msr_merkle_prove_inclusion(index, 8, get, NULL, r.proof,
	    MSR_MERKLE_PROOF_MAX, &r.nproof), 0);
	if (mutate)
		r.proof[0][5] ^= 1;
	r.index = claimed;
	if (with_extra) {
		r.extra = leaves[index];
		r.extra_len = leaf_len[index];
	}
	r.note = cpnote;
	r.note_len = strlen(cpnote);
	ck_assert_int_eq(msr_note_receipt_format(&r, &text, &len), 0);
	return text;
}

START_TEST(receipts)
{
	struct msr_audit_report rep;

	for (uint64_t i = 0; i < 8; i++) {
		char *t;

		t = receipt(i, i, note, 0, 1);
		/* (leaf 0 is empty: an empty "extra" is not written, so it must be given) */
		ck_assert_msg(msr_audit_receipt_verify(t, &verifier, NULL, 0, &rep) ==
		    (leaf_len[i] > 0 ? 0 : -1), "leaf %d: %s", (int)i, rep.message);
		/* explicit entry, equal to the carried one */
		ck_assert_int_eq(msr_audit_receipt_verify(t, &verifier, leaves[i], leaf_len[i],
		    &rep), 0);
		/* a different entry is refused */
		ck_assert_int_ne(msr_audit_receipt_verify(t, &verifier, leaves[(i + 1) % 8],
		    leaf_len[(i + 1) % 8], &rep), 0);
		free(t);

		/* no extra: the entry must be given */
		t = receipt(i, i, note, 0, 0);
		ck_assert_int_ne(msr_audit_receipt_verify(t, &verifier, NULL, 0, &rep), 0);
		ck_assert_int_eq(msr_audit_receipt_verify(t, &verifier, leaves[i], leaf_len[i],
		    &rep), 0);
		free(t);

		t = receipt(i, (i + 1) % 8, note, 0, 1);	/* wrong index */
		ck_assert_int_ne(msr_audit_receipt_verify(t, &verifier, NULL, 0, &rep), 0);
		free(t);
		t = receipt(i, i, note, 1, 1);			/* mutated proof */
		ck_assert_int_ne(msr_audit_receipt_verify(t, &verifier, NULL, 0, &rep), 0);
		free(t);
	}
	ck_assert_int_ne(msr_audit_receipt_verify("not a receipt\n", &verifier, NULL, 0, &rep), 0);
}
END_TEST

/* Root of the first n vector leaves. */
static void
root_of(uint64_t n, uint8_t out[HLEN])
{
	ck_assert_int_eq(msr_merkle_root(n, get, NULL, out), 0);
}

/* Feed leaves [0, n) (order[] if given) with stored hashes; 0 when verified. */
static int
feed(struct msr_av *v, const uint64_t *order, size_t n, int alter)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t k = order != NULL ? order[i] : i;
		uint8_t h[HLEN];

		msr_merkle_leaf_hash(leaves[k], leaf_len[k], h);
		if (alter && k == 5)
			h[0] ^= 1;	/* stored hash disagrees with the entry */
		if (msr_av_entry(v, k, leaves[k], leaf_len[k], 1, h) != 0)
			return -1;
	}
	return msr_av_finish(v);
}

START_TEST(streaming_verifier)
{
	struct msr_av_checkpoint cps[2];
	struct msr_audit_report rep;
	struct msr_note_checkpoint since;
	struct msr_av v;
	const uint64_t gap[] = { 0, 1, 2, 4, 5, 6, 7 }, dup[] = { 0, 1, 1, 2 };

	cps[0].size = 3;
	root_of(3, cps[0].root);
	cps[1].size = 8;
	root_of(8, cps[1].root);

	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 2, 8, &rep);
	ck_assert_msg(feed(&v, NULL, 8, 0) == 0, "%s", rep.message);
	ck_assert_uint_eq(rep.entries, 8);
	ck_assert_uint_eq(rep.tree_size, 8);
	msr_av_free(&v);

	/* a checkpoint root that the entries do not give */
	cps[0].root[0] ^= 1;
	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 2, 8, &rep);
	ck_assert_int_ne(feed(&v, NULL, 8, 0), 0);
	ck_assert_int_eq(rep.bad_index, 0);
	msr_av_free(&v);
	cps[0].root[0] ^= 1;

	/* a missing entry, a repeated one, an altered one, a short log, one too many */
	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 2, 8, &rep);
	ck_assert_int_ne(feed(&v, gap, 7, 0), 0);
	ck_assert_int_eq(rep.bad_index, 3);
	msr_av_free(&v);
	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 2, 8, &rep);
	ck_assert_int_ne(feed(&v, dup, 4, 0), 0);
	ck_assert_int_eq(rep.bad_index, 2);
	msr_av_free(&v);
	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 2, 8, &rep);
	ck_assert_int_ne(feed(&v, NULL, 8, 1), 0);
	ck_assert_int_eq(rep.bad_index, 5);
	ck_assert_ptr_nonnull(strstr(rep.message, "altered"));
	msr_av_free(&v);
	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 2, 8, &rep);
	ck_assert_int_ne(feed(&v, NULL, 7, 0), 0);
	ck_assert_int_eq(rep.bad_index, 7);
	msr_av_free(&v);
	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 1, 3, &rep);
	ck_assert_int_ne(feed(&v, NULL, 4, 0), 0);
	ck_assert_int_eq(rep.bad_index, 3);
	msr_av_free(&v);

	/* --since: extended, cut below, rewritten under */
	memset(&since, 0, sizeof(since));
	since.size = 5;
	root_of(5, since.root);
	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 2, 8, &rep);
	ck_assert_int_eq(msr_av_since(&v, &since), 0);
	ck_assert_msg(feed(&v, NULL, 8, 0) == 0, "%s", rep.message);
	msr_av_free(&v);
	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 1, 3, &rep);
	ck_assert_int_ne(msr_av_since(&v, &since), 0);
	ck_assert_ptr_nonnull(strstr(rep.message, "shrank"));
	msr_av_free(&v);
	since.root[3] ^= 1;
	msr_audit_report_init(&rep);
	msr_av_init(&v, cps, 2, 8, &rep);
	ck_assert_int_eq(msr_av_since(&v, &since), 0);
	ck_assert_int_ne(feed(&v, NULL, 8, 0), 0);
	ck_assert_ptr_nonnull(strstr(rep.message, "does not extend"));
	msr_av_free(&v);
}
END_TEST

START_TEST(files)
{
	char path[] = "/tmp/check_audit_XXXXXX";
	struct msr_note_checkpoint cp;
	struct msr_note_signer other, loaded;
	char *got = NULL, *forged = NULL, err[512], key[MSR_NOTE_KEY_TEXT_MAX];
	int fd = mkstemp(path), missing = -1;
	size_t len;
	FILE *f;

	ck_assert_int_ge(fd, 0);
	close(fd);
	f = fopen(path, "w");
	fputs(note, f);
	fclose(f);
	ck_assert_int_eq(msr_note_checkpoint_load(path, &verifier, &got, &cp, &missing, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(missing, 0);
	ck_assert_uint_eq(cp.size, 8);
	ck_assert_str_eq(got, note);
	free(got);
	/* signed by another key of the same name */
	ck_assert_int_eq(msr_note_signer_generate(&other, "registry.example/msreg"), 0);
	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "registry.example/msreg");
	cp.size = 8;
	ck_assert_int_eq(msr_note_checkpoint_sign(&other, &cp, &forged, &len), 0);
	f = fopen(path, "w");
	fputs(forged, f);
	fclose(f);
	free(forged);
	ck_assert_int_ne(msr_note_checkpoint_load(path, &verifier, &got, &cp, &missing, err,
	    sizeof(err)), 0);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(missing, 0);
	/* a signer key file */
	ck_assert_int_eq(msr_note_signer_format(&other, key, sizeof(key)), 0);
	f = fopen(path, "w");
	fputs(key, f);
	fputs("\n", f);
	fclose(f);
	ck_assert_int_eq(msr_note_signer_load(path, &loaded, err, sizeof(err)), 0);
	ck_assert_mem_eq(loaded.v.pub, other.v.pub, sizeof(loaded.v.pub));
	msr_note_signer_wipe(&loaded);
	msr_note_signer_wipe(&other);
	unlink(path);
	ck_assert_int_ne(msr_note_checkpoint_load(path, &verifier, &got, &cp, &missing, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(missing, 1);
	ck_assert_int_ne(msr_note_signer_load(path, &loaded, err, sizeof(err)), 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("verify");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, checkpoint_open);
	tcase_add_test(tc, receipts);
	tcase_add_test(tc, streaming_verifier);
	tcase_add_test(tc, files);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
