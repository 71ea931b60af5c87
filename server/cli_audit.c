/*
 * cli_audit.c — `msreg audit ...`: verify the log from the database or over
 * HTTP, verify a receipt offline. The HTTP client (libcurl) lives here and only
 * here, so that msregd does not link libcurl; the judging is audit_verify.c's.
 *
 *   msreg [--config FILE] audit verify --db [--vkey VKEY] [--since CHECKPOINT]
 *   msreg audit verify --url URL --key AUDITOR_KEY [--vkey VKEY]
 *                      [--since CHECKPOINT] [--save CHECKPOINT]
 *   msreg audit receipt verify FILE --vkey VKEY [--leaf FILE]
 *
 * --since names a checkpoint note saved earlier (by --save, or fetched from
 * /v1/audit/checkpoint): the log must extend it. A log that was cut back below
 * it (the insider's rollback) or rewritten under it fails, whatever else holds.
 * Exit status: 0 verified, 1 not verified (or could not be read), 2 usage.
 */
#include "msreg/common.h"

#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/audit_store.h"
#include "msreg/audit_verify.h"
#include "msreg/cli.h"
#include "msreg/config.h"
#include "msreg/db.h"
#include "msreg/merkle.h"
#include "msreg/note.h"

#define HLEN MSR_MERKLE_HASH_LEN
#define PAGE 1000
#define fail msr_audit_report_fail

/* --- HTTP client ------------------------------------------------------------------ */

struct body {
	char	*p;
	size_t	 len;
	int	 too_big;
};

static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;
	char *p;

	if (b->len + n > 64u << 20) {	/* bounded: 64 MiB per response */
		b->too_big = 1;
		return 0;
	}
	p = realloc(b->p, b->len + n + 1);
	if (p == NULL)
		return 0;
	b->p = p;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* GET base+path; returns the body (caller frees) on 200, else NULL with rep set. */
static char *
http_get(CURL *h, const char *base, const char *path, const char *auth,
    struct msr_audit_report *rep)
{
	struct curl_slist *hdr = NULL;
	struct body b = { 0 };
	char url[2048], ah[600];
	long status = 0;
	CURLcode rc;

	snprintf(url, sizeof(url), "%s%s", base, path);
	if (auth != NULL) {
		snprintf(ah, sizeof(ah), "Authorization: Bearer %s", auth);
		hdr = curl_slist_append(hdr, ah);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	if (auth != NULL)
		sodium_memzero(ah, sizeof(ah));
	if (rc != CURLE_OK || status != 200 || b.p == NULL) {
		rep->io_error = 1;
		fail(rep, -1, "GET %s: %s", path, rc != CURLE_OK ? curl_easy_strerror(rc) :
		    status != 200 ? (b.p ? b.p : "error") : "empty reply");
		if (status != 0 && status != 200 && rc == CURLE_OK)
			snprintf(rep->message, sizeof(rep->message), "GET %s: HTTP %ld: %.400s",
			    path, status, b.p ? b.p : "");
		free(b.p);
		return NULL;
	}
	return b.p;
}

static int
b64_decode(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	return sodium_base642bin(out, cap, s, strlen(s), NULL, len, NULL,
	    sodium_base64_VARIANT_ORIGINAL);
}

/*
 * HTTP mode: fetch /v1/audit/key (when v is given, a served key that differs
 * fails; when v is NULL the served key is used) and the checkpoint, page
 * through /v1/audit/entries with the auditor key, and feed every entry to the
 * pure verifier. When since (a note verified earlier) is given the log must
 * extend it.
 */
static int
verify_url(const char *base_url, const char *auditor_key,
    const struct msr_note_verifier *v, const char *since_note,
    struct msr_audit_report *rep, char **checkpoint_out)
{
	struct msr_note_checkpoint cp, since;
	struct msr_note_verifier served[MSR_NOTE_MAX_KEYS];
	size_t nserved, ki;
	struct msr_av_checkpoint top;
	struct msr_av av;
	CURL *h = curl_easy_init();
	char *served_key = NULL, *note = NULL, *page = NULL;
	uint8_t *leaf = NULL;
	json_t *doc = NULL;
	double t0 = msr_now_s();
	int av_ready = 0, ret = -1;

