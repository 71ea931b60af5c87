/*
 * check_search.c — the partial-code index against a brute-force oracle.
 *
 * A seeded generator makes a registry (mostly rs8 codewords, some clustered so
 * that mismatch queries find several codes, plus free codes of every length and
 * 8-symbol non-codewords), builds the index half in bulk and half by single adds
 * (small delta, so several runs and a live delta exist), and checks thousands of
 * random queries (unknowns, sets, misreads, 1-3 text and gear readings,
 * max_mismatches 0..2) against a plain scan: same total, same hits, same
 * mismatches and scores, same order. A concurrency test searches from several
 * threads while another thread adds codes.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/code.h"
#include "msreg/pattern.h"
#include "msreg/common.h"
#include "msreg/search.h"
#include "harness.h"

/* --- deterministic randomness ------------------------------------------- */

static int
rnd_chance(uint64_t *s, unsigned percent)
{
	return msr_test_rand_below(s, 100) < percent;
}

/* --- registry ----------------------------------------------------------- */

struct registry {
	struct msr_code *codes;
	size_t n;
};

static void
random_rs8(uint64_t *s, struct msr_code *c)
{
	memset(c, 0, sizeof(*c));
	c->len = 8;
	msr_rs8_from_data((uint32_t)(msr_test_rand(s) & (MSR_RS8_DATA_SPACE - 1)),
	    c->sym);
}

static void
random_free(uint64_t *s, struct msr_code *c, unsigned len)
{
	unsigned i;

	memset(c, 0, sizeof(*c));
	c->len = (uint8_t)len;
	for (i = 0; i < len; i++)
		c->sym[i] = (uint8_t)msr_test_rand_below(s, 32);
}

static int
code_eq(const struct msr_code *a, const struct msr_code *b)
{
	return a->len == b->len && memcmp(a->sym, b->sym, a->len) == 0;
}

static int
code_qcmp(const void *a, const void *b)
{
	const struct msr_code *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->sym, y->sym, x->len);
}

/*
 * n_rs8 codewords (a fifth of them close relatives of earlier ones: one or two
 * data symbols changed) and n_free others. Deduplicated, then shuffled.
 */
static void
registry_make(struct registry *reg, uint64_t seed, size_t n_rs8, size_t n_free)
{
	uint64_t s = seed;
	size_t i, out;

	reg->codes = calloc(n_rs8 + n_free, sizeof(*reg->codes));
	ck_assert_ptr_nonnull(reg->codes);
	for (i = 0; i < n_rs8; i++) {
		struct msr_code *c = &reg->codes[i];

		if (i > 10 && rnd_chance(&s, 20)) {
			*c = reg->codes[msr_test_rand_below(&s, (unsigned)i)];
			c->sym[msr_test_rand_below(&s, 6)] = (uint8_t)msr_test_rand_below(&s, 32);
			if (rnd_chance(&s, 50))
				c->sym[msr_test_rand_below(&s, 6)] = (uint8_t)msr_test_rand_below(&s, 32);
			msr_rs8_encode(c->sym);
		} else {
			random_rs8(&s, c);
		}
	}
	for (i = n_rs8; i < n_rs8 + n_free; i++) {
		unsigned len = MSR_FREE_MIN + msr_test_rand_below(&s, MSR_FREE_MAX - MSR_FREE_MIN + 1);

		if (rnd_chance(&s, 30))
			len = 8;        /* mostly non-codewords of rs8 length */
		random_free(&s, &reg->codes[i], len);
		if (i > n_rs8 && rnd_chance(&s, 30)) {
			/* a relative of the previous free code of its length */
			const struct msr_code *prev = &reg->codes[i - 1];

			if (prev->len == len) {
				reg->codes[i] = *prev;
				reg->codes[i].sym[msr_test_rand_below(&s, len)] =
				    (uint8_t)msr_test_rand_below(&s, 32);
			}
		}
	}
	reg->n = n_rs8 + n_free;
	qsort(reg->codes, reg->n, sizeof(*reg->codes), code_qcmp);
	for (i = 0, out = 0; i < reg->n; i++)
		if (out == 0 || !code_eq(&reg->codes[out - 1], &reg->codes[i]))
			reg->codes[out++] = reg->codes[i];
	reg->n = out;
	for (i = reg->n; i > 1; i--) {
		size_t j = msr_test_rand(&s) % i;
		struct msr_code tmp = reg->codes[i - 1];

		reg->codes[i - 1] = reg->codes[j];
		reg->codes[j] = tmp;
	}
}

