/*
 * check_note.c — unit tests for server/note.c.
 *
 * The signed_note vector of tests/data/tlog-vectors.json (Go's sumdb/note): keys
 * derived from the seed, formatted and parsed; the note reproduced byte for byte
 * (Ed25519 is deterministic) and opened; tampered notes rejected. Receipts for
 * the vector tree are assembled from the vector inclusion proofs and the vector
 * note and verified offline. Then syntax edges of keys, notes, checkpoints and
 * receipts, and receipts for a larger tree: every index, tampered every way.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "msreg/common.h"
#include "msreg/merkle.h"
#include "msreg/note.h"

#define HLEN MSR_MERKLE_HASH_LEN

struct vec {
	json_t		*root;
	const char	*name, *body, *note, *signer_key, *verifier_key;
	uint8_t		seed[32];
	uint8_t		pub[32];
};

static void
vec_load(struct vec *v)
{
	json_t *sn;
	size_t n;

	v->root = msr_test_load_json("tlog-vectors.json");
	sn = json_object_get(v->root, "signed_note");
	ck_assert_ptr_nonnull(sn);
	v->name = json_string_value(json_object_get(sn, "key_name"));
	v->body = json_string_value(json_object_get(sn, "body"));
	v->note = json_string_value(json_object_get(sn, "note"));
	v->signer_key = json_string_value(json_object_get(sn, "signer_key"));
	v->verifier_key = json_string_value(json_object_get(sn, "verifier_key"));
	ck_assert_ptr_nonnull(v->name);
	ck_assert_ptr_nonnull(v->body);
	ck_assert_ptr_nonnull(v->note);
	ck_assert_ptr_nonnull(v->signer_key);
	ck_assert_ptr_nonnull(v->verifier_key);
	ck_assert_int_eq(sodium_hex2bin(v->seed, 32,
	    json_string_value(json_object_get(sn, "ed25519_seed_hex")), 64, NULL,
	    &n, NULL), 0);
	ck_assert_uint_eq(n, 32);
	ck_assert_int_eq(sodium_hex2bin(v->pub, 32,
	    json_string_value(json_object_get(sn, "public_key_hex")), 64, NULL,
	    &n, NULL), 0);
	ck_assert_uint_eq(n, 32);
}

static void
b64_hash(const char *s, uint8_t out[HLEN])
{
	size_t n = 0;

	ck_assert_int_eq(sodium_base642bin(out, HLEN, s, strlen(s), NULL, &n, NULL,
	    sodium_base64_VARIANT_ORIGINAL), 0);
	ck_assert_uint_eq(n, HLEN);
}

/* Open a NUL-terminated note; the reason (or NULL) in *why. */
static int
open_str(const struct msr_note_verifier *v, const char *note, const char **why)
{
	size_t text_len;

	*why = NULL;
	return msr_note_open(v, note, strlen(note), &text_len, why);
}

/* Copy of s with the first occurrence of `from` replaced by `to`. */
static char *
replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	size_t a, b, c;
	char *r;

	ck_assert_ptr_nonnull(at);
	a = (size_t)(at - s);
	b = strlen(to);
	c = strlen(at + strlen(from));
	r = malloc(a + b + c + 1);
	ck_assert_ptr_nonnull(r);
	memcpy(r, s, a);
	memcpy(r + a, to, b);
	memcpy(r + a + b, at + strlen(from), c + 1);
	return r;
}

static char *
concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *r = malloc(la + lb + 1);

	ck_assert_ptr_nonnull(r);
	memcpy(r, a, la);
	memcpy(r + la, b, lb + 1);
	return r;
}

/* ---- the vector key and note ------------------------------------------ */

