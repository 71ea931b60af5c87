/*
 * pattern.c — reading parser and query model for partial-code lookups.
 *
 * Readings arrive as text ("0H[5S]K?4M3") or gear bits ("00000100?..."); both
 * become one 32-bit symbol mask per position. A query compiles its readings into
 * two tables indexed by (position, symbol): cost, the number of readings that
 * exclude the symbol there, and score, a log-likelihood. Every matcher (the index
 * in search.c, brute-force scans in tests and benchmarks) uses only these tables,
 * so the match semantics live in exactly one place.
 *
 * Invariants:
 *   1. A parsed reading has 1..max_positions positions and no position has an
 *      empty set; '?' is the full mask MSR_SET_ALL.
 *   2. Errors never leave partial state: a failed add leaves the query as it was,
 *      a failed parse writes only *err.
 *   3. Error messages name the 1-based reading, the 1-based symbol position and
 *      the 1-based character offset that made the input invalid.
 *   4. cost[p][s] = |{r : !(reading[r].set[p] & 1<<s)}|, so the number of
 *      mismatches of a code is the sum of cost over its positions.
 *   5. score entries are rounded to whole milli-nats when compiled, so a code's
 *      score is an exact integer sum independent of summation order.
 *   6. msr_query_expected is exact for uniform random codes (up to floating-point
 *      rounding): a DP over positions of the distribution of the mismatch count,
 *      truncated at max_mismatches.
 *   7. msr_query_bits is the specificity floor's measure, independent of the
 *      registry's size: -log2 of the probability that a random code of the
 *      query's length matches it, mismatches included (the same DP). Several
 *      readings combine through cost[][] (with no mismatches allowed, a
 *      position's constraint is the intersection of the readings' sets). For
 *      8 symbols the bound also covers rs8 codewords, which are not uniform
 *      strings: see msr_query_match_bound.
 */
#include "msreg/pattern.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "msreg/common.h"

#define P_MATCH 0.90
#define P_NEAR  0.08
#define P_FAR   0.02

static const char *const errnames[] = {
	[MSR_PAT_OK] = "ok",
	[MSR_PAT_EMPTY] = "empty",
	[MSR_PAT_BAD_CHAR] = "bad_char",
	[MSR_PAT_SET_NESTED] = "set_nested",
	[MSR_PAT_SET_UNTERMINATED] = "set_unterminated",
	[MSR_PAT_SET_EMPTY] = "set_empty",
	[MSR_PAT_SET_UNKNOWN] = "set_unknown",
	[MSR_PAT_SET_UNOPENED] = "set_unopened",
	[MSR_PAT_GEAR_BAD_CHAR] = "gear_bad_char",
	[MSR_PAT_GEAR_LENGTH] = "gear_length",
	[MSR_PAT_TOO_SHORT] = "too_short",
	[MSR_PAT_TOO_LONG] = "too_long",
	[MSR_PAT_LENGTH_MISMATCH] = "length_mismatch",
	[MSR_PAT_TOO_MANY_READINGS] = "too_many_readings",
	[MSR_PAT_NO_READINGS] = "no_readings",
	[MSR_PAT_BAD_MISMATCHES] = "bad_mismatches",
	[MSR_PAT_BAD_CONFUSION] = "bad_confusion",
};

const char *
msr_pattern_errname(enum msr_pattern_err code)
{
	if ((unsigned)code >= MSR_ARRAY_LEN(errnames) || errnames[code] == NULL)
		return "unknown";
	return errnames[code];
}

void
msr_pattern_limits_default(struct msr_pattern_limits *lim)
{
	lim->max_readings = 8;
	lim->min_positions = MSR_FREE_MIN;
	lim->max_positions = MSR_CODE_MAX;
}

static void MSR_PRINTF(6, 7)
set_error(struct msr_pattern_error *err, enum msr_pattern_err code,
    unsigned reading, unsigned position, unsigned offset, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (err != NULL) {
		err->code = code;
		err->reading = reading;
		err->position = position;
		err->offset = offset;
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
	}
	va_end(ap);
}

