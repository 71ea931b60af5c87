/*
 * it_cli.c — integration tests of msreg's HTTP client commands (cli_client.c)
 * against a real msregd and PostgreSQL: `msreg import` of generated production
 * files (row-numbered errors, exit codes, re-runs), interrupted imports
 * (--max-chunks, a crash between the server's commit and the journal, SIGKILL
 * at a random moment) resumed so that every firearm is registered exactly
 * once (counted in the database), `msreg search` and `msreg lookup` as a table
 * and as JSON with receipts that `msreg audit receipt verify` accepts, and
 * --help on every command.
 *
 * One msregd serves the suite; each test imports for its own manufacturer, so
 * the database counts of one test are independent of the others.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct msr_it it;
static char k_inv[128], msreg_bin[600];
static double last_cpu_s;    /* user + system CPU of the last run_cli */

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* ---- helpers ------------------------------------------------------------- */

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static int
count_lines_starting(const char *text, const char *prefix)
{
	int n = 0;
	size_t pl = strlen(prefix);

	for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, prefix, pl) == 0)
			n++;
	return n;
}

/*
 * Run bin/msreg with argv (argv[0] unused), MSREG_API_KEY=key (unset when
 * NULL), stdout and stderr into files under it.dir named tag.out/tag.err.
 * kill_after_c > 0: SIGKILL the process once journal holds that many C lines.
 * Returns the exit status (128+signal when killed).
 */
static int
run_cli(const char *tag, char **argv, const char *key, const char *journal, int kill_after_c)
{
	char out[700], err[700];
	int status = 0;
	pid_t pid;

	snprintf(out, sizeof(out), "%s/%s.out", it.dir, tag);
	snprintf(err, sizeof(err), "%s/%s.err", it.dir, tag);
	argv[0] = msreg_bin;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (key != NULL)
			setenv("MSREG_API_KEY", key, 1);
		else
			unsetenv("MSREG_API_KEY");
		dup2(fo, STDOUT_FILENO);
		dup2(fe, STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	if (kill_after_c > 0 && journal != NULL) {
		for (int i = 0; i < 6000; i++) {
			char *j = slurp(journal);
			int c = count_lines_starting(j, "C ");

			free(j);
			if (c >= kill_after_c) {
				kill(pid, SIGKILL);
				break;
			}
			if (waitpid(pid, &status, WNOHANG) == pid)
				goto reaped;
			usleep(5000);
		}
	}
	{
		struct rusage ru;

		ck_assert_int_eq(wait4(pid, &status, 0, &ru), pid);
		last_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	}
reaped:
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *
cli_out(const char *tag, const char *ext)
{
	char p[700];

	snprintf(p, sizeof(p), "%s/%s.%s", it.dir, tag, ext);
	return slurp(p);
}

static long
sql_count(const char *sql)
{
	PGconn *pg = PQconnectdb(it.url_super);
	PGresult *res;
	long n;

	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	res = PQexec(pg, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
	    PQresultErrorMessage(res));
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(pg);
	return n;
}

static long
firearms_of(const char *mfr)
{
	char q[256];

	snprintf(q, sizeof(q), "SELECT count(*) FROM firearms WHERE manufacturer_id = '%s'", mfr);
	return sql_count(q);
}

static long
codes_of(const char *mfr)
{
	char q[300];

	snprintf(q, sizeof(q), "SELECT count(*) FROM codes c JOIN firearms f ON f.id = "
	    "c.firearm_id WHERE f.manufacturer_id = '%s'", mfr);
	return sql_count(q);
}

/* A manufacturer and its key. */
static void
manufacturer(const char *id, char *key, size_t len)
{
	char body[200];

	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"name\":\"Import %s\"}", id, id);
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/manufacturers", it.admin_key, body), 201);
	msr_it_client(&it, "manufacturer", "production office", id, key, len);
}

/* n rs8 codes allocated to key (n <= 10000), into codes[n][9]. */
static void
allocate(const char *key, size_t n, char (*codes)[9])
{
	struct msr_it_resp r;
	char body[64];

	snprintf(body, sizeof(body), "{\"count\":%zu}", n);
	ck_assert_int_eq(msr_it_request(&it, "POST", "/v1/codes/allocate", key, NULL, body, &r), 0);
	ck_assert_int_eq(r.status, 201);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "codes")), n);
	for (size_t i = 0; i < n; i++)
		snprintf(codes[i], 9, "%s",
		    json_string_value(json_array_get(json_object_get(r.json, "codes"), i)));
	msr_it_resp_free(&r);
}

