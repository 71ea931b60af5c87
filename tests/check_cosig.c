/*
 * check_cosig.c — cosignature/v1 keys and signatures (cosig.c) and tile paths
 * (tile.c): the key id is the spec's formula computed independently here; keys
 * round-trip and refuse the log key type (0x01); a cosignature verifies only
 * over its exact message (timestamp, text, key); tile index spellings follow
 * c2sp.org/tlog-tiles one-to-one.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "msreg/cosig.h"
#include "msreg/note.h"
#include "msreg/witness.h"

static const char TEXT[] = "msreg.example/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

static char *
cosigned_note(const struct msr_cosig_signer *s, uint64_t t, const char *text)
{
	char line[MSR_COSIG_LINE_MAX], *out;

	ck_assert_int_eq(msr_cosig_sign(s, text, strlen(text), t, line, sizeof(line)), 0);
	out = malloc(strlen(text) + 1 + strlen(line) + 1);
	sprintf(out, "%s\n%s", text, line);
	return out;
}

START_TEST(key_id_is_the_spec_formula)
{
	struct msr_cosig_signer s;
	crypto_hash_sha256_state st;
	uint8_t h[32], sep[2] = { '\n', 0x04 };
	uint32_t want;

	ck_assert_int_eq(msr_cosig_signer_generate(&s, "witness.example/w1"), 0);
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)"witness.example/w1", 18);
	crypto_hash_sha256_update(&st, sep, 2);
	crypto_hash_sha256_update(&st, s.v.pub, 32);
	crypto_hash_sha256_final(&st, h);
	want = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	ck_assert_uint_eq(s.v.key_id, want);
	msr_cosig_signer_wipe(&s);
}
END_TEST

START_TEST(keys_round_trip)
{
	struct msr_cosig_signer s, s2;
	struct msr_cosig_verifier v;
	struct msr_note_signer ns;
	char key[MSR_COSIG_KEY_TEXT_MAX], vkey[MSR_COSIG_KEY_TEXT_MAX], nkey[MSR_NOTE_KEY_TEXT_MAX];

	ck_assert_int_eq(msr_cosig_signer_generate(&s, "w.example/a"), 0);
	ck_assert_int_eq(msr_cosig_signer_format(&s, key, sizeof(key)), 0);
	ck_assert_int_eq(msr_cosig_verifier_format(&s.v, vkey, sizeof(vkey)), 0);
	ck_assert_int_eq(strncmp(key, "PRIVATE+KEY+w.example/a+", 24), 0);
	ck_assert_int_eq(msr_cosig_signer_parse(&s2, key, strlen(key)), 0);
	ck_assert_mem_eq(s2.sk, s.sk, 64);
	ck_assert_int_eq(msr_cosig_verifier_parse(&v, vkey, strlen(vkey)), 0);
	ck_assert_mem_eq(v.pub, s.v.pub, 32);
	/* base64 of 0x04 || key starts with "B" */
	ck_assert_ptr_nonnull(strstr(vkey, "+B"));
	/* a log key (type 0x01) is not a witness key, and vice versa */
	ck_assert_int_eq(msr_note_signer_generate(&ns, "w.example/a"), 0);
	ck_assert_int_eq(msr_note_signer_format(&ns, nkey, sizeof(nkey)), 0);
	ck_assert_int_ne(msr_cosig_signer_parse(&s2, nkey, strlen(nkey)), 0);
	ck_assert_int_ne(msr_note_signer_parse(&ns, key, strlen(key)), 0);
	/* a wrong key id is refused */
	vkey[strlen("w.example/a+")] ^= 1;
	ck_assert_int_ne(msr_cosig_verifier_parse(&v, vkey, strlen(vkey)), 0);
	ck_assert_int_ne(msr_cosig_verifier_parse(&v, "", 0), 0);
	ck_assert_int_ne(msr_cosig_signer_generate(&s2, "has space"), 0);
	msr_cosig_signer_wipe(&s);
	msr_cosig_signer_wipe(&s2);
	msr_note_signer_wipe(&ns);
}
END_TEST

