/*
 * check_pattern.c — reading parser, query model, confusion table, match estimate.
 *
 * Parser cases are data-driven (input in, mask or error code plus position and
 * offset out). The estimate is checked against exact enumeration where only a few
 * positions are constrained and against a seeded Monte-Carlo run otherwise.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "msreg/code.h"
#include "msreg/pattern.h"

#define BIT(c) (UINT32_C(1) << msr_sym_value(c))

/* --- text readings ------------------------------------------------------ */

struct text_ok {
	const char *in;
	unsigned len;
	uint32_t set[MSR_CODE_MAX];
};

static const struct text_ok text_ok_cases[] = {
	{ "0H5KB4M3", 8, { 0 } },             /* sets filled in from the string */
	{ "0h5kb4m3", 8, { 0 } },
	{ "0H5K-B4M3", 8, { 0 } },
	{ " 0H5K B4M3 ", 8, { 0 } },
	{ "OH5KB4M3", 8, { 0 } },             /* O -> 0 */
};

START_TEST(test_text_symbols)
{
	const struct text_ok *tc = &text_ok_cases[_i];
	struct msr_reading r;
	struct msr_pattern_error err;
	const char *want = "0H5KB4M3";
	unsigned p;

	ck_assert_int_eq(msr_reading_parse_text(tc->in, 0, &r, &err), 0);
	ck_assert_uint_eq(r.len, tc->len);
	ck_assert_int_eq(r.kind, MSR_READING_TEXT);
	for (p = 0; p < r.len; p++)
		ck_assert_uint_eq(r.set[p], BIT(want[p]));
}
END_TEST

