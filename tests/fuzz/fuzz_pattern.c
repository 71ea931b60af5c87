/*
 * fuzz_pattern.c — libFuzzer target for the reading parser and query model
 * (server/pattern.c).
 *
 * The input is split on '\n' into lines. The first line is also tried as a
 * confusion-table spec. Each line is a reading: gear bits when it starts with
 * 'g', text otherwise; each is parsed alone and appended to one query. The last
 * byte of the input picks max_mismatches (0..3, 3 must be refused). Checked:
 *   - a failed parse writes nothing but *err: a known code, a NUL-terminated
 *     message, position <= 17 and offset <= line length + 1;
 *   - a parsed reading has 1..16 positions and no empty set, and its canonical
 *     rendering (symbol, '?' or "[...]", or the gear bits) parses back to the
 *     same sets;
 *   - a failed add leaves the query's reading count unchanged;
 *   - a finished query's cost table equals a count over the readings, for a
 *     code drawn from the input; scores are finite sums;
 *   - msr_query_expected is within [0, N] and grows with max_mismatches;
 *   - a parsed confusion table is symmetric and never lists a symbol itself.
 * Any broken invariant aborts, which libFuzzer reports as a crash.
 */
#include "msreg/pattern.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do {                                                \
	if (!(cond)) {                                                  \
		fprintf(stderr, "%s:%d: invariant failed: %s\n",        \
		    __FILE__, __LINE__, #cond);                         \
		abort();                                                \
	}                                                               \
} while (0)

#define LINE_MAX_LEN 512

static void
check_error(const struct msr_pattern_error *err, size_t linelen)
{
	CHECK(err->code != MSR_PAT_OK);
	CHECK(strcmp(msr_pattern_errname(err->code), "unknown") != 0);
	CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL);
	CHECK(err->message[0] != '\0');
	CHECK(err->position <= MSR_CODE_MAX + 1);
	CHECK(err->offset <= linelen + 1);
}

static void
check_reading(const struct msr_reading *r)
{
	unsigned p;

	CHECK(r->len >= 1 && r->len <= MSR_CODE_MAX);
	for (p = 0; p < r->len; p++)
		CHECK(r->set[p] != 0);
}

/* Canonical text of a text reading; parses back to the same sets. */
static void
render_text(const struct msr_reading *r, char *buf)
{
	size_t n = 0;
	unsigned p, s;

	for (p = 0; p < r->len; p++) {
		if (r->set[p] == MSR_SET_ALL) {
			buf[n++] = '?';
			continue;
		}
		if (__builtin_popcount(r->set[p]) == 1) {
			buf[n++] = msr_sym_char((uint8_t)__builtin_ctz(r->set[p]));
			continue;
		}
		buf[n++] = '[';
		for (s = 0; s < MSR_SYMBOLS; s++)
			if (r->set[p] & (UINT32_C(1) << s))
				buf[n++] = msr_sym_char((uint8_t)s);
		buf[n++] = ']';
	}
	buf[n] = '\0';
}

static void
roundtrip(const struct msr_reading *r)
{
	char buf[MSR_CODE_MAX * 35 + 1];
	struct msr_reading back;
	struct msr_pattern_error err;

	if (r->kind != MSR_READING_TEXT)
		return;
	render_text(r, buf);
	CHECK(msr_reading_parse_text(buf, 0, &back, &err) == 0);
	CHECK(back.len == r->len);
	CHECK(memcmp(back.set, r->set, r->len * sizeof(r->set[0])) == 0);
}

static void
check_confusion(const char *spec)
{
	struct msr_confusion c;
	struct msr_pattern_error err;
	unsigned s, t;

	memset(&c, 0x77, sizeof(c));
	if (msr_confusion_parse(spec, &c, &err) != 0) {
		check_error(&err, strlen(spec));
		CHECK(err.code == MSR_PAT_BAD_CONFUSION);
		for (s = 0; s < MSR_SYMBOLS; s++)
			CHECK(c.near[s] == 0x77777777);
		return;
	}
	for (s = 0; s < MSR_SYMBOLS; s++) {
		CHECK(!(c.near[s] & (UINT32_C(1) << s)));
		for (t = 0; t < MSR_SYMBOLS; t++)
			CHECK(!!(c.near[s] & (UINT32_C(1) << t)) ==
			    !!(c.near[t] & (UINT32_C(1) << s)));
	}
}

static void
check_query(struct msr_query *q, unsigned k, const uint8_t *data, size_t size)
{
	struct msr_pattern_error err;
	uint8_t sym[MSR_CODE_MAX];
	unsigned p, r, direct = 0, kk;
	double prev = -1.0, e;

	if (msr_query_finish(q, k, NULL, &err) != 0) {
		check_error(&err, 0);
		CHECK(q->nreadings == 0 || k > MSR_QUERY_MISMATCHES_MAX);
		return;
	}
	for (p = 0; p < q->len; p++)
		sym[p] = (uint8_t)(size > 0 ? data[(p * 7) % size] & 31 : 0);
	for (r = 0; r < q->nreadings; r++)
		for (p = 0; p < q->len; p++)
			direct += !(q->reading[r].set[p] & (UINT32_C(1) << sym[p]));
	CHECK(msr_query_mismatches(q, sym) == direct);
	CHECK(msr_query_score(q, sym) <= 0);
	for (kk = 0; kk <= MSR_QUERY_MISMATCHES_MAX; kk++) {
		CHECK(msr_query_finish(q, kk, NULL, &err) == 0);
		e = msr_query_expected(q, 1e9);
		CHECK(isfinite(e) && e >= 0.0 && e <= 1e9 * (1 + 1e-9));
		CHECK(e >= prev * (1 - 1e-12));
		prev = e;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msr_query q;
	struct msr_reading r;
	struct msr_pattern_error err;
	char line[LINE_MAX_LEN + 1];
	size_t at = 0, lines = 0;
	unsigned k = size > 0 ? data[size - 1] % 4 : 0;

	msr_query_init(&q, NULL);
	while (at < size && lines < 24) {
		size_t end = at, len;
		unsigned before;
		int gear, rc;

		while (end < size && data[end] != '\n')
			end++;
		len = end - at < LINE_MAX_LEN ? end - at : LINE_MAX_LEN;
		memcpy(line, data + at, len);
		line[len] = '\0';
		len = strlen(line);     /* an embedded NUL ends the line */
		at = end + 1;
		if (lines++ == 0)
			check_confusion(line);

		gear = line[0] == 'g';
		memset(&r, 0xa5, sizeof(r));
		rc = gear ? msr_reading_parse_gear(line + 1, 0, &r, &err) :
		    msr_reading_parse_text(line, 0, &r, &err);
		if (rc != 0) {
			check_error(&err, len);
			CHECK(r.len == 0xa5a5a5a5u);
		} else {
			check_reading(&r);
			roundtrip(&r);
		}

		before = q.nreadings;
		rc = gear ? msr_query_add_gear(&q, line + 1, &err) :
		    msr_query_add_text(&q, line, &err);
		if (rc != 0) {
			check_error(&err, len);
			CHECK(q.nreadings == before);
			CHECK(err.reading == before + 1);
		} else {
			CHECK(q.nreadings == before + 1);
			CHECK(q.len >= q.limits.min_positions &&
			    q.len <= q.limits.max_positions);
		}
	}
	check_query(&q, k, data, size);
	return 0;
}
