/*
 * pattern.h — partial-code readings and the query model for lookups (pure, no I/O).
 *
 * A query is 1..R readings of one code (several casings of one gun) plus
 * max_mismatches (0..2). A reading gives, for each position, the set of symbols it
 * allows, as a 32-bit mask (bit s = symbol s of MSR_ALPHABET):
 *
 *   text  "0H[5S]K?4M3"  a symbol (Crockford-normalised: case-insensitive,
 *                        I/L -> 1, O -> 0), '?' (all 32), or a set "[8B]";
 *                        hyphens and spaces are ignored everywhere.
 *   gear  "00000100..."  '0'/'1'/'?' bits, 5 per symbol, most significant bit
 *                        first; a symbol's set is every value its bits allow.
 *                        Hyphens and spaces are ignored.
 *
 * A code matches when the number of (reading, position) pairs whose set excludes
 * the code's symbol is at most max_mismatches. Matches are ranked by mismatches
 * ascending, then by score descending (a log-likelihood from a confusion table,
 * see msr_query_finish), then by code ascending.
 *
 * Nothing here allocates: every struct is plain data owned by the caller, and a
 * struct msr_query can live on the stack (it is about 4 KiB).
 */
#ifndef MSREG_PATTERN_H
#define MSREG_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#include "msreg/code.h"

#define MSR_SYMBOLS              32
#define MSR_SET_ALL              UINT32_C(0xffffffff)
#define MSR_QUERY_READINGS_MAX   16  /* hard cap; config may only lower it */
#define MSR_QUERY_MISMATCHES_MAX 2

/* Stable error codes; msr_pattern_errname() gives a stable snake_case name. The
 * HTTP layer reports all of them as 400 invalid_pattern. */
enum msr_pattern_err {
	MSR_PAT_OK = 0,
	MSR_PAT_EMPTY,            /* reading has no positions */
	MSR_PAT_BAD_CHAR,         /* character that is not a symbol, '?', '[' or ']' */
	MSR_PAT_SET_NESTED,       /* '[' inside a set */
	MSR_PAT_SET_UNTERMINATED, /* '[' without ']' */
	MSR_PAT_SET_EMPTY,        /* "[]" */
	MSR_PAT_SET_UNKNOWN,      /* '?' inside a set */
	MSR_PAT_SET_UNOPENED,     /* ']' without '[' */
	MSR_PAT_GEAR_BAD_CHAR,    /* gear character other than 0, 1, ? */
	MSR_PAT_GEAR_LENGTH,      /* gear bit count not a multiple of 5 */
	MSR_PAT_TOO_SHORT,        /* fewer positions than limits.min_positions */
	MSR_PAT_TOO_LONG,         /* more positions than limits.max_positions */
	MSR_PAT_LENGTH_MISMATCH,  /* readings of one query differ in length */
	MSR_PAT_TOO_MANY_READINGS,
	MSR_PAT_NO_READINGS,
	MSR_PAT_BAD_MISMATCHES,   /* max_mismatches outside 0..2 */
	MSR_PAT_BAD_CONFUSION     /* confusion-table spec is malformed */
};

/* Filled on error. reading is 1-based (0: not about one reading), position the
 * 1-based symbol position (0: none), offset the 1-based character offset in the
 * input string (0: none). message is a short human sentence naming them. */
struct msr_pattern_error {
	enum msr_pattern_err code;
	unsigned reading;
	unsigned position;
	unsigned offset;
	char message[160];
};

/* Size limits, normally from the configuration. */
struct msr_pattern_limits {
	unsigned max_readings;   /* 1..MSR_QUERY_READINGS_MAX, default 8 */
	unsigned min_positions;  /* default MSR_FREE_MIN (6) */
	unsigned max_positions;  /* at most MSR_CODE_MAX (16), default 16 */
};

enum msr_reading_kind { MSR_READING_TEXT = 0, MSR_READING_GEAR = 1 };

struct msr_reading {
	enum msr_reading_kind kind;
	unsigned len;                 /* positions */
	uint32_t set[MSR_CODE_MAX];   /* allowed symbols per position, never 0 */
};

/* Look-alike groups for scoring: near[s] is the set of symbols confusable with s
 * (symmetric, s itself not included). */
struct msr_confusion {
	uint32_t near[MSR_SYMBOLS];
};

/*
 * A query. Build it with msr_query_init, msr_query_add_text/_gear (once per
 * reading), then msr_query_finish; only a finished query may be searched. The
 * compiled tables are what matchers use:
 *   cost[p][s]  number of readings whose set at position p excludes symbol s
 *   score[p][s] log-likelihood contribution, in milli-nats (higher is better)
 */