/* Printable rendering of an input byte for messages. */
static void
char_repr(char c, char *buf, size_t len)
{
	unsigned char u = (unsigned char)c;

	if (u >= 0x21 && u < 0x7f)
		snprintf(buf, len, "'%c'", c);
	else
		snprintf(buf, len, "byte 0x%02x", u);
}

static int
is_ignored(char c)
{
	return c == '-' || c == ' ';
}

static unsigned
clamp_positions(unsigned max_positions)
{
	if (max_positions == 0 || max_positions > MSR_CODE_MAX)
		return MSR_CODE_MAX;
	return max_positions;
}

/* Prefix a parse error with its reading number (1-based). */
static void
name_reading(struct msr_pattern_error *err, unsigned reading)
{
	char prefix[32];
	size_t np, nm;
	int n;

	if (err == NULL)
		return;
	err->reading = reading;
	n = snprintf(prefix, sizeof(prefix), "reading %u: ", reading);
	np = n > 0 ? (size_t)n : 0;
	nm = strlen(err->message);
	if (np + nm >= sizeof(err->message))
		nm = sizeof(err->message) - 1 - np;
	memmove(err->message + np, err->message, nm);
	memcpy(err->message, prefix, np);
	err->message[np + nm] = '\0';
}

int
msr_reading_parse_text(const char *text, unsigned max_positions,
    struct msr_reading *out, struct msr_pattern_error *err)
{
	struct msr_reading r;
	unsigned maxpos = clamp_positions(max_positions);
	unsigned open_at = 0;     /* 1-based offset of the open '[', 0 outside */
	uint32_t acc = 0;
	char rep[16];
	size_t i;
	int ret = -1;

	memset(&r, 0, sizeof(r));
	r.kind = MSR_READING_TEXT;
	for (i = 0; text[i] != '\0'; i++) {
		char c = text[i];
		unsigned off = (unsigned)i + 1;

		if (is_ignored(c))
			continue;
		if (c == '[') {
			if (open_at != 0) {
				set_error(err, MSR_PAT_SET_NESTED, 0, r.len + 1, off,
				    "nested '[' at character %u (position %u; set opened "
				    "at character %u)", off, r.len + 1, open_at);
				goto done;
			}
			open_at = off;
			acc = 0;
			continue;
		}
		if (c == ']') {
			if (open_at == 0) {
				set_error(err, MSR_PAT_SET_UNOPENED, 0, r.len + 1, off,
				    "']' without '[' at character %u", off);
				goto done;
			}
			if (acc == 0) {
				set_error(err, MSR_PAT_SET_EMPTY, 0, r.len + 1, open_at,
				    "empty set at character %u (position %u)", open_at,
				    r.len + 1);
				goto done;
			}
			open_at = 0;
		} else if (c == '?') {
			if (open_at != 0) {
				set_error(err, MSR_PAT_SET_UNKNOWN, 0, r.len + 1, off,
				    "'?' inside a set at character %u (position %u)",
				    off, r.len + 1);
				goto done;
			}
			acc = MSR_SET_ALL;
		} else {
			int v = msr_sym_value(c);

			if (v < 0) {
				char_repr(c, rep, sizeof(rep));
				set_error(err, MSR_PAT_BAD_CHAR, 0, r.len + 1, off,
				    "invalid character %s at character %u (position %u)",
				    rep, off, r.len + 1);
				goto done;
			}
			if (open_at != 0) {
				acc |= UINT32_C(1) << v;
				continue;
			}
			acc = UINT32_C(1) << v;
		}
		/* One position complete: a symbol, '?' or a closed set. */
		if (r.len >= maxpos) {
			set_error(err, MSR_PAT_TOO_LONG, 0, r.len + 1, off,
			    "more than %u positions (position %u at character %u)",
			    maxpos, r.len + 1, off);
			goto done;
		}
		r.set[r.len++] = acc;
	}
	if (open_at != 0) {
		set_error(err, MSR_PAT_SET_UNTERMINATED, 0, r.len + 1, open_at,
		    "unterminated set opened at character %u (position %u)", open_at,
		    r.len + 1);
		goto done;
	}
	if (r.len == 0) {
		set_error(err, MSR_PAT_EMPTY, 0, 0, 0, "reading has no positions");
		goto done;
	}
	*out = r;
	ret = 0;
done:
	return ret;
}