	msr_audit_report_init(rep);
	if (h == NULL) {
		fail(rep, -1, "libcurl failed to initialise");
		goto done;
	}
	served_key = http_get(h, base_url, "/v1/audit/key", NULL, rep);
	if (served_key == NULL)
		goto done;
	/*
	 * /v1/audit/key lists the signing keys, one a line, the primary first (two
	 * during a key rotation). With trusted keys given, one of them must be
	 * served; without, the served keys are used.
	 */
	nserved = 0;
	if (msr_note_keys_parse_list(served_key, served, MSR_NOTE_MAX_KEYS, &nserved) != 0 ||
	    nserved == 0 || msr_note_keys_chain(served, nserved) != 0) {
		fail(rep, -1, "the server's verifier key is malformed");
		goto done;
	}
	if (v == NULL) {
		v = served;
	} else {
		for (ki = 0; ki < nserved && !msr_note_keys_has(v, &served[ki]); ki++)
			;
		if (ki == nserved) {
			served_key[strcspn(served_key, "\r\n")] = '\0';
			fail(rep, -1, "the server's verifier key (%s) is not the expected key",
			    served_key);
			goto done;
		}
	}
	note = http_get(h, base_url, "/v1/audit/checkpoint", NULL, rep);
	if (note == NULL)
		goto done;
	if (msr_note_checkpoint_open(v, note, &cp) != 0) {
		fail(rep, -1, "the served checkpoint does not verify with the log key");
		goto done;
	}
	top.size = cp.size;
	memcpy(top.root, cp.root, HLEN);
	msr_av_init(&av, &top, 1, cp.size, rep);
	av_ready = 1;
	if (since_note != NULL) {
		if (msr_note_checkpoint_open(v, since_note, &since) != 0) {
			fail(rep, -1, "the saved checkpoint does not verify with the log key");
			goto done;
		}
		if (msr_av_since(&av, &since) != 0)
			goto done;
		rep->checkpoints++;
	}
	leaf = malloc(1u << 20);
	if (leaf == NULL)
		goto done;
	while (av.fr.size < cp.size) {
		char path[128];
		json_t *entries;
		size_t i, n;
		uint64_t at = av.fr.size;

		snprintf(path, sizeof(path), "/v1/audit/entries?start=%" PRIu64 "&limit=%" PRIu64,
		    at, cp.size - at < PAGE ? cp.size - at : (uint64_t)PAGE);
		free(page);
		page = http_get(h, base_url, path, auditor_key, rep);
		if (page == NULL)
			goto done;
		json_decref(doc);
		doc = json_loads(page, 0, NULL);
		entries = json_object_get(doc, "entries");
		n = json_array_size(entries);
		if (!json_is_array(entries) || n == 0) {
			fail(rep, (int64_t)at, "entry %" PRIu64 " is missing from the served log", at);
			goto done;
		}
		for (i = 0; i < n && av.fr.size < cp.size; i++) {
			json_t *e = json_array_get(entries, i), *parsed;
			const char *b64 = json_string_value(json_object_get(e, "leaf"));
			json_t *ji = json_object_get(e, "index");
			size_t ll;
			int same;

			if (!json_is_integer(ji) || json_integer_value(ji) < 0) {
				fail(rep, (int64_t)av.fr.size, "entry %" PRIu64 ": no index",
				    av.fr.size);
				goto done;
			}
			if (b64 == NULL || b64_decode(b64, leaf, 1u << 20, &ll) != 0) {
				fail(rep, json_integer_value(ji), "entry %lld: leaf is not base64",
				    (long long)json_integer_value(ji));
				goto done;
			}
			parsed = json_loadb((const char *)leaf, ll, 0, NULL);
			same = parsed != NULL && json_equal(parsed, json_object_get(e, "entry"));
			json_decref(parsed);
			if (!same) {
				fail(rep, json_integer_value(ji), "entry %lld: parsed entry differs "
				    "from its leaf bytes", (long long)json_integer_value(ji));
				goto done;
			}
			if (msr_av_entry(&av, (uint64_t)json_integer_value(ji), leaf, ll, 0,
			    NULL) != 0)
				goto done;
		}
	}
	if (msr_av_finish(&av) != 0)
		goto done;
	rep->tree_size = cp.size;
	rep->checkpoints++;
	rep->signatures++;
	if (checkpoint_out != NULL) {
		*checkpoint_out = note;
		note = NULL;
	}
	ret = 0;
done:
	if (av_ready)
		msr_av_free(&av);
	json_decref(doc);
	free(page);
	free(leaf);
	free(note);
	free(served_key);
	if (h != NULL)
		curl_easy_cleanup(h);
	rep->seconds = msr_now_s() - t0;
	return ret;
}

/* --- msreg audit ... ---------------------------------------------------------------- */

/* Read a whole file (bounded); caller frees. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf = NULL, *p;
	size_t n = 0, cap = 0, r;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > (64u << 20)) {
				free(buf);
				buf = NULL;
				break;
			}
			p = realloc(buf, cap);
			if (p == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	if (f != stdin)
		fclose(f);
	if (buf != NULL) {
		buf[n] = '\0';
		if (len != NULL)
			*len = n;
	}
	return buf;
}

/* A key given inline or as @FILE / a readable file path. */
static char *
key_arg(const char *arg)
{
	char *k;

	if (arg[0] == '@')
		k = slurp(arg + 1, NULL);
	else if (strchr(arg, '/') != NULL && strchr(arg, '+') == NULL)
		k = slurp(arg, NULL);
	else
		k = strdup(arg);
	if (k != NULL)
		k[strcspn(k, "\r\n")] = '\0';
	return k;
}

static void
print_report(const char *what, int rc, const struct msr_audit_report *rep)
{
	if (rc == 0) {
		printf("%s: OK: tree size %" PRIu64 ", %" PRIu64 " entries, %" PRIu64
		    " checkpoints (%" PRIu64 " signatures verified) in %.2f s (%.0f entries/s)\n",
		    what, rep->tree_size, rep->entries, rep->checkpoints, rep->signatures,
		    rep->seconds,
		    rep->seconds > 0 ? (double)rep->entries / rep->seconds : 0.0);
		return;
	}
	/* The verdict is the command's output: stdout, like the OK line. */
	if (rep->bad_index >= 0)
		printf("%s: FAILED at entry %" PRId64 ": %s\n", what, rep->bad_index,
		    rep->message);
	else
		printf("%s: FAILED: %s\n", what, rep->message);
}

/*
 * The trusted keys of the configuration: [audit] key_file's, next_key_file's
 * (a rotation in progress) and old_keys (retired signers), chained.
 */
static int
config_keys(const struct msr_config *cfg, struct msr_note_verifier *v, size_t *nv,
    char *err, size_t errlen)
{
	struct msr_note_signer signer;
	const char *files[2] = { cfg->audit_key_file, cfg->audit_next_key_file };
	size_t i;

	*nv = 0;
	for (i = 0; i < 2; i++) {
		if (files[i] == NULL || files[i][0] == '\0')
			continue;
		if (msr_note_signer_load(files[i], &signer, err, errlen) != 0)
			return -1;
		v[(*nv)++] = signer.v;
		msr_note_signer_wipe(&signer);
	}
	if (cfg->audit_old_keys != NULL &&
	    msr_note_keys_parse_list(cfg->audit_old_keys, v, MSR_NOTE_MAX_KEYS, nv) != 0) {
		snprintf(err, errlen, "[audit] old_keys: a malformed verifier key");
		return -1;
	}
	if (*nv == 0 || msr_note_keys_chain(v, *nv) != 0) {
		snprintf(err, errlen, "the [audit] keys are missing or named differently");
		return -1;
	}
	return 0;
}

static int
cli_verify(const struct msr_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },
		{ "vkey", required_argument, NULL, 'v' },
		{ "db", no_argument, NULL, 'd' },
		{ "full", no_argument, NULL, 'a' },
		{ "since", required_argument, NULL, 'p' },
		{ "previous", required_argument, NULL, 'p' },	/* older name */
		{ "save", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct msr_audit_report rep;
	struct msr_note_verifier v[MSR_NOTE_MAX_KEYS];
	struct msr_note_checkpoint since;
	const char *url = NULL, *since_path = NULL, *save = NULL;
	char *key = NULL, *vkey = NULL, *since_note = NULL, *cp = NULL;
	char err[512];
	PGconn *pg = NULL;
	size_t nv = 0;
	unsigned flags = MSR_AV_LAST_SIGNATURE | MSR_AV_NO_STORED;
	int c, db = 0, have_v = 0, bad_v = 0, rc, ret = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 'k': free(key); key = key_arg(optarg); break;
		case 'v':	/* repeatable: a set of trusted keys (key rotation) */
			free(vkey);
			vkey = key_arg(optarg);
			if (vkey == NULL || msr_note_keys_parse_list(vkey, v, MSR_NOTE_MAX_KEYS,
			    &nv) != 0)
				bad_v = 1;
			break;
		case 'd': db = 1; break;
		case 'a': flags = 0; break;
		case 'p': since_path = optarg; break;
		case 's': save = optarg; break;
		default: goto usage;
		}
	}
	if (db == (url != NULL) || optind != argc)
		goto usage;
	if (bad_v || (vkey != NULL && (nv == 0 || msr_note_keys_chain(v, nv) != 0))) {
		fprintf(stderr, "msreg audit verify: --vkey is not a verifier key (or the"
		    " keys' names differ, or more than %d)\n", MSR_NOTE_MAX_KEYS);
		goto done;
	}
	have_v = vkey != NULL;
	if (!have_v && db) {
		/* The operator's own configuration gives the trusted keys. */
		if (config_keys(cfg, v, &nv, err, sizeof(err)) != 0) {
			fprintf(stderr, "msreg audit verify: %s (or give --vkey)\n", err);
			ret = 1;
			goto done;
		}
		have_v = 1;
	}
	if (since_path != NULL) {
		if (!have_v) {
			fprintf(stderr, "msreg audit verify: --since needs --vkey\n");
			goto done;
		}
		if (msr_note_checkpoint_load(since_path, v, &since_note, &since, NULL, err,
		    sizeof(err)) != 0) {
			printf("audit verify: FAILED: %s\n", err);
			ret = 1;
			goto done;
		}
	}
	if (db) {
		pg = msr_db_connect(cfg->db_url, err, sizeof(err));
		if (pg == NULL) {
			fprintf(stderr, "msreg audit verify: %s\n", err);
			ret = 1;
			goto done;
		}
		rc = msr_audit_verify_db(pg, v, flags, since_note != NULL ? &since : NULL, &rep);
		print_report("audit verify --db", rc, &rep);
		ret = rc == 0 ? 0 : 1;
		goto done;
	}
	if (key == NULL)
		goto usage;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = verify_url(url, key, have_v ? v : NULL, since_note, &rep, &cp);
	print_report("audit verify", rc, &rep);
	if (rc == 0 && save != NULL) {
		FILE *f = fopen(save, "w");

		if (f == NULL || fputs(cp, f) < 0 || fclose(f) != 0) {
			fprintf(stderr, "msreg audit verify: cannot write %s\n", save);
			rc = -1;
		}
	}
	curl_global_cleanup();
	ret = rc == 0 ? 0 : 1;
	goto done;
