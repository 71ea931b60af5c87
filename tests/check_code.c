/*
 * check_code.c — unit tests for server/code.c (the code scheme).
 *
 * Three layers:
 *   - reference vectors (tests/data/rs8-vectors.json): every entry is used — the
 *     GF(32) exp table, the generator, every data -> code and gear_bits pair,
 *     every two-erasure pattern and every invalid code;
 *   - exhaustive checks where the space is small: GF(32) against bit-by-bit
 *     multiplication for all pairs, field axioms for all triples, the minimum
 *     distance of the code (by linearity: no nonzero codeword of weight <= 2),
 *     and every byte value through the symbol mapping;
 *   - property tests on NCODES codewords from a fixed-seed PRNG, so a failure
 *     reproduces: erasure completion for every position pair and every single
 *     position, every single substitution detected, erase-plus-misread detected,
 *     and the "exactly one completion" claim checked by brute force on arbitrary
 *     (not codeword-derived) known symbols.
 *
 * Hot loops use REQUIRE (a plain if + ck_abort_msg) rather than ck_assert_*:
 * in fork mode every passing ck_assert writes a mark point down a pipe, which
 * would turn millions of checks into millions of syscalls.
 */
#include "msreg/code.h"
#include "harness.h"

#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NCODES      20000       /* random codewords per property test */
#define NARBITRARY  64          /* arbitrary words per position pair (brute force) */
#define SEED        UINT64_C(0x6d73726567636f64)        /* "msregcod" */

#define REQUIRE(cond, ...) do {                                         \
	if (!(cond))                                                    \
		ck_abort_msg(__VA_ARGS__);                              \
} while (0)

static void
random_codeword(uint64_t *state, uint8_t sym[MSR_RS8_LEN])
{
	msr_rs8_from_data((uint32_t)(msr_test_rand(state) >> 34), sym);
}

static void
random_word(uint64_t *state, uint8_t sym[MSR_RS8_LEN])
{
	uint64_t r = msr_test_rand(state);
	unsigned i;

	for (i = 0; i < MSR_RS8_LEN; i++)
		sym[i] = (uint8_t)((r >> (5 * i)) & 31);
}

/* Parse a vector string of exactly n symbols; '?' marks an unknown position. */
static void
parse_syms(const char *s, uint8_t *sym, uint8_t *known, size_t n)
{
	size_t i;
	int v;

	ck_assert_uint_eq(strlen(s), n);
	for (i = 0; i < n; i++) {
		if (s[i] == '?') {
			sym[i] = 0;
			if (known != NULL)
				known[i] = 0;
			continue;
		}
		v = msr_sym_value(s[i]);
		ck_assert_msg(v >= 0, "bad symbol '%c' in vector %s", s[i], s);
		sym[i] = (uint8_t)v;
		if (known != NULL)
			known[i] = 1;
	}
}

static void
format8(const uint8_t sym[MSR_RS8_LEN], char buf[MSR_RS8_LEN + 1])
{
	msr_code_format(sym, MSR_RS8_LEN, buf);
}

/* Carry-less multiply then reduce by x^5+x^2+1: the definition, no tables. */
static uint8_t
gf_mul_slow(uint8_t a, uint8_t b)
{
	unsigned p = 0, k;

	for (k = 0; k < 5; k++) {
		if (b & (1u << k))
			p ^= (unsigned)a << k;
	}
	for (k = 9; k >= 5; k--) {
		if (p & (1u << k))
			p ^= 0x25u << (k - 5);
	}
	return (uint8_t)p;
}

/* Number of codewords agreeing with sym on the known positions (brute force). */
static unsigned
count_completions(const uint8_t sym[MSR_RS8_LEN], const uint8_t known[MSR_RS8_LEN],
                  uint8_t first[MSR_RS8_LEN])
{
	unsigned unk[MSR_RS8_LEN] = { 0 }, nunk = 0, i, combo, ncombo, found = 0;
	uint8_t w[MSR_RS8_LEN];

	for (i = 0; i < MSR_RS8_LEN; i++) {
		if (!known[i])
			unk[nunk++] = i;
	}
	ncombo = 1u << (5 * nunk);
	for (combo = 0; combo < ncombo; combo++) {
		memcpy(w, sym, sizeof(w));
		for (i = 0; i < nunk; i++)
			w[unk[i]] = (uint8_t)((combo >> (5 * i)) & 31);
		if (msr_rs8_valid(w)) {
			if (found == 0 && first != NULL)
				memcpy(first, w, sizeof(w));
			found++;
		}
	}
	return found;
}

/* ---- GF(32) ---------------------------------------------------------------- */