struct msr_query {
	unsigned nreadings;
	unsigned len;
	unsigned max_mismatches;
	int finished;
	struct msr_pattern_limits limits;
	struct msr_reading reading[MSR_QUERY_READINGS_MAX];
	uint8_t cost[MSR_CODE_MAX][MSR_SYMBOLS];
	int32_t score[MSR_CODE_MAX][MSR_SYMBOLS];
};

void msr_pattern_limits_default(struct msr_pattern_limits *lim);
/* Stable snake_case name of an error code ("set_unterminated", ...). */
const char *msr_pattern_errname(enum msr_pattern_err code);

/* Parse one reading (max_positions bounds its length; 0 means MSR_CODE_MAX).
 * Return 0, or -1 with *err filled (err->reading is left 0). */
int msr_reading_parse_text(const char *text, unsigned max_positions,
    struct msr_reading *out, struct msr_pattern_error *err);
int msr_reading_parse_gear(const char *bits, unsigned max_positions,
    struct msr_reading *out, struct msr_pattern_error *err);

/* lim may be NULL for the defaults. */
void msr_query_init(struct msr_query *q, const struct msr_pattern_limits *lim);
/* Parse and append one reading. Return 0, or -1 with *err filled (err->reading
 * names the reading, 1-based); the query is unchanged on error. */
int msr_query_add_text(struct msr_query *q, const char *text,
    struct msr_pattern_error *err);
int msr_query_add_gear(struct msr_query *q, const char *bits,
    struct msr_pattern_error *err);
/* Append an already parsed reading (checks count and length as above). */
int msr_query_add_reading(struct msr_query *q, const struct msr_reading *r,
    struct msr_pattern_error *err);
/*
 * Check the readings (at least one, length within limits) and max_mismatches,
 * and compile cost and score tables. conf NULL means msr_confusion_default().
 * Return 0, or -1 with *err filled.
 *
 * Score model, per (reading, position) with set S and true symbol s:
 *   S = all 32            0 (nothing was read)
 *   s in S                ln(0.90 / |S|)
 *   s not in S, near      ln(0.08 / |near(s)|)   text: S meets conf->near[s];
 *                                                gear: S holds a symbol one bit
 *                                                away from s (|near(s)| = 5)
 *   s not in S, otherwise ln(0.02 / 31)
 * summed over readings and positions, in milli-nats rounded per table entry
 * (so sums are exact integers and order-independent).
 */
int msr_query_finish(struct msr_query *q, unsigned max_mismatches,
    const struct msr_confusion *conf, struct msr_pattern_error *err);

/* For a finished query and a code of q->len symbols (values 0..31). */
unsigned msr_query_mismatches(const struct msr_query *q, const uint8_t *sym);
int32_t msr_query_score(const struct msr_query *q, const uint8_t *sym);

/*
 * Expected number of codes that match q in a registry of n_codes uniformly random
 * codes of q->len symbols: n_codes * P(mismatches <= max_mismatches), computed
 * exactly by a dynamic programme over positions of the mismatch-count
 * distribution. This is the enumeration guard: callers refuse queries whose
 * expectation over the codes of that length exceeds the configured bound.
 */
double msr_query_expected(const struct msr_query *q, double n_codes);

/*
 * The specificity floor (independent of the registry's size). An upper bound on
 * the probability that a random code of q->len symbols matches q (with up to
 * q->max_mismatches mismatches): the DP above for uniform strings (free codes;
 * exact for rs8 codewords too when at most 6 positions are constrained), and
 * for 8 symbols never below the exact-match probability on the 6 most
 * constraining positions, which bounds rs8 codewords rigorously (rs8 is MDS:
 * any 6 symbols are uniform over the 2^30 codewords). msr_query_bits is
 * -log2 of it: 0 for "????????????", 20 for 4 exact symbols of 8, at most 30
 * for 8 symbols.
 */
double msr_query_match_bound(const struct msr_query *q);
double msr_query_bits(const struct msr_query *q);

/* Default look-alikes: "0DQ,17,2Z,5S,6G,8B3,UV" (U is not in the alphabet). */
#define MSR_CONFUSION_DEFAULT "0DQ,17,2Z,5S,6G,8B3,UV"
void msr_confusion_default(struct msr_confusion *conf);
/*
 * Parse a spec of comma-separated look-alike groups, e.g. "0DQ,17,8B3". Symbols
 * are case-insensitive; letters outside the alphabet (I, L, O, U) are skipped;
 * spaces are ignored; a group left with fewer than two symbols is ignored; an
 * empty spec means no look-alikes. Anything else is MSR_PAT_BAD_CONFUSION with
 * err->offset naming the character. *conf is written only on success.
 */
int msr_confusion_parse(const char *spec, struct msr_confusion *conf,
    struct msr_pattern_error *err);

#endif