int
msr_reading_parse_gear(const char *bits, unsigned max_positions,
    struct msr_reading *out, struct msr_pattern_error *err)
{
	struct msr_reading r;
	unsigned maxpos = clamp_positions(max_positions);
	unsigned nbits = 0;
	uint32_t care = 0, val = 0;   /* bits of the current symbol */
	char rep[16];
	size_t i;
	int ret = -1;

	memset(&r, 0, sizeof(r));
	r.kind = MSR_READING_GEAR;
	for (i = 0; bits[i] != '\0'; i++) {
		char c = bits[i];
		unsigned off = (unsigned)i + 1;
		uint32_t set = 0;
		unsigned s;

		if (is_ignored(c))
			continue;
		if (c != '0' && c != '1' && c != '?') {
			char_repr(c, rep, sizeof(rep));
			set_error(err, MSR_PAT_GEAR_BAD_CHAR, 0, nbits / 5 + 1, off,
			    "invalid gear character %s at character %u (bit %u, "
			    "position %u); expected 0, 1 or ?", rep, off, nbits + 1,
			    nbits / 5 + 1);
			goto done;
		}
		care <<= 1;
		val <<= 1;
		if (c != '?') {
			care |= 1;
			val |= (uint32_t)(c == '1');
		}
		nbits++;
		if (nbits % 5 != 0)
			continue;
		if (r.len >= maxpos) {
			set_error(err, MSR_PAT_TOO_LONG, 0, r.len + 1, off,
			    "more than %u positions (%u bits) at character %u", maxpos,
			    maxpos * 5, off);
			goto done;
		}
		for (s = 0; s < MSR_SYMBOLS; s++)
			if ((s & care) == val)
				set |= UINT32_C(1) << s;
		r.set[r.len++] = set;
		care = val = 0;
	}
	if (nbits == 0) {
		set_error(err, MSR_PAT_EMPTY, 0, 0, 0, "gear reading has no bits");
		goto done;
	}
	if (nbits % 5 != 0) {
		set_error(err, MSR_PAT_GEAR_LENGTH, 0, r.len + 1, 0,
		    "gear reading has %u bits; expected 5 per symbol (position %u "
		    "has %u)", nbits, r.len + 1, nbits % 5);
		goto done;
	}
	*out = r;
	ret = 0;
done:
	return ret;
}

void
msr_query_init(struct msr_query *q, const struct msr_pattern_limits *lim)
{
	memset(q, 0, sizeof(*q));
	if (lim != NULL)
		q->limits = *lim;
	else
		msr_pattern_limits_default(&q->limits);
	if (q->limits.max_readings == 0 ||
	    q->limits.max_readings > MSR_QUERY_READINGS_MAX)
		q->limits.max_readings = MSR_QUERY_READINGS_MAX;
	q->limits.max_positions = clamp_positions(q->limits.max_positions);
	if (q->limits.min_positions == 0)
		q->limits.min_positions = 1;
}

int
msr_query_add_reading(struct msr_query *q, const struct msr_reading *r,
    struct msr_pattern_error *err)
{
	unsigned n = q->nreadings + 1;
	int ret = -1;

