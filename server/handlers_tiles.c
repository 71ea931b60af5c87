/*
 * handlers_tiles.c — the audit log as a tiled transparency log
 * (c2sp.org/tlog-tiles), readable by standard tile clients such as Go's
 * golang.org/x/mod/sumdb/tlog (tests/go/tilecheck).
 *
 *   GET /checkpoint                       public   newest signed checkpoint,
 *                                                  with witness cosignatures
 *   GET /tile/<L>/<N>[.p/<W>]             public   hash tiles
 *   GET /tile/entries/<N>[.p/<W>]         auditor  entry bundles (audited)
 *
 * Formats
 *   hash tile     W concatenated 32-byte hashes: hash i is
 *                 MTH(D[(N*256 + i) * 256^L : (N*256 + i + 1) * 256^L]), i.e.
 *                 the complete subtree (level 8L, index N*256 + i) that
 *                 audit_hashes stores; level 0 tiles hold the leaf hashes.
 *   entry bundle  W entries, each a big-endian uint16 length then the exact
 *                 leaf bytes (the canonical JSON entry that was hashed).
 *   <N>, .p/<W>   tile.c. Full tiles are W = 256.
 *
 * Invariants
 *   1. Only data under the newest signed checkpoint is served: a tile exists
 *      when N*256 + W <= size >> 8L (size = newest checkpoint's tree size), so
 *      a client can always verify what it reads against a signed root.
 *   2. A full tile and every partial tile of a given width never change (the
 *      log is append-only): full tiles are cached for a year ("immutable");
 *      partial tiles, which a client only asks for at the current size, are
 *      cached briefly.
 *   3. Hash tiles reveal nothing about entries (hashes of canonical JSON with
 *      case numbers are not reversible in practice, and carry no timing beyond
 *      the public checkpoint), so they are public; entry bundles hold case
 *      numbers and are for auditors only, and each read is itself audited.
 *   4. Rows are counted: a tile whose stored rows are not exactly the W
 *      contiguous nodes it needs is 503, never a short or gapped tile.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/audit_store.h"
#include "msreg/db.h"
#include "msreg/handlers.h"
#include "msreg/server.h"
#include "msreg/witness.h"

#define HLEN          32
#define CACHE_FULL    "public, max-age=31536000, immutable"
#define CACHE_PARTIAL "public, max-age=5"
#define OCTETS        "application/octet-stream"

static uint64_t
be64(const char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | (uint8_t)p[i];
	return v;
}

/* Newest checkpoint: size and (optionally) the note. 0, or -1 after replying. */
static int
newest(struct msr_req *r, uint64_t *size, char **note)
{
	struct msr_as_head h;
	int ret = -1;

	if (msr_req_db(r) == NULL)
		return -1;
	if (msr_as_head(r->db, &h) != MSR_AS_OK) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	if (h.note == NULL) {
		msr_reply_unavailable(r, "no checkpoint has been signed yet");
		goto done;
	}
	*size = h.size;
	if (note != NULL) {
		*note = h.note;
		h.note = NULL;
	}
	ret = 0;
done:
	msr_as_head_clear(&h);
	return ret;
}

static void
not_found(struct msr_req *r, const char *what)
{
	msr_reply_error(r, 404, "not_found", json_pack("{s:s}", "tile", r->path),
	    "%s", what);
}

/*
 * Tile coordinates from the captured "<N>[.p/<W>]": 0, or -1 after replying
 * 404 (a malformed tile path names no resource).
 */
static int
tile_index(struct msr_req *r, const char *s, uint64_t *n, unsigned *w)
{
	if (s == NULL || msr_tile_parse_index(s, n, w) != 0) {
		not_found(r, "not a tile path (c2sp.org/tlog-tiles: <N> as x001/x234/067, "
		    "optional .p/<W> with W 1..255)");
		return -1;
	}
	return 0;
}

/* 1 if tile (n, w) of a level holding `count` nodes exists. */
static int
tile_exists(uint64_t count, uint64_t n, unsigned w)
{
	return n <= count / MSR_TILE_WIDTH && n * MSR_TILE_WIDTH + w <= count;
}

void
msr_h_tlog_checkpoint(struct msr_req *r)
{
	char *note = NULL, *dec;
	uint64_t size;

	if (newest(r, &size, &note) != 0)
		return;
	dec = msr_witness_client_decorate(r->srv->witness, note, strlen(note));
	if (dec != NULL) {
		free(note);
		note = dec;
	}
	msr_reply_text(r, 200, "text/plain; charset=utf-8", note);
	msr_reply_header(r, "Cache-Control", "no-cache");
}

