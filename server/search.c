/*
 * search.c — the in-memory partial-code index.
 *
 * rs8 codes (8 symbols, 40 bits) are the bulk of the registry (planned 1e8..1e9)
 * and get block-permuted sorted tables, i.e. multi-index hashing on sorted
 * arrays. Everything else (free codes, and 8-symbol strings that are not rs8
 * codewords) is few and is kept in sorted per-length arrays that are scanned.
 *
 * Sorted runs. A run holds NTAB = 8 tables over the same codes. Table t is sorted
 * by the code rotated left by t symbols, so its key starts with positions
 * t, t+1, ..., t+7 (mod 8): every cyclic interval of positions is a key prefix of
 * some table. A table stores only the first 30 bits of each key (its first six
 * symbols): any six symbols of an rs8 codeword determine the other two (the code
 * has minimum distance 3), so the last two are recomputed from the syndrome
 * tables below when an entry is read (expand30), and 30-bit keys sort exactly as
 * the 40-bit keys they stand for. A table is a directory of 2^d uint32 offsets
 * on the first d key bits plus one w-byte entry per code holding the other 30-d
 * bits, so a key prefix maps to a range with one directory read (prefixes up to
 * d bits) or one binary search inside a bucket (longer ones; prefixes longer
 * than 30 bits find at most one entry, whose expansion is then compared). d is
 * chosen per run to minimise memory (run_geometry): at 1e7 codes d = 14, w = 2:
 * 8 x 2 bytes + 8 x 4 x 2^14 / N ~ 16.05 bytes per code; at 1e8 d = 22, w = 1:
 * ~9.3 bytes per code; at 1e9 ~8.1.
 *
 * Query planning. A query compiles to cost[p][s] (pattern.h). Let m_p be the
 * smallest cost at p; every code pays base = sum m_p, and matches iff its excess
 * sum(cost - m) <= budget = max_mismatches - base. A position is "exact" for a
 * code when its excess there is 0. If S_0..S_b are disjoint position sets and a
 * code has excess <= b, at least one S_j is all exact (pigeonhole). So a plan is
 *   - b+1 items, each a table t and an interval S_j = t..t+l-1 that is a key
 *     prefix of t: enumerate the exact values of S_j (optionally extending the
 *     prefix with further positions within the budget), range-scan each prefix,
 *     verify each candidate against the whole query, and report it only if no
 *     earlier S_i is all exact (so each match is reported once, by the first
 *     item whose set is exact); or
 *   - one item without an exact part: enumerate prefixes within the budget
 *     (prefix length 0 is a full scan); or
 *   - budget 0 only: rs8 probing. Any 6 positions of an rs8 codeword determine
 *     the other 2 (minimum distance 3), so enumerate the exact values of the 6
 *     most selective positions, complete the other 2 with a precomputed table
 *     (syndrome -> erased pair), and probe each completion.
 * The cheapest plan under a small cost model (candidates scanned, prefixes
 * looked up, probes) is chosen per run; every plan is exact, so the choice only
 * affects speed.
 *
 * Building a run. Each table is built on its own (build_threads threads share
 * the NTAB tables) by partitioning the keys on their top bits, then sorting
 * each cache-sized partition with an LSD radix sort and writing its directory
 * and entries in one sweep (table_build). Sequential streams only: at 1e8
 * codes this takes about 7 s of CPU where scattering keys straight into the
 * table (a cache and TLB miss per key) took 24 s.
 *
 * Updates. Runs are immutable. Adds go to a small unsorted delta (scanned by
 * every search); when it reaches delta_max it becomes a run, merged with the
 * smaller runs LSM-style (a run is folded into the new one while it is at most
 * MERGE_RATIO times the new run's size and not above merge_cap). The build runs
 * outside the read-write lock; only the swap takes the write lock.
 *
 * Invariants:
 *   1. Every code is in exactly one place: one run, the delta, or one free list.
 *      Runs and the delta hold only rs8 codewords; free lists hold the rest.
 *   2. A run's tables hold the same n distinct codes; in table t, bucket b holds
 *      the codes whose rotated key's first 30 bits have top d bits b, sorted by
 *      the remaining 30-d bits; dir[b]..dir[b+1] delimit it and dir[2^d] = n.
 *      Runs exist only when the syndrome tables are a bijection (rs8_tables_ok;
 *      true of any rs8 code with minimum distance 3, checked at start).
 *   3. Runs are never modified after publication; they are freed only after they
 *      have been unlinked under the write lock, so no searcher can see them.
 *   4. Searchers hold the read lock for the whole search. Writers serialise on
 *      wmu; structure changes (delta append, free-list insert, run swap) take the
 *      write lock, reading under wmu alone is safe because only wmu holders write.
 *   5. Free lists are sorted (memcmp of len symbols) and duplicate-free.
 *   6. Search is exact: a code is reported iff msr_query_mismatches() <=
 *      max_mismatches, once, with the same mismatches and score.
 */
#include "msreg/search.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/common.h"

#define NPOS          8
#define NTAB          8
#define KEY_BITS      40
#define KEY_MASK      ((UINT64_C(1) << KEY_BITS) - 1)
#define STORED_BITS   30          /* bits of a table key kept: its first six symbols */
#define TAIL_BITS     (KEY_BITS - STORED_BITS)
#define BUDGET_MAX    MSR_QUERY_MISMATCHES_MAX
#define ITEMS_MAX     (BUDGET_MAX + 1)
#define MERGE_RATIO   4
#define ENT_PAD       4           /* entries are loaded 4 bytes at a time */
#define CHUNK         4096        /* keys per source read */
#define CHUNK_DIRECT  (1u << 20)  /* keys per slice of an array read in place */

/* Cost model, in rough nanoseconds. */
#define C_VERIFY      3.0         /* check one candidate */
#define C_BUCKET      1.0         /* step over one directory bucket */
#define C_LEAF_DIR    20.0        /* prefix range from the directory */
#define C_LEAF_BS     60.0        /* prefix range by binary search in a bucket */
#define C_PLEAF       4.0         /* one rs8 completion */
#define C_PROBE       70.0        /* one exact lookup */

struct table {
	uint32_t *dir;                /* 2^dbits + 1 offsets */
	uint8_t *ent;                 /* n * w bytes + ENT_PAD */
};

struct run {
	size_t n;
	unsigned dbits;               /* directory bits */
	unsigned sbits;               /* suffix bits in an entry: 30 - dbits */
	unsigned w;                   /* bytes per entry */
	uint32_t smask;
	struct table tab[NTAB];
};

struct freelist {
	uint8_t *sym;                 /* n codes of `len` symbols, sorted */
	size_t n, cap;
};

struct msr_index {
	pthread_rwlock_t rw;
	pthread_mutex_t wmu;
	struct msr_index_config cfg;
	struct run **runs;            /* largest first */
	size_t nruns;
	uint64_t *delta;
	size_t ndelta, capdelta;
	struct freelist fl[MSR_CODE_MAX + 1];
	size_t n_rs8;
};

/* ---------------------------------------------------------------------------
 * rs8 structure: contrib[p][v] is the 10-bit syndrome contribution of symbol v at
 * position p (c is a codeword iff the XOR over p of contrib[p][c_p] is 0);
 * complete[pair(a,b)][S] is the (x << 5 | y) with contrib[a][x]^contrib[b][y] = S.
 * Derived from msr_rs8_encode (which is GF(32)-linear) and checked to be a
 * bijection; if it were not, probing is disabled and validity uses msr_rs8_valid.
 */
static uint16_t contrib[NPOS][MSR_SYMBOLS];
static uint16_t complete[28][1024];
static uint8_t pair_id[NPOS][NPOS];
static int rs8_tables_ok;
static pthread_once_t rs8_once = PTHREAD_ONCE_INIT;