static int
is_codeword(const struct msr_code *c)
{
	return c->len == 8 && msr_rs8_valid(c->sym);
}

/*
 * Index the first half of reg in bulk (codewords packed, the rest as generic
 * codes, and a few codewords in the generic array too), the second half by
 * single adds. merge_cap 0 is the default; a small one keeps several runs.
 */
static struct msr_index *
index_make(const struct registry *reg, size_t delta_max, size_t merge_cap)
{
	struct msr_index_config cfg;
	struct msr_index *idx;
	size_t half = reg->n / 2, i, np = 0, ng = 0;
	uint64_t *packed = calloc(half + 1, sizeof(*packed));
	struct msr_code *generic = calloc(half + 1, sizeof(*generic));

	ck_assert(packed != NULL && generic != NULL);
	for (i = 0; i < half; i++) {
		if (is_codeword(&reg->codes[i]) && i % 7 != 0)
			packed[np++] = msr_rs8_pack(reg->codes[i].sym);
		else
			generic[ng++] = reg->codes[i];
	}
	/* A duplicate in the bulk input must be indexed once. */
	if (np > 0)
		packed[np++] = packed[0];
	memset(&cfg, 0, sizeof(cfg));
	cfg.delta_max = delta_max;
	cfg.merge_cap = merge_cap;
	idx = msr_index_build(packed, np, generic, ng, &cfg);
	ck_assert_ptr_nonnull(idx);
	for (i = half; i < reg->n; i++)
		ck_assert_int_eq(msr_index_add(idx, &reg->codes[i]), 1);
	/* Adding again is a no-op. */
	ck_assert_int_eq(msr_index_add(idx, &reg->codes[0]), 0);
	ck_assert_int_eq(msr_index_add(idx, &reg->codes[reg->n - 1]), 0);
	free(packed);
	free(generic);
	return idx;
}

/* --- queries ------------------------------------------------------------ */

static const char *const confusable[] = { "0DQ", "17", "2Z", "5S", "6G", "8B3" };

/* A plausible misreading of symbol v: a look-alike when there is one. */
static uint8_t
misread(uint64_t *s, uint8_t v)
{
	char ch = msr_sym_char(v);
	size_t g;

	for (g = 0; g < sizeof(confusable) / sizeof(confusable[0]); g++) {
		const char *grp = confusable[g];

		if (strchr(grp, ch) != NULL && rnd_chance(s, 70)) {
			char o = grp[msr_test_rand_below(s, (unsigned)strlen(grp))];

			if (o != ch)
				return (uint8_t)msr_sym_value(o);
		}
	}
	return (uint8_t)((v + 1 + msr_test_rand_below(s, 31)) % 32);
}

struct qshape {
	unsigned unknown_pct, set_pct, misread_pct;
};

/* A text reading of `c` with unknowns, sets, misreads; random case, hyphens. */
static void
make_text(uint64_t *s, const struct msr_code *c, const struct qshape *sh,
    char *buf, size_t cap)
{
	size_t n = 0;
	unsigned p;

	for (p = 0; p < c->len; p++) {
		uint8_t v = c->sym[p];
		char ch;

		if (rnd_chance(s, sh->misread_pct))
			v = misread(s, v);
		if (rnd_chance(s, 5))
			buf[n++] = '-';
		if (rnd_chance(s, sh->unknown_pct)) {
			buf[n++] = '?';
			continue;
		}
		if (rnd_chance(s, sh->set_pct)) {
			unsigned k, m = 1 + msr_test_rand_below(s, 3);

			buf[n++] = '[';
			if (rnd_chance(s, 85))
				buf[n++] = msr_sym_char(v);
			for (k = 0; k < m; k++)
				buf[n++] = msr_sym_char((uint8_t)msr_test_rand_below(s, 32));
			buf[n++] = ']';
			continue;
		}
		ch = msr_sym_char(v);
		if (ch >= 'A' && ch <= 'Z' && rnd_chance(s, 20))
			ch = (char)(ch - 'A' + 'a');
		if (ch == '1' && rnd_chance(s, 30))
			ch = 'I';
		if (ch == '0' && rnd_chance(s, 30))
			ch = 'o';
		buf[n++] = ch;
	}
	ck_assert_uint_lt(n, cap);
	buf[n] = '\0';
}