void
msr_h_tile(struct msr_req *r)
{
	const char *ls = r->capture[0];
	PGresult *res = NULL;
	uint64_t n, size, count;
	unsigned w, level = 0;
	char *out = NULL;

	/* parse: L is 0..63 without leading zeros */
	for (size_t i = 0; ls != NULL && ls[i] != '\0'; i++) {
		if (ls[i] < '0' || ls[i] > '9' || i >= 2 || (i == 1 && ls[0] == '0')) {
			not_found(r, "the tile level must be 0..63");
			return;
		}
		level = level * 10 + (unsigned)(ls[i] - '0');
	}
	if (ls == NULL || ls[0] == '\0' || level > 63) {
		not_found(r, "the tile level must be 0..63");
		return;
	}
	if (tile_index(r, r->capture[1], &n, &w) != 0)
		return;
	/* do */
	if (newest(r, &size, NULL) != 0)
		return;
	count = level * MSR_TILE_HEIGHT < 64 ? size >> (level * MSR_TILE_HEIGHT) : 0;
	if (!tile_exists(count, n, w)) {
		not_found(r, "no such tile at the current tree size");
		return;
	}
	if (msr_as_level(r->db, level * MSR_TILE_HEIGHT, n * MSR_TILE_WIDTH,
	    n * MSR_TILE_WIDTH + w, &res) != MSR_AS_OK) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	out = malloc((size_t)w * HLEN);
	if (out == NULL || PQntuples(res) != (int)w) {
		msr_reply_unavailable(r, out == NULL ? "out of memory" :
		    "the audit tree could not be read");
		goto done;
	}
	for (unsigned i = 0; i < w; i++) {
		if (be64(PQgetvalue(res, (int)i, 0)) != n * MSR_TILE_WIDTH + i ||
		    PQgetlength(res, (int)i, 1) != HLEN) {
			msr_reply_unavailable(r, "the audit tree could not be read");
			goto done;
		}
		memcpy(out + (size_t)i * HLEN, PQgetvalue(res, (int)i, 1), HLEN);
	}
	/* reply */
	msr_reply_bytes(r, 200, OCTETS, out, (size_t)w * HLEN);
	out = NULL;
	msr_reply_header(r, "Cache-Control", w == MSR_TILE_WIDTH ? CACHE_FULL : CACHE_PARTIAL);
done:
	free(out);
	PQclear(res);
}

void
msr_h_tile_entries(struct msr_req *r)
{
	PGresult *res = NULL;
	uint64_t n, size;
	unsigned w;
	size_t total = 0, pos = 0;
	char *out = NULL;

	if (tile_index(r, r->capture[0], &n, &w) != 0)
		return;
	msr_audit_note(r, "tile", json_integer((json_int_t)n));
	msr_audit_note(r, "width", json_integer((json_int_t)w));
	if (newest(r, &size, NULL) != 0)
		return;
	if (!tile_exists(size, n, w)) {
		not_found(r, "no such entry bundle at the current tree size");
		return;
	}
	if (msr_as_entries(r->db, n * MSR_TILE_WIDTH, w, &res) != MSR_AS_OK) {
		msr_reply_unavailable(r, "the database is unavailable");
		goto done;
	}
	if (PQntuples(res) != (int)w) {
		msr_reply_unavailable(r, "the audit log could not be read");
		goto done;
	}
	for (unsigned i = 0; i < w; i++) {
		int len = PQgetlength(res, (int)i, 1);

		if (be64(PQgetvalue(res, (int)i, 0)) != n * MSR_TILE_WIDTH + i || len > 0xffff) {
			msr_reply_unavailable(r, "an audit entry cannot be put in a bundle");
			goto done;
		}
		total += 2 + (size_t)len;
	}
	out = total > 0 ? malloc(total) : NULL;
	if (out == NULL) {
		msr_reply_unavailable(r, "out of memory");
		goto done;
	}
	for (unsigned i = 0; i < w; i++) {
		size_t len = (size_t)PQgetlength(res, (int)i, 1);

		out[pos++] = (char)(len >> 8);
		out[pos++] = (char)(len & 0xff);
		memcpy(out + pos, PQgetvalue(res, (int)i, 1), len);
		pos += len;
	}
	msr_reply_bytes(r, 200, OCTETS, out, total);
	out = NULL;
	/* entry bundles hold case numbers: private caches only */
	msr_reply_header(r, "Cache-Control", w == MSR_TILE_WIDTH ?
	    "private, max-age=31536000, immutable" : "private, max-age=5");
done:
	free(out);
	PQclear(res);
}