enum fault { F_NONE, F_COMPONENT, F_RS8, F_MODEL, F_DUPCODE, F_QUOTE, F_UTF8 };

/*
 * Write a production file of n firearms, two lines each (an allocated rs8
 * firing pin, a free breech face), header on line 1, so firearm f is on lines
 * 2+2f and 3+2f. faults[f] injects an error; bad_line[f] receives the line
 * the error must be reported on. Returns the number of good firearms.
 */
static size_t
gen_file(const char *path, const char *prefix, size_t n, const char *key,
    const enum fault *faults, long *bad_line, uint64_t seed)
{
	char (*codes)[9] = calloc(n, 9), (*free_codes)[11] = calloc(n, 11);
	FILE *f = fopen(path, "w");
	size_t good = 0;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(codes);
	for (size_t done = 0; done < n; done += 10000)
		allocate(key, n - done < 10000 ? n - done : 10000, codes + done);
	fputs("serial,model,type,caliber,manufactured_on,code,component,scheme\r\n", f);
	for (size_t i = 0; i < n; i++) {
		enum fault fl = faults ? faults[i] : F_NONE;
		long l1 = 2 + 2 * (long)i, l2 = l1 + 1;
		char serial[64], rs8[9];

		for (int k = 0; k < 10; k++)
			free_codes[i][k] = crockford[msr_test_rand_below(&seed, 32)];
		free_codes[i][10] = '\0';
		if (fl == F_DUPCODE && i > 0)
			memcpy(free_codes[i], free_codes[i - 1], 11);
		snprintf(serial, sizeof(serial), "%s%06zu", prefix, i);
		snprintf(rs8, sizeof(rs8), "%s", codes[i]);
		if (fl == F_RS8)   /* one symbol changed: no longer a codeword */
			rs8[3] = rs8[3] == 'A' ? 'B' : 'A';
		if (fl == F_QUOTE)
			fprintf(f, "%s,\"P3\"20,pistol,9mm,2026-10-01,%s,firing_pin,rs8\n", serial, rs8);
		else if (fl == F_UTF8)   /* a Latin-1 byte */
			fprintf(f, "%s,\"P320, gen %d\",pistol,9mm,2026-10-01,%s,firing_pin,r\xe9s8\n",
			    serial, 2, rs8);
		else
			fprintf(f, "%s,\"P320, gen %d\",pistol,9mm,2026-10-01,%s,firing_pin,rs8\n",
			    serial, 2, rs8);
		fprintf(f, "%s,\"P320, gen %d\",pistol,9mm,2026-10-01,%s,%s,free\n", serial,
		    fl == F_MODEL ? 3 : 2, free_codes[i],
		    fl == F_COMPONENT ? "barrel" : "breech_face");
		if (bad_line != NULL)
			bad_line[i] = fl == F_NONE ? 0 : (fl == F_RS8 || fl == F_QUOTE ||
			    fl == F_UTF8) ? l1 : l2;
		if (fl == F_NONE)
			good++;
	}
	ck_assert_int_eq(fclose(f), 0);
	free(codes);
	free(free_codes);
	return good;
}

/* ---- fixture ------------------------------------------------------------- */

static void
setup(void)
{
	msr_it_setup(&it, "cli", NULL);
	snprintf(msreg_bin, sizeof(msreg_bin), "%s/msreg", it.bin);
	msr_it_client(&it, "investigator", "det. smith", "CA0194200", k_inv, sizeof(k_inv));
}

static void
teardown(void)
{
	msr_it_teardown(&it);
}

/* ---- import -------------------------------------------------------------- */