START_TEST(gf_exp_matches_vectors)
{
	json_t *root = msr_test_load_json("rs8-vectors.json");
	json_t *gf = json_object_get(root, "gf32");
	json_t *exp = json_object_get(gf, "exp");
	json_t *v;
	size_t i;

	ck_assert_str_eq(json_string_value(json_object_get(gf, "poly")), "0x25");
	ck_assert_uint_eq(json_array_size(exp), 31);
	json_array_foreach(exp, i, v) {
		ck_assert_int_eq(msr_gf_exp((unsigned)i), json_integer_value(v));
		ck_assert_int_eq(msr_gf_exp((unsigned)i + 31), json_integer_value(v));
	}
	json_decref(root);
}
END_TEST

START_TEST(gf_generator_matches_vectors)
{
	json_t *root = msr_test_load_json("rs8-vectors.json");
	json_t *gen = json_object_get(root, "generator");
	uint8_t a1 = msr_gf_exp(1), a2 = msr_gf_exp(2);
	/* (x - a1)(x - a2) = x^2 + (a1 + a2) x + a1 a2 in characteristic 2. */
	int want[3] = { 1, a1 ^ a2, msr_gf_mul(a1, a2) };
	uint8_t g[MSR_RS8_LEN] = { 0, 0, 0, 0, 0, 1, 0, 0 };
	size_t i;

	ck_assert_uint_eq(json_array_size(gen), 3);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(msr_sym_value(
		    json_string_value(json_array_get(gen, i))[0]), want[i]);
	ck_assert_int_eq(want[1], 6);
	ck_assert_int_eq(want[2], 8);
	/* g(x) itself (as c5 x^2 + c6 x + c7) is a codeword. */
	g[6] = (uint8_t)want[1];
	g[7] = (uint8_t)want[2];
	ck_assert_int_eq(msr_rs8_valid(g), 1);
	json_decref(root);
}
END_TEST

START_TEST(gf_mul_exhaustive)
{
	unsigned a, b, c;

	for (a = 0; a < 32; a++) {
		for (b = 0; b < 32; b++) {
			REQUIRE(msr_gf_mul((uint8_t)a, (uint8_t)b) ==
			    gf_mul_slow((uint8_t)a, (uint8_t)b),
			    "mul(%u,%u) = %u, want %u", a, b,
			    msr_gf_mul((uint8_t)a, (uint8_t)b),
			    gf_mul_slow((uint8_t)a, (uint8_t)b));
			for (c = 0; c < 32; c++) {
				uint8_t x = (uint8_t)a, y = (uint8_t)b, z = (uint8_t)c;

				REQUIRE(msr_gf_mul(msr_gf_mul(x, y), z) ==
				    msr_gf_mul(x, msr_gf_mul(y, z)),
				    "mul not associative at %u,%u,%u", a, b, c);
				REQUIRE(msr_gf_mul(x, y ^ z) ==
				    (msr_gf_mul(x, y) ^ msr_gf_mul(x, z)),
				    "mul not distributive at %u,%u,%u", a, b, c);
			}
		}
	}
}
END_TEST

START_TEST(gf_inv_and_exp)
{
	unsigned a, i, seen = 0;

	ck_assert_int_eq(msr_gf_inv(0), 0);
	for (a = 1; a < 32; a++)
		ck_assert_int_eq(msr_gf_mul((uint8_t)a, msr_gf_inv((uint8_t)a)), 1);
	/* alpha = 2 is primitive: its 31 powers are the 31 nonzero elements. */
	ck_assert_int_eq(msr_gf_exp(1), 2);
	for (i = 0; i < 31; i++) {
		ck_assert_int_ne(msr_gf_exp(i), 0);
		seen |= 1u << msr_gf_exp(i);
		ck_assert_int_eq(msr_gf_exp(i + 1), msr_gf_mul(msr_gf_exp(i), 2));
	}
	ck_assert_uint_eq(seen, 0xfffffffeu);
	ck_assert_int_eq(msr_gf_exp(31), 1);
	ck_assert_int_eq(msr_gf_exp(4000000000u), msr_gf_exp(4000000000u % 31));
	/* Out-of-range arguments use the low 5 bits (never read past a table). */
	ck_assert_int_eq(msr_gf_mul(0xff, 0xff), msr_gf_mul(31, 31));
	ck_assert_int_eq(msr_gf_inv(0xe3), msr_gf_inv(3));
}
END_TEST

/* ---- symbols and normalisation --------------------------------------------- */