static void
rs8_tables_init(void)
{
	uint8_t sym[NPOS];
	unsigned p, v, a, b, x, y, id = 0;
	int ok = 1;

	for (p = 0; p < NPOS; p++) {
		for (v = 0; v < MSR_SYMBOLS; v++) {
			if (p >= MSR_RS8_DATA) {
				contrib[p][v] = (uint16_t)(p == 6 ? v << 5 : v);
				continue;
			}
			memset(sym, 0, sizeof(sym));
			sym[p] = (uint8_t)v;
			msr_rs8_encode(sym);
			contrib[p][v] = (uint16_t)(sym[6] << 5 | sym[7]);
		}
	}
	for (a = 0; a < NPOS; a++) {
		for (b = a + 1; b < NPOS; b++) {
			uint8_t seen[1024];

			memset(seen, 0, sizeof(seen));
			pair_id[a][b] = pair_id[b][a] = (uint8_t)id;
			for (x = 0; x < MSR_SYMBOLS; x++) {
				for (y = 0; y < MSR_SYMBOLS; y++) {
					unsigned s = contrib[a][x] ^ contrib[b][y];

					if (seen[s])
						ok = 0;
					seen[s] = 1;
					complete[id][s] = (uint16_t)(x << 5 | y);
				}
			}
			id++;
		}
	}
	rs8_tables_ok = ok;
}

static unsigned
key_sym(uint64_t key, unsigned i)
{
	return (unsigned)(key >> (35 - 5 * i)) & 31;
}

static int
key_is_rs8(uint64_t key)
{
	uint8_t sym[NPOS];
	unsigned p, s = 0;

	if (key > KEY_MASK)
		return 0;
	if (!rs8_tables_ok) {
		msr_rs8_unpack(key, sym);
		return msr_rs8_valid(sym);
	}
	for (p = 0; p < NPOS; p++)
		s ^= contrib[p][key_sym(key, p)];
	return s == 0;
}

static uint64_t
rotl40(uint64_t k, unsigned bits)
{
	bits %= KEY_BITS;
	if (bits == 0)
		return k;
	return ((k << bits) | (k >> (KEY_BITS - bits))) & KEY_MASK;
}

/* Key of table t from an identity key, and back. */
static uint64_t
to_table(uint64_t key, unsigned t)
{
	return rotl40(key, 5 * t);
}

static uint64_t
from_table(uint64_t key, unsigned t)
{
	return rotl40(key, KEY_BITS - 5 * t);
}

/* The first 30 bits of table t's key for an identity key. */
static uint64_t
to_table30(uint64_t key, unsigned t)
{
	return to_table(key, t) >> TAIL_BITS;
}

/*
 * Table t's 40-bit key from its first 30 bits: the last two rotated symbols
 * (identity positions (t+6)%8 and (t+7)%8) are the pair whose syndrome
 * contribution cancels the other six's. Needs rs8_tables_ok.
 */
static uint64_t
expand30(uint64_t k30, unsigned t)
{
	unsigned syn = 0, i, a = (t + 6) % NPOS, b = (t + 7) % NPOS, xy, sa, sb;

	for (i = 0; i < NPOS - 2; i++)
		syn ^= contrib[(t + i) % NPOS][(k30 >> (25 - 5 * i)) & 31];
	xy = complete[pair_id[a][b]][syn];
	/* complete[] gives (x << 5 | y) for the smaller position x, larger y */
	if (a < b) {
		sa = xy >> 5;
		sb = xy & 31;
	} else {
		sa = xy & 31;
		sb = xy >> 5;
	}
	return k30 << TAIL_BITS | (uint64_t)sa << 5 | sb;
}

/* ---------------------------------------------------------------------------
 * Runs.
 */
static uint32_t
ent_load(const uint8_t *p, uint32_t mask)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v) & mask;
}

static void
ent_store(uint8_t *p, uint32_t v, unsigned w)
{
	p[0] = (uint8_t)v;
	if (w > 1)
		p[1] = (uint8_t)(v >> 8);
	if (w > 2)
		p[2] = (uint8_t)(v >> 16);
	if (w > 3)
		p[3] = (uint8_t)(v >> 24);
}

/*
 * Directory bits for n codes: the d in 4..26 with the least memory, directory
 * 4 (2^d + 1) bytes plus n entries of ceil((30 - d) / 8) bytes; among equals
 * the larger d (smaller buckets).
 */
static void
run_geometry(struct run *r, size_t n)
{
	double best = 0.0;
	unsigned d;

	r->n = n;
	r->dbits = 4;
	for (d = 4; d <= 26; d++) {
		double bytes = 4.0 * (double)(((size_t)1 << d) + 1) +
		    (double)n * (double)((STORED_BITS - d + 7) / 8);

		if (d == 4 || bytes <= best) {
			best = bytes;
			r->dbits = d;
		}
	}
	r->sbits = STORED_BITS - r->dbits;
	r->w = (r->sbits + 7) / 8;
	r->smask = r->sbits >= 32 ? UINT32_MAX : (UINT32_C(1) << r->sbits) - 1;
}

static void
run_free(struct run *r)
{
	unsigned t;

	if (r == NULL)
		return;
	for (t = 0; t < NTAB; t++) {
		free(r->tab[t].dir);
		free(r->tab[t].ent);
	}
	free(r);
}

static size_t
run_memory(const struct run *r)
{
	return sizeof(*r) + NTAB * (((size_t)1 << r->dbits) + 1) * sizeof(uint32_t) +
	    NTAB * (r->n * r->w + ENT_PAD);
}