START_TEST(import_reports_rejected_lines)
{
	enum { N = 1500 };
	static enum fault faults[N];
	static long bad[N];
	char key[128], path[600], url[64], *out, *err;
	size_t good, nbad = 0;
	int rc;

	manufacturer("imp1", key, sizeof(key));
	for (size_t i = 0; i < N; i++)
		faults[i] = i % 97 == 5 ? F_COMPONENT : i % 131 == 7 ? F_RS8 :
		    i % 173 == 11 ? F_MODEL : i % 401 == 300 ? F_DUPCODE : i == 1234 ? F_QUOTE : i == 777 ? F_UTF8 :
		    F_NONE;
	snprintf(path, sizeof(path), "%s/imp1.csv", it.dir);
	good = gen_file(path, "I1-", N, key, faults, bad, 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "200", path, NULL };

		rc = run_cli("imp1", argv, key, NULL, 0);
	}
	out = cli_out("imp1", "out");
	err = cli_out("imp1", "err");
	ck_assert_msg(rc == 1, "exit %d (want 1: some rows rejected)\n%s%s", rc, out, err);
	for (size_t i = 0; i < N; i++) {
		char want[700];

		if (bad[i] == 0)
			continue;
		nbad++;
		snprintf(want, sizeof(want), "%s:%ld: ", path, bad[i]);
		ck_assert_msg(strstr(err, want) != NULL, "firearm %zu (fault %d): no error "
		    "reported for line %ld:\n%s", i, faults[i], bad[i], err);
	}
	{
		char prefix[700];

		snprintf(prefix, sizeof(prefix), "%s:", path);
		ck_assert_msg(count_lines_starting(err, prefix) == (int)nbad,
		    "%d errors reported, %zu expected:\n%s", count_lines_starting(err, prefix),
		    nbad, err);
	}
	ck_assert_int_eq(firearms_of("imp1"), (long)good);
	ck_assert_int_eq(codes_of("imp1"), 2 * (long)good);
	ck_assert_msg(strstr(out, "lines registered") != NULL, "no summary: %s", out);
	free(out);
	free(err);

	/* a second run finds the journal complete and sends nothing */
	{
		char *argv[] = { NULL, "import", "--url", url, path, NULL };

		rc = run_cli("imp1b", argv, key, NULL, 0);
	}
	out = cli_out("imp1b", "out");
	ck_assert_msg(rc == 1 && strstr(out, "already imported") != NULL, "rerun: %d %s", rc, out);
	free(out);
	ck_assert_int_eq(firearms_of("imp1"), (long)good);
}
END_TEST

START_TEST(import_resumes_after_max_chunks)
{
	enum { N = 1000 };
	char key[128], path[600], url[64], *out;
	int rc;

	manufacturer("imp2", key, sizeof(key));
	snprintf(path, sizeof(path), "%s/imp2.csv", it.dir);
	ck_assert_int_eq(gen_file(path, "I2-", N, key, NULL, NULL, 2), N);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "100", "--max-chunks", "4",
		    path, NULL };

		rc = run_cli("imp2a", argv, key, NULL, 0);
	}
	ck_assert_int_eq(rc, 2);
	ck_assert_int_eq(firearms_of("imp2"), 400);
	{
		/* resumed with another chunk size: nothing twice, nothing missing */
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "70", path, NULL };

		rc = run_cli("imp2b", argv, key, NULL, 0);
	}
	out = cli_out("imp2b", "out");
	ck_assert_msg(rc == 0, "resume: exit %d: %s", rc, out);
	free(out);
	ck_assert_int_eq(firearms_of("imp2"), N);
	ck_assert_int_eq(codes_of("imp2"), 2 * N);

	/*
	 * --restart forgets the journal: every firearm is now a conflict, each
	 * reported once, and splitting keeps the number of batches near-linear
	 * (the journal holds one P per POST).
	 */
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "200", "--restart", path,
		    NULL };
		char journal[700], prefix[700], *err, *j;

		rc = run_cli("imp2c", argv, key, NULL, 0);
		err = cli_out("imp2c", "err");
		snprintf(prefix, sizeof(prefix), "%s:", path);
		ck_assert_msg(rc == 1, "re-import: exit %d", rc);
		ck_assert_int_eq(count_lines_starting(err, prefix), N);
		snprintf(journal, sizeof(journal), "%s.msreg-import", path);
		j = slurp(journal);
		ck_assert_msg(count_lines_starting(j, "P ") < 3 * N, "%d batches for %d bad "
		    "firearms", count_lines_starting(j, "P "), N);
		free(j);
		free(err);
	}
	ck_assert_int_eq(firearms_of("imp2"), N);
}
END_TEST