	if (q->nreadings >= q->limits.max_readings) {
		set_error(err, MSR_PAT_TOO_MANY_READINGS, n, 0, 0,
		    "reading %u: more than %u readings", n, q->limits.max_readings);
		goto done;
	}
	if (r->len > q->limits.max_positions) {
		set_error(err, MSR_PAT_TOO_LONG, n, q->limits.max_positions + 1, 0,
		    "reading %u: %u positions; codes have at most %u", n, r->len,
		    q->limits.max_positions);
		goto done;
	}
	if (r->len < q->limits.min_positions) {
		set_error(err, MSR_PAT_TOO_SHORT, n, 0, 0,
		    "reading %u: %u positions; codes have at least %u", n, r->len,
		    q->limits.min_positions);
		goto done;
	}
	if (q->nreadings > 0 && r->len != q->len) {
		set_error(err, MSR_PAT_LENGTH_MISMATCH, n, 0, 0,
		    "reading %u: %u positions, but reading 1 has %u", n, r->len,
		    q->len);
		goto done;
	}
	q->reading[q->nreadings++] = *r;
	q->len = r->len;
	q->finished = 0;
	ret = 0;
done:
	return ret;
}

int
msr_query_add_text(struct msr_query *q, const char *text,
    struct msr_pattern_error *err)
{
	struct msr_reading r;
	int ret = -1;

	if (msr_reading_parse_text(text, q->limits.max_positions, &r, err) != 0) {
		name_reading(err, q->nreadings + 1);
		goto done;
	}
	ret = msr_query_add_reading(q, &r, err);
done:
	return ret;
}

int
msr_query_add_gear(struct msr_query *q, const char *bits,
    struct msr_pattern_error *err)
{
	struct msr_reading r;
	int ret = -1;

	if (msr_reading_parse_gear(bits, q->limits.max_positions, &r, err) != 0) {
		name_reading(err, q->nreadings + 1);
		goto done;
	}
	ret = msr_query_add_reading(q, &r, err);
done:
	return ret;
}

static int
popcount32(uint32_t x)
{
	return __builtin_popcount(x);
}

static int32_t
milli_ln(double p)
{
	return (int32_t)lround(1000.0 * log(p));
}

/* Symbols one bit away from s (gear look-alikes). */
static uint32_t
gear_near(unsigned s)
{
	uint32_t m = 0;
	unsigned b;

	for (b = 0; b < 5; b++)
		m |= UINT32_C(1) << (s ^ (1u << b));
	return m;
}

/* The few distinct score values, so compiling a query takes no log() per entry. */
struct score_values {
	int32_t match[MSR_SYMBOLS + 1];   /* by |S| */
	int32_t near[MSR_SYMBOLS + 1];    /* by |near(s)| */
	int32_t far;
};

static void
score_values_init(struct score_values *v)
{
	unsigned i;

	v->match[0] = v->near[0] = 0;
	for (i = 1; i <= MSR_SYMBOLS; i++) {
		v->match[i] = milli_ln(P_MATCH / i);
		v->near[i] = milli_ln(P_NEAR / i);
	}
	v->far = milli_ln(P_FAR / 31.0);
}

/* Log-likelihood of reading set `set` (of a reading of `kind`) given symbol s. */
static int32_t
score_entry(const struct score_values *v, const struct msr_confusion *conf,
    enum msr_reading_kind kind, uint32_t set, unsigned s)
{
	uint32_t near;

	if (set == MSR_SET_ALL)
		return 0;
	if (set & (UINT32_C(1) << s))
		return v->match[popcount32(set)];
	near = kind == MSR_READING_GEAR ? gear_near(s) : conf->near[s];
	if (set & near)
		return v->near[popcount32(near)];
	return v->far;
}