/* First entry index in [lo, hi) whose suffix is >= v. */
static size_t
lower_bound(const struct run *r, const uint8_t *ent, size_t lo, size_t hi,
    uint32_t v)
{
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ent_load(ent + mid * r->w, r->smask) < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
run_contains(const struct run *r, uint64_t key)
{
	const struct table *tb = &r->tab[0];
	uint64_t k30 = key >> TAIL_BITS;
	uint64_t b = k30 >> r->sbits;
	uint32_t v = (uint32_t)(k30 & r->smask);
	size_t e = lower_bound(r, tb->ent, tb->dir[b], tb->dir[b + 1], v);

	return e < tb->dir[b + 1] && ent_load(tb->ent + e * r->w, r->smask) == v &&
	    expand30(k30, 0) == key;
}

/*
 * A source of identity keys for building: an array (only rs8 codewords are
 * taken from it) followed by the codes of some runs. Read in chunks, twice per
 * table (count, then scatter); order does not matter.
 */
struct source {
	const uint64_t *arr;
	size_t narr;
	int filter;                   /* take only rs8 codewords from arr */
	struct run *const *runs;
	size_t nruns;
};

struct cursor {
	const struct source *src;
	size_t ai;                    /* next array index */
	size_t ri;                    /* current run */
	uint64_t b;                   /* current bucket in runs[ri] table 0 */
	size_t e;                     /* next entry in runs[ri] table 0 */
};

static void
cursor_init(struct cursor *c, const struct source *src)
{
	memset(c, 0, sizeof(*c));
	c->src = src;
}

static size_t
cursor_read(struct cursor *c, uint64_t *buf, size_t cap)
{
	const struct source *s = c->src;
	size_t n = 0;

	if (!s->filter) {
		size_t take = s->narr - c->ai < cap ? s->narr - c->ai : cap;

		memcpy(buf, s->arr + c->ai, take * sizeof(*buf));
		c->ai += take;
		n = take;
	}
	while (n < cap && c->ai < s->narr) {
		uint64_t k = s->arr[c->ai++];

		if (key_is_rs8(k))
			buf[n++] = k;
	}
	while (n < cap && c->ri < s->nruns) {
		const struct run *r = s->runs[c->ri];
		const struct table *tb = &r->tab[0];

		if (c->e >= r->n) {
			c->ri++;
			c->b = 0;
			c->e = 0;
			continue;
		}
		while (tb->dir[c->b + 1] <= c->e)
			c->b++;
		buf[n++] = expand30(c->b << r->sbits |
		    ent_load(tb->ent + c->e * r->w, r->smask), 0);
		c->e++;
	}
	return n;
}

/*
 * Next keys of src: a slice of the array itself while the array lasts (no
 * copy, when it needs no filtering), else up to cap keys copied into buf.
 */
static size_t
cursor_next(struct cursor *c, uint64_t *buf, size_t cap, const uint64_t **out)
{
	const struct source *s = c->src;
	size_t take;

	if (!s->filter && c->ai < s->narr) {
		take = s->narr - c->ai < CHUNK_DIRECT ? s->narr - c->ai : CHUNK_DIRECT;
		*out = s->arr + c->ai;
		c->ai += take;
		return take;
	}
	*out = buf;
	return cursor_read(c, buf, cap);
}

/*
 * Building a table, partitioned for cache locality. At 1e8 codes a table's
 * directory is 16 MB and its entries 100 MB; counting and scattering every key
 * straight into its bucket costs a cache and TLB miss per key, twice (that was
 * about 75% of the build). Instead:
 *   1. count the keys per partition, the top pbits bits of the 30-bit key
 *      (at most 2^PART_BITS_MAX counters: in L1);
 *   2. scatter the 30-bit keys into their partitions in scratch memory (one
 *      sequential write stream per partition);
 *   3. per partition (about PART_KEYS keys: in L2), in key order: sort its
 *      keys by their low 30 - pbits bits (LSD radix, two or three passes of at
 *      most RADIX_BITS bits), then one sweep appends the entries, dropping
 *      duplicates (adjacent once sorted), and fills the directory.
 * The entries and directory are written once, sequentially, in key order, so
 * invariant 2 holds as before. Scratch: 4 bytes per key of the run for each
 * building thread, freed when the run is built.
 */
#define PART_BITS_MAX 11
#define PART_KEYS     65536
#define RADIX_BITS    11
#define RADIX_PASSES  3           /* ceil(30 / RADIX_BITS) */

struct build_scratch {
	uint32_t *keys;               /* the run's 30-bit keys, by partition */
	size_t part[((size_t)1 << PART_BITS_MAX) + 1];
	size_t pos[(size_t)1 << PART_BITS_MAX];
	uint64_t buf[CHUNK];
	uint32_t *sub, *tmp;          /* one partition's keys, radix passes */
	size_t cap_sub, cap_tmp;
	uint32_t cnt[RADIX_PASSES][(size_t)1 << RADIX_BITS];
};

/* Grow *p to hold n uint32 (keeping nothing). 0 or -1. */
static int
scratch_reserve(uint32_t **p, size_t *cap, size_t n)
{
	uint32_t *q;

	if (n <= *cap)
		return 0;
	q = malloc(n * sizeof(*q));
	if (q == NULL)
		return -1;
	free(*p);
	*p = q;
	*cap = n;
	return 0;
}

/* Partition bits for r: partitions of at most ~PART_KEYS keys, pbits <= dbits. */
static unsigned
part_bits(const struct run *r)
{
	unsigned p = 0;

	while (p < r->dbits && p < PART_BITS_MAX && (r->n >> p) > PART_KEYS)
		p++;
	return p;
}

/*
 * Build table t of r from src (at most r->n keys, geometry set), see above.
 * Stores the number of distinct codes in *count. Returns 0 or -1 (ENOMEM).
 */
static int
table_build(struct run *r, unsigned t, const struct source *src,
    struct build_scratch *sc, size_t *count)
{
	struct table *tb = &r->tab[t];
	unsigned pbits = part_bits(r), bbits = r->dbits - pbits;
	unsigned pshift = STORED_BITS - pbits;
	size_t np = (size_t)1 << pbits, nsub = (size_t)1 << bbits;
	unsigned rbits = STORED_BITS - pbits;
	unsigned npass = (rbits + RADIX_BITS - 1) / RADIX_BITS;
	unsigned dig = (rbits + npass - 1) / npass;
	size_t p, b, i, got, maxp = 0, out = 0;
	uint32_t bmask = (uint32_t)(nsub - 1), dmask = (UINT32_C(1) << dig) - 1;
	const uint64_t *in;
	struct cursor cur;

	tb->dir = malloc((((size_t)1 << r->dbits) + 1) * sizeof(*tb->dir));
	tb->ent = malloc(r->n * r->w + ENT_PAD);
	if (tb->dir == NULL || tb->ent == NULL || !rs8_tables_ok)
		return -1;

	/* 1. keys per partition */
	memset(sc->part, 0, (np + 1) * sizeof(sc->part[0]));
	cursor_init(&cur, src);
	while ((got = cursor_next(&cur, sc->buf, CHUNK, &in)) > 0)
		for (i = 0; i < got; i++)
			sc->part[(to_table30(in[i], t) >> pshift) + 1]++;
	for (p = 0; p < np; p++) {
		if (sc->part[p + 1] > maxp)
			maxp = sc->part[p + 1];
		sc->part[p + 1] += sc->part[p];
	}
	if (sc->part[np] > r->n)
		return -1;      /* cannot happen: src yields at most n keys */
	memcpy(sc->pos, sc->part, np * sizeof(sc->pos[0]));

	/* 2. scatter into partitions */
	cursor_init(&cur, src);
	while ((got = cursor_next(&cur, sc->buf, CHUNK, &in)) > 0) {
		for (i = 0; i < got; i++) {
			uint32_t k = (uint32_t)to_table30(in[i], t);

			sc->keys[sc->pos[k >> pshift]++] = k;
		}
	}

	/* 3. each partition, in order */
	if (scratch_reserve(&sc->sub, &sc->cap_sub, maxp + 1) != 0 ||
	    scratch_reserve(&sc->tmp, &sc->cap_tmp, maxp + 1) != 0)
		return -1;
	for (p = 0; p < np; p++) {
		const uint32_t *pk = sc->keys + sc->part[p];
		const uint32_t *from;
		size_t m = sc->part[p + 1] - sc->part[p], cb = 0, base = p << bbits;
		unsigned j;

		/* LSD radix sort on the low rbits bits; the bits above are the
		 * partition's, equal for all its keys, so a digit reaching into them
		 * still sorts correctly. */
		memset(sc->cnt, 0, sizeof(sc->cnt));
		for (i = 0; i < m; i++)
			for (j = 0; j < npass; j++)
				sc->cnt[j][(pk[i] >> (j * dig)) & dmask]++;
		for (j = 0; j < npass; j++) {
			uint32_t sum = 0, c;

			for (b = 0; b <= dmask; b++) {
				c = sc->cnt[j][b];
				sc->cnt[j][b] = sum;
				sum += c;
			}
		}
		from = pk;
		for (j = 0; j < npass; j++) {
			uint32_t *c = sc->cnt[j], *to = j % 2 ? sc->tmp : sc->sub;

			for (i = 0; i < m; i++)
				to[c[(from[i] >> (j * dig)) & dmask]++] = from[i];
			from = to;
		}
		/* from: sorted. Append entries, fill this partition's buckets. */
		for (i = 0; i < m; i++) {
			uint32_t k = from[i];
			size_t bk = (k >> r->sbits) & bmask;

			while (cb <= bk)
				tb->dir[base + cb++] = (uint32_t)out;
			if (i > 0 && k == from[i - 1])
				continue;
			ent_store(tb->ent + out * r->w, k & r->smask, r->w);
			out++;
		}
		while (cb < nsub)
			tb->dir[base + cb++] = (uint32_t)out;
	}
	tb->dir[(size_t)1 << r->dbits] = (uint32_t)out;
	memset(tb->ent + out * r->w, 0, ENT_PAD);
	*count = out;
	return 0;
}

struct build_job {
	struct run *r;
	const struct source *src;
	unsigned first, step;
	size_t count[NTAB];           /* codes per table after deduplication */
	int ret;
};

static void *
build_worker(void *arg)
{
	struct build_job *j = arg;
	struct build_scratch *sc = calloc(1, sizeof(*sc));
	unsigned t;

	j->ret = -1;
	if (sc == NULL)
		return NULL;
	sc->keys = malloc((j->r->n + 1) * sizeof(*sc->keys));
	if (sc->keys != NULL) {
		j->ret = 0;
		for (t = j->first; t < NTAB; t += j->step) {
			if (table_build(j->r, t, j->src, sc, &j->count[t]) != 0) {
				j->ret = -1;
				break;
			}
		}
	}
	free(sc->keys);
	free(sc->sub);
	free(sc->tmp);
	free(sc);
	return NULL;
}

/*
 * Build a run from src (which yields n_max keys when it has no array to filter).
 * An array is filtered once up front (copied only if it holds non-codewords);
 * then the NTAB tables are built independently on `threads` threads, each
 * deduplicated on its own (duplicates are adjacent in every table, so all tables
 * end with the same count). Returns NULL on ENOMEM.
 */
static struct run *
run_build(const struct source *src_in, size_t n_max, unsigned threads)
{
	struct build_job jobs[NTAB];
	pthread_t tid[NTAB];
	int started[NTAB];
	struct source src = *src_in;
	struct run *r = NULL;
	uint64_t *copy = NULL;
	size_t n = 0, i, k;
	unsigned t;
	int ok = 1;

	if (src.narr > 0 && src.filter) {
		for (i = 0; i < src.narr; i++)
			n += key_is_rs8(src.arr[i]);
		if (n < src.narr) {
			copy = malloc((n + 1) * sizeof(*copy));
			if (copy == NULL)
				goto fail;
			for (i = 0, k = 0; i < src.narr; i++)
				if (key_is_rs8(src.arr[i]))
					copy[k++] = src.arr[i];
			src.arr = copy;
			src.narr = k;
		}
		src.filter = 0;
		n_max = src.narr;
		for (i = 0; i < src.nruns; i++)
			n_max += src.runs[i]->n;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		goto fail;
	run_geometry(r, n_max);
	if (threads < 1)
		threads = 1;
	if (threads > NTAB)
		threads = NTAB;
	for (i = 0; i < threads; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].r = r;
		jobs[i].src = &src;
		jobs[i].first = (unsigned)i;
		jobs[i].step = threads;
		started[i] = i > 0 &&
		    pthread_create(&tid[i], NULL, build_worker, &jobs[i]) == 0;
	}
	/* Job 0, and any job whose thread did not start, run here. */
	for (i = 0; i < threads; i++)
		if (!started[i])
			build_worker(&jobs[i]);
	for (i = 0; i < threads; i++) {
		if (started[i])
			pthread_join(tid[i], NULL);
		if (jobs[i].ret != 0)
			ok = 0;
	}
	if (!ok)
		goto fail;
	r->n = jobs[0].count[0];
	for (t = 0; t < NTAB; t++)
		if (jobs[t % threads].count[t] != r->n)
			goto fail;      /* cannot happen: same codes in every table */
	free(copy);
	return r;
fail:
	free(copy);
	run_free(r);
	return NULL;
}

/* ---------------------------------------------------------------------------
 * Result collection: total count plus the best `limit` hits in a heap whose root
 * is the worst kept hit.
 */
struct collect {
	const struct msr_query *q;
	struct msr_hit *heap;
	size_t limit, n;
	uint64_t total;
};

int
msr_hit_cmp(const struct msr_hit *a, const struct msr_hit *b)
{
	int c;

	if (a->mismatches != b->mismatches)
		return a->mismatches < b->mismatches ? -1 : 1;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	if (a->code.len != b->code.len)
		return a->code.len < b->code.len ? -1 : 1;
	c = memcmp(a->code.sym, b->code.sym, a->code.len);
	return c < 0 ? -1 : c > 0;
}

static int
hit_qsort_cmp(const void *a, const void *b)
{
	return msr_hit_cmp(a, b);
}

static void
heap_sift_down(struct msr_hit *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, worst = i;
		struct msr_hit tmp;

		if (l < n && msr_hit_cmp(&h[l], &h[worst]) > 0)
			worst = l;
		if (l + 1 < n && msr_hit_cmp(&h[l + 1], &h[worst]) > 0)
			worst = l + 1;
		if (worst == i)
			return;
		tmp = h[i];
		h[i] = h[worst];
		h[worst] = tmp;
		i = worst;
	}
}