/*
 * The window between the server's commit and the journal: the process dies
 * right after the 201 of chunk 3 (which had one rejected firearm dropped
 * before the committed POST). The resumed run must find chunk 3 committed,
 * not report its firearms as conflicts, and report the bad one again.
 */
START_TEST(import_resolves_commit_before_journal)
{
	enum { N = 600 };
	static enum fault faults[N];
	static long bad[N];
	char key[128], path[600], url[64], want[700], *out, *err;
	int rc;

	manufacturer("imp3", key, sizeof(key));
	faults[250] = F_COMPONENT;
	snprintf(path, sizeof(path), "%s/imp3.csv", it.dir);
	ck_assert_int_eq(gen_file(path, "I3-", N, key, faults, bad, 3), N - 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	setenv("MSREG_IMPORT_TEST_CRASH", "1", 1);
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "100", "--max-chunks", "2",
		    path, NULL };

		rc = run_cli("imp3a", argv, key, NULL, 0);
	}
	unsetenv("MSREG_IMPORT_TEST_CRASH");
	err = cli_out("imp3a", "err");
	ck_assert_msg(rc == 3, "test crash: exit %d: %s", rc, err);
	free(err);
	ck_assert_int_eq(firearms_of("imp3"), 299);
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "100", path, NULL };

		rc = run_cli("imp3b", argv, key, NULL, 0);
	}
	out = cli_out("imp3b", "out");
	err = cli_out("imp3b", "err");
	ck_assert_msg(rc == 1, "resume: exit %d: %s%s", rc, out, err);
	ck_assert_msg(strstr(err, "registered by the interrupted run") != NULL, "%s", err);
	snprintf(want, sizeof(want), "%s:%ld: ", path, bad[250]);
	ck_assert_msg(strstr(err, want) != NULL, "line %ld not reported: %s", bad[250], err);
	snprintf(want, sizeof(want), "%s:", path);
	ck_assert_msg(count_lines_starting(err, want) == 1, "only one error expected: %s", err);
	free(out);
	free(err);
	ck_assert_int_eq(firearms_of("imp3"), N - 1);
	ck_assert_int_eq(codes_of("imp3"), 2 * (N - 1));
}
END_TEST

START_TEST(import_survives_sigkill)
{
	enum { N = 3000 };
	char key[128], path[600], url[64], journal[700], *out, *err;
	int rc;

	manufacturer("imp4", key, sizeof(key));
	snprintf(path, sizeof(path), "%s/imp4.csv", it.dir);
	snprintf(journal, sizeof(journal), "%s.msreg-import", path);
	ck_assert_int_eq(gen_file(path, "I4-", N, key, NULL, NULL, 4), N);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "50", path, NULL };

		rc = run_cli("imp4a", argv, key, journal, 5);
	}
	ck_assert_msg(rc == 128 + SIGKILL, "not killed mid-way: exit %d", rc);
	ck_assert_int_lt(firearms_of("imp4"), N);
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "50", path, NULL };

		rc = run_cli("imp4b", argv, key, NULL, 0);
	}
	out = cli_out("imp4b", "out");
	err = cli_out("imp4b", "err");
	ck_assert_msg(rc == 0, "resume: exit %d: %s%s", rc, out, err);
	ck_assert_msg(strstr(err, "resuming") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(firearms_of("imp4"), N);
	ck_assert_int_eq(codes_of("imp4"), 2 * N);
}
END_TEST

START_TEST(import_refuses_bad_usage)
{
	char key[128], path[600], url[64];
	int rc;

	manufacturer("imp5", key, sizeof(key));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	snprintf(path, sizeof(path), "%s/imp5.csv", it.dir);
	{
		FILE *f = fopen(path, "w");

		ck_assert_ptr_nonnull(f);
		fputs("serial,model,type\nX1,P320,pistol\n", f);
		fclose(f);
	}
	{
		char *argv[] = { NULL, "import", "--url", url, path, NULL };

		ck_assert_int_eq(run_cli("imp5a", argv, key, NULL, 0), 2);   /* columns */
	}
	{
		char *argv[] = { NULL, "import", "--url", url, "--key", key, path, NULL };

		ck_assert_int_eq(run_cli("imp5b", argv, NULL, NULL, 0), 2);  /* no key on argv */
	}
	{
		char *argv[] = { NULL, "import", "--url", url, "/nonexistent/x.csv", NULL };

		ck_assert_int_eq(run_cli("imp5c", argv, key, NULL, 0), 2);
	}
	{
		char *argv[] = { NULL, "import", "--url", url, path, NULL };

		rc = run_cli("imp5d", argv, NULL, NULL, 0);   /* no key at all */
		ck_assert_int_eq(rc, 2);
	}
}
END_TEST