/* A gear reading: bits of c, some unknown, some flipped. */
static void
make_gear(uint64_t *s, const struct msr_code *c, const struct qshape *sh,
    char *buf, size_t cap)
{
	char bits[5 * MSR_CODE_MAX + 1];
	size_t i, n;

	msr_code_gear(c->sym, c->len, bits);
	n = strlen(bits);
	ck_assert_uint_lt(n, cap);
	for (i = 0; i < n; i++) {
		if (rnd_chance(s, sh->unknown_pct / 2 + 1))
			bits[i] = '?';
		else if (rnd_chance(s, sh->misread_pct / 3))
			bits[i] = bits[i] == '0' ? '1' : '0';
	}
	memcpy(buf, bits, n + 1);
}

/* Build a random finished query around a code from reg (or a stranger). */
static void
make_query(uint64_t *s, const struct registry *reg, struct msr_query *q)
{
	struct msr_pattern_error err;
	struct msr_code target;
	struct qshape sh;
	char buf[256];
	unsigned r, nread = 1 + msr_test_rand_below(s, 3), k = msr_test_rand_below(s, 3);
	int rc;

	if (rnd_chance(s, 85))
		target = reg->codes[msr_test_rand(s) % reg->n];
	else if (rnd_chance(s, 70))
		random_rs8(s, &target);
	else
		random_free(s, &target, 6 + msr_test_rand_below(s, 11));
	switch (msr_test_rand_below(s, 4)) {
	case 0:
		sh = (struct qshape){ 5, 5, 5 };
		break;
	case 1:
		sh = (struct qshape){ 30, 10, 5 };
		break;
	case 2:
		sh = (struct qshape){ 15, 30, 10 };
		break;
	default:
		sh = (struct qshape){ 50, 10, 15 };
		break;
	}
	msr_query_init(q, NULL);
	for (r = 0; r < nread; r++) {
		if (rnd_chance(s, 25)) {
			make_gear(s, &target, &sh, buf, sizeof(buf));
			rc = msr_query_add_gear(q, buf, &err);
		} else {
			make_text(s, &target, &sh, buf, sizeof(buf));
			rc = msr_query_add_text(q, buf, &err);
		}
		ck_assert_msg(rc == 0, "parse %s: %s", buf, err.message);
	}
	ck_assert_int_eq(msr_query_finish(q, k, NULL, &err), 0);
}

/* --- oracle ------------------------------------------------------------- */

/* Mismatches straight from the readings' sets, not from the compiled table. */
static unsigned
oracle_mismatches(const struct msr_query *q, const struct msr_code *c)
{
	unsigned r, p, m = 0;

	for (r = 0; r < q->nreadings; r++)
		for (p = 0; p < q->len; p++)
			if (!(q->reading[r].set[p] & (UINT32_C(1) << c->sym[p])))
				m++;
	return m;
}

static int
oracle_cmp(const void *a, const void *b)
{
	const struct msr_hit *x = a, *y = b;

	if (x->mismatches != y->mismatches)
		return x->mismatches < y->mismatches ? -1 : 1;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return memcmp(x->code.sym, y->code.sym, x->code.len);
}

/* All matches of q in reg, ranked; returns the count. */
static size_t
oracle(const struct registry *reg, const struct msr_query *q,
    struct msr_hit *out)
{
	size_t i, n = 0;

	for (i = 0; i < reg->n; i++) {
		const struct msr_code *c = &reg->codes[i];
		unsigned m;

		if (c->len != q->len)
			continue;
		m = oracle_mismatches(q, c);
		if (m > q->max_mismatches)
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		out[n].code = *c;
		out[n].mismatches = m;
		out[n].score = msr_query_score(q, c->sym);
		n++;
	}
	qsort(out, n, sizeof(*out), oracle_cmp);
	return n;
}

static void
describe(const struct msr_query *q, char *buf, size_t cap)
{
	size_t n = 0;
	unsigned r, p;

	n += (size_t)snprintf(buf + n, cap - n, "k=%u", q->max_mismatches);
	for (r = 0; r < q->nreadings && n < cap; r++) {
		n += (size_t)snprintf(buf + n, cap - n, " |");
		for (p = 0; p < q->len && n + 12 < cap; p++)
			n += (size_t)snprintf(buf + n, cap - n, "%x.",
			    q->reading[r].set[p]);
	}
}

