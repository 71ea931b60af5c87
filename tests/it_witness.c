/*
 * it_witness.c — witnesses and the monitor against a real msregd and
 * PostgreSQL: two `msreg witness` processes cosign msregd's checkpoints
 * (c2sp.org/tlog-witness, tlog-cosignature) and the cosignatures verify with
 * the witnesses' keys on /v1/audit/checkpoint, /checkpoint and receipts; a
 * restarted witness keeps its state; forks, rollbacks, unknown logs and bad
 * signatures are refused with the status codes the spec gives; and the
 * insider attack of issue 9 (the database owner disables the append-only
 * triggers, deletes the log above an earlier checkpoint, and msregd re-signs)
 * is refused by the witnesses and caught by `msreg audit monitor` (exit 2).
 */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "msreg/cosig.h"
#include "msreg/merkle.h"
#include "msreg/note.h"

#define NW 2

static struct msr_it it;
static char auditor[128], investigator[128], wdir[600], bin[512];
static struct witness_proc {
	int	port;
	pid_t	pid;
	char	key[700], vkey[512], config[700], state[700], log[700];
	struct msr_cosig_verifier v;
} W[NW];
static struct msr_note_verifier logv;
static char tilecheck[700];

/* ---- helpers ---- */

static int
free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void
dump_log(const char *path)
{
	char line[1024];
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return;
	fprintf(stderr, "--- %s\n", path);
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

static int
connectable(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static void
witness_start(struct witness_proc *w)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/msreg", bin);
	w->pid = fork();
	ck_assert_int_ge(w->pid, 0);
	if (w->pid == 0) {
		FILE *log = fopen(w->log, "a");

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (log != NULL)
			dup2(fileno(log), STDERR_FILENO);
		execl(path, path, "witness", "--config", w->config, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && !connectable(w->port); i++)
		sleep_ms(50);
	if (!connectable(w->port)) {
		dump_log(w->log);
		ck_abort_msg("witness on port %d did not start", w->port);
	}
}

static void
witness_stop(struct witness_proc *w)
{
	int st;

	if (w->pid <= 0)
		return;
	kill(w->pid, SIGTERM);
	waitpid(w->pid, &st, 0);
	w->pid = 0;
}

struct resp {
	long	status;
	char	ctype[128];
	char	*body;
	size_t	len;
};

static size_t
on_body(char *p, size_t size, size_t n, void *ud)
{
	struct resp *r = ud;

	r->body = realloc(r->body, r->len + size * n + 1);
	memcpy(r->body + r->len, p, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

/* POST body to witness w's /add-checkpoint. */
static void
witness_post(const struct witness_proc *w, const char *body, struct resp *r)
{
	CURL *c = curl_easy_init();
	char url[128], *ct = NULL;

	memset(r, 0, sizeof(*r));
	r->body = calloc(1, 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/add-checkpoint", w->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
	curl_easy_cleanup(c);
}

/* The witness's held state for the log: 0 if it has one. */
static int
witness_held(const struct witness_proc *w, uint64_t *size, char root[64])
{
	FILE *f = fopen(w->state, "r");
	unsigned long long s;
	char origin[300];
	int ret = -1;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%llu %63s %299s", &s, root, origin) == 3 &&
	    strcmp(origin, logv.name) == 0) {
		*size = s;
		ret = 0;
	}
	fclose(f);
	return ret;
}

/* n audited requests, waiting out rate limits; statuses are not checked */
static void
traffic(const char *key, const char *path, int n)
{
	for (int i = 0; i < n; i++)
		for (int k = 0; k < 60 && msr_it_status(&it, "GET", path, key, NULL) == 429; k++)
			sleep(1);
}

/* GET path and return the body if every witness's cosignature verifies on it. */
static char *
cosigned(const char *path, const char *key, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 100) {
		struct msr_it_resp r;
		int ok = 0;

		if (msr_it_request(&it, "GET", path, key, NULL, NULL, &r) == 0 && r.status == 200) {
			const char *note = r.body;

			if (strncmp(note, MSR_NOTE_RECEIPT_HEADER, strlen(MSR_NOTE_RECEIPT_HEADER)) == 0) {
				note = strstr(r.body, "\n\n");
				note = note ? note + 2 : r.body;
			}
			for (int i = 0; i < NW; i++)
				ok += msr_cosig_verify(&W[i].v, note, strlen(note), NULL) == 0;
			if (ok == NW) {
				char *body = strdup(r.body);
				msr_it_resp_free(&r);
				return body;
			}
		}
		msr_it_resp_free(&r);
		sleep_ms(100);
	}
	return NULL;
}

static uint64_t
note_size(const char *note)
{
	const char *nl = strchr(note, '\n');

	return nl ? strtoull(nl + 1, NULL, 10) : 0;
}

static int
monitor_rules(const char *state, const char *rules, char **out)
{
	char path[600], kf[700], url[64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/msreg", bin);
	snprintf(kf, sizeof(kf), "%s/auditor.key", wdir);
	f = fopen(kf, "w");
	fprintf(f, "%s\n", auditor);
	fclose(f);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	char *argv[] = { path, "audit", "monitor", "--url", url, "--state", (char *)state,
	    "--key-file", kf, "--vkey", it.vkey, "--require-witness", W[0].vkey,
	    "--require-witness", W[1].vkey, "--once", rules ? "--rules" : NULL, (char *)rules,
	    NULL };
	return msr_it_run(argv, out);
}

static int
monitor(const char *state, char **out)
{
	return monitor_rules(state, NULL, out);
}

/* A checkpoint note for the log's origin signed with key s. */
static char *
forged(const struct msr_note_signer *s, uint64_t size)
{
	struct msr_note_checkpoint cp;
	char *note = NULL;
	size_t len;

	memset(&cp, 0, sizeof(cp));
	snprintf(cp.origin, sizeof(cp.origin), "%s", s->v.name);
	cp.size = size;
	randombytes_buf(cp.root, sizeof(cp.root));
	ck_assert_int_eq(msr_note_checkpoint_sign(s, &cp, &note, &len), 0);
	return note;
}

static char *
body_with(uint64_t old, const char *proof, const char *note)
{
	char *b = NULL;

	ck_assert_int_ge(asprintf(&b, "old %llu\n%s\n%s", (unsigned long long)old, proof, note), 0);
	return b;
}

/* ---- fixture ---- */

static void
setup(void)
{
	char extra[4096], *out = NULL, path[600];
	const char *pgbase = getenv("MSR_IT_PGBASE");

	ck_assert_int_ge(sodium_init(), 0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ck_assert_ptr_nonnull(pgbase);
	snprintf(bin, sizeof(bin), "%s", getenv("MSR_IT_BIN") ? getenv("MSR_IT_BIN") : "bin");
	snprintf(wdir, sizeof(wdir), "%s/../it-witnesses", pgbase);
	mkdir(wdir, 0700);
	snprintf(path, sizeof(path), "%s/msreg", bin);
	for (int i = 0; i < NW; i++) {
		struct witness_proc *w = &W[i];
		char name[64];

		w->port = free_port();
		snprintf(name, sizeof(name), "witness.example/w%d", i + 1);
		snprintf(w->key, sizeof(w->key), "%s/w%d.key", wdir, i + 1);
		snprintf(w->config, sizeof(w->config), "%s/w%d.ini", wdir, i + 1);
		snprintf(w->state, sizeof(w->state), "%s/w%d.state", wdir, i + 1);
		snprintf(w->log, sizeof(w->log), "%s/w%d.log", wdir, i + 1);
		unlink(w->key);
		unlink(w->state);
		char *argv[] = { path, "witness", "keygen", "--name", name, "--out", w->key, NULL };
		ck_assert_int_eq(msr_it_run(argv, &out), 0);
		out[strcspn(out, "\n")] = '\0';
		snprintf(w->vkey, sizeof(w->vkey), "%s", out);
		free(out);
		ck_assert_int_eq(msr_cosig_verifier_parse(&w->v, w->vkey, strlen(w->vkey)), 0);
	}
	snprintf(extra, sizeof(extra), "[audit]\nbatch_wait_us = 200\n"
	    "[witness]\nwitness = http://127.0.0.1:%d %s\nwitness = http://127.0.0.1:%d %s\n"
	    "quorum = 2\ninterval_ms = 100\ntimeout_ms = 2000\n",
	    W[0].port, W[0].vkey, W[1].port, W[1].vkey);
	msr_it_setup(&it, "witness", extra);
	ck_assert_int_eq(msr_note_verifier_parse(&logv, it.vkey, strlen(it.vkey)), 0);
	for (int i = 0; i < NW; i++) {
		FILE *f = fopen(W[i].config, "w");

		ck_assert_ptr_nonnull(f);
		fprintf(f, "[witness]\naddress = 127.0.0.1\nport = %d\nkey_file = %s\n"
		    "state_file = %s\nlog = %s\n", W[i].port, W[i].key, W[i].state, it.vkey);
		fclose(f);
		witness_start(&W[i]);
	}
	msr_it_client(&it, "auditor", "aud", NULL, auditor, sizeof(auditor));
	msr_it_client(&it, "investigator", "inv", "CA0190000", investigator,
	    sizeof(investigator));
	/* the Go reference client, for an independent check of the cosignatures */
	{
		char cmd[2048];

		snprintf(tilecheck, sizeof(tilecheck), "%s/tilecheck", wdir);
		snprintf(cmd, sizeof(cmd), "cd %s/../tests/go/tilecheck && GO111MODULE=off "
		    "GOPATH=/usr/share/gocode GOCACHE=%s/gocache GOFLAGS= go build -o %s . 1>&2",
		    bin, wdir, tilecheck);
		char *argv[] = { "/bin/sh", "-c", cmd, NULL };
		ck_assert_msg(msr_it_run(argv, &out) == 0, "go build of tests/go/tilecheck failed");
		free(out);
	}
}

static void
teardown(void)
{
	for (int i = 0; i < NW; i++)
		witness_stop(&W[i]);
	msr_it_teardown(&it);
	curl_global_cleanup();
}

/* ---- tests ---- */

START_TEST(cosigned_checkpoints_verify)
{
	struct msr_it_resp r;
	char *note, *receipt = NULL;
	size_t text_len;
	uint64_t t;

	traffic(auditor, "/v1/audit/entries?start=0&limit=1", 5);
	note = cosigned("/v1/audit/checkpoint", NULL, 20000);
	if (note == NULL) {
		dump_log(W[0].log);
		ck_abort_msg("no checkpoint cosigned by both witnesses within 20 s");
	}
	/* still the log's signed note, and each cosignature is cosignature/v1 */
	ck_assert_int_eq(msr_note_open(&logv, note, strlen(note), &text_len, NULL), 0);
	for (int i = 0; i < NW; i++) {
		ck_assert_int_eq(msr_cosig_verify(&W[i].v, note, strlen(note), &t), 0);
		ck_assert_uint_le(t, (uint64_t)time(NULL) + 1);
		ck_assert_uint_ge(t + 120, (uint64_t)time(NULL));
	}
	/* a cosignature verifies only over the exact text: change one byte */
	note[text_len - 2] ^= 1;
	ck_assert_int_ne(msr_cosig_verify(&W[0].v, note, strlen(note), NULL), 0);
	free(note);
	/* the tiles' checkpoint carries them too, and Go's note.Open with an
	 * independent cosignature/v1 verifier accepts them (and no other key) */
	note = cosigned("/checkpoint", NULL, 20000);
	ck_assert_ptr_nonnull(note);
	free(note);
	{
		struct msr_cosig_signer stranger;
		char url[64], svkey[MSR_COSIG_KEY_TEXT_MAX], *out = NULL;
		int rc;

		snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
		char *argv[] = { tilecheck, url, it.vkey, auditor, W[0].vkey, W[1].vkey, NULL };
		rc = msr_it_run(argv, &out);
		fprintf(stderr, "%s", out);
		ck_assert_int_eq(rc, 0);
		ck_assert_ptr_nonnull(strstr(out, "2 cosignatures verified"));
		free(out);
		ck_assert_int_eq(msr_cosig_signer_generate(&stranger, "witness.example/w1"), 0);
		ck_assert_int_eq(msr_cosig_verifier_format(&stranger.v, svkey, sizeof(svkey)), 0);
		msr_cosig_signer_wipe(&stranger);
		char *argv2[] = { tilecheck, url, it.vkey, auditor, svkey, NULL };
		rc = msr_it_run(argv2, &out);
		ck_assert_int_eq(rc, 1);
		ck_assert_msg(strstr(out, "no valid cosignature by witness.example/w1") != NULL,
		    "%s", out);
		free(out);
	}
	/* receipts: the checkpoint inside carries the cosignatures */
	for (int i = 0; i < 50 && receipt == NULL; i++)
		receipt = cosigned("/v1/audit/receipt/0", auditor, 300);
	ck_assert_msg(receipt != NULL, "no receipt with cosignatures");
	{
		struct msr_note_receipt rc;

		memset(&rc, 0, sizeof(rc));
		ck_assert_int_eq(msr_note_receipt_parse(&rc, receipt, strlen(receipt), NULL), 0);
		ck_assert_ptr_nonnull(rc.extra);
		ck_assert_int_eq(msr_note_receipt_verify(&logv, receipt, strlen(receipt), rc.extra,
		    rc.extra_len, NULL, NULL, NULL, NULL), 0);
		msr_note_receipt_clear(&rc);
	}
	free(receipt);
	/* metrics */
	ck_assert_int_eq(msr_it_request(&it, "GET", "/metrics", NULL, NULL, NULL, &r), 0);
	ck_assert_ptr_nonnull(strstr(r.body, "msreg_witness_cosigned 2"));
	ck_assert_ptr_nonnull(strstr(r.body, "msreg_witness_cosignature_age_seconds{witness="
	    "\"witness.example/w1\"}"));
	msr_it_resp_free(&r);
}
END_TEST

START_TEST(restart_keeps_state)
{
	struct msr_it_resp r;
	struct resp wr;
	char root[64], *body, *note;
	uint64_t held = 0;

	traffic(auditor, "/v1/audit/entries?start=0&limit=1", 3);
	ck_assert_ptr_nonnull(note = cosigned("/v1/audit/checkpoint", NULL, 20000));
	free(note);
	witness_stop(&W[0]);
	ck_assert_int_eq(witness_held(&W[0], &held, root), 0);
	ck_assert_uint_gt(held, 0);
	witness_start(&W[0]);
	/* a client that knows nothing asks with old 0 and learns the size */
	ck_assert_int_eq(msr_it_request(&it, "GET", "/v1/audit/checkpoint", NULL, NULL, NULL,
	    &r), 0);
	body = body_with(0, "", r.body);
	witness_post(&W[0], body, &wr);
	ck_assert_int_eq(wr.status, 409);
	ck_assert_str_eq(wr.ctype, "text/x.tlog.size");
	ck_assert_uint_ge(strtoull(wr.body, NULL, 10), held);
	ck_assert_int_eq(wr.body[wr.len - 1], '\n');
	free(wr.body);
	free(body);
	msr_it_resp_free(&r);
	/* and msregd carries on with it */
	traffic(auditor, "/v1/audit/entries?start=0&limit=1", 2);
	ck_assert_ptr_nonnull(note = cosigned("/v1/audit/checkpoint", NULL, 20000));
	free(note);
}
END_TEST

START_TEST(forks_and_rollbacks_refused)
{
	struct msr_note_signer s, other;
	struct resp wr;
	char *keytext = NULL, root[64], root2[64], *note, *body, sz[32];
	uint64_t held = 0, held2 = 0;
	size_t klen = 0;
	FILE *f;

	/* the log's own signer key: these forks are signed correctly */
	f = fopen(it.keyfile, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge((int)getline(&keytext, &klen, f), 1);
	fclose(f);
	ck_assert_int_eq(msr_note_signer_parse(&s, keytext, strlen(keytext)), 0);
	sodium_memzero(keytext, strlen(keytext));
	free(keytext);
	ck_assert_ptr_nonnull(note = cosigned("/v1/audit/checkpoint", NULL, 20000));
	free(note);
	ck_assert_int_eq(witness_held(&W[1], &held, root), 0);
	ck_assert_uint_gt(held, 2);
	snprintf(sz, sizeof(sz), "%llu\n", (unsigned long long)held);

	/* fork at the held size: 409 with the size */
	note = forged(&s, held);
	body = body_with(held, "", note);
	witness_post(&W[1], body, &wr);
	ck_assert_int_eq(wr.status, 409);
	ck_assert_str_eq(wr.ctype, "text/x.tlog.size");
	ck_assert_str_eq(wr.body, sz);
	free(wr.body);
	free(body);
	free(note);
	/* a bigger tree that does not extend the held one: 422 */
	note = forged(&s, held + 10);
	body = body_with(held, "", note);
	witness_post(&W[1], body, &wr);
	ck_assert_int_eq(wr.status, 422);
	free(wr.body);
	free(body);
	body = body_with(held, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", note);
	witness_post(&W[1], body, &wr);
	ck_assert_int_eq(wr.status, 422);
	free(wr.body);
	free(body);
	/* rollback: told the truth about old -> 400; lying about old -> 409 */
	free(note);
	note = forged(&s, held - 1);
	body = body_with(held, "", note);
	witness_post(&W[1], body, &wr);
	ck_assert_int_eq(wr.status, 400);
	free(wr.body);
	free(body);
	body = body_with(held - 1, "", note);
	witness_post(&W[1], body, &wr);
	ck_assert_int_eq(wr.status, 409);
	ck_assert_str_eq(wr.body, sz);
	free(wr.body);
	free(body);
	free(note);
	/* unknown origin: 404; the origin with another key: 403 */
	ck_assert_int_eq(msr_note_signer_generate(&other, "other.example/log"), 0);
	note = forged(&other, held + 1);
	body = body_with(held, "", note);
	witness_post(&W[1], body, &wr);
	ck_assert_int_eq(wr.status, 404);
	free(wr.body);
	free(body);
	free(note);
	msr_note_signer_wipe(&other);
	ck_assert_int_eq(msr_note_signer_generate(&other, s.v.name), 0);
	note = forged(&other, held + 1);
	body = body_with(held, "", note);
	witness_post(&W[1], body, &wr);
	ck_assert_int_eq(wr.status, 403);
	free(wr.body);
	free(body);
	free(note);
	msr_note_signer_wipe(&other);
	/* garbage: 400; GET: 405; elsewhere: 404 */
	witness_post(&W[1], "old 01\n\nx\n", &wr);
	ck_assert_int_eq(wr.status, 400);
	free(wr.body);
	witness_post(&W[1], "hello", &wr);
	ck_assert_int_eq(wr.status, 400);
	free(wr.body);
	/* nothing moved the witness */
	ck_assert_int_eq(witness_held(&W[1], &held2, root2), 0);
	ck_assert_uint_ge(held2, held);
	if (held2 == held)
		ck_assert_str_eq(root, root2);
	msr_note_signer_wipe(&s);
}
END_TEST

/* policy = refuse: a log without its quorum of fresh cosignatures stops answering */
START_TEST(refuse_policy)
{
	struct msr_it inst;
	char extra[1024];
	int got = 0;

	/* a third witness nobody runs; quorum 3 cannot be met */
	snprintf(extra, sizeof(extra), "[witness]\nwitness = http://127.0.0.1:%d %s\n"
	    "quorum = 3\npolicy = refuse\nmax_age_s = 1\n", free_port(), W[0].vkey);
	msr_it_instance(&it, &inst, "refuse", extra);
	for (int t = 0; t < 100 && got != 503; t++) {
		got = (int)msr_it_status(&inst, "GET", "/v1/audit/entries?start=0&limit=1",
		    auditor, NULL);
		if (got != 503)
			sleep_ms(100);
	}
	ck_assert_int_eq(got, 503);
	ck_assert_int_eq(msr_it_status(&inst, "GET", "/readyz", NULL, NULL), 503);
	ck_assert_int_eq(msr_it_status(&inst, "GET", "/healthz", NULL, NULL), 200);
	msr_it_teardown(&inst);
	/* the default policy (alert) keeps answering */
	snprintf(extra, sizeof(extra), "[witness]\nwitness = http://127.0.0.1:%d %s\n"
	    "quorum = 3\nmax_age_s = 1\n", free_port(), W[0].vkey);
	msr_it_instance(&it, &inst, "alert", extra);
	sleep_ms(2500);
	ck_assert_int_eq(msr_it_status(&inst, "GET", "/v1/audit/entries?start=0&limit=1",
	    auditor, NULL), 200);
	msr_it_teardown(&inst);
}
END_TEST

START_TEST(monitor_rules_find)
{
	char mstate[700], rules[700], *out = NULL;
	FILE *f;
	int rc;

	snprintf(mstate, sizeof(mstate), "%s/rules.state", wdir);
	snprintf(rules, sizeof(rules), "%s/rules.txt", wdir);
	unlink(mstate);
	f = fopen(rules, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "# test rules\nadmin\nrate 20 3600\ndisclosures 10 3600 client\n"
	    "watch code 0123-4567-89AB\nwatch firearm 424242  # none\nalert\n");
	fclose(f);
	traffic(investigator, "/v1/codes/0123456789AB?case_number=HPD-2026-1&purpose=homicide", 1);
	traffic(auditor, "/v1/audit/entries?start=0&limit=1", 25);
	rc = monitor_rules(mstate, rules, &out);
	fprintf(stderr, "monitor (rules):\n%s", out);
	ck_assert_int_eq(rc, 1);
	ck_assert_ptr_nonnull(strstr(out, "finding admin "));
	ck_assert_ptr_nonnull(strstr(out, "finding rate "));
	ck_assert_ptr_nonnull(strstr(out, "finding disclosures_client "));
	ck_assert_ptr_nonnull(strstr(out, "finding watch_code "));
	ck_assert_ptr_null(strstr(out, "watch_firearm"));
	ck_assert_ptr_null(strstr(out, "integrity"));
	free(out);
	/* a bad rules file is a usage error, not a pass */
	f = fopen(rules, "w");
	fprintf(f, "rate many\n");
	fclose(f);
	rc = monitor_rules(mstate, rules, &out);
	ck_assert_int_eq(rc, 3);
	free(out);
}
END_TEST

START_TEST(insider_attack_refused_and_caught)
{
	char mstate[700], *out = NULL, *note, root[NW][64], root_after[64], sql[2048];
	uint64_t k, held[NW], after;
	struct msr_it_resp r;
	struct resp wr;
	PGresult *res;
	PGconn *pg;
	int rc;

	snprintf(mstate, sizeof(mstate), "%s/monitor.state", wdir);
	unlink(mstate);
	/* the monitor follows the honest log */
	rc = monitor(mstate, &out);
	fprintf(stderr, "monitor (honest): %s", out);
	ck_assert_int_eq(rc, 0);
	free(out);
	/* three investigator lookups after an earlier checkpoint k */
	ck_assert_ptr_nonnull(note = cosigned("/v1/audit/checkpoint", NULL, 20000));
	k = note_size(note);
	free(note);
	traffic(investigator, "/v1/codes/AAAAAAAAAAAA", 3);
	for (int t = 0; t < 200; t++) {
		note = cosigned("/v1/audit/checkpoint", NULL, 20000);
		ck_assert_ptr_nonnull(note);
		after = note_size(note);
		free(note);
		if (after >= k + 3)
			break;
		sleep_ms(100);
	}
	rc = monitor(mstate, &out);
	fprintf(stderr, "monitor (honest, again): %s", out);
	ck_assert_int_eq(rc, 0);
	free(out);
	ck_assert_ptr_nonnull(note = cosigned("/v1/audit/checkpoint", NULL, 20000));
	free(note);
	/* each witness catches up in its own time (the quorum may be fewer than
	 * all): poll up to 30 s each rather than a fixed pause */
	for (int i = 0; i < NW; i++) {
		for (int t = 0; t < 300; t++) {
			ck_assert_int_eq(witness_held(&W[i], &held[i], root[i]), 0);
			if (held[i] >= k + 3)
				break;
			sleep_ms(100);
		}
		ck_assert_uint_ge(held[i], k + 3);
	}

	/* the attack, with the owner's privileges only */
	pg = PQconnectdb(it.url_super);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	snprintf(sql, sizeof(sql),
	    "BEGIN; SET ROLE msreg_owner;"
	    "ALTER TABLE audit_entries DISABLE TRIGGER USER;"
	    "ALTER TABLE audit_hashes DISABLE TRIGGER USER;"
	    "ALTER TABLE audit_tree_state DISABLE TRIGGER USER;"
	    "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER;"
	    "DELETE FROM audit_entries WHERE idx >= %llu;"
	    "DELETE FROM audit_hashes WHERE ((idx + 1) << level) > %llu;"
	    "DELETE FROM audit_tree_state WHERE tree_size > %llu;"
	    "DELETE FROM audit_checkpoints WHERE tree_size > %llu;"
	    "ALTER TABLE audit_entries ENABLE TRIGGER USER;"
	    "ALTER TABLE audit_hashes ENABLE TRIGGER USER;"
	    "ALTER TABLE audit_tree_state ENABLE TRIGGER USER;"
	    "ALTER TABLE audit_checkpoints ENABLE TRIGGER USER;"
	    "RESET ROLE; COMMIT;", (unsigned long long)k, (unsigned long long)k,
	    (unsigned long long)k, (unsigned long long)k);
	res = PQexec(pg, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "attack failed: %s",
	    PQerrorMessage(pg));
	PQclear(res);
	PQfinish(pg);
	/* new requests: the log re-signs past the witnessed size (or refuses to) */
	traffic(auditor, "/v1/audit/entries?start=0&limit=1", (int)(held[0] - k) + 5);
	sleep_ms(1500);

	/* 1. no witness moved: the rewritten tree never got a cosignature */
	for (int i = 0; i < NW; i++) {
		ck_assert_int_eq(witness_held(&W[i], &after, root_after), 0);
		ck_assert_uint_eq(after, held[i]);
		ck_assert_str_eq(root_after, root[i]);
	}
	/* 2. submitted as the log would, the newest checkpoint is refused */
	ck_assert_int_eq(msr_it_request(&it, "GET", "/v1/audit/checkpoint", NULL, NULL, NULL,
	    &r), 0);
	if (r.status == 200) {
		uint64_t n = note_size(r.body);
		char *proof = calloc(1, 8192), *body, path[128];
		struct msr_it_resp pr;

		if (n > held[0]) {
			snprintf(path, sizeof(path), "/v1/audit/proof/consistency?first=%llu&second=%llu",
			    (unsigned long long)held[0], (unsigned long long)n);
			if (msr_it_request(&it, "GET", path, NULL, NULL, NULL, &pr) == 0 &&
			    pr.status == 200) {
				json_t *h = json_object_get(pr.json, "hashes");
				for (size_t i = 0; i < json_array_size(h); i++) {
					strcat(proof, json_string_value(json_array_get(h, i)));
					strcat(proof, "\n");
				}
			}
			msr_it_resp_free(&pr);
		}
		body = body_with(held[0], proof, r.body);
		witness_post(&W[0], body, &wr);
		fprintf(stderr, "witness answer to the rewritten log (size %llu): %ld %s",
		    (unsigned long long)n, wr.status, wr.body);
		ck_assert(wr.status == 409 || wr.status == 422 || wr.status == 400);
		free(wr.body);
		free(body);
		free(proof);
	}
	msr_it_resp_free(&r);
	/* msregd counted the refusals */
	ck_assert_int_eq(msr_it_request(&it, "GET", "/metrics", NULL, NULL, NULL, &r), 0);
	ck_assert_ptr_null(strstr(r.body, "msreg_witness_failures_total{witness="
	    "\"witness.example/w1\"} 0\n"));
	msr_it_resp_free(&r);
	/* 3. the monitor catches it */
	rc = monitor(mstate, &out);
	fprintf(stderr, "monitor (after the attack): %s", out);
	ck_assert_int_eq(rc, 2);
	ck_assert_ptr_nonnull(strstr(out, "integrity"));
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("witness");
	TCase *tc = tcase_create("witness");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, cosigned_checkpoints_verify);
	tcase_add_test(tc, restart_keeps_state);
	tcase_add_test(tc, forks_and_rollbacks_refused);
	tcase_add_test(tc, refuse_policy);
	tcase_add_test(tc, monitor_rules_find);
	tcase_add_test(tc, insider_attack_refused_and_caught);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 1);
}