START_TEST(test_vector_keys)
{
	struct msr_note_signer s, s2;
	struct msr_note_verifier v;
	char buf[MSR_NOTE_KEY_TEXT_MAX];
	struct vec vec;

	vec_load(&vec);
	ck_assert_int_eq(msr_note_signer_from_seed(&s, vec.name, vec.seed), 0);
	ck_assert_mem_eq(s.v.pub, vec.pub, 32);
	ck_assert_str_eq(s.v.name, vec.name);
	ck_assert_uint_eq(s.v.key_id, 0xd8ec1030u);
	ck_assert_uint_eq(msr_note_key_id(vec.name, strlen(vec.name), vec.pub),
	    0xd8ec1030u);

	ck_assert_int_eq(msr_note_signer_format(&s, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, vec.signer_key);
	sodium_memzero(buf, sizeof(buf));
	ck_assert_int_eq(msr_note_verifier_format(&s.v, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, vec.verifier_key);

	ck_assert_int_eq(msr_note_signer_parse(&s2, vec.signer_key,
	    strlen(vec.signer_key)), 0);
	ck_assert_mem_eq(&s2, &s, sizeof(s));
	ck_assert_int_eq(msr_note_verifier_parse(&v, vec.verifier_key,
	    strlen(vec.verifier_key)), 0);
	ck_assert_mem_eq(&v, &s.v, sizeof(v));

	/* One trailing newline, as read from a key file, is fine. */
	snprintf(buf, sizeof(buf), "%s\n", vec.verifier_key);
	ck_assert_int_eq(msr_note_verifier_parse(&v, buf, strlen(buf)), 0);
	ck_assert_mem_eq(&v, &s.v, sizeof(v));
	snprintf(buf, sizeof(buf), "%s\n\n", vec.verifier_key);
	ck_assert_int_eq(msr_note_verifier_parse(&v, buf, strlen(buf)), -1);
	snprintf(buf, sizeof(buf), "%s\n", vec.signer_key);
	ck_assert_int_eq(msr_note_signer_parse(&s2, buf, strlen(buf)), 0);
	ck_assert_mem_eq(&s2, &s, sizeof(s));
	sodium_memzero(buf, sizeof(buf));

	/* Too small a buffer. */
	ck_assert_int_eq(msr_note_verifier_format(&s.v, buf, strlen(vec.verifier_key)),
	    -1);
	ck_assert_int_eq(msr_note_verifier_format(&s.v, buf,
	    strlen(vec.verifier_key) + 1), 0);

	msr_note_signer_wipe(&s);
	msr_note_signer_wipe(&s2);
	memset(&v, 0, sizeof(v));
	ck_assert_mem_eq(&s.v, &v, sizeof(v));
	json_decref(vec.root);
}
END_TEST

START_TEST(test_vector_sign_open)
{
	struct msr_note_signer s, other;
	struct msr_note_verifier v, ov;
	struct vec vec;
	const char *why;
	char *note, *bad, *two;
	size_t len, text_len;

	vec_load(&vec);
	ck_assert_int_eq(msr_note_signer_from_seed(&s, vec.name, vec.seed), 0);
	ck_assert_int_eq(msr_note_verifier_parse(&v, vec.verifier_key,
	    strlen(vec.verifier_key)), 0);

	/* Byte for byte what Go produced. */
	ck_assert_int_eq(msr_note_sign(&s, vec.body, strlen(vec.body), &note, &len),
	    0);
	ck_assert_uint_eq(len, strlen(vec.note));
	ck_assert_str_eq(note, vec.note);
	free(note);

	ck_assert_int_eq(msr_note_open(&v, vec.note, strlen(vec.note), &text_len,
	    &why), 0);
	ck_assert_uint_eq(text_len, strlen(vec.body));
	ck_assert_int_eq(memcmp(vec.note, vec.body, text_len), 0);

	/* Tampered text: the signature by the known key fails. */
	bad = replace(vec.note, "\n8\n", "\n9\n");
	ck_assert_int_eq(open_str(&v, bad, &why), -1);
	ck_assert_str_eq(why, "invalid signature");
	free(bad);
	/* Tampered signature. */
	bad = replace(vec.note, "2OwQMOJw", "2OwQMOJx");
	ck_assert_int_eq(open_str(&v, bad, &why), -1);
	ck_assert_str_eq(why, "invalid signature");
	free(bad);
	/* Tampered key id (the line is then by an unknown key). */
	bad = replace(vec.note, "2OwQMOJw", "2OwQMOJ3");
	ck_assert_int_eq(open_str(&v, bad, &why), -1);
	free(bad);
	bad = replace(vec.note, "2OwQ", "3OwQ");
	ck_assert_int_eq(open_str(&v, bad, &why), -1);
	ck_assert_str_eq(why, "no signature by the expected key");
	free(bad);
	/* Renamed signer. */
	bad = replace(vec.note, "— registry.example/msreg ", "— registry.example/other ");
	ck_assert_int_eq(open_str(&v, bad, &why), -1);
	ck_assert_str_eq(why, "no signature by the expected key");
	free(bad);
	/* A hyphen is not an em dash. */
	bad = replace(vec.note, "— ", "- ");
	ck_assert_int_eq(open_str(&v, bad, &why), -1);
	ck_assert_str_eq(why, "malformed note: bad signature line");
	free(bad);

	/* Another key with the same name: different id, its verifier ignores it. */
	ck_assert_int_eq(msr_note_signer_generate(&other, vec.name), 0);
	ck_assert_uint_ne(other.v.key_id, v.key_id);
	ov = other.v;
	ck_assert_int_eq(open_str(&ov, vec.note, &why), -1);
	ck_assert_str_eq(why, "no signature by the expected key");

	/* Cosigned: both keys' lines; each verifier finds its own. */
	ck_assert_int_eq(msr_note_sign(&other, vec.body, strlen(vec.body), &note,
	    &len), 0);
	two = concat(vec.note, note + strlen(vec.body) + 1);
	ck_assert_int_eq(open_str(&v, two, &why), 0);
	ck_assert_int_eq(open_str(&ov, two, &why), 0);
	free(two);
	two = concat(note, vec.note + strlen(vec.body) + 1);
	ck_assert_int_eq(open_str(&v, two, &why), 0);
	ck_assert_int_eq(open_str(&ov, two, &why), 0);
	free(two);
	free(note);

	msr_note_signer_wipe(&s);
	msr_note_signer_wipe(&other);
	json_decref(vec.root);
}
END_TEST

/* ---- keys ------------------------------------------------------------- */

START_TEST(test_names)
{
	char big[MSR_NOTE_NAME_MAX + 2];

	ck_assert_int_eq(msr_note_valid_name("example.com/log", 15), 1);
	ck_assert_int_eq(msr_note_valid_name("caf\xc3\xa9", 5), 1);
	ck_assert_int_eq(msr_note_valid_name("\xe2\x80\x94", 3), 1);
	ck_assert_int_eq(msr_note_valid_name("a\x7f", 2), 1);
	ck_assert_int_eq(msr_note_valid_name("", 0), 0);
	ck_assert_int_eq(msr_note_valid_name("a b", 3), 0);
	ck_assert_int_eq(msr_note_valid_name("a+b", 3), 0);
	ck_assert_int_eq(msr_note_valid_name("a\tb", 3), 0);
	ck_assert_int_eq(msr_note_valid_name("a\x01", 2), 0);
	ck_assert_int_eq(msr_note_valid_name("a\0b", 3), 0);
	ck_assert_int_eq(msr_note_valid_name("a\xc2\xa0", 3), 0);	/* NBSP */
	ck_assert_int_eq(msr_note_valid_name("a\xc2\x85", 3), 0);	/* NEL */
	ck_assert_int_eq(msr_note_valid_name("a\xe2\x80\x80", 4), 0);	/* U+2000 */
	ck_assert_int_eq(msr_note_valid_name("a\xe2\x80\x8a", 4), 0);	/* U+200A */
	ck_assert_int_eq(msr_note_valid_name("a\xe2\x80\x8b", 4), 1);	/* U+200B */
	ck_assert_int_eq(msr_note_valid_name("a\xe3\x80\x80", 4), 0);	/* U+3000 */
	ck_assert_int_eq(msr_note_valid_name("\xff", 1), 0);
	ck_assert_int_eq(msr_note_valid_name("\xc0\xaf", 2), 0);	/* overlong */
	ck_assert_int_eq(msr_note_valid_name("\xed\xa0\x80", 3), 0);	/* surrogate */
	ck_assert_int_eq(msr_note_valid_name("\xf4\x90\x80\x80", 4), 0);
	ck_assert_int_eq(msr_note_valid_name("\xe2\x80", 2), 0);	/* truncated */
	memset(big, 'a', sizeof(big));
	ck_assert_int_eq(msr_note_valid_name(big, MSR_NOTE_NAME_MAX), 1);
	ck_assert_int_eq(msr_note_valid_name(big, MSR_NOTE_NAME_MAX + 1), 0);
}
END_TEST

START_TEST(test_key_parse_errors)
{
	static const char *bad_verifiers[] = {
		"",
		"registry.example/msreg",
		"registry.example/msreg+d8ec1030",
		"registry.example/msreg+d8ec1030+",
		"+d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
		"registry.example/msreg+d8ec1031+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
		"registry.example/msre+d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
		"registry.example/msreg+d8ec103+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
		"registry.example/msreg+0d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
		"registry.example/msreg+d8ec103g+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
		"registry.example/msreg+d8ec1030+Anm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
		"registry.example/msreg+d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZ",
		"registry.example/msreg+d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk=",
		"registry.example/msreg+d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZl",
		"registry.example/msreg+d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk ",
		"registry.example/msreg+d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk\r\n",
		"registry example+d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
		"PRIVATE+KEY+registry.example/msreg+d8ec1030+AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
	};
	static const char *bad_signers[] = {
		"",
		"PRIVATE+KEY+",
		"PRIVATE+KEY+registry.example/msreg+d8ec1030+",
		"PRIVATE+KEY+registry.example/msreg+d8ec1031+AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
		"PRIVATE+KEY+registry.example/msrex+d8ec1030+AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
		"PRIVATE+KEY+registry.example/msreg+d8ec1030+AgECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
		"PRIVATE+KEY+registry.example/msreg+d8ec1030+AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8h",
		"PRIVATE+KEY+registry.example/msreg+d8ec1030+AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
		"PRIVATE+KEZ+registry.example/msreg+d8ec1030+AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
		"private+key+registry.example/msreg+d8ec1030+AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
		"registry.example/msreg+d8ec1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
	};
	struct msr_note_verifier v, zero_v;
	struct msr_note_signer s, zero_s;
	size_t i;

	memset(&zero_v, 0, sizeof(zero_v));
	memset(&zero_s, 0, sizeof(zero_s));
	for (i = 0; i < MSR_ARRAY_LEN(bad_verifiers); i++) {
		memset(&v, 0x5a, sizeof(v));
		ck_assert_msg(msr_note_verifier_parse(&v, bad_verifiers[i],
		    strlen(bad_verifiers[i])) == -1, "accepted %s", bad_verifiers[i]);
		ck_assert_mem_eq(&v, &zero_v, sizeof(v));
	}
	for (i = 0; i < MSR_ARRAY_LEN(bad_signers); i++) {
		memset(&s, 0x5a, sizeof(s));
		ck_assert_msg(msr_note_signer_parse(&s, bad_signers[i],
		    strlen(bad_signers[i])) == -1, "accepted %s", bad_signers[i]);
		ck_assert_mem_eq(&s, &zero_s, sizeof(s));
	}
	/* Go's parser takes the key id in either case; we write it lower case. */
	ck_assert_int_eq(msr_note_verifier_parse(&v,
	    "registry.example/msreg+D8EC1030+AXm1Vi6P5lT5QHixEuipi6eQH4U65pW+1+DjkQutBJZk",
	    76), 0);
	ck_assert_uint_eq(v.key_id, 0xd8ec1030u);
	/* Bad names refuse to make keys. */
	ck_assert_int_eq(msr_note_signer_generate(&s, "a b"), -1);
	ck_assert_int_eq(msr_note_signer_generate(&s, ""), -1);
	ck_assert_int_eq(msr_note_signer_generate(&s, "a+b"), -1);
}
END_TEST

START_TEST(test_generate)
{
	struct msr_note_signer a, b, p;
	struct msr_note_verifier v;
	char text[MSR_NOTE_KEY_TEXT_MAX], *note;
	const char *why;
	size_t len, text_len;

	ck_assert_int_eq(msr_note_signer_generate(&a, "example.com/log42"), 0);
	ck_assert_int_eq(msr_note_signer_generate(&b, "example.com/log42"), 0);
	ck_assert_int_ne(memcmp(a.sk, b.sk, sizeof(a.sk)), 0);
	ck_assert_uint_eq(a.v.key_id, msr_note_key_id(a.v.name, strlen(a.v.name),
	    a.v.pub));

	ck_assert_int_eq(msr_note_signer_format(&a, text, sizeof(text)), 0);
	ck_assert_int_eq(msr_note_signer_parse(&p, text, strlen(text)), 0);
	sodium_memzero(text, sizeof(text));
	ck_assert_mem_eq(&p, &a, sizeof(a));
	ck_assert_int_eq(msr_note_verifier_format(&a.v, text, sizeof(text)), 0);
	ck_assert_int_eq(msr_note_verifier_parse(&v, text, strlen(text)), 0);
	ck_assert_mem_eq(&v, &a.v, sizeof(v));

	/* Texts may contain blank lines; the last one separates the signatures. */
	ck_assert_int_eq(msr_note_sign(&a, "x\n\ny\n\n", 6, &note, &len), 0);
	ck_assert_int_eq(msr_note_open(&v, note, len, &text_len, &why), 0);
	ck_assert_uint_eq(text_len, 6);
	free(note);
	/* Unsignable texts. */
	ck_assert_int_eq(msr_note_sign(&a, "", 0, &note, &len), -1);
	ck_assert_int_eq(msr_note_sign(&a, "x", 1, &note, &len), -1);
	ck_assert_int_eq(msr_note_sign(&a, "x\ty\n", 4, &note, &len), -1);
	ck_assert_int_eq(msr_note_sign(&a, "x\0y\n", 4, &note, &len), -1);
	ck_assert_int_eq(msr_note_sign(&a, "\xff\n", 2, &note, &len), -1);

	msr_note_signer_wipe(&a);
	msr_note_signer_wipe(&b);
	msr_note_signer_wipe(&p);
}
END_TEST

/* ---- note syntax ------------------------------------------------------ */

START_TEST(test_note_malformed)
{
	struct msr_note_signer s;
	struct vec vec;
	const char *why;
	char *bad, *many, line[256];
	size_t i, pos, sl;

	vec_load(&vec);
	ck_assert_int_eq(msr_note_signer_from_seed(&s, vec.name, vec.seed), 0);

#define REJECT(text) do {						\
	ck_assert_msg(open_str(&s.v, (text), &why) == -1, "accepted");	\
	ck_assert_ptr_nonnull(why);					\
} while (0)

	REJECT("");
	REJECT("\n");
	REJECT("\n\n");
	REJECT(vec.body);
	/* No blank line before the signature. */
	bad = replace(vec.note, "\n\n\xe2\x80\x94", "\n\xe2\x80\x94");
	REJECT(bad);
	free(bad);
	/* Nothing after the blank line, or a signature without its newline. */
	bad = concat(vec.body, "\n");
	REJECT(bad);
	free(bad);
	bad = strdup(vec.note);
	bad[strlen(bad) - 1] = '\0';
	REJECT(bad);
	free(bad);
	/* A blank line after the signatures. */
	bad = concat(vec.note, "\n");
	REJECT(bad);
	free(bad);
	/* Junk after the signatures. */
	bad = concat(vec.note, "junk\n");
	REJECT(bad);
	free(bad);
	/* Control characters and bad UTF-8 anywhere. */
	bad = replace(vec.note, "registry", "regis\ttry");
	REJECT(bad);
	free(bad);
	bad = replace(vec.note, "\n8\n", "\n8\r\n");
	REJECT(bad);
	free(bad);
	bad = replace(vec.note, "registry", "regis\xfftry");
	REJECT(bad);
	free(bad);
	/* Signature lines: no space, empty base64, too short, bad base64, bad name. */
	bad = replace(vec.note, "msreg 2OwQ", "msreg2OwQ");
	REJECT(bad);
	free(bad);
	bad = concat(vec.note, "\xe2\x80\x94 other.example \n");
	REJECT(bad);
	free(bad);
	bad = concat(vec.note, "\xe2\x80\x94 other.example AAAA\n");
	REJECT(bad);
	free(bad);
	bad = concat(vec.note, "\xe2\x80\x94 other.example AAAAAAA\n");
	REJECT(bad);
	free(bad);
	bad = concat(vec.note, "\xe2\x80\x94 other example AAAAAAA=\n");
	REJECT(bad);
	free(bad);
	bad = concat(vec.note, "\xe2\x80\x94  AAAAAAA=\n");
	REJECT(bad);
	free(bad);
	/* A line by our key with a short signature. */
	bad = concat(vec.note, "\xe2\x80\x94 registry.example/msreg 2OwQMAAAAAAA\n");
	ck_assert_int_eq(open_str(&s.v, bad, &why), -1);
	ck_assert_str_eq(why, "invalid signature");
	free(bad);
	/* Unknown keys are ignored, up to MSR_NOTE_MAX_SIGS lines. */
	bad = concat(vec.note, "\xe2\x80\x94 other.example AAAAAAA=\n");
	ck_assert_int_eq(open_str(&s.v, bad, &why), 0);
	free(bad);
	snprintf(line, sizeof(line), "%s", "\xe2\x80\x94 other.example AAAAAAA=\n");
	sl = strlen(line);
	many = malloc(strlen(vec.note) + (MSR_NOTE_MAX_SIGS + 1) * sl + 1);
	ck_assert_ptr_nonnull(many);
	pos = strlen(vec.note);
	memcpy(many, vec.note, pos);
	for (i = 1; i < MSR_NOTE_MAX_SIGS; i++, pos += sl)
		memcpy(many + pos, line, sl);
	many[pos] = '\0';
	ck_assert_int_eq(open_str(&s.v, many, &why), 0);
	memcpy(many + pos, line, sl + 1);
	REJECT(many);
	ck_assert_str_eq(why, "malformed note: too many signatures");
	free(many);
#undef REJECT
	msr_note_signer_wipe(&s);
	json_decref(vec.root);
}
END_TEST

/* ---- checkpoints ------------------------------------------------------ */

START_TEST(test_checkpoint)
{
	static const char *bad[] = {
		"",
		"origin\n",
		"origin\n8\n",
		"origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
		"\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
		"origin\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
		"origin\n+8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
		"origin\n\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
		"origin\n8 \nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
		"origin\n18446744073709551616\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
		"origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQy=\n",
		"origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n",
		"origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n",
		"origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQygAAAA\n",
		"origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n",
		"origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\next\n\n",
		"origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\next",
		"origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\ne\x01t\n",
		"ori\x01gin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
	};
	struct msr_note_checkpoint c, d;
	struct vec vec;
	uint8_t root[HLEN];
	char *text;
	size_t i, len;

	vec_load(&vec);
	ck_assert_int_eq(msr_note_checkpoint_parse(&c, vec.body, strlen(vec.body)),
	    0);
	ck_assert_str_eq(c.origin, vec.name);
	ck_assert_uint_eq(c.size, 8);
	b64_hash(json_string_value(json_object_get(json_object_get(vec.root,
	    "roots"), "8")), root);
	ck_assert_mem_eq(c.root, root, HLEN);
	ck_assert_ptr_null(c.ext);
	ck_assert_uint_eq(c.ext_len, 0);
	ck_assert_int_eq(msr_note_checkpoint_format(&c, &text, &len), 0);
	ck_assert_str_eq(text, vec.body);
	ck_assert_uint_eq(len, strlen(vec.body));
	free(text);

	/* Extension lines, size 0, the largest size, origins with spaces. */
	memset(&c, 0, sizeof(c));
	snprintf(c.origin, sizeof(c.origin), "%s", "example.com/a log");
	c.size = UINT64_MAX;
	memset(c.root, 0xa5, HLEN);
	c.ext = "ext one\nx\n";
	c.ext_len = strlen(c.ext);
	ck_assert_int_eq(msr_note_checkpoint_format(&c, &text, &len), 0);
	ck_assert_int_eq(msr_note_checkpoint_parse(&d, text, len), 0);
	ck_assert_str_eq(d.origin, c.origin);
	ck_assert_uint_eq(d.size, UINT64_MAX);
	ck_assert_mem_eq(d.root, c.root, HLEN);
	ck_assert_uint_eq(d.ext_len, c.ext_len);
	ck_assert_int_eq(memcmp(d.ext, c.ext, c.ext_len), 0);
	ck_assert_ptr_eq(d.ext, text + len - c.ext_len);
	free(text);
	c.size = 0;
	c.ext = NULL;
	c.ext_len = 0;
	ck_assert_int_eq(msr_note_checkpoint_format(&c, &text, &len), 0);
	ck_assert_int_eq(msr_note_checkpoint_parse(&d, text, len), 0);
	ck_assert_uint_eq(d.size, 0);
	free(text);

	/* Unformattable. */
	c.ext = "x\n\ny\n";
	c.ext_len = strlen(c.ext);
	ck_assert_int_eq(msr_note_checkpoint_format(&c, &text, &len), -1);
	c.ext = "x";
	c.ext_len = 1;
	ck_assert_int_eq(msr_note_checkpoint_format(&c, &text, &len), -1);
	c.ext = NULL;
	c.ext_len = 0;
	snprintf(c.origin, sizeof(c.origin), "%s", "a\nb");
	ck_assert_int_eq(msr_note_checkpoint_format(&c, &text, &len), -1);
	c.origin[0] = '\0';
	ck_assert_int_eq(msr_note_checkpoint_format(&c, &text, &len), -1);

	for (i = 0; i < MSR_ARRAY_LEN(bad); i++)
		ck_assert_msg(msr_note_checkpoint_parse(&c, bad[i], strlen(bad[i]))
		    == -1, "accepted bad[%zu]", i);
	json_decref(vec.root);
}
END_TEST

/* ---- receipts --------------------------------------------------------- */

/*
 * The Go vectors end to end: for every vector inclusion proof in the 8-leaf
 * tree, a receipt made of that proof and the vector note verifies with the
 * vector verifier key and the vector leaf.
 */
START_TEST(test_receipt_vectors)
{
	struct msr_note_verifier v;
	struct msr_note_receipt r;
	struct msr_note_checkpoint cp;
	struct vec vec;
	json_t *proofs, *p, *hashes;
	uint8_t leaf[256] = { 0 }, lh[HLEN];
	const char *why;
	char *text;
	size_t i, j, len, leaf_len, checked = 0;
	uint64_t index;

	vec_load(&vec);
	ck_assert_int_eq(msr_note_verifier_parse(&v, vec.verifier_key,
	    strlen(vec.verifier_key)), 0);
	proofs = json_object_get(vec.root, "inclusion_proofs");
	json_array_foreach(proofs, i, p) {
		if (json_integer_value(json_object_get(p, "tree_size")) != 8)
			continue;
		memset(&r, 0, sizeof(r));
		r.index = (uint64_t)json_integer_value(json_object_get(p, "index"));
		hashes = json_object_get(p, "hashes");
		r.nproof = json_array_size(hashes);
		for (j = 0; j < r.nproof; j++)
			b64_hash(json_string_value(json_array_get(hashes, j)),
			    r.proof[j]);
		r.note = vec.note;
		r.note_len = strlen(vec.note);
		ck_assert_int_eq(msr_note_receipt_format(&r, &text, &len), 0);
		ck_assert_int_eq(strncmp(text, "c2sp.org/tlog-proof@v1\nindex ", 29),
		    0);

		ck_assert_int_eq(sodium_hex2bin(leaf, sizeof(leaf),
		    json_string_value(json_array_get(json_object_get(vec.root,
		    "leaves_hex"), r.index)), strlen(json_string_value(
		    json_array_get(json_object_get(vec.root, "leaves_hex"),
		    r.index))), NULL, &leaf_len, NULL), 0);
		ck_assert_int_eq(msr_note_receipt_verify(&v, text, len, leaf,
		    leaf_len, NULL, &cp, &index, &why), 0);
		ck_assert_uint_eq(index, r.index);
		ck_assert_uint_eq(cp.size, 8);
		ck_assert_str_eq(cp.origin, vec.name);
		b64_hash(json_string_value(json_array_get(json_object_get(vec.root,
		    "leaf_hashes"), r.index)), lh);
		ck_assert_int_eq(msr_note_receipt_verify(&v, text, len, NULL, 0, lh,
		    NULL, NULL, &why), 0);
		/* The wrong leaf (leaf 0 is empty: grow it by a byte too). */
		leaf[0] ^= 1;
		ck_assert_int_eq(msr_note_receipt_verify(&v, text, len, leaf,
		    leaf_len + 1, NULL, NULL, NULL, &why), -1);
		ck_assert_str_eq(why,
		    "inclusion proof does not lead to the checkpoint's root");
		free(text);
		checked++;
	}
	ck_assert_uint_eq(checked, 8);
	json_decref(vec.root);
}
END_TEST

struct tree {
	struct msr_merkle_frontier f;
	uint8_t hash[8][128][HLEN];
};

static int
tree_put(void *ctx, unsigned level, uint64_t index, const uint8_t h[HLEN])
{
	struct tree *t = ctx;

	ck_assert_uint_lt(level, 8);
	ck_assert_uint_lt(index, 128);
	memcpy(t->hash[level][index], h, HLEN);
	return 0;
}

static size_t
tree_leaf(uint64_t i, uint8_t *buf, size_t cap)
{
	return (size_t)snprintf((char *)buf, cap, "{\"entry\":%llu}",
	    (unsigned long long)i);
}

/* A receipt for index i of t, as the server makes one: plan, fetch, prove. */
static char *
make_receipt(struct tree *t, const char *note, uint64_t i, uint8_t *extra,
    size_t extra_len, size_t *len)
{
	struct msr_note_receipt r;
	struct msr_merkle_nodes s;
	size_t k;
	char *text;

	msr_merkle_nodes_init(&s);
	ck_assert_int_eq(msr_merkle_plan_inclusion(&s, i, t->f.size), 0);
	for (k = 0; k < s.n; k++)
		ck_assert_int_eq(msr_merkle_nodes_set(&s, s.id[k].level,
		    s.id[k].index, t->hash[s.id[k].level][s.id[k].index]), 0);
	memset(&r, 0, sizeof(r));
	r.index = i;
	r.extra = extra;
	r.extra_len = extra_len;
	ck_assert_int_eq(msr_merkle_prove_inclusion(i, t->f.size,
	    msr_merkle_nodes_get, &s, r.proof, MSR_MERKLE_PROOF_MAX, &r.nproof), 0);
	r.note = note;
	r.note_len = strlen(note);
	ck_assert_int_eq(msr_note_receipt_format(&r, &text, len), 0);
	return text;
}

START_TEST(test_receipt_roundtrip)
{
	static struct tree t;
	static uint8_t extra[] = "opaque\0extra";
	struct msr_note_signer s, other, misnamed;
	struct msr_note_checkpoint c, cp;
	struct msr_note_receipt r;
	struct msr_note_verifier v;
	uint8_t leaf[64], lh[HLEN];
	const char *why;
	char *note, *text, *text2, *bad;
	size_t i, len, len2, leaf_len;
	uint64_t n = 77, index;

	ck_assert_int_eq(msr_note_signer_generate(&s, "example.com/audit"), 0);
	ck_assert_int_eq(msr_note_signer_generate(&other, "example.com/audit"), 0);
	ck_assert_int_eq(msr_note_signer_generate(&misnamed, "example.com/other"),
	    0);
	v = s.v;
	msr_merkle_frontier_reset(&t.f);
	for (i = 0; i < n; i++) {
		leaf_len = tree_leaf(i, leaf, sizeof(leaf));
		msr_merkle_leaf_hash(leaf, leaf_len, lh);
		ck_assert_int_eq(msr_merkle_frontier_append(&t.f, lh, tree_put, &t),
		    0);
	}
	memset(&c, 0, sizeof(c));
	snprintf(c.origin, sizeof(c.origin), "%s", s.v.name);
	c.size = n;
	msr_merkle_frontier_root(&t.f, c.root);
	ck_assert_int_eq(msr_note_checkpoint_sign(&s, &c, &note, &len), 0);

	for (i = 0; i < n; i++) {
		leaf_len = tree_leaf(i, leaf, sizeof(leaf));
		text = make_receipt(&t, note, i, (i % 3) ? NULL : extra,
		    (i % 3) ? 0 : sizeof(extra), &len);

		/* Parse and format again: the same bytes. */
		ck_assert_int_eq(msr_note_receipt_parse(&r, text, len, &why), 0);
		ck_assert_uint_eq(r.index, i);
		ck_assert_ptr_eq(r.note, text + len - strlen(note));
		if (i % 3 == 0) {
			ck_assert_uint_eq(r.extra_len, sizeof(extra));
			ck_assert_mem_eq(r.extra, extra, sizeof(extra));
		} else {
			ck_assert_ptr_null(r.extra);
		}
		ck_assert_int_eq(msr_note_receipt_format(&r, &text2, &len2), 0);
		ck_assert_uint_eq(len2, len);
		ck_assert_str_eq(text2, text);
		free(text2);
		msr_note_receipt_clear(&r);

		ck_assert_int_eq(msr_note_receipt_verify(&v, text, len, leaf,
		    leaf_len, NULL, &cp, &index, &why), 0);
		ck_assert_uint_eq(index, i);
		ck_assert_uint_eq(cp.size, n);
		ck_assert_mem_eq(cp.root, c.root, HLEN);

		/* Another leaf, another key, another index. */
		leaf[leaf_len - 1] = 'x';
		ck_assert_int_eq(msr_note_receipt_verify(&v, text, len, leaf,
		    leaf_len, NULL, NULL, NULL, &why), -1);
		ck_assert_int_eq(msr_note_receipt_verify(&other.v, text, len, NULL,
		    0, t.hash[0][i], NULL, NULL, &why), -1);
		ck_assert_str_eq(why, "no signature by the expected key");
		ck_assert_int_eq(msr_note_receipt_verify(&v, text, len, NULL, 0,
		    t.hash[0][(i + 1) % n], NULL, NULL, &why), -1);
		free(text);
	}

	/* Tampering with the text of one receipt. */
	text = make_receipt(&t, note, 42, NULL, 0, &len);
	ck_assert_int_eq(msr_note_receipt_verify(&v, text, len, NULL, 0,
	    t.hash[0][42], NULL, NULL, &why), 0);
#define TAMPER(from, to, reason) do {					\
	bad = replace(text, (from), (to));				\
	ck_assert_int_eq(msr_note_receipt_verify(&v, bad, strlen(bad), NULL, \
	    0, t.hash[0][42], NULL, NULL, &why), -1);			\
	ck_assert_str_eq(why, (reason));				\
	free(bad);							\
} while (0)
	TAMPER("index 42\n", "index 43\n",
	    "inclusion proof does not lead to the checkpoint's root");
	TAMPER("index 42\n", "index 042\n", "malformed receipt: bad index line");
	TAMPER("index 42\n", "index 77\n", "index is outside the checkpoint's tree");
	TAMPER("index 42\n", "index  42\n", "malformed receipt: bad index line");
	TAMPER("index 42\n", "index 42\nextra AAAA\n",
	    "malformed receipt: bad proof hash");
	TAMPER("index 42\n", "extra AAAA\nindex 42\nextra AAAA\n",
	    "malformed receipt: bad proof hash");
	TAMPER("index 42\n", "index 42\n" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
	    "inclusion proof does not lead to the checkpoint's root");
	TAMPER("c2sp.org/tlog-proof@v1\n", "c2sp.org/tlog-proof@v2\n",
	    "not a c2sp.org/tlog-proof@v1 receipt");
	TAMPER("c2sp.org/tlog-proof@v1\n", "c2sp.org/tlog-proof@v1\nextra \n",
	    "malformed receipt: bad extra line");
	TAMPER("c2sp.org/tlog-proof@v1\n", "c2sp.org/tlog-proof@v1\nextra AB==\n",
	    "malformed receipt: bad extra line");
	TAMPER("\n\nexample.com/audit\n77\n", "\nexample.com/audit\n77\n",
	    "malformed receipt: bad proof hash");
	TAMPER("\n\nexample.com/audit\n77\n", "\n\n\nexample.com/audit\n77\n",
	    "invalid signature");
	TAMPER("\n\nexample.com/audit\n77\n", "\n\nexample.com/audit\n78\n",
	    "invalid signature");
	/* Each proof line changed, dropped, or duplicated. */
	ck_assert_int_eq(msr_note_receipt_parse(&r, text, len, &why), 0);
	ck_assert_uint_eq(r.nproof, 7);
	for (i = 0; i < r.nproof; i++) {
		char line[64], two[128];

		sodium_bin2base64(line, sizeof(line), r.proof[i], HLEN,
		    sodium_base64_VARIANT_ORIGINAL);
		strcat(line, "\n");
		TAMPER(line, "", "inclusion proof does not lead to the checkpoint's root");
		snprintf(two, sizeof(two), "%s%s", line, line);
		TAMPER(line, two,
		    "inclusion proof does not lead to the checkpoint's root");
		/* libsodium alone would read a byte >= 0x80 as '/'. */
		snprintf(two, sizeof(two), "%s", line);
		two[5] = (char)0xab;
		TAMPER(line, two, "malformed receipt: bad proof hash");
		two[5] = '/';
		if (line[5] != '/')
			TAMPER(line, two,
			    "inclusion proof does not lead to the checkpoint's root");
		/* One base64 digit of hash i (not in its final group). */
		bad = strdup(text);
		ck_assert_ptr_nonnull(bad);
		line[0] = *(strstr(bad, "index 42\n") + 9 + i * 45 + 5) == 'A' ?
		    'B' : 'A';
		*(strstr(bad, "index 42\n") + 9 + i * 45 + 5) = line[0];
		ck_assert_int_eq(msr_note_receipt_verify(&v, bad, strlen(bad), NULL,
		    0, t.hash[0][42], NULL, NULL, &why), -1);
		free(bad);
	}
	msr_note_receipt_clear(&r);
	free(text);
#undef TAMPER

	/* Truncations never verify. */
	text = make_receipt(&t, note, 5, extra, sizeof(extra), &len);
	for (len2 = 0; len2 < len; len2++)
		ck_assert_int_eq(msr_note_receipt_verify(&v, text, len2, NULL, 0,
		    t.hash[0][5], NULL, NULL, &why), -1);
	free(text);
	free(note);

	/* A checkpoint whose origin is not the key's name. */
	snprintf(c.origin, sizeof(c.origin), "%s", "example.com/audit");
	ck_assert_int_eq(msr_note_checkpoint_sign(&misnamed, &c, &note, &len), 0);
	text = make_receipt(&t, note, 3, NULL, 0, &len);
	ck_assert_int_eq(msr_note_receipt_verify(&misnamed.v, text, len, NULL, 0,
	    t.hash[0][3], NULL, NULL, &why), -1);
	ck_assert_str_eq(why, "checkpoint origin is not the key name");
	ck_assert_int_eq(msr_note_receipt_verify(&misnamed.v, text, len, NULL, 0,
	    NULL, NULL, NULL, &why), -1);
	free(text);
	free(note);

	/* Unformattable receipts. */
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(msr_note_receipt_format(&r, &text, &len), -1);
	r.note = "x";
	r.note_len = 1;
	r.nproof = MSR_MERKLE_PROOF_MAX + 1;
	ck_assert_int_eq(msr_note_receipt_format(&r, &text, &len), -1);
	r.nproof = 0;
	r.extra_len = 3;
	ck_assert_int_eq(msr_note_receipt_format(&r, &text, &len), -1);

	msr_note_signer_wipe(&s);
	msr_note_signer_wipe(&other);
	msr_note_signer_wipe(&misnamed);
}
END_TEST