usage:
	fprintf(stderr, "usage: msreg [--config FILE] audit verify --db [--vkey VKEY]..."
	    " [--since CHECKPOINT] [--full]\n"
	    "       msreg audit verify --url URL --key AUDITOR_KEY [--vkey VKEY]...\n"
	    "                          [--since CHECKPOINT] [--save CHECKPOINT]\n"
	    "  keys may be given inline or as @FILE; CHECKPOINT is a signed checkpoint\n"
	    "  note saved earlier: the log must extend it. Several --vkey form a set\n"
	    "  of trusted keys: a checkpoint signed by any of them verifies (key rotation). --db without --vkey trusts the\n"
	    "  configuration's [audit] key_file, next_key_file and old_keys.\n"
	    "  --db recomputes every entry and every checkpoint root and verifies the\n"
	    "  newest checkpoint's signature, which authenticates all of them;\n"
	    "  --full also verifies every older checkpoint's own signature (one\n"
	    "  Ed25519 verification per sequencer batch) and compares every stored\n"
	    "  leaf hash (the cache proofs are served from) with its entry: slower.\n");
done:
	if (key != NULL)
		sodium_memzero(key, strlen(key));
	free(key);
	free(vkey);
	free(since_note);
	free(cp);
	if (pg != NULL)
		PQfinish(pg);
	return ret;
}