START_TEST(sym_roundtrip)
{
	const char *alpha = MSR_ALPHABET;
	unsigned v;

	ck_assert_uint_eq(strlen(alpha), 32);
	for (v = 0; v < 32; v++) {
		ck_assert_int_eq(msr_sym_char((uint8_t)v), alpha[v]);
		ck_assert_int_eq(msr_sym_value(alpha[v]), (int)v);
		if (alpha[v] >= 'A')
			ck_assert_int_eq(msr_sym_value((char)(alpha[v] - 'A' + 'a')),
			    (int)v);
	}
	ck_assert_int_eq(msr_sym_char(32), '?');
	ck_assert_int_eq(msr_sym_char(255), '?');
}
END_TEST

START_TEST(sym_crockford)
{
	ck_assert_int_eq(msr_sym_value('I'), 1);
	ck_assert_int_eq(msr_sym_value('i'), 1);
	ck_assert_int_eq(msr_sym_value('L'), 1);
	ck_assert_int_eq(msr_sym_value('l'), 1);
	ck_assert_int_eq(msr_sym_value('O'), 0);
	ck_assert_int_eq(msr_sym_value('o'), 0);
	ck_assert_int_eq(msr_sym_value('U'), -1);
	ck_assert_int_eq(msr_sym_value('u'), -1);
	ck_assert_int_eq(msr_sym_value('-'), -1);   /* dropped by normalize only */
	ck_assert_int_eq(msr_sym_value(' '), -1);
	ck_assert_int_eq(msr_sym_value('\0'), -1);
	ck_assert_int_eq(msr_sym_value('*'), -1);
	ck_assert_int_eq(msr_sym_value('?'), -1);
}
END_TEST

START_TEST(sym_every_byte)
{
	unsigned c, valid = 0;
	int v;

	/* 10 digits + 26 letters - U, in both cases: 10 + 25 + 25. */
	for (c = 0; c < 256; c++) {
		v = msr_sym_value((char)c);
		REQUIRE(v >= -1 && v < 32, "value %d for byte %u", v, c);
		if (v >= 0)
			valid++;
		if (c >= 128)
			REQUIRE(v == -1, "byte %u accepted", c);
	}
	ck_assert_uint_eq(valid, 60);
}
END_TEST

struct norm_case {
	const char *in;
	size_t cap;
	int ret;
	const char *out;        /* formatted symbols when ret == 0 */
	long bad_at;
};

static const struct norm_case norm_cases[] = {
	{ "FR23R1A8",              16,  0, "FR23R1A8",         -1 },
	{ "fr23r1a8",              16,  0, "FR23R1A8",         -1 },
	{ "Fr23-R1a8",             16,  0, "FR23R1A8",         -1 },
	{ "FR23 R1A8",             16,  0, "FR23R1A8",         -1 },
	{ " -FR-23 R1--A8- ",      16,  0, "FR23R1A8",         -1 },
	{ "ILOilo",                16,  0, "110110",           -1 },
	{ "2R8IIK-CD",             16,  0, "2R811KCD",         -1 },
	{ "2r8llkcd",              16,  0, "2R811KCD",         -1 },
	{ "DOCXPO5E",              16,  0, "D0CXP05E",         -1 },
	{ "abcdefghjkmnpqrstvwxyz", 22, 0, "ABCDEFGHJKMNPQRSTVWXYZ", -1 },
	{ "",                      16,  0, "",                 -1 },
	{ "- -",                   16,  0, "",                 -1 },
	{ "0123456789ABCDEF",      16,  0, "0123456789ABCDEF", -1 },
	{ "0123-4567-89AB-CDEF",   16,  0, "0123456789ABCDEF", -1 },
	/* invalid characters: offset is into the raw input, hyphens counted */
	{ "FR23U1A8",              16, -1, NULL,                4 },
	{ "fr23u1a8",              16, -1, NULL,                4 },
	{ "FR-23-R1-A*",           16, -1, NULL,               10 },
	{ "?R23R1A8",              16, -1, NULL,                0 },
	{ "FR23\tR1A8",            16, -1, NULL,                4 },
	{ "FR23_R1A8",             16, -1, NULL,                4 },
	{ "FR23\xc3\x9c" "1A8",    16, -1, NULL,                4 },
	{ "FR23R1A8\n",            16, -1, NULL,                8 },
	/* overlong */
	{ "0123456789ABCDEFG",     16, -1, NULL,               -1 },
	{ "FR23R1A8X",              8, -1, NULL,               -1 },
	{ "FR23R1A8",               7, -1, NULL,               -1 },
	{ "A",                      0, -1, NULL,               -1 },
	{ "--",                     0,  0, "",                 -1 },
	{ "FR23R1A8",               8,  0, "FR23R1A8",         -1 },
	/* an invalid character wins over overflow, even past the cap */
	{ "FR23R1A8XY!",            8, -1, NULL,               10 },
};