static void
check_queries(const struct registry *reg, struct msr_index *idx, uint64_t seed,
    unsigned nq)
{
	struct msr_hit *want = calloc(reg->n, sizeof(*want));
	struct msr_hit got[64];
	struct msr_query q;
	struct msr_search_result res;
	uint64_t s = seed;
	unsigned i, with_hits = 0, with_mismatch = 0;
	char desc[1024];

	ck_assert_ptr_nonnull(want);
	for (i = 0; i < nq; i++) {
		size_t total, limit = 1 + msr_test_rand_below(&s, 60), j;

		make_query(&s, reg, &q);
		total = oracle(reg, &q, want);
		ck_assert_int_eq(msr_index_search(idx, &q, got, limit, &res), 0);
		describe(&q, desc, sizeof(desc));
		ck_assert_msg(res.total == total,
		    "query %u (%s): total %llu, oracle %zu", i, desc,
		    (unsigned long long)res.total, total);
		ck_assert_uint_eq(res.nhits, total < limit ? total : limit);
		for (j = 0; j < res.nhits; j++) {
			char a[MSR_CODE_MAX + 1], b[MSR_CODE_MAX + 1];

			msr_code_format(got[j].code.sym, got[j].code.len, a);
			msr_code_format(want[j].code.sym, want[j].code.len, b);
			ck_assert_msg(code_eq(&got[j].code, &want[j].code) &&
			    got[j].mismatches == want[j].mismatches &&
			    got[j].score == want[j].score,
			    "query %u (%s) hit %zu: got %s m=%u s=%d, want %s m=%u "
			    "s=%d", i, desc, j, a, got[j].mismatches, got[j].score,
			    b, want[j].mismatches, want[j].score);
			ck_assert_uint_eq(got[j].mismatches,
			    msr_query_mismatches(&q, got[j].code.sym));
		}
		with_hits += total > 0;
		with_mismatch += total > 0 && want[total - 1].mismatches > 0;
	}
	/* The generator must exercise real matches, not only empty results. */
	ck_assert_uint_gt(with_hits, nq / 2);
	ck_assert_uint_gt(with_mismatch, nq / 10);
	free(want);
}

/* --- tests -------------------------------------------------------------- */

START_TEST(test_oracle_small)
{
	struct registry reg;
	struct msr_index *idx;
	struct msr_index_stats st;

	registry_make(&reg, 1234, 6000, 800);
	idx = index_make(&reg, 64, 1500);
	msr_index_stats(idx, &st);
	ck_assert_uint_eq(st.codes, reg.n);
	ck_assert_uint_gt(st.runs, 1);
	check_queries(&reg, idx, 99, 3000);
	msr_index_free(idx);
	free(reg.codes);
}
END_TEST

START_TEST(test_oracle_bulk_chunks)
{
	/* A registry loaded in chunks (as msregd's feed loads a large one): several
	 * bulk runs of different sizes, free codes in two parts, then single adds. */
	struct registry reg;
	struct msr_index *idx = msr_index_new(NULL);
	struct msr_index_stats st;
	uint64_t *rs8 = malloc(20000 * sizeof(*rs8));
	struct msr_code *other = malloc(20000 * sizeof(*other)), bad;
	size_t chunk_end[] = { 7000, 11000, 12500, 17000 };
	size_t from = 0, n_rs8, n_other, c;

	ck_assert_ptr_nonnull(idx);
	registry_make(&reg, 4711, 20000, 1500);
	for (c = 0; c < MSR_ARRAY_LEN(chunk_end); c++) {
		n_rs8 = n_other = 0;
		for (size_t i = from; i < chunk_end[c]; i++) {
			if (reg.codes[i].len == MSR_RS8_LEN && msr_rs8_valid(reg.codes[i].sym))
				rs8[n_rs8++] = msr_rs8_pack(reg.codes[i].sym);
			else
				other[n_other++] = reg.codes[i];
		}
		ck_assert_int_eq(msr_index_add_bulk(idx, rs8, n_rs8, other, n_other), 0);
		from = chunk_end[c];
	}
	msr_index_stats(idx, &st);
	ck_assert_uint_eq(st.runs, MSR_ARRAY_LEN(chunk_end));   /* one run per chunk */
	{
		/* before the rest arrives, the index holds exactly the loaded prefix */
		struct registry part = { reg.codes, from };
		check_queries(&part, idx, 2718, 500);
	}
	for (size_t i = from; i < reg.n; i++)
		ck_assert_int_eq(msr_index_add(idx, &reg.codes[i]), 1);
	msr_index_stats(idx, &st);
	ck_assert_uint_eq(st.codes, reg.n);
	/* invalid bulk input is refused and changes nothing */
	bad = reg.codes[0];
	for (size_t i = 0; i < reg.n; i++)
		if (reg.codes[i].len == MSR_RS8_LEN && msr_rs8_valid(reg.codes[i].sym)) {
			bad = reg.codes[i];
			break;
		}
	ck_assert_int_eq(msr_index_add_bulk(idx, NULL, 0, &bad, 1), -1);
	rs8[0] = msr_rs8_pack(bad.sym) ^ 1;            /* no longer a codeword */
	ck_assert_int_eq(msr_index_add_bulk(idx, rs8, 1, NULL, 0), -1);
	msr_index_stats(idx, &st);
	ck_assert_uint_eq(st.codes, reg.n);
	check_queries(&reg, idx, 31337, 2000);
	msr_index_free(idx);
	free(reg.codes);
	free(rs8);
	free(other);
}
END_TEST