START_TEST(test_text_normalisation_and_sets)
{
	struct msr_reading r;
	struct msr_pattern_error err;

	ck_assert_int_eq(msr_reading_parse_text("il1Oo0", 0, &r, &err), 0);
	ck_assert_uint_eq(r.len, 6);
	ck_assert_uint_eq(r.set[0], BIT('1'));
	ck_assert_uint_eq(r.set[1], BIT('1'));
	ck_assert_uint_eq(r.set[2], BIT('1'));
	ck_assert_uint_eq(r.set[3], BIT('0'));
	ck_assert_uint_eq(r.set[4], BIT('0'));
	ck_assert_uint_eq(r.set[5], BIT('0'));

	ck_assert_int_eq(msr_reading_parse_text("0H[5S]K?4M3", 0, &r, &err), 0);
	ck_assert_uint_eq(r.len, 8);
	ck_assert_uint_eq(r.set[2], BIT('5') | BIT('S'));
	ck_assert_uint_eq(r.set[4], MSR_SET_ALL);
	ck_assert_uint_eq(r.set[5], BIT('4'));

	/* Inside a set: normalised, case-insensitive, hyphens/spaces ignored,
	 * duplicates harmless, a one-symbol set is that symbol. */
	ck_assert_int_eq(msr_reading_parse_text("[8b][i-L ][oQd][8]??", 0, &r,
	    &err), 0);
	ck_assert_uint_eq(r.len, 6);
	ck_assert_uint_eq(r.set[0], BIT('8') | BIT('B'));
	ck_assert_uint_eq(r.set[1], BIT('1'));
	ck_assert_uint_eq(r.set[2], BIT('0') | BIT('Q') | BIT('D'));
	ck_assert_uint_eq(r.set[3], BIT('8'));

	/* 16 positions is the longest code; the limit argument can lower it. */
	ck_assert_int_eq(msr_reading_parse_text("0123456789ABCDEF", 0, &r, &err), 0);
	ck_assert_uint_eq(r.len, 16);
	ck_assert_int_eq(msr_reading_parse_text("0123456789", 8, &r, &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_TOO_LONG);
	ck_assert_uint_eq(err.position, 9);
}
END_TEST

struct text_bad {
	const char *in;
	enum msr_pattern_err code;
	unsigned position, offset;
	const char *msg_has;
};

static const struct text_bad text_bad_cases[] = {
	{ "", MSR_PAT_EMPTY, 0, 0, "no positions" },
	{ "- -", MSR_PAT_EMPTY, 0, 0, "no positions" },
	{ "0H5UB4M3", MSR_PAT_BAD_CHAR, 4, 4, "'U' at character 4 (position 4)" },
	{ "0H-5*B4M3", MSR_PAT_BAD_CHAR, 4, 5, "'*' at character 5 (position 4)" },
	{ "0H5K\xc3\xa9", MSR_PAT_BAD_CHAR, 5, 5, "byte 0xc3" },
	{ "0H[5[S]]KB4M3", MSR_PAT_SET_NESTED, 3, 5, "nested '[' at character 5" },
	{ "0H[5SKB4M3", MSR_PAT_SET_UNTERMINATED, 3, 3,
	  "unterminated set opened at character 3 (position 3)" },
	{ "0H5KB4M[3", MSR_PAT_SET_UNTERMINATED, 8, 8, "character 8" },
	{ "0H[]KB4M3", MSR_PAT_SET_EMPTY, 3, 3, "empty set at character 3" },
	{ "0H[- ]KB4M3", MSR_PAT_SET_EMPTY, 3, 3, "empty set" },
	{ "0H[5?]KB4M3", MSR_PAT_SET_UNKNOWN, 3, 5, "'?' inside a set" },
	{ "0H5]KB4M3", MSR_PAT_SET_UNOPENED, 4, 4, "']' without '['" },
	{ "0123456789ABCDEFG", MSR_PAT_TOO_LONG, 17, 17, "more than 16 positions" },
};

START_TEST(test_text_errors)
{
	const struct text_bad *tc = &text_bad_cases[_i];
	struct msr_reading r;
	struct msr_pattern_error err;

	memset(&r, 0xab, sizeof(r));
	ck_assert_int_eq(msr_reading_parse_text(tc->in, 0, &r, &err), -1);
	ck_assert_msg(err.code == tc->code, "%s: code %s, want %s", tc->in,
	    msr_pattern_errname(err.code), msr_pattern_errname(tc->code));
	ck_assert_uint_eq(err.position, tc->position);
	ck_assert_uint_eq(err.offset, tc->offset);
	ck_assert_msg(strstr(err.message, tc->msg_has) != NULL,
	    "%s: message \"%s\" lacks \"%s\"", tc->in, err.message, tc->msg_has);
	/* invariant 2: the output is untouched on error */
	ck_assert_uint_eq(r.len, 0xabababab);
}
END_TEST

START_TEST(test_errnames)
{
	ck_assert_str_eq(msr_pattern_errname(MSR_PAT_SET_UNTERMINATED),
	    "set_unterminated");
	ck_assert_str_eq(msr_pattern_errname(MSR_PAT_GEAR_LENGTH), "gear_length");
	ck_assert_str_eq(msr_pattern_errname(MSR_PAT_LENGTH_MISMATCH),
	    "length_mismatch");
	ck_assert_str_eq(msr_pattern_errname((enum msr_pattern_err)999), "unknown");
}
END_TEST

/* --- gear readings ------------------------------------------------------ */

START_TEST(test_gear_vectors)
{
	json_t *v = msr_test_load_json("rs8-vectors.json");
	json_t *codes = json_object_get(v, "codes"), *e;
	struct msr_reading g, t;
	struct msr_pattern_error err;
	size_t i;

	ck_assert_uint_gt(json_array_size(codes), 0);
	json_array_foreach(codes, i, e) {
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *bits = json_string_value(json_object_get(e, "gear_bits"));

		ck_assert_int_eq(msr_reading_parse_gear(bits, 0, &g, &err), 0);
		ck_assert_int_eq(msr_reading_parse_text(code, 0, &t, &err), 0);
		ck_assert_int_eq(g.kind, MSR_READING_GEAR);
		ck_assert_uint_eq(g.len, t.len);
		ck_assert_mem_eq(g.set, t.set, sizeof(g.set));
	}
	json_decref(v);
}
END_TEST

START_TEST(test_gear_unknown_bits)
{
	struct msr_reading g;
	struct msr_pattern_error err;
	unsigned s;
	uint32_t want = 0;

	/* "0?1??" allows 0b00100..0b01111 with bit 3 free: 4,5,6,7,12,13,14,15 */
	ck_assert_int_eq(msr_reading_parse_gear("0?1?? 11111-????? 00000 "
	    "00001 00010", 0, &g, &err), 0);
	ck_assert_uint_eq(g.len, 6);
	for (s = 0; s < 32; s++)
		if ((s & 0x14) == 0x04)
			want |= UINT32_C(1) << s;
	ck_assert_uint_eq(g.set[0], want);
	ck_assert_uint_eq(g.set[1], UINT32_C(1) << 31);
	ck_assert_uint_eq(g.set[2], MSR_SET_ALL);
	ck_assert_uint_eq(g.set[3], 1);
	ck_assert_uint_eq(g.set[5], 4);
}
END_TEST

START_TEST(test_gear_errors)
{
	struct msr_reading g;
	struct msr_pattern_error err;

	ck_assert_int_eq(msr_reading_parse_gear("0000000001111", 0, &g, &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_GEAR_LENGTH);
	ck_assert_uint_eq(err.position, 3);
	ck_assert_ptr_nonnull(strstr(err.message, "13 bits"));

	ck_assert_int_eq(msr_reading_parse_gear("000001111120000", 0, &g, &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_GEAR_BAD_CHAR);
	ck_assert_uint_eq(err.offset, 11);
	ck_assert_uint_eq(err.position, 3);
	ck_assert_ptr_nonnull(strstr(err.message, "'2' at character 11"));

	ck_assert_int_eq(msr_reading_parse_gear("", 0, &g, &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_EMPTY);

	/* 85 bits = 17 symbols */
	ck_assert_int_eq(msr_reading_parse_gear("000000000000000000000000000000"
	    "0000000000000000000000000000000000000000000000000000000", 0, &g,
	    &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_TOO_LONG);
	ck_assert_uint_eq(err.position, 17);
}
END_TEST

/* --- queries ------------------------------------------------------------ */

static void
finish_ok(struct msr_query *q, unsigned k)
{
	struct msr_pattern_error err;

	ck_assert_msg(msr_query_finish(q, k, NULL, &err) == 0, "%s", err.message);
}

static void
sym_of(const char *text, uint8_t *sym)
{
	size_t n;
	long bad;

	ck_assert_int_eq(msr_code_normalize(text, sym, MSR_CODE_MAX, &n, &bad), 0);
}

START_TEST(test_query_errors)
{
	struct msr_pattern_limits lim;
	struct msr_pattern_error err;
	struct msr_query q;

	msr_query_init(&q, NULL);
	ck_assert_int_eq(msr_query_finish(&q, 0, NULL, &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_NO_READINGS);

	ck_assert_int_eq(msr_query_add_text(&q, "0H5KB4M3", &err), 0);
	/* mixed lengths, text and gear */
	ck_assert_int_eq(msr_query_add_text(&q, "0H5KB4M", &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_LENGTH_MISMATCH);
	ck_assert_uint_eq(err.reading, 2);
	ck_assert_ptr_nonnull(strstr(err.message, "reading 2: 7 positions, but "
	    "reading 1 has 8"));
	ck_assert_int_eq(msr_query_add_gear(&q, "0000000000", &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_TOO_SHORT);
	ck_assert_int_eq(msr_query_add_gear(&q,
	    "000000000000000000000000000000000000000000000", &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_LENGTH_MISMATCH);
	/* a parse error names its reading */
	ck_assert_int_eq(msr_query_add_text(&q, "0H[5SKB4M3", &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_SET_UNTERMINATED);
	ck_assert_uint_eq(err.reading, 2);
	ck_assert_uint_eq(err.offset, 3);
	ck_assert_ptr_nonnull(strstr(err.message, "reading 2: unterminated"));
	/* failed adds left the query alone */
	ck_assert_uint_eq(q.nreadings, 1);
	ck_assert_int_eq(msr_query_finish(&q, 3, NULL, &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_BAD_MISMATCHES);

	msr_pattern_limits_default(&lim);
	lim.max_readings = 2;
	lim.min_positions = 8;
	lim.max_positions = 10;
	msr_query_init(&q, &lim);
	ck_assert_int_eq(msr_query_add_text(&q, "0H5KB4M", &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_TOO_SHORT);
	ck_assert_int_eq(msr_query_add_text(&q, "0H5KB4M3ZZZ", &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_TOO_LONG);
	ck_assert_uint_eq(err.position, 11);
	ck_assert_int_eq(msr_query_add_text(&q, "0H5KB4M3", &err), 0);
	ck_assert_int_eq(msr_query_add_text(&q, "0H5KB4M3", &err), 0);
	ck_assert_int_eq(msr_query_add_text(&q, "0H5KB4M3", &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_TOO_MANY_READINGS);
	ck_assert_uint_eq(err.reading, 3);
}
END_TEST

START_TEST(test_mismatch_semantics)
{
	struct msr_query q;
	struct msr_pattern_error err;
	uint8_t sym[MSR_CODE_MAX];

	msr_query_init(&q, NULL);
	ck_assert_int_eq(msr_query_add_text(&q, "0H5KB4M3", &err), 0);
	ck_assert_int_eq(msr_query_add_text(&q, "0H5K?4M[38]", &err), 0);
	finish_ok(&q, 2);
	sym_of("0H5KB4M3", sym);
	ck_assert_uint_eq(msr_query_mismatches(&q, sym), 0);
	sym_of("0H5KC4M3", sym);        /* only reading 1 excludes C */
	ck_assert_uint_eq(msr_query_mismatches(&q, sym), 1);
	sym_of("1H5KB4M3", sym);        /* both readings exclude 1 */
	ck_assert_uint_eq(msr_query_mismatches(&q, sym), 2);
	sym_of("0H5KB4M8", sym);        /* reading 2's set allows 8 */
	ck_assert_uint_eq(msr_query_mismatches(&q, sym), 1);
	sym_of("0H5KC4M8", sym);
	ck_assert_uint_eq(msr_query_mismatches(&q, sym), 2);
	sym_of("1H5KC4M8", sym);
	ck_assert_uint_eq(msr_query_mismatches(&q, sym), 4);
	ck_assert_uint_eq(q.cost[0][1], 2);
	ck_assert_uint_eq(q.cost[4][msr_sym_value('C')], 1);

	/* A gear reading counts per position too: one flipped bit, one mismatch. */
	msr_query_init(&q, NULL);
	ck_assert_int_eq(msr_query_add_gear(&q,
	    "00000 00001 00010 00011 00100 00101", &err), 0);
	finish_ok(&q, 0);
	sym_of("012345", sym);
	ck_assert_uint_eq(msr_query_mismatches(&q, sym), 0);
	sym_of("012355", sym);
	ck_assert_uint_eq(msr_query_mismatches(&q, sym), 1);
}
END_TEST

START_TEST(test_score_ranking)
{
	struct msr_query q;
	struct msr_pattern_error err;
	uint8_t exact[8], near[8], far[8], amb[8];

	msr_query_init(&q, NULL);
	ck_assert_int_eq(msr_query_add_text(&q, "0H5KB4M[3Z]", &err), 0);
	finish_ok(&q, 1);
	sym_of("0H5KB4M3", exact);
	sym_of("0H5K84M3", near);       /* B read for 8: look-alikes */
	sym_of("0H5KC4M3", far);        /* B read for C: not */
	sym_of("0H5KB4M2", amb);        /* 2 vs the set [3Z]: Z looks like 2 */
	ck_assert_int_gt(msr_query_score(&q, exact), msr_query_score(&q, near));
	ck_assert_int_gt(msr_query_score(&q, near), msr_query_score(&q, far));
	/* Mismatching where the reader was unsure is more plausible than where
	 * it read one symbol. */
	ck_assert_int_gt(msr_query_score(&q, amb), msr_query_score(&q, near));
	/* The score is the sum of the compiled table. */
	ck_assert_int_eq(msr_query_score(&q, exact),
	    (int32_t)(7 * lround(1000 * log(0.9)) + lround(1000 * log(0.45))));
}
END_TEST

START_TEST(test_confusion_parse)
{
	struct msr_confusion c;
	struct msr_pattern_error err;

	msr_confusion_default(&c);
	ck_assert_uint_eq(c.near[0], BIT('D') | BIT('Q'));
	ck_assert_uint_eq(c.near[msr_sym_value('Q')], BIT('0') | BIT('D'));
	ck_assert_uint_eq(c.near[8], BIT('B') | BIT('3'));
	ck_assert_uint_eq(c.near[1], BIT('7'));
	ck_assert_uint_eq(c.near[msr_sym_value('V')], 0);   /* U skipped */
	ck_assert_uint_eq(c.near[msr_sym_value('K')], 0);

	ck_assert_int_eq(msr_confusion_parse(" 0dq, 17 ,uv,IL2Z", &c, &err), 0);
	ck_assert_uint_eq(c.near[0], BIT('D') | BIT('Q'));
	ck_assert_uint_eq(c.near[2], BIT('Z'));
	ck_assert_uint_eq(c.near[msr_sym_value('V')], 0);
	/* overlapping groups merge */
	ck_assert_int_eq(msr_confusion_parse("8B,83", &c, &err), 0);
	ck_assert_uint_eq(c.near[8], BIT('B') | BIT('3'));
	ck_assert_uint_eq(c.near[3], BIT('8'));

	ck_assert_int_eq(msr_confusion_parse("", &c, &err), 0);
	ck_assert_uint_eq(c.near[0], 0);

	memset(&c, 0x5a, sizeof(c));
	ck_assert_int_eq(msr_confusion_parse("0DQ,1#7", &c, &err), -1);
	ck_assert_int_eq(err.code, MSR_PAT_BAD_CONFUSION);
	ck_assert_uint_eq(err.offset, 6);
	ck_assert_uint_eq(c.near[0], 0x5a5a5a5a);
	ck_assert_int_eq(msr_confusion_parse("[8B]", &c, &err), -1);
	ck_assert_uint_eq(err.offset, 1);
}
END_TEST

/* --- expected matches --------------------------------------------------- */

static void
query_of(struct msr_query *q, const char *const *texts, unsigned k)
{
	struct msr_pattern_error err;

	msr_query_init(q, NULL);
	for (; *texts != NULL; texts++) {
		int rc = (*texts)[0] == 'g' ?
		    msr_query_add_gear(q, *texts + 1, &err) :
		    msr_query_add_text(q, *texts, &err);

		ck_assert_msg(rc == 0, "%s: %s", *texts, err.message);
	}
	finish_ok(q, k);
}

static void
assert_close(double got, double want, double rel)
{
	ck_assert_msg(fabs(got - want) <= rel * fabs(want) + 1e-300,
	    "got %.12g want %.12g", got, want);
}

START_TEST(test_expected_closed_forms)
{
	static const char *const all_unknown[] = { "????????", NULL };
	static const char *const exact[] = { "0H5KB4M3", NULL };
	struct msr_query q;
	double p8 = pow(32.0, 8);

	query_of(&q, all_unknown, 0);
	assert_close(msr_query_expected(&q, 1e7), 1e7, 1e-12);
	query_of(&q, exact, 0);
	assert_close(msr_query_expected(&q, 1e9), 1e9 / p8, 1e-12);
	query_of(&q, exact, 1);
	assert_close(msr_query_expected(&q, 1e9), 1e9 * (1 + 8 * 31) / p8, 1e-12);
	query_of(&q, exact, 2);
	assert_close(msr_query_expected(&q, 1e9),
	    1e9 * (1 + 8 * 31 + 28 * 31 * 31) / p8, 1e-12);
}
END_TEST

/* Queries constrained at positions 0..3 only (the rest '?' in every reading),
 * so the exact probability is a count over 32^4 prefixes. */
static const char *const *const enum_queries[] = {
	(const char *const[]){ "0H5K????", NULL },
	(const char *const[]){ "0H[5S]K????", NULL },
	(const char *const[]){ "0H5K????", "0?[5S]K????", NULL },
	(const char *const[]){ "[0DQ]HS[K7]????", "1H5K????", "0HSK????", NULL },
	(const char *const[]){ "0H5K????", "g00000 100?? ????? 1001? ?????"
	    " ????? ????? ?????", NULL },
};

START_TEST(test_expected_enumerated)
{
	struct msr_query q;
	unsigned k;

	for (k = 0; k <= MSR_QUERY_MISMATCHES_MAX; k++) {
		uint8_t sym[MSR_CODE_MAX];
		unsigned long hits = 0, v;

		query_of(&q, enum_queries[_i], k);
		memset(sym, 0, sizeof(sym));
		for (v = 0; v < (1ul << 20); v++) {
			sym[0] = (uint8_t)(v >> 15);
			sym[1] = (uint8_t)(v >> 10 & 31);
			sym[2] = (uint8_t)(v >> 5 & 31);
			sym[3] = (uint8_t)(v & 31);
			hits += msr_query_mismatches(&q, sym) <= k;
		}
		assert_close(msr_query_expected(&q, 5e6),
		    5e6 * (double)hits / (double)(1ul << 20), 1e-9);
	}
}
END_TEST

START_TEST(test_expected_monte_carlo)
{
	static const char *const broad[] = { "0H[5S]?B???", "?H??????",
	    "g????? 1000? ????? ????? ????? ????? ????? ?????", NULL };
	struct msr_query q;
	uint64_t s = 42;
	unsigned long hits = 0, n = 400000, i;
	double p, sigma;
	unsigned j;

	query_of(&q, broad, 2);
	for (i = 0; i < n; i++) {
		uint8_t sym[8];

		for (j = 0; j < 8; j++) {
			s = s * UINT64_C(6364136223846793005) +
			    UINT64_C(1442695040888963407);
			sym[j] = (uint8_t)(s >> 59);
		}
		hits += msr_query_mismatches(&q, sym) <= 2;
	}
	p = msr_query_expected(&q, 1.0);
	sigma = sqrt(p * (1 - p) / (double)n);
	ck_assert_double_gt(p, 0.001);
	ck_assert_msg(fabs((double)hits / (double)n - p) < 5 * sigma,
	    "monte carlo %g, estimate %g", (double)hits / (double)n, p);
}
END_TEST

/* --- the specificity floor (msr_query_bits) ------------------------------ */

struct bits_case {
	const char *readings[3];
	unsigned mismatches;
	double bits;
};

static const struct bits_case bits_cases[] = {
	{ { "????????????" }, 0, 0.0 },                     /* a sparse length: nothing */
	{ { "0???????" }, 0, 5.0 },
	{ { "0H5K????" }, 0, 20.0 },                        /* 4 of 8 rs8 symbols */
	{ { "0H5K????" }, 1, 20.0 - 6.965784284662087 },    /* log2(1 + 4*31) */
	{ { "0H5KB4M3" }, 0, 30.0 },                        /* one codeword of 2^30 */
	{ { "0H5KB4M3" }, 1, 30.0 },
	{ { "0H5KB4M3" }, 2, 25.2709635047918 },         /* 40 - log2(1 + 8*31 + 28*961) */
	{ { "0H5K????", "0H[5S]K[AB]???" }, 0, 24.0 },      /* readings intersect */
	{ { "0H[5S]K????", "0H[5Z]K????" }, 0, 20.0 },
	{ { "AX93ZZ1Q7???" }, 0, 45.0 },                    /* free codes: every position */
	{ { "[0123][0123][0123][0123][0123][0123][0123][0123]" }, 0, 18.0 },
};

START_TEST(test_bits_cases)
{
	const struct bits_case *tc = &bits_cases[_i];
	struct msr_pattern_error err;
	struct msr_query q;

	msr_query_init(&q, NULL);
	for (int i = 0; i < 3 && tc->readings[i] != NULL; i++)
		ck_assert_msg(msr_query_add_text(&q, tc->readings[i], &err) == 0, "%s",
		    err.message);
	finish_ok(&q, tc->mismatches);
	ck_assert_msg(fabs(msr_query_bits(&q) - tc->bits) < 1e-6, "%s m=%u: %.6f bits, want %.6f",
	    tc->readings[0], tc->mismatches, msr_query_bits(&q), tc->bits);
}
END_TEST

/*
 * The rs8 bound holds for codewords, not only for random strings: seeded
 * codewords against queries constraining all 8 positions (where the check
 * symbols are a function of the data) never match more often than the bound.
 */
START_TEST(test_bits_rs8_monte_carlo)
{
	uint64_t seed = 0x6d7372627564ULL;
	struct msr_pattern_error err;
	struct msr_query q;
	uint8_t sym[MSR_RS8_LEN];
	char text[8 * 20];
	const unsigned samples = 1u << 18;

	for (int round = 0; round < 4; round++) {
		unsigned hits = 0, width = round < 2 ? 16 : 8;
		double bound;
		char *p = text;

		/* a random set of `width` symbols at every position */
		for (int pos = 0; pos < MSR_RS8_LEN; pos++) {
			uint32_t set = 0;
			while ((unsigned)__builtin_popcount(set) < width)
				set |= UINT32_C(1) << msr_test_rand_below(&seed, 32);
			*p++ = '[';
			for (int s2 = 0; s2 < 32; s2++)
				if (set & (UINT32_C(1) << s2))
					*p++ = MSR_ALPHABET[s2];
			*p++ = ']';
		}
		*p = '\0';
		msr_query_init(&q, NULL);
		ck_assert_msg(msr_query_add_text(&q, text, &err) == 0, "%s", err.message);
		finish_ok(&q, (unsigned)(round & 1));
		bound = msr_query_match_bound(&q);
		for (unsigned i = 0; i < samples; i++) {
			msr_rs8_from_data((uint32_t)(msr_test_rand(&seed) & (MSR_RS8_DATA_SPACE - 1)),
			    sym);
			hits += msr_query_mismatches(&q, sym) <= q.max_mismatches;
		}
		/* generous: 1.3x the bound plus 5 standard deviations */
		ck_assert_msg(hits <= bound * samples * 1.3 + 5 * sqrt(bound * samples) + 5,
		    "%s m=%u: %u of %u codewords matched, bound %.3g", text, q.max_mismatches,
		    hits, samples, bound * samples);
	}
}
END_TEST

static Suite *
pattern_suite(void)
{
	Suite *s = suite_create("pattern");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_text_symbols, 0,
	    (int)(sizeof(text_ok_cases) / sizeof(text_ok_cases[0])));
	tcase_add_test(tc, test_text_normalisation_and_sets);
	tcase_add_loop_test(tc, test_text_errors, 0,
	    (int)(sizeof(text_bad_cases) / sizeof(text_bad_cases[0])));
	tcase_add_test(tc, test_errnames);
	tcase_add_test(tc, test_gear_vectors);
	tcase_add_test(tc, test_gear_unknown_bits);
	tcase_add_test(tc, test_gear_errors);
	tcase_add_test(tc, test_query_errors);
	tcase_add_test(tc, test_mismatch_semantics);
	tcase_add_test(tc, test_score_ranking);
	tcase_add_test(tc, test_confusion_parse);
	tcase_add_test(tc, test_expected_closed_forms);
	tcase_add_loop_test(tc, test_expected_enumerated, 0,
	    (int)(sizeof(enum_queries) / sizeof(enum_queries[0])));
	tcase_add_test(tc, test_expected_monte_carlo);
	tcase_add_loop_test(tc, test_bits_cases, 0,
	    (int)(sizeof(bits_cases) / sizeof(bits_cases[0])));
	tcase_add_test(tc, test_bits_rs8_monte_carlo);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return msr_test_run(pattern_suite(), 0);
}