static int
cli_receipt_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vkey", required_argument, NULL, 'v' },
		{ "leaf", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct msr_audit_report rep;
	struct msr_note_verifier v[MSR_NOTE_MAX_KEYS];
	char *vkey = NULL, *receipt = NULL, *leaf = NULL;
	const char *leaf_path = NULL;
	size_t leaf_len = 0, nv = 0;
	int c, rc, bad_v = 0, ret = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'v':	/* repeatable: any of the keys will do */
			free(vkey);
			vkey = key_arg(optarg);
			if (vkey == NULL || msr_note_keys_parse_list(vkey, v, MSR_NOTE_MAX_KEYS,
			    &nv) != 0)
				bad_v = 1;
			break;
		case 'l': leaf_path = optarg; break;
		default: goto usage;
		}
	}
	if (optind + 1 != argc || vkey == NULL)
		goto usage;
	if (bad_v || nv == 0 || msr_note_keys_chain(v, nv) != 0) {
		fprintf(stderr, "msreg audit receipt verify: --vkey is not a verifier key\n");
		goto done;
	}
	receipt = slurp(argv[optind], NULL);
	if (receipt == NULL) {
		fprintf(stderr, "msreg audit receipt verify: cannot read %s\n", argv[optind]);
		ret = 1;
		goto done;
	}
	if (leaf_path != NULL && (leaf = slurp(leaf_path, &leaf_len)) == NULL) {
		fprintf(stderr, "msreg audit receipt verify: cannot read %s\n", leaf_path);
		ret = 1;
		goto done;
	}
	rc = msr_audit_receipt_verify(receipt, v, (const uint8_t *)leaf, leaf_len, &rep);
	if (rc == 0)
		printf("receipt: OK: %s\n", rep.message);
	else
		print_report("receipt", rc, &rep);
	ret = rc == 0 ? 0 : 1;
	goto done;
usage:
	fprintf(stderr, "usage: msreg audit receipt verify FILE --vkey VKEY... [--leaf FILE]\n"
	    "  the receipt carries its entry; --leaf gives it explicitly (exact bytes);\n"
	    "  with several --vkey a signature by any of them will do (key rotation)\n");
done:
	free(vkey);
	free(receipt);
	free(leaf);
	return ret;
}

int
msr_cli_audit(const struct msr_config *cfg, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return cli_verify(cfg, argc - 1, argv + 1);
	if (argc >= 3 && strcmp(argv[1], "receipt") == 0 && strcmp(argv[2], "verify") == 0)
		return cli_receipt_verify(argc - 2, argv + 2);
	fprintf(stderr, "usage: msreg [--config FILE] audit verify ...\n"
	    "       msreg audit receipt verify FILE --vkey VKEY [--leaf FILE]\n");
	return 2;
}