START_TEST(normalize_cases)
{
	const struct norm_case *tc = &norm_cases[_i];
	uint8_t out[32];
	char buf[33];
	size_t n = 99;
	long bad_at = 99;
	int ret;

	memset(out, 0xee, sizeof(out));
	ret = msr_code_normalize(tc->in, out, tc->cap, &n, &bad_at);
	ck_assert_msg(ret == tc->ret, "\"%s\": ret %d, want %d", tc->in, ret, tc->ret);
	ck_assert_msg(bad_at == tc->bad_at, "\"%s\": bad_at %ld, want %ld", tc->in,
	    bad_at, tc->bad_at);
	if (ret == 0) {
		msr_code_format(out, n, buf);
		ck_assert_str_eq(buf, tc->out);
	} else {
		ck_assert_uint_eq(n, 0);
	}
	/* Never writes past cap. */
	ck_assert_uint_eq(out[tc->cap], 0xee);
}
END_TEST

START_TEST(normalize_null_outputs)
{
	uint8_t out[MSR_CODE_MAX];

	ck_assert_int_eq(msr_code_normalize("FR23R1A8", out, sizeof(out), NULL, NULL), 0);
	ck_assert_int_eq(msr_code_normalize("FR23U1A8", out, sizeof(out), NULL, NULL), -1);
	ck_assert_int_eq(msr_code_normalize("0123456789ABCDEFG", out, sizeof(out),
	    NULL, NULL), -1);
}
END_TEST

/* ---- reference vectors ----------------------------------------------------- */

START_TEST(vectors_codes)
{
	json_t *root = msr_test_load_json("rs8-vectors.json");
	json_t *codes = json_object_get(root, "codes");
	json_t *e;
	size_t k;

	ck_assert_uint_gt(json_array_size(codes), 0);
	json_array_foreach(codes, k, e) {
		const char *data = json_string_value(json_object_get(e, "data"));
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *gear = json_string_value(json_object_get(e, "gear_bits"));
		uint8_t sym[MSR_RS8_LEN], want[MSR_RS8_LEN], from[MSR_RS8_LEN];
		uint8_t norm[MSR_CODE_MAX];
		char buf[5 * MSR_RS8_LEN + 1];
		uint32_t d30 = 0;
		size_t i, n;
		long bad_at;

		ck_assert_ptr_nonnull(data);
		ck_assert_ptr_nonnull(code);
		ck_assert_ptr_nonnull(gear);
		parse_syms(data, sym, NULL, MSR_RS8_DATA);
		parse_syms(code, want, NULL, MSR_RS8_LEN);

		msr_rs8_encode(sym);
		format8(sym, buf);
		ck_assert_str_eq(buf, code);
		ck_assert_int_eq(msr_rs8_valid(want), 1);

		for (i = 0; i < MSR_RS8_DATA; i++)
			d30 = (d30 << 5) | want[i];
		msr_rs8_from_data(d30, from);
		ck_assert_mem_eq(from, want, MSR_RS8_LEN);
		ck_assert_uint_eq(msr_rs8_pack(want) >> 10, d30);

		msr_code_gear(want, MSR_RS8_LEN, buf);
		ck_assert_str_eq(buf, gear);

		ck_assert_int_eq(msr_code_normalize(code, norm, sizeof(norm), &n,
		    &bad_at), 0);
		ck_assert_uint_eq(n, MSR_RS8_LEN);
		ck_assert_mem_eq(norm, want, MSR_RS8_LEN);
	}
	json_decref(root);
}
END_TEST

START_TEST(vectors_two_erasures)
{
	json_t *root = msr_test_load_json("rs8-vectors.json");
	json_t *list = json_object_get(root, "two_erasures");
	json_t *e;
	size_t k, i;

	ck_assert_uint_gt(json_array_size(list), 0);
	json_array_foreach(list, k, e) {
		const char *pat = json_string_value(json_object_get(e, "pattern"));
		const char *want = json_string_value(json_object_get(e,
		    "unique_completion"));
		uint8_t sym[MSR_RS8_LEN], known[MSR_RS8_LEN], first[MSR_RS8_LEN];
		unsigned nunk = 0;
		char buf[MSR_RS8_LEN + 1];

		ck_assert_ptr_nonnull(pat);
		ck_assert_ptr_nonnull(want);
		parse_syms(pat, sym, known, MSR_RS8_LEN);
		for (i = 0; i < MSR_RS8_LEN; i++)
			nunk += !known[i];
		ck_assert_uint_eq(nunk, 2);

		ck_assert_uint_eq(count_completions(sym, known, first), 1);
		format8(first, buf);
		ck_assert_str_eq(buf, want);

		sym[0] ^= known[0] ? 0 : 17;    /* value at unknown positions is ignored */
		ck_assert_int_eq(msr_rs8_complete(sym, known), 1);
		format8(sym, buf);
		ck_assert_str_eq(buf, want);
	}
	json_decref(root);
}
END_TEST