int
msr_query_finish(struct msr_query *q, unsigned max_mismatches,
    const struct msr_confusion *conf, struct msr_pattern_error *err)
{
	struct msr_confusion def;
	struct score_values sv;
	unsigned p, s, r;
	int ret = -1;

	if (q->nreadings == 0) {
		set_error(err, MSR_PAT_NO_READINGS, 0, 0, 0, "no readings");
		goto done;
	}
	if (max_mismatches > MSR_QUERY_MISMATCHES_MAX) {
		set_error(err, MSR_PAT_BAD_MISMATCHES, 0, 0, 0,
		    "max_mismatches %u outside 0..%d", max_mismatches,
		    MSR_QUERY_MISMATCHES_MAX);
		goto done;
	}
	if (conf == NULL) {
		msr_confusion_default(&def);
		conf = &def;
	}
	score_values_init(&sv);
	memset(q->cost, 0, sizeof(q->cost));
	memset(q->score, 0, sizeof(q->score));
	for (p = 0; p < q->len; p++) {
		for (s = 0; s < MSR_SYMBOLS; s++) {
			unsigned c = 0;
			int32_t sc = 0;

			for (r = 0; r < q->nreadings; r++) {
				const struct msr_reading *rd = &q->reading[r];

				if (!(rd->set[p] & (UINT32_C(1) << s)))
					c++;
				sc += score_entry(&sv, conf, rd->kind, rd->set[p], s);
			}
			q->cost[p][s] = (uint8_t)c;
			q->score[p][s] = sc;
		}
	}
	q->max_mismatches = max_mismatches;
	q->finished = 1;
	ret = 0;
done:
	return ret;
}

unsigned
msr_query_mismatches(const struct msr_query *q, const uint8_t *sym)
{
	unsigned p, m = 0;

	for (p = 0; p < q->len; p++)
		m += q->cost[p][sym[p] & 31];
	return m;
}

int32_t
msr_query_score(const struct msr_query *q, const uint8_t *sym)
{
	unsigned p;
	int32_t sc = 0;

	for (p = 0; p < q->len; p++)
		sc += q->score[p][sym[p] & 31];
	return sc;
}

double
msr_query_expected(const struct msr_query *q, double n_codes)
{
	double dist[MSR_QUERY_MISMATCHES_MAX + 1], next[MSR_QUERY_MISMATCHES_MAX + 1];
	unsigned hist[MSR_QUERY_MISMATCHES_MAX + 1];
	unsigned k = q->max_mismatches, p, s, c, j;
	double prob = 0.0;

	memset(dist, 0, sizeof(dist));
	dist[0] = 1.0;
	for (p = 0; p < q->len; p++) {
		/* hist[j]: symbols costing j here; costs above k can never match. */
		memset(hist, 0, sizeof(hist));
		for (s = 0; s < MSR_SYMBOLS; s++)
			if (q->cost[p][s] <= k)
				hist[q->cost[p][s]]++;
		memset(next, 0, sizeof(next));
		for (c = 0; c <= k; c++)
			for (j = 0; j <= c; j++)
				next[c] += dist[c - j] * (hist[j] / (double)MSR_SYMBOLS);
		memcpy(dist, next, sizeof(dist));
	}
	for (c = 0; c <= k; c++)
		prob += dist[c];
	return n_codes * prob;
}

/*
 * Probability that a uniform random string matches q at the positions in mask
 * (bit p = position p) with at most k mismatches: the DP of msr_query_expected
 * restricted to those positions.
 */
static double
match_prob(const struct msr_query *q, uint32_t mask, unsigned k)
{
	double dist[MSR_QUERY_MISMATCHES_MAX + 1], next[MSR_QUERY_MISMATCHES_MAX + 1];
	unsigned hist[MSR_QUERY_MISMATCHES_MAX + 1];
	unsigned p, s, c, j;
	double prob = 0.0;

	memset(dist, 0, sizeof(dist));
	dist[0] = 1.0;
	for (p = 0; p < q->len; p++) {
		if (!(mask & (UINT32_C(1) << p)))
			continue;
		memset(hist, 0, sizeof(hist));
		for (s = 0; s < MSR_SYMBOLS; s++)
			if (q->cost[p][s] <= k)
				hist[q->cost[p][s]]++;
		memset(next, 0, sizeof(next));
		for (c = 0; c <= k; c++)
			for (j = 0; j <= c; j++)
				next[c] += dist[c - j] * (hist[j] / (double)MSR_SYMBOLS);
		memcpy(dist, next, sizeof(dist));
	}
	for (c = 0; c <= k; c++)
		prob += dist[c];
	return prob;
}