START_TEST(test_oracle_large)
{
	struct registry reg;
	struct msr_index *idx;
	struct msr_index_stats st;
	size_t n8 = 0, i;

	/* Bulk half above 2^17 codes: 16-bit directories, 3-byte entries. */
	registry_make(&reg, 777, 300000, 3000);
	idx = index_make(&reg, 4096, 0);
	msr_index_stats(idx, &st);
	ck_assert_uint_eq(st.codes, reg.n);
	for (i = 0; i < reg.n; i++)
		n8 += reg.codes[i].len == 8;
	ck_assert_uint_eq(msr_index_count_len(idx, 8), n8);
	check_queries(&reg, idx, 4242, 2000);
	msr_index_free(idx);
	free(reg.codes);
}
END_TEST

START_TEST(test_empty_and_edges)
{
	struct msr_index *idx = msr_index_new(NULL);
	struct msr_pattern_error err;
	struct msr_query q;
	struct msr_search_result res;
	struct msr_hit hits[4];
	struct msr_code c, bad;
	uint64_t s = 5;

	msr_query_init(&q, NULL);
	ck_assert_int_eq(msr_query_add_text(&q, "????????", &err), 0);
	/* unfinished query */
	ck_assert_int_eq(msr_index_search(idx, &q, hits, 4, &res), -1);
	ck_assert_int_eq(msr_query_finish(&q, 0, NULL, &err), 0);
	ck_assert_int_eq(msr_index_search(idx, &q, hits, 4, &res), 0);
	ck_assert_uint_eq(res.total, 0);

	random_rs8(&s, &c);
	ck_assert_int_eq(msr_index_add(idx, &c), 1);
	ck_assert_int_eq(msr_index_add_rs8(idx, msr_rs8_pack(c.sym)), 0);
	ck_assert_int_eq(msr_index_search(idx, &q, hits, 4, &res), 0);
	ck_assert_uint_eq(res.total, 1);
	ck_assert(code_eq(&hits[0].code, &c));
	/* limit 0 still counts */
	ck_assert_int_eq(msr_index_search(idx, &q, NULL, 0, &res), 0);
	ck_assert_uint_eq(res.total, 1);
	ck_assert_uint_eq(res.nhits, 0);

	bad = c;
	bad.len = 5;
	ck_assert_int_eq(msr_index_add(idx, &bad), -1);
	bad = c;
	bad.sym[2] = 32;
	ck_assert_int_eq(msr_index_add(idx, &bad), -1);
	ck_assert_int_eq(msr_index_add_rs8(idx, UINT64_C(1) << 40), -1);
	ck_assert_ptr_null(msr_index_build(NULL, 0, &bad, 1, NULL));
	msr_index_free(idx);
}
END_TEST

START_TEST(test_contradicting_readings)
{
	/* Readings that disagree everywhere: every code pays at least 8. */
	struct msr_index *idx;
	struct msr_pattern_error err;
	struct msr_query q;
	struct msr_search_result res;
	struct msr_hit hits[4];
	uint64_t packed[1];
	uint8_t sym[8];

	msr_rs8_from_data(12345, sym);
	packed[0] = msr_rs8_pack(sym);
	idx = msr_index_build(packed, 1, NULL, 0, NULL);
	ck_assert_ptr_nonnull(idx);
	msr_query_init(&q, NULL);
	ck_assert_int_eq(msr_query_add_text(&q, "00000000", &err), 0);
	ck_assert_int_eq(msr_query_add_text(&q, "11111111", &err), 0);
	ck_assert_int_eq(msr_query_finish(&q, 2, NULL, &err), 0);
	ck_assert_int_eq(msr_index_search(idx, &q, hits, 4, &res), 0);
	ck_assert_uint_eq(res.total, 0);
	msr_index_free(idx);
}
END_TEST

