/*
 * it_rotation.c — audit signer key rotation without a new log (issue 11 item
 * 5; README "Key rotation"), against a real msregd and PostgreSQL:
 *
 *   1. a log signed with key A;
 *   2. restart with [audit] next_key_file = B: checkpoints carry A's and B's
 *      signature lines, /v1/audit/key lists A then B, receipts verify with
 *      either key (offline CLI and library), `audit verify --url` with either;
 *   3. restart with key_file = B, old_keys = A: the start-up check (full) and
 *      the high-water mark accept the history, `msreg audit verify --db` passes
 *      over the whole history (A-only, A+B and B-only checkpoints), new
 *      receipts verify with B and not with A alone, and B alone does not
 *      verify the A-only history (the test can fail).
 * A witness (`msreg witness`) cosigns throughout: configured with A during the
 * rotation (the doubly signed checkpoints carry A's line), then with B.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "msreg/audit_verify.h"
#include "msreg/cosig.h"
#include "msreg/note.h"

static struct msr_it it;
static char auditor[128];
static char vkey_a[512], vkey_b[512], keyfile_b[700], state_a[700];
static struct msr_note_verifier va, vb;

/* the witness: a child process this test starts and stops by its pid */
static struct {
	pid_t	pid;
	int	port;
	char	key[700], config[700], state[700], log[700], vkey[512];
	struct msr_cosig_verifier v;
} W;

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

/* (Re)start the witness trusting the log key vkey. */
static void
witness_start(const char *vkey)
{
	char path[600];
	FILE *f = fopen(W.config, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "[witness]\naddress = 127.0.0.1\nport = %d\nkey_file = %s\n"
	    "state_file = %s\nlog = %s\n", W.port, W.key, W.state, vkey);
	fclose(f);
	snprintf(path, sizeof(path), "%s/msreg", it.bin);
	W.pid = fork();
	ck_assert_int_ge(W.pid, 0);
	if (W.pid == 0) {
		FILE *log = fopen(W.log, "a");

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (log != NULL)
			dup2(fileno(log), STDERR_FILENO);
		execl(path, path, "witness", "--config", W.config, (char *)NULL);
		_exit(127);
	}
	sleep_ms(300);
}

static void
witness_stop(void)
{
	int st;

	if (W.pid <= 0)
		return;
	kill(W.pid, SIGTERM);
	waitpid(W.pid, &st, 0);
	W.pid = 0;
}

/* The served checkpoint once the witness cosigned it (size >= min), or NULL. */
static char *
cosigned(struct msr_it *m, uint64_t min)
{
	for (int t = 0; t < 20000; t += 100) {
		struct msr_it_resp r;
		struct msr_note_checkpoint cp;
		size_t text_len;

		if (msr_it_request(m, "GET", "/v1/audit/checkpoint", NULL, NULL, NULL, &r) == 0 &&
		    r.status == 200 && msr_cosig_verify(&W.v, r.body, strlen(r.body), NULL) == 0 &&
		    msr_cosig_note_text(r.body, strlen(r.body), &text_len) == 0 &&
		    msr_note_checkpoint_parse(&cp, r.body, text_len) == 0 && cp.size >= min) {
			char *body = strdup(r.body);

			msr_it_resp_free(&r);
			return body;
		}
		msr_it_resp_free(&r);
		sleep_ms(100);
	}
	return NULL;
}