START_TEST(vectors_invalid)
{
	json_t *root = msr_test_load_json("rs8-vectors.json");
	json_t *list = json_object_get(root, "invalid_codes");
	json_t *e;
	size_t k;
	static const uint8_t all_known[MSR_RS8_LEN] = { 1, 1, 1, 1, 1, 1, 1, 1 };

	ck_assert_uint_gt(json_array_size(list), 0);
	json_array_foreach(list, k, e) {
		const char *code = json_string_value(e);
		uint8_t sym[MSR_RS8_LEN], copy[MSR_RS8_LEN];

		ck_assert_ptr_nonnull(code);
		parse_syms(code, sym, NULL, MSR_RS8_LEN);
		memcpy(copy, sym, sizeof(sym));
		ck_assert_msg(msr_rs8_valid(sym) == 0, "%s accepted", code);
		ck_assert_int_eq(msr_rs8_complete(sym, all_known), 0);
		ck_assert_mem_eq(sym, copy, MSR_RS8_LEN);
	}
	json_decref(root);
}
END_TEST

/* ---- rs8 API edges --------------------------------------------------------- */

START_TEST(rs8_pack_roundtrip)
{
	uint64_t state = SEED, v;
	uint8_t sym[MSR_RS8_LEN], back[MSR_RS8_LEN];
	unsigned k;

	for (k = 0; k < NCODES; k++) {
		v = msr_test_rand(&state) & ((UINT64_C(1) << 40) - 1);
		msr_rs8_unpack(v, sym);
		REQUIRE(msr_rs8_pack(sym) == v, "pack(unpack(%llx))",
		    (unsigned long long)v);
		random_word(&state, sym);
		msr_rs8_unpack(msr_rs8_pack(sym), back);
		REQUIRE(memcmp(sym, back, sizeof(sym)) == 0, "unpack(pack()) differs");
	}
	msr_rs8_unpack(UINT64_MAX, sym);
	for (k = 0; k < MSR_RS8_LEN; k++)
		ck_assert_int_eq(sym[k], 31);
	ck_assert_uint_eq(msr_rs8_pack(sym), (UINT64_C(1) << 40) - 1);
	msr_rs8_unpack(0, sym);
	ck_assert_uint_eq(msr_rs8_pack(sym), 0);
}
END_TEST

START_TEST(rs8_from_data)
{
	uint64_t state = SEED;
	uint8_t sym[MSR_RS8_LEN], other[MSR_RS8_LEN];
	uint32_t d;
	unsigned k;

	msr_rs8_from_data(0, sym);
	ck_assert_uint_eq(msr_rs8_pack(sym), 0);
	msr_rs8_from_data(MSR_RS8_DATA_SPACE - 1, sym);
	ck_assert_int_eq(msr_rs8_valid(sym), 1);
	ck_assert_uint_eq(msr_rs8_pack(sym) >> 10, MSR_RS8_DATA_SPACE - 1);
	/* Bits above bit 29 are ignored. */
	msr_rs8_from_data(0xc0000000u | 12345u, other);
	msr_rs8_from_data(12345u, sym);
	ck_assert_mem_eq(sym, other, MSR_RS8_LEN);

	for (k = 0; k < NCODES; k++) {
		d = (uint32_t)(msr_test_rand(&state) >> 34);
		msr_rs8_from_data(d, sym);
		REQUIRE(msr_rs8_valid(sym), "from_data(%u) not a codeword", d);
		REQUIRE(msr_rs8_pack(sym) >> 10 == d, "from_data(%u) data differs", d);
	}
}
END_TEST