static void
collect_push(struct collect *c, const uint8_t *sym, unsigned len,
    unsigned mismatches)
{
	struct msr_hit h;
	size_t i;

	c->total++;
	if (c->limit == 0)
		return;
	memset(&h, 0, sizeof(h));
	h.code.len = (uint8_t)len;
	memcpy(h.code.sym, sym, len);
	h.mismatches = mismatches;
	h.score = msr_query_score(c->q, sym);
	if (c->n < c->limit) {
		i = c->n++;
		c->heap[i] = h;
		while (i > 0 && msr_hit_cmp(&c->heap[(i - 1) / 2], &c->heap[i]) < 0) {
			struct msr_hit tmp = c->heap[i];

			c->heap[i] = c->heap[(i - 1) / 2];
			c->heap[(i - 1) / 2] = tmp;
			i = (i - 1) / 2;
		}
		return;
	}
	if (msr_hit_cmp(&h, &c->heap[0]) >= 0)
		return;
	c->heap[0] = h;
	heap_sift_down(c->heap, c->n, 0);
}

/* ---------------------------------------------------------------------------
 * Query context for the rs8 part.
 */
struct plan_item {
	unsigned t;                   /* table */
	unsigned exact;               /* leading positions required exact */
	unsigned len;                 /* prefix length enumerated */
	uint8_t set;                  /* positions of the exact part (bitmask) */
	double cost;
};

struct plan {
	unsigned nitems;
	struct plan_item item[ITEMS_MAX];
	double cost;
};

struct qctx {
	const struct msr_query *q;
	struct collect *col;
	unsigned base;
	unsigned budget;
	/* ex[t][i][s]: excess of symbol s at position (t+i)%8; ex[0] is by position */
	uint8_t ex[NTAB][NPOS][MSR_SYMBOLS];
	/* within[p][c]: symbols whose excess at p is <= c */
	uint32_t within[NPOS][BUDGET_MAX + 1];
	/* nex[p][j]: number of symbols whose excess at p is exactly j */
	unsigned nex[NPOS][BUDGET_MAX + 1];
	/* leaves[t][l][L], per (table, exact part, prefix length): prefixes
	 * enumerated; l = 0 means no exact part. */
	double leaves[NTAB][NPOS + 1][NPOS + 1];
	/* current item */
	const struct run *run;
	const struct table *tb;
	unsigned t, exact, len;
	uint8_t prior[ITEMS_MAX];     /* exact sets of earlier items */
	unsigned nprior;
};

static void
qctx_init(struct qctx *c, const struct msr_query *q, struct collect *col)
{
	unsigned p, s, t, i, l, L, j, cc;
	int m;

	memset(c, 0, sizeof(*c));
	c->q = q;
	c->col = col;
	for (p = 0; p < NPOS; p++) {
		m = 255;
		for (s = 0; s < MSR_SYMBOLS; s++)
			if (q->cost[p][s] < m)
				m = q->cost[p][s];
		c->base += (unsigned)m;
		for (s = 0; s < MSR_SYMBOLS; s++) {
			unsigned e = (unsigned)(q->cost[p][s] - m);

			c->ex[0][p][s] = (uint8_t)e;
			for (cc = e; cc <= BUDGET_MAX; cc++)
				c->within[p][cc] |= UINT32_C(1) << s;
			if (e <= BUDGET_MAX)
				c->nex[p][e]++;
		}
	}
	c->budget = c->base <= q->max_mismatches ? q->max_mismatches - c->base : 0;
	for (t = 1; t < NTAB; t++)
		for (i = 0; i < NPOS; i++)
			memcpy(c->ex[t][i], c->ex[0][(t + i) % NPOS], MSR_SYMBOLS);
	for (t = 0; t < NTAB; t++) {
		for (l = 0; l <= NPOS; l++) {
			double a = 1.0, dp[BUDGET_MAX + 1], nx[BUDGET_MAX + 1];

			for (i = 0; i < l; i++)
				a *= c->nex[(t + i) % NPOS][0];
			memset(dp, 0, sizeof(dp));
			dp[0] = a;
			for (L = l; L <= NPOS; L++) {
				double sum = 0.0;

				for (cc = 0; cc <= c->budget; cc++)
					sum += dp[cc];
				c->leaves[t][l][L] = sum;
				if (L == NPOS)
					break;
				p = (t + L) % NPOS;
				memset(nx, 0, sizeof(nx));
				for (cc = 0; cc <= c->budget; cc++)
					for (j = 0; j <= cc; j++)
						nx[cc] += dp[cc - j] * c->nex[p][j];
				memcpy(dp, nx, sizeof(dp));
			}
		}
	}
}