static void
setup(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	msr_it_setup(&it, "rotation", "[audit]\nverify_on_start = full\n");
	snprintf(vkey_a, sizeof(vkey_a), "%s", it.vkey);
	ck_assert_int_eq(msr_note_verifier_parse(&va, vkey_a, strlen(vkey_a)), 0);
	msr_it_client(&it, "auditor", "aud", NULL, auditor, sizeof(auditor));
	W.port = free_port();
	snprintf(W.key, sizeof(W.key), "%s/w1.key", it.dir);
	snprintf(W.config, sizeof(W.config), "%s/w1.ini", it.dir);
	snprintf(W.state, sizeof(W.state), "%s/w1.state", it.dir);
	snprintf(W.log, sizeof(W.log), "%s/w1.log", it.dir);
	unlink(W.key);
	unlink(W.state);
	{
		char path[600], *out = NULL;
		char *argv[] = { path, "witness", "keygen", "--name", "witness.example/w1",
		    "--out", W.key, NULL };

		snprintf(path, sizeof(path), "%s/msreg", it.bin);
		ck_assert_int_eq(msr_it_run(argv, &out), 0);
		out[strcspn(out, "\n")] = '\0';
		snprintf(W.vkey, sizeof(W.vkey), "%s", out);
		free(out);
		ck_assert_int_eq(msr_cosig_verifier_parse(&W.v, W.vkey, strlen(W.vkey)), 0);
	}
}

static void
teardown(void)
{
	witness_stop();
	msr_it_teardown(&it);
}

/* msreg with the arguments up to NULL; its stdout in *out when out != NULL. */
static int
run_cli(const struct msr_it *m, char **out, ...)
{
	char path[600];
	char *argv[16];
	va_list ap;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/msreg", m->bin);
	argv[n++] = path;
	va_start(ap, out);
	while (n < 15 && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	return msr_it_run(argv, out);
}

/* An audited request (an admin creates a client): its Audit-Index. */
static long
audited(struct msr_it *m, const char *name)
{
	struct msr_it_resp r;
	char body[128];
	long idx;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"role\":\"auditor\"}", name);
	ck_assert_int_eq(msr_it_request(m, "POST", "/v1/clients", m->admin_key, NULL, body, &r),
	    0);
	ck_assert_int_eq(r.status, 201);
	idx = r.audit_index;
	ck_assert_int_ge(idx, 0);
	msr_it_resp_free(&r);
	return idx;
}

