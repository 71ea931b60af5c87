/*
 * it_tiles.c — the C2SP tlog-tiles read API against a real msregd and
 * PostgreSQL, checked by the reference client: tests/go/tilecheck reads the
 * checkpoint, hash tiles and entry bundles over HTTP with
 * golang.org/x/mod/sumdb/tlog and sumdb/note and verifies every entry and
 * consistency proofs against the signed root. Plus the C-side contract: tile
 * paths, partial widths, cache headers, 404 for tiles that do not exist, and
 * entry bundles for auditors only, each read audited.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "msreg/witness.h"

static struct msr_it it;
static char auditor[128], investigator[128];
static char tilecheck[700];

static void
setup(void)
{
	char cmd[2048], *out = NULL;

	msr_it_setup(&it, "tiles", "[audit]\nbatch_wait_us = 200\n");
	msr_it_client(&it, "auditor", "aud", NULL, auditor, sizeof(auditor));
	msr_it_client(&it, "investigator", "inv", "CA0190000", investigator,
	    sizeof(investigator));
	/* build the reference client (Debian's golang-golang-x-mod-dev, no network) */
	snprintf(tilecheck, sizeof(tilecheck), "%s/tilecheck", it.dir);
	snprintf(cmd, sizeof(cmd), "cd %s/../tests/go/tilecheck && GO111MODULE=off "
	    "GOPATH=/usr/share/gocode GOCACHE=%s/gocache GOFLAGS= go build -o %s . 1>&2",
	    it.bin, it.dir, tilecheck);
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	ck_assert_msg(msr_it_run(argv, &out) == 0, "go build of tests/go/tilecheck failed");
	free(out);
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

/* Make n audited requests (waiting out rate limits). */
static void
traffic(int n)
{
	for (int i = 0; i < n; i++) {
		long st = 429;

		for (int k = 0; k < 60 && st == 429; k++) {
			st = msr_it_status(&it, "GET", "/v1/audit/entries?start=0&limit=1",
			    auditor, NULL);
			if (st == 429)
				sleep(1);
		}
		ck_assert_int_eq(st, 200);
	}
}

static uint64_t
tree_size(void)
{
	struct msr_it_resp r;
	uint64_t size;
	char *nl;

	ck_assert_int_eq(msr_it_request(&it, "GET", "/checkpoint", NULL, NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	nl = strchr(r.body, '\n');
	ck_assert_ptr_nonnull(nl);
	size = strtoull(nl + 1, NULL, 10);
	msr_it_resp_free(&r);
	return size;
}

/* Response headers of GET path (curl -D -), malloc'd. */
static char *
headers(const char *path, const char *key)
{
	char url[1024], auth[256], *out = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", it.port, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key ? key : "none");
	char *argv[] = { "/usr/bin/curl", "-s", "-D", "-", "-o", "/dev/null", "-H", auth,
	    url, NULL };
	msr_it_run(argv, &out);
	return out;
}

START_TEST(reference_client_verifies_tiles)
{
	char url[128], *out = NULL;
	uint64_t size;
	int rc;

	traffic(300);	/* a full level-0 tile, a partial one, a partial level-1 tile */
	size = tree_size();
	ck_assert_uint_ge(size, 300);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	char *argv[] = { tilecheck, url, it.vkey, auditor, NULL };
	rc = msr_it_run(argv, &out);
	fprintf(stderr, "%s", out);
	ck_assert_msg(rc == 0, "tilecheck failed (exit %d)", rc);
	ck_assert_ptr_nonnull(strstr(out, "root verified"));
	free(out);
}
END_TEST

START_TEST(tile_paths_and_headers)
{
	struct msr_it_resp r;
	char path[128], idx[64], *h;
	uint64_t size;
	unsigned w0;

	traffic(270);
	size = tree_size();
	w0 = (unsigned)(size % 256);
	ck_assert_uint_gt(w0, 0);
	/* index spelling */
	ck_assert_int_eq(msr_tile_format_index(1234067, 256, idx, sizeof(idx)), 0);
	ck_assert_str_eq(idx, "x001/x234/067");
	ck_assert_int_eq(msr_tile_format_index(5, 7, idx, sizeof(idx)), 0);
	ck_assert_str_eq(idx, "005.p/7");
	/* full level-0 tile: 8192 bytes, immutable */
	ck_assert_int_eq(msr_it_request(&it, "GET", "/tile/0/000", NULL, NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.len, 8192);
	ck_assert_str_eq(r.ctype, "application/octet-stream");
	msr_it_resp_free(&r);
	h = headers("/tile/0/000", NULL);
	ck_assert_msg(strstr(h, "public, max-age=31536000, immutable") != NULL, "%s", h);
	ck_assert_ptr_null(strstr(h, "no-store"));
	free(h);
	/* partial tiles: any width up to what is signed, short cache */
	snprintf(path, sizeof(path), "/tile/0/%03u.p/%u", (unsigned)(size / 256), w0);
	ck_assert_int_eq(msr_it_request(&it, "GET", path, NULL, NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.len, 32 * w0);
	msr_it_resp_free(&r);
	h = headers(path, NULL);
	ck_assert_msg(strstr(h, "max-age=5") != NULL, "%s", h);
	free(h);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/1/000.p/1", NULL, NULL), 200);
	/* not (yet) in the tree, malformed, out of range: 404 JSON */
	snprintf(path, sizeof(path), "/tile/0/%03u", (unsigned)(size / 256));
	ck_assert_int_eq(msr_it_status(&it, "GET", path, NULL, NULL), 404);
	snprintf(path, sizeof(path), "/tile/0/%03u.p/%u", (unsigned)(size / 256), w0 + 1);
	ck_assert_int_eq(msr_it_status(&it, "GET", path, NULL, NULL), 404);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/0/x000/000", NULL, NULL), 404);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/0/1", NULL, NULL), 404);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/00/000", NULL, NULL), 404);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/64/000", NULL, NULL), 404);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/0/000.p/0", NULL, NULL), 404);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/0/000.p/256", NULL, NULL), 404);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/0/000.p/01", NULL, NULL), 404);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/2/000", NULL, NULL), 404);
	ck_assert_int_eq(msr_it_request(&it, "GET", "/tile/0/zzz", NULL, NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 404);
	ck_assert_str_eq(msr_it_error_code(&r), "not_found");
	msr_it_resp_free(&r);
	ck_assert_int_eq(msr_it_status(&it, "POST", "/tile/0/000", NULL, "{}"), 405);
	/* entry bundles: auditors only, audited */
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/entries/000", NULL, NULL), 401);
	ck_assert_int_eq(msr_it_status(&it, "GET", "/tile/entries/000", investigator, NULL), 403);
	ck_assert_int_eq(msr_it_request(&it, "GET", "/tile/entries/000", auditor, NULL, NULL,
	    &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_ge(r.audit_index, 0);
	ck_assert_uint_gt(r.len, 256 * 2);
	msr_it_resp_free(&r);
	h = headers("/tile/entries/000", auditor);
	ck_assert_msg(strstr(h, "private") != NULL, "%s", h);
	free(h);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tiles");
	TCase *tc = tcase_create("tiles");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, reference_client_verifies_tiles);
	tcase_add_test(tc, tile_paths_and_headers);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 1);
}