double
msr_query_match_bound(const struct msr_query *q)
{
	uint32_t all = (UINT32_C(1) << q->len) - 1;
	double p = match_prob(q, all, q->max_mismatches), six = 1.0, pm;

	if (q->len == MSR_RS8_LEN) {
		/*
		 * rs8 is MDS: any 6 of its 8 symbols are uniform and independent over
		 * the codewords, so an exact match is at most as likely as a match on
		 * the 6 most constraining positions. Never claim more than that; it
		 * also caps the bits at 30, one codeword of 2^30.
		 */
		double f[MSR_RS8_LEN];

		/*
		 * With no mismatch allowed match_prob is the product of each
		 * position's share of cost-0 symbols: the same factors multiplied
		 * in the same order, computed once instead of once per pair.
		 */
		for (unsigned x = 0; x < MSR_RS8_LEN; x++) {
			unsigned h = 0;

			for (unsigned s = 0; s < MSR_SYMBOLS; s++)
				h += q->cost[x][s] == 0;
			f[x] = h / (double)MSR_SYMBOLS;
		}
		for (unsigned a = 0; a < MSR_RS8_LEN; a++)
			for (unsigned b = a + 1; b < MSR_RS8_LEN; b++) {
				pm = 1.0;
				for (unsigned x = 0; x < MSR_RS8_LEN; x++)
					if (x != a && x != b)
						pm = pm * f[x];
				if (pm < six)
					six = pm;
			}
		if (six > p)
			p = six;
	}
	return p;
}

double
msr_query_bits(const struct msr_query *q)
{
	double p = msr_query_match_bound(q);

	/* a query that excludes everything pins nothing worth refusing */
	if (p <= 0.0)
		return 80.0;
	return p >= 1.0 ? 0.0 : -log2(p);
}

void
msr_confusion_default(struct msr_confusion *conf)
{
	/* The default spec is valid; parse cannot fail on it. */
	if (msr_confusion_parse(MSR_CONFUSION_DEFAULT, conf, NULL) != 0)
		memset(conf, 0, sizeof(*conf));
}

static void
add_group(struct msr_confusion *c, uint32_t group)
{
	unsigned s;

	if (popcount32(group) < 2)
		return;
	for (s = 0; s < MSR_SYMBOLS; s++)
		if (group & (UINT32_C(1) << s))
			c->near[s] |= group & ~(UINT32_C(1) << s);
}

int
msr_confusion_parse(const char *spec, struct msr_confusion *conf,
    struct msr_pattern_error *err)
{
	struct msr_confusion c;
	uint32_t group = 0;
	char rep[16];
	size_t i;
	int ret = -1;

	memset(&c, 0, sizeof(c));
	for (i = 0; spec[i] != '\0'; i++) {
		char u = spec[i];
		const char *at;

		if (u >= 'a' && u <= 'z')
			u = (char)(u - 'a' + 'A');
		if (u == ',') {
			add_group(&c, group);
			group = 0;
			continue;
		}
		if (u == ' ')
			continue;
		at = u != '\0' ? strchr(MSR_ALPHABET, u) : NULL;
		if (at != NULL) {
			group |= UINT32_C(1) << (at - MSR_ALPHABET);
			continue;
		}
		if (u >= 'A' && u <= 'Z')
			continue;       /* I, L, O, U: not symbols, skipped */
		char_repr(spec[i], rep, sizeof(rep));
		set_error(err, MSR_PAT_BAD_CONFUSION, 0, 0, (unsigned)i + 1,
		    "confusion table: invalid character %s at character %u", rep,
		    (unsigned)i + 1);
		goto done;
	}
	add_group(&c, group);
	*conf = c;
	ret = 0;
done:
	return ret;
}