/* Byte offset of the start of line `line` (1-based) of path. */
static long
offset_of_line(const char *path, long line)
{
	FILE *f = fopen(path, "r");
	long off = 0, l = 1;
	int ch;

	ck_assert_ptr_nonnull(f);
	while (l < line && (ch = getc(f)) != EOF) {
		off++;
		if (ch == '\n')
			l++;
	}
	fclose(f);
	return off;
}

/*
 * The other side of the doubt: a chunk journaled as sent (P) whose batch was
 * never committed, and whose first serial is taken by an earlier, unrelated
 * registration. The resumed run must not take the chunk for committed: the
 * taken serial is a rejected line, every other firearm is registered.
 */
START_TEST(import_in_doubt_but_not_committed)
{
	enum { N = 300 };
	char key[128], path[600], url[64], journal[700], body[512], want[700], *out, *err;
	char code[1][9];
	FILE *f;
	int rc;

	manufacturer("imp7", key, sizeof(key));
	snprintf(path, sizeof(path), "%s/imp7.csv", it.dir);
	snprintf(journal, sizeof(journal), "%s.msreg-import", path);
	ck_assert_int_eq(gen_file(path, "I7-", N, key, NULL, NULL, 7), N);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "100", "--max-chunks", "1",
		    path, NULL };

		ck_assert_int_eq(run_cli("imp7a", argv, key, NULL, 0), 2);
	}
	ck_assert_int_eq(firearms_of("imp7"), 100);
	/* firearm 100 (line 202) registered meanwhile by someone else, other code */
	allocate(key, 1, code);
	snprintf(body, sizeof(body), "{\"model\":\"X\",\"serial\":\"I7-000100\",\"type\":"
	    "\"pistol\",\"caliber\":\"9mm\",\"codes\":[{\"code\":\"%s\",\"component\":"
	    "\"firing_pin\"}]}", code[0]);
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/firearms", key, body), 201);
	/* the journal says chunk 2 (lines 202-401) was being sent */
	f = fopen(journal, "a");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "P %ld %ld 202 -\n", offset_of_line(path, 202), offset_of_line(path, 402));
	fclose(f);
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", "100", path, NULL };

		rc = run_cli("imp7b", argv, key, NULL, 0);
	}
	out = cli_out("imp7b", "out");
	err = cli_out("imp7b", "err");
	ck_assert_msg(rc == 1, "resume: exit %d: %s%s", rc, out, err);
	ck_assert_msg(strstr(err, "registered by the interrupted run") == NULL, "%s", err);
	snprintf(want, sizeof(want), "%s:202: conflict", path);
	ck_assert_msg(strstr(err, want) != NULL, "line 202 not reported: %s", err);
	snprintf(want, sizeof(want), "%s:", path);
	ck_assert_msg(count_lines_starting(err, want) == 1, "only one error expected: %s", err);
	ck_assert_msg(strstr(out, "2 lines rejected") != NULL, "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(firearms_of("imp7"), N);
	ck_assert_int_eq(codes_of("imp7"), 2 * (N - 1) + 1);
}
END_TEST

/* On a terminal: a progress bar redrawn in place, with rate and ETA. */
START_TEST(import_progress_on_a_terminal)
{
	char key[128], path[600], url[64], buf[65536];
	size_t len = 0;
	ssize_t n;
	int fd, status;
	pid_t pid;

	manufacturer("imp6", key, sizeof(key));
	snprintf(path, sizeof(path), "%s/imp6.csv", it.dir);
	ck_assert_int_eq(gen_file(path, "I6-", 300, key, NULL, NULL, 6), 300);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	pid = forkpty(&fd, NULL, NULL, NULL);
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setenv("MSREG_API_KEY", key, 1);
		execl(msreg_bin, msreg_bin, "import", "--url", url, "--chunk", "20",
		    "--progress-ms", "0", path, (char *)NULL);
		_exit(127);
	}
	while (len + 1 < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len - 1)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d: %s", status, buf);
	ck_assert_msg(strstr(buf, "\r\033[K") != NULL && strstr(buf, "lines/s") != NULL &&
	    strstr(buf, "ETA ") != NULL && strstr(buf, "100% [##############################]")
	    != NULL, "no progress bar on a terminal: %s", buf);
	ck_assert_int_eq(firearms_of("imp6"), 300);
}
END_TEST