static double
pow32(unsigned L)
{
	double v = 1.0;

	while (L-- > 0)
		v *= 32.0;
	return v;
}

/* Estimated cost of enumerating (t, l, L) on run r. */
static double
item_cost(const struct qctx *c, const struct run *r, unsigned t, unsigned l,
    unsigned L)
{
	double leaves = c->leaves[t][l][L];
	double frac = leaves / pow32(L);
	double per_leaf;

	if (5 * L <= r->dbits)
		per_leaf = C_LEAF_DIR +
		    C_BUCKET * (double)((size_t)1 << (r->dbits - 5 * L));
	else
		per_leaf = C_LEAF_BS;
	return leaves * per_leaf + (double)r->n * frac * C_VERIFY;
}

static uint8_t
interval_mask(unsigned t, unsigned l)
{
	unsigned i, m = 0;

	for (i = 0; i < l; i++)
		m |= 1u << ((t + i) % NPOS);
	return (uint8_t)m;
}

struct choose {
	struct plan_item opt[NTAB * NPOS];
	size_t nopt;
	unsigned need;
	struct plan_item cur[ITEMS_MAX];
	struct plan best;
};

static int
opt_cmp(const void *a, const void *b)
{
	const struct plan_item *x = a, *y = b;

	return x->cost < y->cost ? -1 : x->cost > y->cost;
}

/*
 * Sort the (at most NTAB * NPOS) options by cost, stably, as qsort with
 * opt_cmp would: glibc's qsort mallocs a buffer for an array this size, once
 * per run per search.
 */
static void
opt_sort(struct plan_item *o, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct plan_item x = o[i];
		size_t j = i;

		for (; j > 0 && opt_cmp(&o[j - 1], &x) > 0; j--)
			o[j] = o[j - 1];
		o[j] = x;
	}
}

/* Branch and bound over options sorted by cost: `need` disjoint exact sets. */
static void
choose_rec(struct choose *ch, size_t from, unsigned depth, uint8_t used,
    double cost)
{
	size_t i;

	if (depth == ch->need) {
		if (cost < ch->best.cost) {
			ch->best.cost = cost;
			ch->best.nitems = depth;
			memcpy(ch->best.item, ch->cur, depth * sizeof(ch->cur[0]));
		}
		return;
	}
	for (i = from; i < ch->nopt; i++) {
		const struct plan_item *o = &ch->opt[i];

		if (cost + (ch->need - depth) * o->cost >= ch->best.cost)
			return;
		if (o->set & used)
			continue;
		ch->cur[depth] = *o;
		choose_rec(ch, i + 1, depth + 1, used | o->set, cost + o->cost);
	}
}

/* Best scan plan for run r. */
static void
plan_run(const struct qctx *c, const struct run *r, struct plan *out)
{
	struct choose ch;
	unsigned t, l, L;

	memset(&ch, 0, sizeof(ch));
	ch.best.cost = 1e300;
	/* One item, no exact part. */
	for (t = 0; t < NTAB; t++) {
		for (L = 0; L <= NPOS; L++) {
			double v = item_cost(c, r, t, 0, L);

			if (v < ch.best.cost) {
				ch.best.cost = v;
				ch.best.nitems = 1;
				ch.best.item[0] = (struct plan_item){ t, 0, L, 0, v };
			}
		}
	}
	/* budget+1 items with disjoint exact intervals. */
	ch.need = c->budget + 1;
	for (t = 0; t < NTAB; t++) {
		for (l = 1; l + c->budget <= NPOS; l++) {
			struct plan_item o = { t, l, l, interval_mask(t, l), 1e300 };

			for (L = l; L <= NPOS; L++) {
				double v = item_cost(c, r, t, l, L);

				if (v < o.cost) {
					o.cost = v;
					o.len = L;
				}
			}
			ch.opt[ch.nopt++] = o;
		}
	}
	opt_sort(ch.opt, ch.nopt);
	choose_rec(&ch, 0, 0, 0, 0.0);
	*out = ch.best;
}

/* ---------------------------------------------------------------------------
 * Executing a scan item.
 */
static void
emit_rs8(struct qctx *c, uint64_t key, unsigned excess)
{
	uint8_t sym[NPOS];
	unsigned p, i;

	for (p = 0; p < NPOS; p++)
		sym[p] = (uint8_t)key_sym(key, p);
	for (i = 0; i < c->nprior; i++) {
		unsigned set = c->prior[i], exact = 1;

		for (p = 0; p < NPOS; p++)
			if ((set & (1u << p)) && c->ex[0][p][sym[p]] != 0)
				exact = 0;
		if (exact)
			return;         /* reported by an earlier item */
	}
	collect_push(c->col, sym, NPOS, c->base + excess);
}

/* Verify entries [e0, e1) of bucket b; stop at a suffix >= stop. */
static void
scan_entries(struct qctx *c, uint64_t b, size_t e0, size_t e1, uint64_t stop,
    unsigned excess0)
{
	const struct run *r = c->run;
	const uint8_t *ent = c->tb->ent;
	const uint8_t (*ex)[MSR_SYMBOLS] = c->ex[c->t];
	unsigned budget = c->budget, L = c->len, i;
	uint64_t hi = b << r->sbits;
	size_t e;

	for (e = e0; e < e1; e++) {
		uint32_t v = ent_load(ent + e * r->w, r->smask);
		uint64_t k30 = hi | v, key;
		unsigned x = excess0;

		if (v >= stop)
			break;
		/* the stored six symbols first; expand only what may still match */
		for (i = L; i < NPOS - 2 && x <= budget; i++)
			x += ex[i][(k30 >> (25 - 5 * i)) & 31];
		if (x > budget)
			continue;
		key = expand30(k30, c->t);
		for (i = L > NPOS - 2 ? L : NPOS - 2; i < NPOS && x <= budget; i++)
			x += ex[i][key_sym(key, i)];
		if (x <= budget)
			emit_rs8(c, from_table(key, c->t), x);
	}
}

/*
 * A prefix longer than the stored 30 bits: the entry with its first 30 bits,
 * if any, verified from position len on when its expansion has the prefix.
 */
static void
scan_long_prefix(struct qctx *c, uint64_t prefix, unsigned pbits, unsigned excess)
{
	const struct run *r = c->run;
	const uint32_t *dir = c->tb->dir;
	const uint8_t (*ex)[MSR_SYMBOLS] = c->ex[c->t];
	uint64_t k30 = prefix >> (pbits - STORED_BITS), b = k30 >> r->sbits, key;
	uint32_t v = (uint32_t)(k30 & r->smask);
	size_t e = lower_bound(r, c->tb->ent, dir[b], dir[b + 1], v);
	unsigned i, x = excess;

	if (e >= dir[b + 1] || ent_load(c->tb->ent + e * r->w, r->smask) != v)
		return;
	key = expand30(k30, c->t);
	if (key >> (KEY_BITS - pbits) != prefix)
		return;
	for (i = c->len; i < NPOS && x <= c->budget; i++)
		x += ex[i][key_sym(key, i)];
	if (x <= c->budget)
		emit_rs8(c, from_table(key, c->t), x);
}

static void
scan_prefix(struct qctx *c, uint64_t prefix, unsigned excess)
{
	const struct run *r = c->run;
	const uint32_t *dir = c->tb->dir;
	unsigned pbits = 5 * c->len;

	if (pbits <= r->dbits) {
		uint64_t b0 = prefix << (r->dbits - pbits);
		uint64_t b1 = (prefix + 1) << (r->dbits - pbits), b;

		for (b = b0; b < b1; b++)
			if (dir[b] < dir[b + 1])
				scan_entries(c, b, dir[b], dir[b + 1], UINT64_MAX,
				    excess);
	} else if (pbits > STORED_BITS) {
		scan_long_prefix(c, prefix, pbits, excess);
	} else {
		uint64_t klo = prefix << (STORED_BITS - pbits);
		uint64_t b = klo >> r->sbits;
		uint32_t slo = (uint32_t)(klo & r->smask);
		uint64_t shi = (uint64_t)slo + (UINT64_C(1) << (STORED_BITS - pbits));
		size_t e = lower_bound(r, c->tb->ent, dir[b], dir[b + 1], slo);

		scan_entries(c, b, e, dir[b + 1], shi, excess);
	}
}