/* The receipt of idx, saved under the suite's directory; the path in file. */
static char *
receipt(struct msr_it *m, long idx, char *file, size_t len)
{
	struct msr_it_resp r;
	char path[64];
	char *text;
	FILE *f;

	snprintf(path, sizeof(path), "/v1/audit/receipt/%ld", idx);
	ck_assert_int_eq(msr_it_request(m, "GET", path, auditor, NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	snprintf(file, len, "%s/receipt-%ld.tlog-proof", m->dir, idx);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fputs(r.body, f);
	fclose(f);
	text = strdup(r.body);
	msr_it_resp_free(&r);
	return text;
}

static int
receipt_ok(const char *text, const struct msr_note_verifier *v)
{
	struct msr_audit_report rep;

	return msr_audit_receipt_verify(text, v, NULL, 0, &rep);
}

static int
cli_receipt(const char *file, const char *k1, const char *k2)
{
	return run_cli(&it, NULL, "audit", "receipt", "verify", file, "--vkey", k1,
	    k2 != NULL ? "--vkey" : NULL, k2, NULL);
}

/* Signature lines of the served checkpoint by the log's origin. */
static int
sig_lines(struct msr_it *m, char **note)
{
	struct msr_it_resp r;
	char prefix[300];
	const char *p;
	int n = 0;

	ck_assert_int_eq(msr_it_request(m, "GET", "/v1/audit/checkpoint", NULL, NULL, NULL, &r),
	    0);
	ck_assert_int_eq(r.status, 200);
	snprintf(prefix, sizeof(prefix), "\n\xe2\x80\x94 %s ", va.name);
	for (p = r.body; (p = strstr(p, prefix)) != NULL; p++)
		n++;
	*note = strdup(r.body);
	msr_it_resp_free(&r);
	return n;
}

START_TEST(rotate_a_to_b_without_a_new_log)
{
	struct msr_it ab, b;
	struct msr_note_checkpoint cp;
	struct msr_note_verifier both[2];
	struct msr_it_resp r;
	char path[600], origin[300], extra[4096], url[64], file1[700], file2[700], file3[700];
	char *out = NULL, *note = NULL, *rc1, *rc2, *rc3;
	long i1, i2, i3;

	/* 1. the log under key A */
	for (int i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "a%d", i);
		i1 = audited(&it, name);
	}
	rc1 = receipt(&it, i1, file1, sizeof(file1));
	ck_assert_int_eq(sig_lines(&it, &note), 1);
	free(note);

	/* key B: same name (the origin), another key id */
	snprintf(keyfile_b, sizeof(keyfile_b), "%s/audit-b.key", it.dir);
	snprintf(origin, sizeof(origin), "%s", va.name);
	unlink(keyfile_b);
	snprintf(path, sizeof(path), "%s/msreg", it.bin);
	{
		char *argv[] = { path, "keygen", "--name", origin, "--out", keyfile_b, NULL };

		ck_assert_int_eq(msr_it_run(argv, &out), 0);
	}
	out[strcspn(out, "\n")] = '\0';
	snprintf(vkey_b, sizeof(vkey_b), "%s", out);
	free(out);
	out = NULL;
	ck_assert_int_eq(msr_note_verifier_parse(&vb, vkey_b, strlen(vkey_b)), 0);
	ck_assert_uint_ne(va.key_id, vb.key_id);

	/* 2. rotation in progress: sign with A and B */
	msr_it_stop(&it, SIGTERM);
	witness_start(vkey_a);	/* the witness knows the log by A */
	snprintf(extra, sizeof(extra), "[audit]\nnext_key_file = %s\n"
	    "[witness]\nwitness = http://127.0.0.1:%d %s\nquorum = 1\ninterval_ms = 100\n"
	    "timeout_ms = 2000\n", keyfile_b, W.port, W.vkey);
	msr_it_instance(&it, &ab, "ab", extra);
	ck_assert_int_eq(msr_it_wait_ready(&ab, 60000), 0);
	i2 = audited(&ab, "ab0");
	i2 = audited(&ab, "ab1");
	ck_assert_int_gt(i2, i1);
	ck_assert_int_eq(sig_lines(&ab, &note), 2);
	ck_assert_int_eq(msr_note_checkpoint_open(&va, note, &cp), 0);
	ck_assert_int_eq(msr_note_checkpoint_open(&vb, note, &cp), 0);
	free(note);
	/* the witness (A) cosigns the doubly signed checkpoints; both keys still open them */
	note = cosigned(&ab, (uint64_t)i2 + 1);
	ck_assert_msg(note != NULL, "no cosigned A+B checkpoint within 20 s (see %s)", W.log);
	ck_assert_int_eq(msr_note_checkpoint_open(&va, note, &cp), 0);
	ck_assert_int_eq(msr_note_checkpoint_open(&vb, note, &cp), 0);
	free(note);
	/* /v1/audit/key: A (the primary) on the first line, then B */
	ck_assert_int_eq(msr_it_request(&ab, "GET", "/v1/audit/key", NULL, NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	snprintf(extra, sizeof(extra), "%s\n%s\n", vkey_a, vkey_b);
	ck_assert_str_eq(r.body, extra);
	msr_it_resp_free(&r);
	rc2 = receipt(&ab, i2, file2, sizeof(file2));
	ck_assert_int_eq(receipt_ok(rc2, &va), 0);
	ck_assert_int_eq(receipt_ok(rc2, &vb), 0);
	ck_assert_int_eq(cli_receipt(file2, vkey_a, NULL), 0);
	ck_assert_int_eq(cli_receipt(file2, vkey_b, NULL), 0);
	ck_assert_int_eq(cli_receipt(file1, vkey_a, NULL), 0);
	ck_assert_int_ne(cli_receipt(file1, vkey_b, NULL), 0);	/* A alone signed it */
	/* the HTTP verifier with either key */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ab.port);
	ck_assert_int_eq(run_cli(&ab, &out, "audit", "verify", "--url", url, "--key", auditor,
	    "--vkey", vkey_b, NULL), 0);
	free(out);
	ck_assert_int_eq(run_cli(&ab, &out, "audit", "verify", "--url", url, "--key", auditor,
	    "--vkey", vkey_a, NULL), 0);
	free(out);
	out = NULL;

	/* 3. rotation done: B signs alone, A is trusted for the history */
	msr_it_stop(&ab, SIGTERM);
	witness_stop();
	witness_start(vkey_b);	/* README step 3: the witness now knows the log by B */
	snprintf(state_a, sizeof(state_a), "%s.state", it.keyfile);
	snprintf(extra, sizeof(extra), "[audit]\nkey_file = %s\nold_keys = %s\nstate_file = %s\n"
	    "[witness]\nwitness = http://127.0.0.1:%d %s\nquorum = 1\ninterval_ms = 100\n"
	    "timeout_ms = 2000\n", keyfile_b, vkey_a, state_a, W.port, W.vkey);
	msr_it_instance(&it, &b, "b", extra);
	ck_assert_msg(msr_it_wait_ready(&b, 60000) == 0,
	    "the start-up check refused the rotated history (see %s/msregd.log)", it.dir);
	i3 = audited(&b, "b0");
	ck_assert_int_gt(i3, i2);
	ck_assert_int_eq(sig_lines(&b, &note), 1);
	ck_assert_int_ne(msr_note_checkpoint_open(&va, note, &cp), 0);
	ck_assert_int_eq(msr_note_checkpoint_open(&vb, note, &cp), 0);
	free(note);
	note = cosigned(&b, (uint64_t)i3 + 1);
	ck_assert_msg(note != NULL, "no cosigned B checkpoint within 20 s (see %s)", W.log);
	ck_assert_int_eq(msr_note_checkpoint_open(&vb, note, &cp), 0);
	free(note);
	ck_assert_int_eq(msr_it_request(&b, "GET", "/v1/audit/key", NULL, NULL, NULL, &r), 0);
	snprintf(extra, sizeof(extra), "%s\n", vkey_b);
	ck_assert_str_eq(r.body, extra);
	msr_it_resp_free(&r);
	rc3 = receipt(&b, i3, file3, sizeof(file3));
	ck_assert_int_eq(receipt_ok(rc3, &vb), 0);
	ck_assert_int_ne(receipt_ok(rc3, &va), 0);
	ck_assert_int_eq(cli_receipt(file3, vkey_b, NULL), 0);
	ck_assert_int_ne(cli_receipt(file3, vkey_a, NULL), 0);
	/* a set of trusted keys: any will do */
	ck_assert_int_eq(cli_receipt(file1, vkey_b, vkey_a), 0);
	ck_assert_int_eq(cli_receipt(file3, vkey_a, vkey_b), 0);
	both[0] = va;
	both[1] = vb;
	ck_assert_int_eq(msr_note_keys_chain(both, 2), 0);
	ck_assert_int_eq(receipt_ok(rc1, both), 0);
	ck_assert_int_eq(receipt_ok(rc3, both), 0);

	/* the whole history: the configuration's keys (B, old A) */
	ck_assert_int_eq(run_cli(&b, &out, "--config", b.config, "audit", "verify", "--db",
	    NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "OK"));
	free(out);
	out = NULL;
	/* explicit keys: both pass, B alone does not (A alone signed the start) */
	ck_assert_int_eq(run_cli(&b, NULL, "--config", b.config, "audit", "verify", "--db",
	    "--vkey", vkey_b, "--vkey", vkey_a, NULL), 0);
	ck_assert_int_ne(run_cli(&b, &out, "--config", b.config, "audit", "verify", "--db",
	    "--vkey", vkey_b, NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "FAILED"));
	free(out);
	out = NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", b.port);
	ck_assert_int_eq(run_cli(&b, &out, "audit", "verify", "--url", url, "--key", auditor,
	    "--vkey", vkey_b, NULL), 0);
	free(out);

	free(rc1);
	free(rc2);
	free(rc3);
	msr_it_teardown(&b);
	witness_stop();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("rotation");
	TCase *tc = tcase_create("rotation");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, rotate_a_to_b_without_a_new_log);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 1);
}