/* ---- search and lookup --------------------------------------------------- */

static void
verify_receipt(const char *receipt)
{
	char vkey[600];
	FILE *f;

	snprintf(vkey, sizeof(vkey), "%s/vkey.txt", it.dir);
	f = fopen(vkey, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s\n", it.vkey);
	fclose(f);
	{
		char *argv[] = { NULL, "audit", "receipt", "verify", (char *)receipt, "--vkey",
		    it.vkey, NULL };
		int rc = run_cli("verify", argv, NULL, NULL, 0);
		char *e = cli_out("verify", "err");

		ck_assert_msg(rc == 0, "receipt %s does not verify (%d): %s", receipt, rc, e);
		free(e);
	}
}

START_TEST(search_and_lookup)
{
	char key[128], keyfile[600], receipt[600], url[64], body[512], code[9], reading[16];
	char *out;
	json_t *j;
	FILE *f;
	int rc;

	manufacturer("srch", key, sizeof(key));
	allocate(key, 1, &code);
	snprintf(body, sizeof(body), "{\"model\":\"P320\",\"serial\":\"S-77\",\"type\":\"pistol\","
	    "\"caliber\":\"9mm\",\"manufactured_on\":\"2026-10-01\",\"codes\":[{\"code\":\"%s\","
	    "\"component\":\"firing_pin\"}]}", code);
	ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/firearms", key, body), 201);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	snprintf(keyfile, sizeof(keyfile), "%s/inv.key", it.dir);
	f = fopen(keyfile, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s\n", k_inv);
	fclose(f);
	ck_assert_int_eq(chmod(keyfile, 0600), 0);

	/* lookup: table, JSON, receipt */
	snprintf(receipt, sizeof(receipt), "%s/lookup.receipt", it.dir);
	{
		char *argv[] = { NULL, "lookup", "--url", url, "--key-file", keyfile,
		    "--case-number", "HPD-2026-1", "--purpose", "homicide", "--receipt", receipt,
		    code, NULL };

		rc = run_cli("lk1", argv, NULL, NULL, 0);
	}
	out = cli_out("lk1", "out");
	ck_assert_msg(rc == 0 && strstr(out, "SERIAL") != NULL && strstr(out, "S-77") != NULL &&
	    strstr(out, code) != NULL, "lookup table (%d): %s", rc, out);
	free(out);
	verify_receipt(receipt);
	{
		char *argv[] = { NULL, "lookup", "--url", url, "--case-number", "HPD-2026-1",
		    "--purpose", "homicide", "--json", code, NULL };

		rc = run_cli("lk2", argv, k_inv, NULL, 0);
	}
	out = cli_out("lk2", "out");
	j = json_loads(out, 0, NULL);
	ck_assert_msg(rc == 0 && j != NULL, "lookup --json (%d): %s", rc, out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "code")), code);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "firearm"),
	    "serial")), "S-77");
	json_decref(j);
	free(out);
	{
		/* a valid code that is not registered: exit 1, still audited */
		char *argv[] = { NULL, "lookup", "--url", url, "--case-number", "HPD-2026-1",
		    "--purpose", "homicide", "ZZZZZZZZZZ", NULL };

		rc = run_cli("lk3", argv, k_inv, NULL, 0);
	}
	ck_assert_int_eq(rc, 1);

	/* search: table, JSON, receipt */
	snprintf(reading, sizeof(reading), "%s", code);
	reading[3] = '?';
	snprintf(receipt, sizeof(receipt), "%s/search.receipt", it.dir);
	{
		char *argv[] = { NULL, "search", "--url", url, "--key-file", keyfile,
		    "--case-number", "HPD-2026-2", "--purpose", "robbery", "--max-mismatches", "0",
		    "--limit", "5", "--receipt", receipt, reading, NULL };

		rc = run_cli("sr1", argv, NULL, NULL, 0);
	}
	out = cli_out("sr1", "out");
	ck_assert_msg(rc == 0 && strstr(out, code) != NULL && strstr(out, "S-77") != NULL &&
	    strstr(out, "candidate(s)") != NULL, "search table (%d): %s", rc, out);
	free(out);
	verify_receipt(receipt);
	{
		char *argv[] = { NULL, "search", "--url", url, "--case-number", "HPD-2026-2",
		    "--purpose", "robbery", "--json", reading, NULL };

		rc = run_cli("sr2", argv, k_inv, NULL, 0);
	}
	out = cli_out("sr2", "out");
	j = json_loads(out, 0, NULL);
	ck_assert_msg(rc == 0 && j != NULL, "search --json (%d): %s", rc, out);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(j, "candidates"), 0), "code")), code);
	json_decref(j);
	free(out);
	{
		/* refused by the server (too broad): exit 1 */
		char *argv[] = { NULL, "search", "--url", url, "--case-number", "HPD-2026-2",
		    "--purpose", "robbery", "????????", NULL };

		ck_assert_int_eq(run_cli("sr3", argv, k_inv, NULL, 0), 1);
	}
	{
		/* a manufacturer may not search: exit 1 (403) */
		char *argv[] = { NULL, "search", "--url", url, "--case-number", "X",
		    "--purpose", "Y", reading, NULL };

		ck_assert_int_eq(run_cli("sr4", argv, key, NULL, 0), 1);
	}
}
END_TEST