static void
enum_prefix(struct qctx *c, unsigned i, uint64_t prefix, unsigned excess)
{
	unsigned pos;
	uint32_t mask;

	if (i == c->len) {
		scan_prefix(c, prefix, excess);
		return;
	}
	pos = (c->t + i) % NPOS;
	mask = i < c->exact ? c->within[pos][0] : c->within[pos][c->budget - excess];
	while (mask != 0) {
		unsigned s = (unsigned)__builtin_ctz(mask);

		mask &= mask - 1;
		enum_prefix(c, i + 1, prefix << 5 | s, excess + c->ex[0][pos][s]);
	}
}

static void
run_search(struct qctx *c, const struct run *r, const struct plan *pl)
{
	unsigned j;

	c->run = r;
	for (j = 0; j < pl->nitems; j++) {
		const struct plan_item *it = &pl->item[j];

		c->t = it->t;
		c->tb = &r->tab[it->t];
		c->exact = it->exact;
		c->len = it->len;
		c->nprior = j;
		if (j > 0)
			c->prior[j - 1] = pl->item[j - 1].set;
		enum_prefix(c, 0, 0, 0);
	}
	c->nprior = 0;
}

/* ---------------------------------------------------------------------------
 * rs8 probing (budget 0): enumerate six positions, complete the other two.
 */
struct probe {
	struct qctx *c;
	struct run *const *runs;
	size_t nruns;
	unsigned pos[NPOS - 2];       /* enumerated positions */
	unsigned a, b;                /* completed positions */
	unsigned pair;
};

static void
probe_rec(struct probe *pr, unsigned j, uint64_t key, unsigned syn)
{
	struct qctx *c = pr->c;
	unsigned pos, xy, x, y;
	uint32_t mask;
	size_t i;

	if (j == NPOS - 2) {
		xy = complete[pr->pair][syn];
		x = xy >> 5;
		y = xy & 31;
		if (!(c->within[pr->a][0] & (UINT32_C(1) << x)) ||
		    !(c->within[pr->b][0] & (UINT32_C(1) << y)))
			return;
		key |= (uint64_t)x << (35 - 5 * pr->a) | (uint64_t)y << (35 - 5 * pr->b);
		for (i = 0; i < pr->nruns; i++) {
			if (run_contains(pr->runs[i], key)) {
				emit_rs8(c, key, 0);
				break;
			}
		}
		return;
	}
	pos = pr->pos[j];
	mask = c->within[pos][0];
	while (mask != 0) {
		unsigned s = (unsigned)__builtin_ctz(mask);

		mask &= mask - 1;
		probe_rec(pr, j + 1, key | (uint64_t)s << (35 - 5 * pos),
		    syn ^ contrib[pos][s]);
	}
}

/* Cost of probing, and its setup in *pr. */
static double
probe_plan(struct qctx *c, struct run *const *runs, size_t nruns,
    struct probe *pr)
{
	unsigned p, a = 0, b, n = 0;
	double leaves = 1.0, pass;

	/* Complete the two least selective positions. */
	for (p = 1; p < NPOS; p++)
		if (c->nex[p][0] > c->nex[a][0])
			a = p;
	b = a == 0 ? 1 : 0;
	for (p = 0; p < NPOS; p++)
		if (p != a && c->nex[p][0] > c->nex[b][0])
			b = p;
	memset(pr, 0, sizeof(*pr));
	pr->c = c;
	pr->runs = runs;
	pr->nruns = nruns;
	pr->a = a < b ? a : b;
	pr->b = a < b ? b : a;
	pr->pair = pair_id[pr->a][pr->b];
	for (p = 0; p < NPOS; p++) {
		if (p == pr->a || p == pr->b)
			continue;
		pr->pos[n++] = p;
		leaves *= c->nex[p][0];
	}
	pass = leaves * c->nex[a][0] * c->nex[b][0] / 1024.0;
	return leaves * C_PLEAF + pass * (double)nruns * C_PROBE;
}

/* ---------------------------------------------------------------------------
 * Delta and free lists: plain scans.
 */
static void
scan_delta(struct qctx *c, const uint64_t *delta, size_t n)
{
	size_t i;
	unsigned p;

	c->nprior = 0;
	for (i = 0; i < n; i++) {
		unsigned x = 0;

		for (p = 0; p < NPOS; p++) {
			x += c->ex[0][p][key_sym(delta[i], p)];
			if (x > c->budget)
				break;
		}
		if (x <= c->budget)
			emit_rs8(c, delta[i], x);
	}
}

static void
scan_free(struct collect *col, const struct msr_query *q,
    const struct freelist *fl)
{
	unsigned len = q->len, k = q->max_mismatches, p;
	size_t i;

	for (i = 0; i < fl->n; i++) {
		const uint8_t *sym = fl->sym + i * len;
		unsigned x = 0;

		for (p = 0; p < len; p++) {
			x += q->cost[p][sym[p]];
			if (x > k)
				break;
		}
		if (x <= k)
			collect_push(col, sym, len, x);
	}
}

/* runs planned on the stack; more (never, with LSM merging) are calloc'd */
#define PLANS_LOCAL 16

static void
search_rs8(struct msr_index *idx, struct qctx *c)
{
	struct probe pr;
	struct plan local[PLANS_LOCAL], *plans = NULL;
	double scan_cost = 0.0;
	int use_probe = 0;
	size_t i;

	if (c->base > c->q->max_mismatches)
		return;
	if (idx->nruns > 0) {
		plans = idx->nruns <= PLANS_LOCAL ? local :
		    calloc(idx->nruns, sizeof(*plans));
		if (plans == NULL) {
			/* Cannot plan: fall back to full scans, still exact. */
			for (i = 0; i < idx->nruns; i++) {
				struct plan full = { 1, { { 0, 0, 0, 0, 0 } }, 0 };

				run_search(c, idx->runs[i], &full);
			}
			goto delta;
		}
		for (i = 0; i < idx->nruns; i++) {
			plan_run(c, idx->runs[i], &plans[i]);
			scan_cost += plans[i].cost;
		}
		if (c->budget == 0 && rs8_tables_ok)
			use_probe = probe_plan(c, idx->runs, idx->nruns, &pr) <
			    scan_cost;
		if (use_probe) {
			probe_rec(&pr, 0, 0, 0);
		} else {
			for (i = 0; i < idx->nruns; i++)
				run_search(c, idx->runs[i], &plans[i]);
		}
	}
delta:
	scan_delta(c, idx->delta, idx->ndelta);
	if (plans != local)
		free(plans);
}

int
msr_index_search(struct msr_index *idx, const struct msr_query *q,
    struct msr_hit *hits, size_t limit, struct msr_search_result *res)
{
	struct collect col;
	struct qctx c;          /* ~7.5 KB: on the stack, no malloc per search */
	int ret = -1;

	memset(res, 0, sizeof(*res));
	if (!q->finished || q->len < 1 || q->len > MSR_CODE_MAX)
		return -1;
	memset(&col, 0, sizeof(col));
	col.q = q;
	col.heap = hits;
	col.limit = limit;

	pthread_rwlock_rdlock(&idx->rw);
	if (q->len == NPOS && idx->n_rs8 > 0) {
		qctx_init(&c, q, &col);
		search_rs8(idx, &c);
	}
	scan_free(&col, q, &idx->fl[q->len]);
	if (col.n > 1)
		qsort(col.heap, col.n, sizeof(col.heap[0]), hit_qsort_cmp);
	res->total = col.total;
	res->nhits = col.n;
	ret = 0;
	pthread_rwlock_unlock(&idx->rw);
	return ret;
}

/* ---------------------------------------------------------------------------
 * Building, adding, statistics.
 */
