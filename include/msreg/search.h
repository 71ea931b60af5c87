/*
 * search.h — the in-memory partial-code index (pure: no database, no HTTP).
 *
 * Holds every registered code (rs8 and free, active and retired: status lives in
 * the database, and codes are never removed) and answers a finished struct
 * msr_query (pattern.h) exactly: the same matches as a scan of every code, ranked
 * by mismatches ascending, score descending, code ascending. A query only
 * matches codes of its own length.
 *
 * Build it once from arrays (msr_index_build, O(N)), then add codes one at a time
 * (msr_index_add) while any number of threads search. Memory is about 16 bytes
 * per rs8 code at 1e7 codes and 9.3 at 1e8 (msr_index_stats reports it); a
 * build also needs 4 bytes per code per build thread of scratch while it runs
 * (1e8 codes: about 7 s of CPU over 2 threads). See search.c for the design.
 *
 * Ownership: msr_index_build/msr_index_new return an index the caller frees with
 * msr_index_free (after every searcher and writer is done with it). Input arrays
 * are copied; the caller keeps them. Hits are written into a caller-supplied
 * array; nothing returned needs freeing.
 */
#ifndef MSREG_SEARCH_H
#define MSREG_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "msreg/code.h"
#include "msreg/pattern.h"

struct msr_index;

/* A code as the index takes and returns it: len symbols (values 0..31). */
struct msr_code {
	uint8_t len;
	uint8_t sym[MSR_CODE_MAX];
};

struct msr_hit {
	struct msr_code code;
	unsigned mismatches;
	int32_t score;          /* msr_query_score(), milli-nats */
};

struct msr_search_result {
	uint64_t total;         /* number of matching codes */
	size_t nhits;           /* hits written: min(total, limit) */
};

/* Zero fields take the defaults. */
struct msr_index_config {
	size_t delta_max;       /* adds kept unsorted before indexing; default 4096 */
	size_t merge_cap;       /* runs larger than this are never rebuilt by adds;
	                         * default 2^26 codes */
	unsigned build_threads; /* threads for building sorted tables; default 2 */
};

struct msr_index_stats {
	size_t codes;           /* all codes */
	size_t rs8_codes;       /* 8-symbol rs8 codewords */
	size_t free_codes;      /* everything else */
	size_t runs;            /* immutable sorted runs */
	size_t delta;           /* recent adds not yet in a run */
	size_t memory;          /* bytes allocated by the index */
};

/*
 * Build an index from rs8 codes packed with msr_rs8_pack (rs8, n_rs8) and other
 * codes (codes, n_codes; any length 6..16). Values that are not rs8 codewords are
 * indexed as free codes of length 8; duplicates are indexed once. Either array may
 * be NULL when its count is 0; cfg may be NULL. Returns NULL on invalid input
 * (a packed value above 40 bits, a code outside 6..16 symbols or with a symbol
 * > 31) or out of memory.
 */
struct msr_index *msr_index_build(const uint64_t *rs8, size_t n_rs8,
    const struct msr_code *codes, size_t n_codes,
    const struct msr_index_config *cfg);
struct msr_index *msr_index_new(const struct msr_index_config *cfg);
void msr_index_free(struct msr_index *idx);

/*
 * Add one code; thread-safe against searches and other adds. Returns 1 when
 * added, 0 when already present, -1 on invalid code or out of memory (the index
 * is unchanged). Now and then an add folds recent adds into a sorted run: that
 * call takes longer (the build happens off the searchers' lock).
 */
/*
 * Add many codes at once: rs8 must hold only rs8 codewords (packed), codes only
 * other codes (free codes, and 8-symbol values that are not codewords), and
 * none of them may be in the index already (the caller guarantees it, as a
 * load from the registry's unique codes does). The rs8 codes become one new
 * sorted run. Thread-safe; returns 0, or -1 with the index unchanged.
 */
int msr_index_add_bulk(struct msr_index *idx, const uint64_t *rs8, size_t n_rs8,
    const struct msr_code *codes, size_t n_codes);
int msr_index_add(struct msr_index *idx, const struct msr_code *code);
int msr_index_add_rs8(struct msr_index *idx, uint64_t packed);

/*
 * Search for q (finished with msr_query_finish). Writes the best min(total,
 * limit) hits to hits[] in ranking order and fills *res. hits may be NULL when
 * limit is 0 (count only). Thread-safe. Returns 0, or -1 if q is not finished
 * or memory ran out (*res is then zero).
 */
int msr_index_search(struct msr_index *idx, const struct msr_query *q,
    struct msr_hit *hits, size_t limit, struct msr_search_result *res);

/* Codes of length len (the N for msr_query_expected). */
size_t msr_index_count_len(struct msr_index *idx, unsigned len);
void msr_index_stats(struct msr_index *idx, struct msr_index_stats *st);

/* Ranking order: <0 when a ranks before b. */
int msr_hit_cmp(const struct msr_hit *a, const struct msr_hit *b);

#endif