START_TEST(help_on_every_command)
{
	static const char *const cmds[] = { "migrate", "client", "keygen", "audit", "witness",
	    "import", "search", "lookup" };

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *argv[] = { NULL, (char *)cmds[i], "--help", NULL };
		int rc = run_cli("help", argv, NULL, NULL, 0);
		char *out = cli_out("help", "out");

		ck_assert_msg(rc == 0 && strncmp(out, "usage: msreg", 12) == 0,
		    "%s --help: %d %s", cmds[i], rc, out);
		free(out);
	}
	{
		char *argv[] = { NULL, "--help", NULL };

		ck_assert_int_eq(run_cli("help", argv, NULL, NULL, 0), 0);
	}
}
END_TEST

/*
 * The import benchmark (tests/bench/bench_import.sh; not part of make check):
 * MSR_BENCH_IMPORT_LINES lines (2 per firearm) registered twice, each time
 * for a fresh manufacturer: once by POSTing the same batches straight to
 * /v1/firearms/batch from this process (the baseline: the API alone), once by
 * `msreg import` of the equivalent production file. Prints lines/s and the
 * ratio.
 */
static char *
bench_body(const char *prefix, size_t from, size_t n, char (*codes)[9], uint64_t *seed)
{
	json_t *arr = json_array(), *root;
	char *text;

	for (size_t i = from; i < from + n; i++) {
		char serial[64], fc[11];

		for (int k = 0; k < 10; k++)
			fc[k] = crockford[msr_test_rand_below(seed, 32)];
		fc[10] = '\0';
		snprintf(serial, sizeof(serial), "%s%07zu", prefix, i);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s},"
		    " {s:s, s:s, s:s}]}", "serial", serial, "model", "P320, gen 2", "type",
		    "pistol", "caliber", "9mm", "manufactured_on", "2026-10-01", "codes",
		    "code", codes[i], "component", "firing_pin", "code", fc, "component",
		    "breech_face", "scheme", "free"));
	}
	root = json_pack("{s:o}", "firearms", arr);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n firearms POSTed straight to the batch API as manufacturer mfr; seconds. */