START_TEST(rs8_complete_edges)
{
	static const uint8_t all_known[MSR_RS8_LEN] = { 1, 1, 1, 1, 1, 1, 1, 1 };
	uint8_t sym[MSR_RS8_LEN], copy[MSR_RS8_LEN], known[MSR_RS8_LEN];
	unsigned i;

	parse_syms("FR23R1A8", sym, NULL, MSR_RS8_LEN);
	memcpy(copy, sym, sizeof(sym));

	/* 0 unknown: valid word is returned unchanged. */
	ck_assert_int_eq(msr_rs8_complete(sym, all_known), 1);
	ck_assert_mem_eq(sym, copy, MSR_RS8_LEN);

	/* 3..8 unknown: refused, sym untouched. */
	memset(known, 1, sizeof(known));
	for (i = 0; i < MSR_RS8_LEN; i++) {
		known[i] = 0;
		if (i >= 2) {
			ck_assert_int_eq(msr_rs8_complete(sym, known), -1);
			ck_assert_mem_eq(sym, copy, MSR_RS8_LEN);
		}
	}

	/* Encoding is completion of the two check positions. */
	memset(known, 1, sizeof(known));
	known[6] = known[7] = 0;
	sym[6] = 31;
	sym[7] = 200;   /* ignored: unknown */
	ck_assert_int_eq(msr_rs8_complete(sym, known), 1);
	ck_assert_mem_eq(sym, copy, MSR_RS8_LEN);

	/* Out-of-range symbols: never a codeword, never read out of bounds. */
	sym[3] = 32;
	ck_assert_int_eq(msr_rs8_valid(sym), 0);
	ck_assert_int_eq(msr_rs8_complete(sym, all_known), 0);
	memset(known, 1, sizeof(known));
	known[0] = known[1] = 0;
	ck_assert_int_eq(msr_rs8_complete(sym, known), 0);
	ck_assert_int_eq(sym[3], 32);
	known[3] = 0;
	known[1] = 1;
	ck_assert_int_eq(msr_rs8_complete(sym, known), 1);
	ck_assert_mem_eq(sym, copy, MSR_RS8_LEN);
}
END_TEST

START_TEST(rs8_min_distance_exhaustive)
{
	/*
	 * The code is linear, so min distance = min weight of a nonzero codeword.
	 * Every word of weight 1 or 2 lies in some pair of positions (i, j) with
	 * zeros elsewhere: try all 28 pairs x 1024 values.
	 */
	uint8_t w[MSR_RS8_LEN];
	unsigned i, j, a, b, nvalid = 0;

	for (i = 0; i < MSR_RS8_LEN; i++) {
		for (j = i + 1; j < MSR_RS8_LEN; j++) {
			for (a = 0; a < 32; a++) {
				for (b = 0; b < 32; b++) {
					memset(w, 0, sizeof(w));
					w[i] = (uint8_t)a;
					w[j] = (uint8_t)b;
					if (msr_rs8_valid(w)) {
						nvalid++;
						REQUIRE(a == 0 && b == 0,
						    "weight-2 codeword at %u,%u", i, j);
					}
				}
			}
		}
	}
	ck_assert_uint_eq(nvalid, 28);  /* only the zero word, once per pair */
}
END_TEST

START_TEST(rs8_linear)
{
	uint64_t state = SEED;
	uint8_t a[MSR_RS8_LEN], b[MSR_RS8_LEN], s[MSR_RS8_LEN];
	unsigned k, i;
	uint8_t scalar;

	for (k = 0; k < NCODES; k++) {
		random_codeword(&state, a);
		random_codeword(&state, b);
		scalar = (uint8_t)(msr_test_rand(&state) & 31);
		for (i = 0; i < MSR_RS8_LEN; i++)
			s[i] = a[i] ^ msr_gf_mul(scalar, b[i]);
		REQUIRE(msr_rs8_valid(s), "a + k*b not a codeword");
	}
}
END_TEST

/* ---- properties on random codewords ---------------------------------------- */

START_TEST(prop_two_erasures_every_pair)
{
	uint64_t state = SEED;
	uint8_t orig[MSR_RS8_LEN], sym[MSR_RS8_LEN], known[MSR_RS8_LEN];
	unsigned k, i, j, pairs = 0;
	char buf[MSR_RS8_LEN + 1];

	for (k = 0; k < NCODES; k++) {
		random_codeword(&state, orig);
		REQUIRE(msr_rs8_valid(orig), "random codeword invalid");
		format8(orig, buf);
		for (i = 0; i < MSR_RS8_LEN; i++) {
			for (j = i + 1; j < MSR_RS8_LEN; j++) {
				memcpy(sym, orig, sizeof(sym));
				memset(known, 1, sizeof(known));
				known[i] = known[j] = 0;
				sym[i] = (uint8_t)(msr_test_rand(&state) & 31);
				sym[j] = (uint8_t)(msr_test_rand(&state) & 31);
				REQUIRE(msr_rs8_complete(sym, known) == 1,
				    "two erasures not completed");
				REQUIRE(memcmp(sym, orig, sizeof(sym)) == 0,
				    "%s erased at %u,%u completed wrongly", buf, i, j);
				if (k == 0)
					pairs++;
			}
		}
	}
	ck_assert_uint_eq(pairs, 28);
}
END_TEST