START_TEST(signatures_bind_everything)
{
	struct msr_cosig_signer s, other;
	char *note, *p;
	uint64_t t = 0;
	uint8_t blob[76];
	size_t got;

	ck_assert_int_eq(msr_cosig_signer_generate(&s, "w.example/a"), 0);
	ck_assert_int_eq(msr_cosig_signer_generate(&other, "w.example/a"), 0);
	note = cosigned_note(&s, 1679315147, TEXT);
	ck_assert_int_eq(msr_cosig_verify(&s.v, note, strlen(note), &t), 0);
	ck_assert_uint_eq(t, 1679315147);
	/* the blob is key id || u64 BE time || signature over the spec's message */
	p = strstr(note, "w.example/a ") + 12;
	ck_assert_int_eq(sodium_base642bin(blob, sizeof(blob), p, strcspn(p, "\n"), NULL, &got,
	    NULL, sodium_base64_VARIANT_ORIGINAL), 0);
	ck_assert_uint_eq(got, 76);
	ck_assert_uint_eq((uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
	    (uint32_t)blob[2] << 8 | blob[3], s.v.key_id);
	ck_assert_uint_eq(blob[8], (1679315147 >> 24) & 0xff);
	{
		char msg[256];
		int n = snprintf(msg, sizeof(msg), "cosignature/v1\ntime 1679315147\n%s", TEXT);

		ck_assert_int_eq(crypto_sign_verify_detached(blob + 12, (uint8_t *)msg,
		    (unsigned long long)n, s.v.pub), 0);
	}
	/* another key with the same name: no cosignature by it */
	ck_assert_int_ne(msr_cosig_verify(&other.v, note, strlen(note), NULL), 0);
	/* changed text */
	note[20] = '6';
	ck_assert_int_ne(msr_cosig_verify(&s.v, note, strlen(note), NULL), 0);
	free(note);
	/* a log's Ed25519 signature line by the same name is ignored */
	{
		struct msr_note_signer ns;
		char *signed_note = NULL, *both;
		size_t len;

		ck_assert_int_eq(msr_note_signer_generate(&ns, "w.example/a"), 0);
		ck_assert_int_eq(msr_note_sign(&ns, TEXT, strlen(TEXT), &signed_note, &len), 0);
		note = cosigned_note(&s, 7, TEXT);
		both = malloc(len + strlen(note));
		sprintf(both, "%s%s", signed_note, strstr(note, "\n\n") + 2);
		ck_assert_int_eq(msr_cosig_verify(&s.v, both, strlen(both), &t), 0);
		ck_assert_uint_eq(t, 7);
		msr_note_signer_wipe(&ns);
		free(signed_note);
		free(both);
		free(note);
	}
	msr_cosig_signer_wipe(&s);
	msr_cosig_signer_wipe(&other);
}
END_TEST

START_TEST(tile_paths)
{
	static const struct { uint64_t n; unsigned w; const char *s; } ok[] = {
		{ 0, 256, "000" }, { 5, 7, "005.p/7" }, { 999, 256, "999" },
		{ 1000, 256, "x001/000" }, { 1234067, 256, "x001/x234/067" },
		{ 1234067, 255, "x001/x234/067.p/255" }, { 42, 1, "042.p/1" },
	};
	static const char *const bad[] = { "", "0", "00", "0000", "x000/005", "x1/000",
		"001/002", "005.p/0", "005.p/256", "005.p/01", "005.p/", "005.q/5", "x001",
		"x001/", "abc", "005.p/1000", "x001/x002/x003/x004/x005/x006/007" };
	char buf[MSR_TILE_PATH_MAX];
	uint64_t n;
	unsigned w;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_int_eq(msr_tile_format_index(ok[i].n, ok[i].w, buf, sizeof(buf)), 0);
		ck_assert_str_eq(buf, ok[i].s);
		ck_assert_int_eq(msr_tile_parse_index(ok[i].s, &n, &w), 0);
		ck_assert_uint_eq(n, ok[i].n);
		ck_assert_uint_eq(w, ok[i].w);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(msr_tile_parse_index(bad[i], &n, &w) != 0, "accepted \"%s\"", bad[i]);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cosig");
	TCase *tc = tcase_create("cosig");

	if (sodium_init() < 0)
		return 1;
	tcase_add_test(tc, key_id_is_the_spec_formula);
	tcase_add_test(tc, keys_round_trip);
	tcase_add_test(tc, signatures_bind_everything);
	tcase_add_test(tc, tile_paths);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