static double
bench_direct(const char *mfr, size_t n, size_t chunk, uint64_t seed)
{
	char key[128], prefix[16], (*codes)[9] = calloc(n, 9);
	size_t nb = (n + chunk - 1) / chunk;
	char **bodies = calloc(nb, sizeof(*bodies));
	double t0, el;

	ck_assert_ptr_nonnull(codes);
	ck_assert_ptr_nonnull(bodies);
	manufacturer(mfr, key, sizeof(key));
	for (size_t done = 0; done < n; done += 10000)
		allocate(key, n - done < 10000 ? n - done : 10000, codes + done);
	snprintf(prefix, sizeof(prefix), "%s-", mfr);
	for (size_t b = 0; b < nb; b++)
		bodies[b] = bench_body(prefix, b * chunk, b * chunk + chunk <= n ? chunk :
		    n - b * chunk, codes, &seed);
	t0 = mono_s();
	for (size_t b = 0; b < nb; b++) {
		ck_assert_int_eq(msr_it_status(&it, "POST", "/v1/firearms/batch", key, bodies[b]),
		    201);
		free(bodies[b]);
	}
	el = mono_s() - t0;
	ck_assert_int_eq(firearms_of(mfr), (long)n);
	free(bodies);
	free(codes);
	return el;
}

/* `msreg import` of the equivalent file as manufacturer mfr; seconds. */
static double
bench_cli(const char *mfr, size_t n, size_t chunk, uint64_t seed)
{
	char key[128], path[600], url[64], chunk_s[16], prefix[16];
	double t0, el;
	int rc;

	manufacturer(mfr, key, sizeof(key));
	snprintf(path, sizeof(path), "%s/%s.csv", it.dir, mfr);
	snprintf(prefix, sizeof(prefix), "%s-", mfr);
	ck_assert_int_eq(gen_file(path, prefix, n, key, NULL, NULL, seed), n);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);
	snprintf(chunk_s, sizeof(chunk_s), "%zu", chunk);
	{
		char *argv[] = { NULL, "import", "--url", url, "--chunk", chunk_s, path, NULL };

		t0 = mono_s();
		rc = run_cli("bench", argv, key, NULL, 0);
		el = mono_s() - t0;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(firearms_of(mfr), (long)n);
	return el;
}

/* Two rounds, D I then I D, so drift in the machine's load hits both sides. */
START_TEST(bench_import)
{
	const char *env = getenv("MSR_BENCH_IMPORT_LINES");
	size_t lines = env ? strtoul(env, NULL, 10) : 200000, n = lines / 2, chunk = 1000;
	double d[2], c[2], cpu[2];

	/* distinct seeds: the free codes must not collide between runs */
	d[0] = bench_direct("bd1", n, chunk, 101);
	c[0] = bench_cli("bi1", n, chunk, 102);
	cpu[0] = last_cpu_s;
	c[1] = bench_cli("bi2", n, chunk, 103);
	cpu[1] = last_cpu_s;
	d[1] = bench_direct("bd2", n, chunk, 104);
	printf("import bench: %zu lines (%zu firearms) per run, batches of %zu firearms\n",
	    2 * n, n, chunk);
	for (int r = 0; r < 2; r++)
		printf("  round %d: batch API directly %.1f s = %.0f lines/s; msreg import %.1f s ="
		    " %.0f lines/s (client CPU %.1f s); ratio %.2f\n", r + 1, d[r],
		    (double)(2 * n) / d[r], c[r], (double)(2 * n) / c[r], cpu[r], d[r] / c[r]);
	printf("  overall ratio import/direct: %.2f\n", (d[0] + d[1]) / (c[0] + c[1]));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, help_on_every_command);
	tcase_add_test(tc, import_refuses_bad_usage);
	tcase_add_test(tc, import_reports_rejected_lines);
	tcase_add_test(tc, import_resumes_after_max_chunks);
	tcase_add_test(tc, import_resolves_commit_before_journal);
	tcase_add_test(tc, import_survives_sigkill);
	tcase_add_test(tc, import_progress_on_a_terminal);
	tcase_add_test(tc, import_in_doubt_but_not_committed);
	tcase_add_test(tc, search_and_lookup);
	suite_add_tcase(s, tc);
	if (getenv("MSR_BENCH_IMPORT_LINES") != NULL) {
		/* tests/bench/bench_import.sh: CK_RUN_CASE=bench runs this alone */
		TCase *bc = tcase_create("bench");

		tcase_add_unchecked_fixture(bc, setup, teardown);
		tcase_set_timeout(bc, 1800);
		tcase_add_test(bc, bench_import);
		suite_add_tcase(s, bc);
	}
	return msr_test_run(s, 0);
}