START_TEST(prop_one_erasure)
{
	uint64_t state = SEED;
	uint8_t orig[MSR_RS8_LEN], sym[MSR_RS8_LEN], known[MSR_RS8_LEN];
	unsigned k, i, j, d;

	for (k = 0; k < NCODES; k++) {
		random_codeword(&state, orig);
		for (i = 0; i < MSR_RS8_LEN; i++) {
			memcpy(sym, orig, sizeof(sym));
			memset(known, 1, sizeof(known));
			known[i] = 0;
			sym[i] ^= 1;
			REQUIRE(msr_rs8_complete(sym, known) == 1, "one erasure");
			REQUIRE(memcmp(sym, orig, sizeof(sym)) == 0, "one erasure wrong");
		}
		/*
		 * One erasure plus one misread symbol: 6 correct known symbols fix
		 * the original, which disagrees with the misread one, so no codeword
		 * fits — detected, never miscorrected. Exhaustive for the first
		 * 200 codewords (8 x 7 x 31 cases each), sampled after.
		 */
		for (i = 0; i < MSR_RS8_LEN; i++) {
			for (j = 0; j < MSR_RS8_LEN; j++) {
				if (i == j)
					continue;
				for (d = 1; d < 32; d++) {
					if (k >= 200 && d != 1 + (k % 31))
						continue;
					memcpy(sym, orig, sizeof(sym));
					memset(known, 1, sizeof(known));
					known[i] = 0;
					sym[j] ^= (uint8_t)d;
					REQUIRE(msr_rs8_complete(sym, known) == 0,
					    "erase %u + misread %u accepted", i, j);
					REQUIRE(sym[j] == (orig[j] ^ d),
					    "sym written on failure");
				}
			}
		}
	}
}
END_TEST

START_TEST(prop_substitution_detected)
{
	uint64_t state = SEED;
	uint8_t orig[MSR_RS8_LEN], sym[MSR_RS8_LEN];
	unsigned k, i, j, v, w;

	for (k = 0; k < NCODES; k++) {
		random_codeword(&state, orig);
		memcpy(sym, orig, sizeof(sym));
		/* every position, every other symbol */
		for (i = 0; i < MSR_RS8_LEN; i++) {
			for (v = 0; v < 32; v++) {
				if (v == orig[i])
					continue;
				sym[i] = (uint8_t)v;
				REQUIRE(!msr_rs8_valid(sym),
				    "substitution at %u by %u undetected", i, v);
			}
			sym[i] = orig[i];
		}
		/* two substitutions: every pair of positions, random values */
		for (i = 0; i < MSR_RS8_LEN; i++) {
			for (j = i + 1; j < MSR_RS8_LEN; j++) {
				v = 1 + (unsigned)(msr_test_rand(&state) % 31);
				w = 1 + (unsigned)(msr_test_rand(&state) % 31);
				sym[i] ^= (uint8_t)v;
				sym[j] ^= (uint8_t)w;
				REQUIRE(!msr_rs8_valid(sym),
				    "double substitution at %u,%u undetected", i, j);
				sym[i] = orig[i];
				sym[j] = orig[j];
			}
		}
	}
}
END_TEST

START_TEST(prop_unique_completion_bruteforce)
{
	/*
	 * The claim behind msr_rs8_complete, checked by brute force on arbitrary
	 * known symbols (not taken from a codeword):
	 *   2 unknown -> exactly 1 of the 1024 fillings is a codeword;
	 *   1 unknown -> 0 or 1 of the 32 fillings (about 1 in 32 words has one);
	 *   0 unknown -> complete agrees with valid.
	 * In every case complete's answer is the brute-force one.
	 */
	uint64_t state = SEED;
	uint8_t w[MSR_RS8_LEN], sym[MSR_RS8_LEN], known[MSR_RS8_LEN];
	uint8_t first[MSR_RS8_LEN];
	unsigned i, j, k, n, one_ok = 0, one_total = 0;
	int ret;

	for (i = 0; i < MSR_RS8_LEN; i++) {
		for (j = i + 1; j < MSR_RS8_LEN; j++) {
			for (k = 0; k < NARBITRARY; k++) {
				random_word(&state, w);
				memset(known, 1, sizeof(known));
				known[i] = known[j] = 0;
				n = count_completions(w, known, first);
				REQUIRE(n == 1, "pair %u,%u: %u completions", i, j, n);
				memcpy(sym, w, sizeof(sym));
				REQUIRE(msr_rs8_complete(sym, known) == 1, "complete");
				REQUIRE(memcmp(sym, first, sizeof(sym)) == 0,
				    "complete differs from brute force");
			}
		}
	}
	for (i = 0; i < MSR_RS8_LEN; i++) {
		for (k = 0; k < 32 * NARBITRARY; k++) {
			random_word(&state, w);
			memset(known, 1, sizeof(known));
			known[i] = 0;
			n = count_completions(w, known, first);
			REQUIRE(n <= 1, "one erasure at %u: %u completions", i, n);
			memcpy(sym, w, sizeof(sym));
			ret = msr_rs8_complete(sym, known);
			REQUIRE(ret == (int)n, "one erasure: ret %d, brute %u", ret, n);
			if (n == 1)
				REQUIRE(memcmp(sym, first, sizeof(sym)) == 0,
				    "one erasure differs from brute force");
			else
				REQUIRE(memcmp(sym, w, sizeof(sym)) == 0,
				    "sym written on failure");
			one_ok += n;
			one_total++;
		}
	}
	/* Expect one_total / 32 = 512; allow a wide margin. */
	ck_assert_msg(one_ok > one_total / 64 && one_ok < one_total / 16,
	    "%u of %u single-erasure words completable", one_ok, one_total);

	memset(known, 1, sizeof(known));
	for (k = 0; k < NCODES; k++) {
		random_word(&state, w);
		memcpy(sym, w, sizeof(sym));
		ret = msr_rs8_complete(sym, known);
		REQUIRE(ret == msr_rs8_valid(w), "0 erasures: ret %d", ret);
		REQUIRE(memcmp(sym, w, sizeof(sym)) == 0, "sym changed");
	}
}
END_TEST