/* --- concurrency -------------------------------------------------------- */

struct conc {
	struct msr_index *idx;
	const struct registry *reg;
	size_t bulk;                  /* reg->codes[0..bulk) built in bulk */
	atomic_size_t added;          /* reg->codes[bulk..bulk+added) added */
	atomic_int stop;
	atomic_int failures;
	uint64_t seed;
};

static int
find_exact(struct msr_index *idx, const struct msr_code *c)
{
	struct msr_pattern_error err;
	struct msr_query q;
	struct msr_search_result res;
	struct msr_hit hit;
	char text[MSR_CODE_MAX + 1];

	msr_code_format(c->sym, c->len, text);
	msr_query_init(&q, NULL);
	if (msr_query_add_text(&q, text, &err) != 0 ||
	    msr_query_finish(&q, 0, NULL, &err) != 0)
		return 0;
	if (msr_index_search(idx, &q, &hit, 1, &res) != 0)
		return 0;
	return res.total == 1 && code_eq(&hit.code, c);
}

static void *
searcher(void *arg)
{
	struct conc *cc = arg;
	uint64_t s = cc->seed;
	struct msr_query q;
	struct msr_hit hits[8];
	struct msr_search_result res;
	unsigned rounds = 0;

	while (!atomic_load(&cc->stop) || rounds < 50) {
		size_t added = atomic_load(&cc->added);
		size_t i = msr_test_rand(&s) % (cc->bulk + added);

		/* Anything published before the search started must be found. */
		if (!find_exact(cc->idx, &cc->reg->codes[i]))
			atomic_fetch_add(&cc->failures, 1);
		make_query(&s, cc->reg, &q);
		if (msr_index_search(cc->idx, &q, hits, 8, &res) != 0)
			atomic_fetch_add(&cc->failures, 1);
		rounds++;
	}
	return NULL;
}

START_TEST(test_concurrent_add_search)
{
	struct registry reg;
	struct msr_index_config cfg;
	struct conc cc;
	pthread_t th[3];
	uint64_t *packed;
	size_t i, bulk, np;
	unsigned t;

	registry_make(&reg, 31337, 40000, 500);
	bulk = reg.n / 2;
	packed = calloc(bulk, sizeof(*packed));
	ck_assert_ptr_nonnull(packed);
	memset(&cc, 0, sizeof(cc));
	/* Bulk: only the codewords; the free codes of the first half are added. */
	for (i = 0, np = 0; i < bulk; i++)
		if (is_codeword(&reg.codes[i]))
			packed[np++] = msr_rs8_pack(reg.codes[i].sym);
	memset(&cfg, 0, sizeof(cfg));
	cfg.delta_max = 128;
	cc.idx = msr_index_build(packed, np, NULL, 0, &cfg);
	ck_assert_ptr_nonnull(cc.idx);
	for (i = 0; i < bulk; i++)
		if (!is_codeword(&reg.codes[i]))
			ck_assert_int_eq(msr_index_add(cc.idx, &reg.codes[i]), 1);
	cc.reg = &reg;
	cc.bulk = bulk;
	for (t = 0; t < 3; t++) {
		cc.seed = 1000 + t;
		ck_assert_int_eq(pthread_create(&th[t], NULL, searcher, &cc), 0);
	}
	for (i = bulk; i < reg.n; i++) {
		ck_assert_int_eq(msr_index_add(cc.idx, &reg.codes[i]), 1);
		atomic_store(&cc.added, i + 1 - bulk);
	}
	atomic_store(&cc.stop, 1);
	for (t = 0; t < 3; t++)
		pthread_join(th[t], NULL);
	ck_assert_int_eq(atomic_load(&cc.failures), 0);
	check_queries(&reg, cc.idx, 5150, 300);
	msr_index_free(cc.idx);
	free(packed);
	free(reg.codes);
}
END_TEST

static Suite *
search_suite(void)
{
	Suite *s = suite_create("search");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_empty_and_edges);
	tcase_add_test(tc, test_contradicting_readings);
	tcase_add_test(tc, test_oracle_small);
	tcase_add_test(tc, test_oracle_large);
	tcase_add_test(tc, test_oracle_bulk_chunks);
	tcase_add_test(tc, test_concurrent_add_search);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return msr_test_run(search_suite(), 0);
}