static void
config_defaults(struct msr_index_config *cfg, const struct msr_index_config *in)
{
	memset(cfg, 0, sizeof(*cfg));
	if (in != NULL)
		*cfg = *in;
	if (cfg->delta_max == 0)
		cfg->delta_max = 4096;
	if (cfg->merge_cap == 0)
		cfg->merge_cap = (size_t)1 << 26;
	if (cfg->build_threads == 0)
		cfg->build_threads = 2;
}

static int
code_valid(const struct msr_code *code)
{
	unsigned i;

	if (code->len < MSR_FREE_MIN || code->len > MSR_FREE_MAX)
		return 0;
	for (i = 0; i < code->len; i++)
		if (code->sym[i] >= MSR_SYMBOLS)
			return 0;
	return 1;
}

/* Position of sym in fl (of codes of len symbols), or where it would go. */
static size_t
free_find(const struct freelist *fl, unsigned len, const uint8_t *sym,
    int *found)
{
	size_t lo = 0, hi = fl->n;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(fl->sym + mid * len, sym, len);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
free_reserve(struct freelist *fl, unsigned len, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (n <= fl->cap)
		return 0;
	cap = fl->cap < 16 ? 16 : fl->cap;
	while (cap < n)
		cap *= 2;
	p = realloc(fl->sym, cap * len);
	if (p == NULL)
		return -1;
	fl->sym = p;
	fl->cap = cap;
	return 0;
}

static int
free_qsort_cmp(const void *a, const void *b, void *len)
{
	return memcmp(a, b, *(const unsigned *)len);
}

/* Sort and deduplicate a free list in place. */
static void
free_sort(struct freelist *fl, unsigned len)
{
	size_t i, out = 0;

	if (fl->n < 2)
		return;
	qsort_r(fl->sym, fl->n, len, free_qsort_cmp, &len);
	for (i = 0; i < fl->n; i++) {
		if (out > 0 && memcmp(fl->sym + (out - 1) * len,
		    fl->sym + i * len, len) == 0)
			continue;
		memmove(fl->sym + out * len, fl->sym + i * len, len);
		out++;
	}
	fl->n = out;
}

static uint64_t
code_key(const struct msr_code *code)
{
	return msr_rs8_pack(code->sym);
}

static void
index_destroy(struct msr_index *idx)
{
	size_t i;

	for (i = 0; i < idx->nruns; i++)
		run_free(idx->runs[i]);
	free(idx->runs);
	free(idx->delta);
	for (i = 0; i <= MSR_CODE_MAX; i++)
		free(idx->fl[i].sym);
	pthread_rwlock_destroy(&idx->rw);
	pthread_mutex_destroy(&idx->wmu);
	free(idx);
}

static struct msr_index *
index_alloc(const struct msr_index_config *cfg)
{
	struct msr_index *idx;
	pthread_rwlockattr_t attr;

	pthread_once(&rs8_once, rs8_tables_init);
	idx = calloc(1, sizeof(*idx));
	if (idx == NULL)
		return NULL;
	config_defaults(&idx->cfg, cfg);
	pthread_rwlockattr_init(&attr);
	/* An occasional writer must not starve behind a stream of searches. */
	pthread_rwlockattr_setkind_np(&attr,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&idx->rw, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&idx->wmu, NULL);
	return idx;
}

struct msr_index *
msr_index_new(const struct msr_index_config *cfg)
{
	return msr_index_build(NULL, 0, NULL, 0, cfg);
}

struct msr_index *
msr_index_build(const uint64_t *rs8, size_t n_rs8, const struct msr_code *codes,
    size_t n_codes, const struct msr_index_config *cfg)
{
	struct msr_index *idx;
	struct source src;
	struct run *r = NULL;
	size_t i, nrs8_codes = 0, k, nonword = 0;
	uint64_t *extra = NULL;
	unsigned len;

	idx = index_alloc(cfg);
	if (idx == NULL)
		return NULL;
	/* Sort out the generic codes: rs8 codewords join the runs. */
	for (i = 0; i < n_codes; i++) {
		if (!code_valid(&codes[i]))
			goto fail;
		if (codes[i].len == NPOS && key_is_rs8(code_key(&codes[i])))
			nrs8_codes++;
	}
	if (nrs8_codes > 0) {
		extra = malloc((n_rs8 + nrs8_codes) * sizeof(*extra));
		if (extra == NULL)
			goto fail;
		if (n_rs8 > 0)
			memcpy(extra, rs8, n_rs8 * sizeof(*extra));
		k = n_rs8;
		for (i = 0; i < n_codes; i++)
			if (codes[i].len == NPOS && key_is_rs8(code_key(&codes[i])))
				extra[k++] = code_key(&codes[i]);
		rs8 = extra;
		n_rs8 = k;
	}
	/* Free lists: generic non-codewords and packed non-codewords. */
	for (i = 0; i < n_codes; i++) {
		struct freelist *fl = &idx->fl[codes[i].len];

		len = codes[i].len;
		if (len == NPOS && key_is_rs8(code_key(&codes[i])))
			continue;
		if (free_reserve(fl, len, fl->n + 1) != 0)
			goto fail;
		memcpy(fl->sym + fl->n * len, codes[i].sym, len);
		fl->n++;
	}
	for (i = 0; i < n_rs8; i++) {
		struct freelist *fl = &idx->fl[NPOS];

		if (rs8[i] > KEY_MASK)
			goto fail;
		if (key_is_rs8(rs8[i]))
			continue;
		if (free_reserve(fl, NPOS, fl->n + 1) != 0)
			goto fail;
		msr_rs8_unpack(rs8[i], fl->sym + fl->n * NPOS);
		fl->n++;
		nonword++;
	}
	for (len = MSR_FREE_MIN; len <= MSR_FREE_MAX; len++)
		free_sort(&idx->fl[len], len);

	if (n_rs8 > 0) {
		memset(&src, 0, sizeof(src));
		src.arr = rs8;
		src.narr = n_rs8;
		src.filter = nonword > 0;   /* checked above: filter only if needed */
		r = run_build(&src, n_rs8, idx->cfg.build_threads);
		if (r == NULL)
			goto fail;
		if (r->n > 0) {
			idx->runs = malloc(sizeof(*idx->runs));
			if (idx->runs == NULL)
				goto fail;
			idx->runs[0] = r;
			idx->nruns = 1;
			idx->n_rs8 = r->n;
		} else {
			run_free(r);
		}
		r = NULL;
	}
	free(extra);
	return idx;
fail:
	run_free(r);
	free(extra);
	index_destroy(idx);
	return NULL;
}

/*
 * Bulk add (used to load a registry in chunks, so that the raw input never has
 * to be held whole): one new run from rs8, inserted in size order; other codes
 * appended to their free lists, which are then re-sorted. Validation happens
 * before anything changes, and free-list space is reserved before the first
 * append, so a failure leaves the index as it was.
 */
int
msr_index_add_bulk(struct msr_index *idx, const uint64_t *rs8, size_t n_rs8,
    const struct msr_code *codes, size_t n_codes)
{
	size_t count[MSR_CODE_MAX + 1] = { 0 }, i, pos;
	struct run *r = NULL, **runs = NULL, **prev = NULL;
	struct source src;
	unsigned len;
	int ret = -1;

	for (i = 0; i < n_codes; i++) {
		if (!code_valid(&codes[i]) ||
		    (codes[i].len == NPOS && key_is_rs8(code_key(&codes[i]))))
			return -1;
		count[codes[i].len]++;
	}
	for (i = 0; i < n_rs8; i++)
		if (rs8[i] > KEY_MASK || !key_is_rs8(rs8[i]))
			return -1;
	pthread_mutex_lock(&idx->wmu);
	if (n_rs8 > 0) {
		memset(&src, 0, sizeof(src));
		src.arr = rs8;
		src.narr = n_rs8;
		src.filter = 0;             /* every key was checked above */
		r = run_build(&src, n_rs8, idx->cfg.build_threads);
		runs = malloc((idx->nruns + 1) * sizeof(*runs));
		if (r == NULL || runs == NULL)
			goto done;
		for (pos = 0; pos < idx->nruns && idx->runs[pos]->n >= r->n; pos++)
			runs[pos] = idx->runs[pos];
		runs[pos] = r;
		for (i = pos; i < idx->nruns; i++)
			runs[i + 1] = idx->runs[i];
	}
	pthread_rwlock_wrlock(&idx->rw);
	for (len = MSR_FREE_MIN; len <= MSR_FREE_MAX; len++)
		if (count[len] > 0 &&
		    free_reserve(&idx->fl[len], len, idx->fl[len].n + count[len]) != 0) {
			pthread_rwlock_unlock(&idx->rw);
			goto done;
		}
	for (i = 0; i < n_codes; i++) {
		struct freelist *fl = &idx->fl[codes[i].len];

		memcpy(fl->sym + fl->n * codes[i].len, codes[i].sym, codes[i].len);
		fl->n++;
	}
	for (len = MSR_FREE_MIN; len <= MSR_FREE_MAX; len++)
		if (count[len] > 0)
			free_sort(&idx->fl[len], len);
	if (r != NULL) {
		prev = idx->runs;
		idx->runs = runs;
		idx->nruns++;
		idx->n_rs8 += r->n;
		runs = NULL;
		r = NULL;
	}
	pthread_rwlock_unlock(&idx->rw);
	ret = 0;
done:
	pthread_mutex_unlock(&idx->wmu);
	run_free(r);
	free(runs);
	free(prev);
	return ret;
}

void
msr_index_free(struct msr_index *idx)
{
	if (idx != NULL)
		index_destroy(idx);
}

/* Under wmu: is key already indexed? */
static int
rs8_present(const struct msr_index *idx, uint64_t key)
{
	size_t i;

	for (i = 0; i < idx->nruns; i++)
		if (run_contains(idx->runs[i], key))
			return 1;
	for (i = 0; i < idx->ndelta; i++)
		if (idx->delta[i] == key)
			return 1;
	return 0;
}

/*
 * Under wmu: turn the delta into a run, folding in the smaller runs (not above
 * merge_cap) while each is at most MERGE_RATIO times the new run. The build runs
 * without the read-write lock; the swap takes it.
 */
static int
merge_delta(struct msr_index *idx)
{
	struct source src;
	struct run *r = NULL, **old = NULL, **runs = NULL, **prev;
	size_t keep = idx->nruns, size = idx->ndelta, nold, i;
	int ret = -1;

	while (keep > 0 && idx->runs[keep - 1]->n <= idx->cfg.merge_cap &&
	    idx->runs[keep - 1]->n <= MERGE_RATIO * size) {
		size += idx->runs[keep - 1]->n;
		keep--;
	}
	memset(&src, 0, sizeof(src));
	src.arr = idx->delta;
	src.narr = idx->ndelta;     /* only codewords enter the delta */
	src.runs = idx->runs + keep;
	src.nruns = idx->nruns - keep;
	r = run_build(&src, size, idx->cfg.build_threads);
	if (r == NULL)
		goto done;
	nold = idx->nruns - keep;
	old = malloc((nold + 1) * sizeof(*old));
	runs = malloc((keep + 1) * sizeof(*runs));
	if (old == NULL || runs == NULL)
		goto done;
	if (nold > 0)
		memcpy(old, idx->runs + keep, nold * sizeof(*old));
	if (keep > 0)
		memcpy(runs, idx->runs, keep * sizeof(*runs));
	runs[keep] = r;
	pthread_rwlock_wrlock(&idx->rw);
	prev = idx->runs;
	idx->runs = runs;
	idx->nruns = keep + 1;
	idx->ndelta = 0;
	pthread_rwlock_unlock(&idx->rw);
	runs = prev;            /* the old array, freed below */
	r = NULL;
	for (i = 0; i < nold; i++)
		run_free(old[i]);
	ret = 0;
done:
	free(runs);
	free(old);
	run_free(r);
	return ret;
}

static int
add_rs8_locked(struct msr_index *idx, uint64_t key)
{
	int ret = -1;

	if (rs8_present(idx, key)) {
		ret = 0;
		goto done;
	}
	if (idx->ndelta == idx->capdelta) {
		size_t cap = idx->capdelta ? 2 * idx->capdelta : 64;
		uint64_t *d = malloc(cap * sizeof(*d));

		if (d == NULL)
			goto done;
		if (idx->ndelta > 0)
			memcpy(d, idx->delta, idx->ndelta * sizeof(*d));
		pthread_rwlock_wrlock(&idx->rw);
		free(idx->delta);
		idx->delta = d;
		idx->capdelta = cap;
		pthread_rwlock_unlock(&idx->rw);
	}
	pthread_rwlock_wrlock(&idx->rw);
	idx->delta[idx->ndelta++] = key;
	idx->n_rs8++;
	pthread_rwlock_unlock(&idx->rw);
	ret = 1;
	/* A failed merge leaves the delta as it was: it is retried next time. */
	if (idx->ndelta >= idx->cfg.delta_max)
		(void)merge_delta(idx);
done:
	return ret;
}

static int
add_free_locked(struct msr_index *idx, const struct msr_code *code)
{
	struct freelist *fl = &idx->fl[code->len];
	unsigned len = code->len;
	size_t at;
	uint8_t *p;
	int found, ret = -1;

	at = free_find(fl, len, code->sym, &found);
	if (found) {
		ret = 0;
		goto done;
	}
	if (fl->n + 1 > fl->cap) {
		size_t cap = fl->cap < 16 ? 16 : 2 * fl->cap;

		p = malloc(cap * len);
		if (p == NULL)
			goto done;
		if (fl->n > 0)
			memcpy(p, fl->sym, fl->n * len);
		pthread_rwlock_wrlock(&idx->rw);
		free(fl->sym);
		fl->sym = p;
		fl->cap = cap;
		pthread_rwlock_unlock(&idx->rw);
	}
	pthread_rwlock_wrlock(&idx->rw);
	memmove(fl->sym + (at + 1) * len, fl->sym + at * len, (fl->n - at) * len);
	memcpy(fl->sym + at * len, code->sym, len);
	fl->n++;
	pthread_rwlock_unlock(&idx->rw);
	ret = 1;
done:
	return ret;
}

int
msr_index_add(struct msr_index *idx, const struct msr_code *code)
{
	int ret = -1;

	if (!code_valid(code))
		return -1;
	pthread_mutex_lock(&idx->wmu);
	if (code->len == NPOS && key_is_rs8(code_key(code)))
		ret = add_rs8_locked(idx, code_key(code));
	else
		ret = add_free_locked(idx, code);
	pthread_mutex_unlock(&idx->wmu);
	return ret;
}

int
msr_index_add_rs8(struct msr_index *idx, uint64_t packed)
{
	struct msr_code code;

	if (packed > KEY_MASK)
		return -1;
	memset(&code, 0, sizeof(code));
	code.len = NPOS;
	msr_rs8_unpack(packed, code.sym);
	return msr_index_add(idx, &code);
}

size_t
msr_index_count_len(struct msr_index *idx, unsigned len)
{
	size_t n = 0;

	if (len > MSR_CODE_MAX)
		return 0;
	pthread_rwlock_rdlock(&idx->rw);
	n = idx->fl[len].n + (len == NPOS ? idx->n_rs8 : 0);
	pthread_rwlock_unlock(&idx->rw);
	return n;
}

void
msr_index_stats(struct msr_index *idx, struct msr_index_stats *st)
{
	size_t i;

	memset(st, 0, sizeof(*st));
	pthread_rwlock_rdlock(&idx->rw);
	st->rs8_codes = idx->n_rs8;
	st->runs = idx->nruns;
	st->delta = idx->ndelta;
	st->memory = sizeof(*idx) + idx->capdelta * sizeof(uint64_t) +
	    idx->nruns * sizeof(idx->runs[0]);
	for (i = 0; i < idx->nruns; i++)
		st->memory += run_memory(idx->runs[i]);
	for (i = 0; i <= MSR_CODE_MAX; i++) {
		st->free_codes += idx->fl[i].n;
		st->memory += idx->fl[i].cap * i;
	}
	st->codes = st->rs8_codes + st->free_codes;
	pthread_rwlock_unlock(&idx->rw);
}