START_TEST(prop_format_normalize_roundtrip)
{
	uint64_t state = SEED;
	uint8_t sym[MSR_CODE_MAX], back[MSR_CODE_MAX];
	char buf[3 * MSR_CODE_MAX + 1];
	size_t len, i, n, o;
	long bad_at;
	uint64_t r;
	unsigned k;

	for (k = 0; k < NCODES; k++) {
		len = (size_t)(msr_test_rand(&state) % (MSR_CODE_MAX + 1));
		for (i = 0; i < len; i++)
			sym[i] = (uint8_t)(msr_test_rand(&state) & 31);
		/* render with random case and separators */
		for (i = 0, o = 0; i < len; i++) {
			r = msr_test_rand(&state);
			buf[o] = msr_sym_char(sym[i]);
			if ((r & 1) && buf[o] >= 'A' && buf[o] <= 'Z')
				buf[o] = (char)(buf[o] - 'A' + 'a');
			o++;
			if (r & 2)
				buf[o++] = (r & 4) ? '-' : ' ';
		}
		buf[o] = '\0';
		REQUIRE(msr_code_normalize(buf, back, MSR_CODE_MAX, &n, &bad_at) == 0,
		    "\"%s\" rejected at %ld", buf, bad_at);
		REQUIRE(n == len && memcmp(back, sym, len) == 0, "\"%s\" differs", buf);
	}
}
END_TEST

static Suite *
code_suite(void)
{
	Suite *s = suite_create("code");
	TCase *tc;

	tc = tcase_create("gf32");
	tcase_add_test(tc, gf_exp_matches_vectors);
	tcase_add_test(tc, gf_generator_matches_vectors);
	tcase_add_test(tc, gf_mul_exhaustive);
	tcase_add_test(tc, gf_inv_and_exp);
	suite_add_tcase(s, tc);

	tc = tcase_create("symbols");
	tcase_add_test(tc, sym_roundtrip);
	tcase_add_test(tc, sym_crockford);
	tcase_add_test(tc, sym_every_byte);
	tcase_add_loop_test(tc, normalize_cases, 0,
	    (int)(sizeof(norm_cases) / sizeof(norm_cases[0])));
	tcase_add_test(tc, normalize_null_outputs);
	suite_add_tcase(s, tc);

	tc = tcase_create("vectors");
	tcase_add_test(tc, vectors_codes);
	tcase_add_test(tc, vectors_two_erasures);
	tcase_add_test(tc, vectors_invalid);
	suite_add_tcase(s, tc);

	tc = tcase_create("rs8");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, rs8_pack_roundtrip);
	tcase_add_test(tc, rs8_from_data);
	tcase_add_test(tc, rs8_complete_edges);
	tcase_add_test(tc, rs8_min_distance_exhaustive);
	tcase_add_test(tc, rs8_linear);
	suite_add_tcase(s, tc);

	tc = tcase_create("properties");
	tcase_set_timeout(tc, 600);     /* generous: also run under valgrind */
	tcase_add_test(tc, prop_two_erasures_every_pair);
	tcase_add_test(tc, prop_one_erasure);
	tcase_add_test(tc, prop_substitution_detected);
	tcase_add_test(tc, prop_unique_completion_bruteforce);
	tcase_add_test(tc, prop_format_normalize_roundtrip);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return msr_test_run(code_suite(), 0);
}