/* Key rotation: notes signed by several keys, chains of trusted keys. */
START_TEST(test_rotation_chain)
{
	struct msr_note_signer a, b, c, other;
	const struct msr_note_signer *ab[2] = { &a, &b };
	struct msr_note_verifier keys[MSR_NOTE_MAX_KEYS + 1], one;
	struct msr_note_checkpoint cp, got;
	char *note = NULL, *bad, text[MSR_NOTE_KEY_TEXT_MAX * 3 + 8];
	char ka[MSR_NOTE_KEY_TEXT_MAX], kb[MSR_NOTE_KEY_TEXT_MAX];
	size_t len, n = 0;

	ck_assert_int_eq(msr_note_signer_generate(&a, "example.com/log"), 0);
	ck_assert_int_eq(msr_note_signer_generate(&b, "example.com/log"), 0);
	ck_assert_int_eq(msr_note_signer_generate(&c, "example.com/log"), 0);
	ck_assert_int_eq(msr_note_signer_generate(&other, "example.com/other"), 0);
	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "example.com/log");
	cp.size = 5;
	memset(cp.root, 7, sizeof(cp.root));
	ck_assert_int_eq(msr_note_checkpoint_sign_all(ab, 2, &cp, &note, &len), 0);
	ck_assert_uint_eq(len, strlen(note));
	/* two signature lines, A's first; each key alone opens it */
	ck_assert_ptr_nonnull(strstr(note, "\n\n\xe2\x80\x94 example.com/log "));
	ck_assert_int_eq(msr_note_checkpoint_open(&a.v, note, &got), 0);
	ck_assert_int_eq(msr_note_checkpoint_open(&b.v, note, &got), 0);
	ck_assert_uint_eq(got.size, 5);
	ck_assert_int_ne(msr_note_checkpoint_open(&c.v, note, &got), 0);
	{
		char *none = NULL;

		ck_assert_int_eq(msr_note_checkpoint_sign_all(ab, 0, &cp, &none, &len), -1);
		ck_assert_ptr_null(none);
	}

	/* a chain C -> B opens it through B; C -> other-name is refused */
	keys[0] = c.v;
	keys[1] = b.v;
	ck_assert_int_eq(msr_note_keys_chain(keys, 2), 0);
	ck_assert_int_eq(msr_note_checkpoint_open(keys, note, &got), 0);
	ck_assert_int_eq(msr_note_keys_has(keys, &b.v), 1);
	ck_assert_int_eq(msr_note_keys_has(keys, &a.v), 0);
	keys[1] = other.v;
	ck_assert_int_eq(msr_note_keys_chain(keys, 2), -1);
	ck_assert_int_eq(msr_note_keys_chain(keys, 0), -1);
	ck_assert_int_eq(msr_note_keys_chain(keys, MSR_NOTE_MAX_KEYS + 1), -1);

	/* a bad signature by any trusted key rejects the note */
	bad = strdup(note);
	{
		char *last = strrchr(bad, ' ');	/* B's signature line: the last */

		last[20] = last[20] == 'A' ? 'B' : 'A';
	}
	ck_assert_int_eq(msr_note_checkpoint_open(&a.v, bad, &got), 0);	/* B's line ignored */
	keys[0] = a.v;
	keys[1] = b.v;
	ck_assert_int_eq(msr_note_keys_chain(keys, 2), 0);
	ck_assert_int_ne(msr_note_checkpoint_open(keys, bad, &got), 0);
	free(bad);

	/* key lists: commas and white space; a bad key or too many refused */
	ck_assert_int_eq(msr_note_verifier_format(&a.v, ka, sizeof(ka)), 0);
	ck_assert_int_eq(msr_note_verifier_format(&b.v, kb, sizeof(kb)), 0);
	snprintf(text, sizeof(text), " %s,\n%s ", ka, kb);
	ck_assert_int_eq(msr_note_keys_parse_list(text, keys, MSR_NOTE_MAX_KEYS, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(keys[1].key_id, b.v.key_id);
	ck_assert_ptr_null(keys[1].also);
	ck_assert_int_eq(msr_note_keys_parse_list(text, keys, 3, &n), -1);
	ck_assert_uint_eq(n, 2);
	snprintf(text, sizeof(text), "%s, nonsense", ka);
	ck_assert_int_eq(msr_note_keys_parse_list(text, keys, MSR_NOTE_MAX_KEYS, &n), -1);
	ck_assert_int_eq(msr_note_verifier_parse(&one, ka, strlen(ka)), 0);
	ck_assert_ptr_null(one.also);

	free(note);
	msr_note_signer_wipe(&a);
	msr_note_signer_wipe(&b);
	msr_note_signer_wipe(&c);
	msr_note_signer_wipe(&other);
}
END_TEST

/*
 * msr_note_checkpoint_is (the verifier's fast path) never accepts what
 * msr_note_checkpoint_read refuses or reads otherwise: random checkpoints,
 * then every single-byte change of one note.
 */
START_TEST(test_checkpoint_is)
{
	struct msr_note_signer a, b;
	const struct msr_note_signer *ab[2] = { &a, &b };
	struct msr_note_verifier keys[2];
	struct msr_note_checkpoint cp, got;
	uint8_t other[MSR_MERKLE_HASH_LEN];
	char *note = NULL, *two = NULL;
	size_t len;

	ck_assert_int_eq(msr_note_signer_generate(&a, "example.com/log"), 0);
	ck_assert_int_eq(msr_note_signer_generate(&b, "example.com/log"), 0);
	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "example.com/log");
	for (int i = 0; i < 500; i++) {
		cp.size = i < 10 ? (uint64_t)i : randombytes_uniform(UINT32_MAX) *
		    (uint64_t)randombytes_uniform(1000);
		randombytes_buf(cp.root, sizeof(cp.root));
		free(note);
		ck_assert_int_eq(msr_note_checkpoint_sign(&a, &cp, &note, &len), 0);
		ck_assert_int_eq(msr_note_checkpoint_is(&a.v, note, cp.size, cp.root), 0);
		ck_assert_int_eq(msr_note_checkpoint_read(&a.v, note, &got), 0);
		ck_assert_uint_eq(got.size, cp.size);
		ck_assert_int_eq(memcmp(got.root, cp.root, sizeof(cp.root)), 0);
		ck_assert_int_ne(msr_note_checkpoint_is(&a.v, note, cp.size + 1, cp.root), 0);
		memcpy(other, cp.root, sizeof(other));
		other[i % sizeof(other)] ^= 1;
		ck_assert_int_ne(msr_note_checkpoint_is(&a.v, note, cp.size, other), 0);
		ck_assert_int_ne(msr_note_checkpoint_is(&b.v, note, cp.size, cp.root), 0);
	}
	/* a chain finds the signing key; two signature lines take the slow path */
	keys[0] = b.v;
	keys[1] = a.v;
	ck_assert_int_eq(msr_note_keys_chain(keys, 2), 0);
	ck_assert_int_eq(msr_note_checkpoint_is(keys, note, cp.size, cp.root), 0);
	ck_assert_int_eq(msr_note_checkpoint_sign_all(ab, 2, &cp, &two, &len), 0);
	ck_assert_int_ne(msr_note_checkpoint_is(&a.v, two, cp.size, cp.root), 0);
	ck_assert_int_eq(msr_note_checkpoint_read(&a.v, two, &got), 0);
	free(two);
	/* every single-byte change: accepted by _is only if _read agrees */
	len = strlen(note);
	for (size_t pos = 0; pos < len; pos++) {
		static const char subst[] = "A0+/=\n -\xe2";
		char *m = strdup(note);

		for (size_t k = 0; k < sizeof(subst) - 1; k++) {
			if (m[pos] == subst[k])
				continue;
			m[pos] = subst[k];
			if (msr_note_checkpoint_is(&a.v, m, cp.size, cp.root) == 0) {
				ck_assert_msg(msr_note_checkpoint_read(&a.v, m, &got) == 0 &&
				    got.size == cp.size &&
				    memcmp(got.root, cp.root, sizeof(cp.root)) == 0,
				    "fast path accepted a note the parser refuses (byte %zu)", pos);
			}
			m[pos] = note[pos];
		}
		free(m);
	}
	free(note);
	msr_note_signer_wipe(&a);
	msr_note_signer_wipe(&b);
}
END_TEST

static Suite *
note_suite(void)
{
	Suite *s = suite_create("note");
	TCase *tc = tcase_create("vectors");

	tcase_add_test(tc, test_vector_keys);
	tcase_add_test(tc, test_vector_sign_open);
	tcase_add_test(tc, test_receipt_vectors);
	suite_add_tcase(s, tc);

	tc = tcase_create("syntax");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_key_parse_errors);
	tcase_add_test(tc, test_generate);
	tcase_add_test(tc, test_note_malformed);
	tcase_add_test(tc, test_checkpoint);
	suite_add_tcase(s, tc);

	tc = tcase_create("receipts");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_receipt_roundtrip);
	tcase_add_test(tc, test_rotation_chain);
	tcase_add_test(tc, test_checkpoint_is);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	return msr_test_run(note_suite(), 0);
}
