/*
 * harness.c — see harness.h.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

json_t *
msr_test_load_json(const char *name)
{
	char path[512];
	const char *dir = getenv("MSR_TEST_DATA");
	json_error_t err;
	json_t *j;

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/data", name);
	j = json_load_file(path, 0, &err);
	if (j == NULL) {
		fprintf(stderr, "cannot load %s: %s (line %d)\n", path, err.text, err.line);
		abort();
	}
	return j;
}

int
msr_test_run(Suite *s, int nofork)
{
	SRunner *sr = srunner_create(s);
	int failed;

	if (nofork)
		srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "harness: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

static int
free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		die("cannot find a free port: %s", strerror(errno));
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int
msr_it_run(char *const argv[], char **out)
{
	int pfd[2], status = -1;
	pid_t pid;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t n;

	if (buf == NULL || pipe(pfd) != 0)
		die("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (buf == NULL)
				die("out of memory");
		}
	}
	close(pfd[0]);
	buf[len] = '\0';
	waitpid(pid, &status, 0);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static PGconn *
connect_or_die(const char *url)
{
	PGconn *pg = PQconnectdb(url);

	if (PQstatus(pg) != CONNECTION_OK)
		die("cannot connect to %s: %s", url, PQerrorMessage(pg));
	return pg;
}

static void
exec_or_die(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		die("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
}

int
msr_it_sql(struct msr_it *it, const char *sql)
{
	PGconn *pg = connect_or_die(it->url_super);
	PGresult *res = PQexec(pg, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "harness: %s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(pg);
	return ok ? 0 : -1;
}

/* deploy/pg.sh's superuser: postgres when run as root, else the invoking user. */
static const char *
cluster_superuser(void)
{
	struct passwd *pw;

	if (getuid() == 0)
		return "postgres";
	pw = getpwuid(getuid());
	return pw != NULL ? pw->pw_name : "postgres";
}

static void
create_database(struct msr_it *it)
{
	char sql[512], db[96];
	PGconn *pg;

	snprintf(db, sizeof(db), "it_%s", it->name);
	snprintf(it->url_super, sizeof(it->url_super), "postgresql://%s@/postgres?host=%s/run",
	    cluster_superuser(),
	    it->pgbase);
	pg = connect_or_die(it->url_super);
	exec_or_die(pg, "SET client_min_messages = warning");
	exec_or_die(pg, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_owner')"
	    " THEN CREATE ROLE msreg_owner LOGIN; END IF;"
	    " IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_app')"
	    " THEN CREATE ROLE msreg_app LOGIN; END IF; END $$");
	/* the NOLOGIN owner of the schema (sql/008_privilege.sql), as deploy/pg.sh */
	exec_or_die(pg, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_schema')"
	    " THEN CREATE ROLE msreg_schema NOLOGIN; END IF; END $$");
	exec_or_die(pg, "GRANT msreg_schema TO msreg_owner");
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
	exec_or_die(pg, sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER msreg_owner", db);
	exec_or_die(pg, sql);
	PQfinish(pg);
	snprintf(it->url_super, sizeof(it->url_super), "postgresql://%s@/%s?host=%s/run",
	    cluster_superuser(),
	    db, it->pgbase);
	pg = connect_or_die(it->url_super);
	exec_or_die(pg, "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
	exec_or_die(pg, "ALTER SCHEMA public OWNER TO msreg_owner");
	PQfinish(pg);
	snprintf(it->url_app, sizeof(it->url_app), "postgresql://msreg_app@/%s?host=%s/run",
	    db, it->pgbase);
	snprintf(it->url_owner, sizeof(it->url_owner), "postgresql://msreg_owner@/%s?host=%s/run",
	    db, it->pgbase);
}

static void
write_config(struct msr_it *it, const char *extra)
{
	FILE *f;

	snprintf(it->config, sizeof(it->config), "%s/msreg.ini", it->dir);
	snprintf(it->keyfile, sizeof(it->keyfile), "%s/audit.key", it->dir);
	f = fopen(it->config, "w");
	if (f == NULL)
		die("cannot write %s", it->config);
	fprintf(f, "[http]\naddress = 127.0.0.1\nport = %d\nthreads = 16\n\n"
	    "[database]\nurl = %s\nowner_url = %s\npool_size = 8\npool_wait_ms = 2000\n\n"
	    "[audit]\norigin = it.msreg.test/%s\nkey_file = %s\n\n"
	    "[log]\nlevel = %s\n\n"
	    /* abuse limits that tests of other features step around (API.md);
	     * it_budget turns them back on */
	    "[budget]\nenabled = false\n\n[search]\nmin_bits = 0\n",
	    it->port, it->url_app, it->url_owner, it->name, it->keyfile,
	    getenv("MSR_IT_LOG") ? getenv("MSR_IT_LOG") : "warn");
	/* tests of other features step around the abuse limits (API.md); a test of
	 * the limits themselves says "[rate] enabled = true" in its extra_ini */
	fprintf(f, "\n[rate]\nenabled = false\n");
	/* load tests open many connections from 127.0.0.1: no per-address cap */
	fprintf(f, "\n[http]\nper_address_connections = 0\n");
	if (extra != NULL)
		fprintf(f, "\n%s\n", extra);
	fclose(f);
}

void
msr_it_setup(struct msr_it *it, const char *name, const char *extra_ini)
{
	msr_it_setup_at(it, name, extra_ini, getenv("MSR_IT_PGBASE"));
}

void
msr_it_setup_at(struct msr_it *it, const char *name, const char *extra_ini,
    const char *base)
{
	const char *bin = getenv("MSR_IT_BIN");
	char path[600], origin[128], *out = NULL;

	memset(it, 0, sizeof(*it));
	if (base == NULL)
		die("MSR_IT_PGBASE is not set: run integration tests through tests/run-integration.sh");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(it->name, sizeof(it->name), "%s", name);
	snprintf(it->pgbase, sizeof(it->pgbase), "%s", base);
	snprintf(it->bin, sizeof(it->bin), "%s", bin ? bin : "bin");
	snprintf(it->dir, sizeof(it->dir), "%s/../it-%s", base, name);
	mkdir(it->dir, 0700);
	it->port = free_port();
	create_database(it);
	write_config(it, extra_ini);

	snprintf(path, sizeof(path), "%s/msreg", it->bin);
	snprintf(origin, sizeof(origin), "it.msreg.test/%s", name);
	unlink(it->keyfile);
	{
		char state[700];

		snprintf(state, sizeof(state), "%s.state", it->keyfile);
		unlink(state);	/* the audit high-water mark of an earlier run */
	}
	{
		char *argv[] = { path, "keygen", "--name", origin, "--out", it->keyfile, NULL };
		if (msr_it_run(argv, &out) != 0)
			die("msreg keygen failed");
		out[strcspn(out, "\n")] = '\0';
		snprintf(it->vkey, sizeof(it->vkey), "%s", out);
		free(out);
	}
	{
		char *argv[] = { path, "--config", it->config, "migrate", NULL };
		if (msr_it_run(argv, NULL) != 0)
			die("msreg migrate failed");
	}
	{
		char *argv[] = { path, "--config", it->config, "client", "create", "--role", "admin",
		    "--name", "it-admin", NULL };
		if (msr_it_run(argv, &out) != 0)
			die("msreg client create failed");
		out[strcspn(out, "\n")] = '\0';
		snprintf(it->admin_key, sizeof(it->admin_key), "%s", out);
		free(out);
	}
	if (msr_it_start(it) != 0)
		die("msregd did not become healthy");
	if (msr_it_wait_ready(it, 60000) != 0)
		die("msregd did not become ready (database, audit log, search index)");
}

void
msr_it_instance(const struct msr_it *src, struct msr_it *dst, const char *tag,
    const char *extra_ini)
{
	char line[1024];
	FILE *in, *out;

	*dst = *src;
	dst->pid = 0;
	dst->port = free_port();
	/* an instance configured with a certificate speaks https */
	dst->tls = extra_ini != NULL && strstr(extra_ini, "tls_cert") != NULL;
	snprintf(dst->config, sizeof(dst->config), "%s/msreg-%s.ini", src->dir, tag);
	in = fopen(src->config, "r");
	out = fopen(dst->config, "w");
	if (in == NULL || out == NULL)
		die("cannot copy %s to %s", src->config, dst->config);
	while (fgets(line, sizeof(line), in) != NULL) {
		if (strncmp(line, "port = ", 7) == 0)
			fprintf(out, "port = %d\n", dst->port);
		else
			fputs(line, out);
	}
	if (extra_ini != NULL)
		fprintf(out, "\n%s\n", extra_ini);
	fclose(in);
	fclose(out);
	if (msr_it_start(dst) != 0)
		die("msregd instance %s did not become healthy", tag);
}

int
msr_it_start(struct msr_it *it)
{
	char path[600], logpath[600];
	struct timespec ts = { 0, 50 * 1000000L };

	snprintf(path, sizeof(path), "%s/msregd", it->bin);
	snprintf(logpath, sizeof(logpath), "%s/msregd.log", it->dir);
	it->pid = fork();
	if (it->pid < 0)
		die("fork: %s", strerror(errno));
	if (it->pid == 0) {
		FILE *log = fopen(logpath, "a");
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (log != NULL)
			dup2(fileno(log), STDERR_FILENO);
		execl(path, path, "--config", it->config, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int st;
		if (msr_it_status(it, "GET", "/healthz", NULL, NULL) == 200)
			return 0;
		if (waitpid(it->pid, &st, WNOHANG) == it->pid) {
			it->pid = 0;
			fprintf(stderr, "harness: msregd exited; see %s\n", logpath);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	return -1;
}

int
msr_it_wait_ready(struct msr_it *it, int timeout_ms)
{
	struct timespec ts = { 0, 50 * 1000000L };

	for (int waited = 0; waited < timeout_ms; waited += 50) {
		if (msr_it_status(it, "GET", "/readyz", NULL, NULL) == 200)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

void
msr_it_stop(struct msr_it *it, int sig)
{
	int st;

	if (it->pid <= 0)
		return;
	kill(it->pid, sig);
	for (int i = 0; i < 200; i++) {
		struct timespec ts = { 0, 50 * 1000000L };
		if (waitpid(it->pid, &st, WNOHANG) == it->pid) {
			it->pid = 0;
			return;
		}
		nanosleep(&ts, NULL);
	}
	kill(it->pid, SIGKILL);
	waitpid(it->pid, &st, 0);
	it->pid = 0;
}

void
msr_it_teardown(struct msr_it *it)
{
	msr_it_stop(it, SIGTERM);
}

struct buf {
	char   *p;
	size_t  len;
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *user)
{
	struct buf *b = user;
	size_t n = size * nmemb;
	char *p = realloc(b->p, b->len + n + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->len, data, n);
	b->p = p;
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *user)
{
	struct msr_it_resp *r = user;
	size_t n = size * nmemb;
	char line[512];

	snprintf(line, sizeof(line), "%.*s", (int)(n < 511 ? n : 511), data);
	line[strcspn(line, "\r\n")] = '\0';
	if (strncasecmp(line, "Audit-Index:", 12) == 0)
		r->audit_index = strtol(line + 12, NULL, 10);
	else if (strncasecmp(line, "Content-Type:", 13) == 0)
		snprintf(r->ctype, sizeof(r->ctype), "%.127s", line + 14);
	else if (strncasecmp(line, "Retry-After:", 12) == 0)
		snprintf(r->retry_after, sizeof(r->retry_after), "%.31s", line + 13);
	return n;
}

int
msr_it_request(struct msr_it *it, const char *method, const char *path, const char *key,
    const char *ctype, const char *body, struct msr_it_resp *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = { NULL, 0 };
	char url[1024], hdr[256];
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	out->audit_index = -1;
	snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", it->tls ? "https" : "http",
	    it->port, path);
	if (it->tls) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (key != NULL) {
		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", key);
		h = curl_slist_append(h, hdr);
	}
	if (body != NULL) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype ? ctype : "application/json");
		h = curl_slist_append(h, hdr);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	out->body = b.p ? b.p : strdup("");
	out->len = b.len;
	if (strncmp(out->ctype, "application/json", 16) == 0 && out->len > 0)
		out->json = json_loadb(out->body, out->len, 0, NULL);
	return rc == CURLE_OK ? 0 : -1;
}

void
msr_it_resp_free(struct msr_it_resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

long
msr_it_status(struct msr_it *it, const char *method, const char *path, const char *key,
    const char *body)
{
	struct msr_it_resp r;
	long st;

	if (msr_it_request(it, method, path, key, NULL, body, &r) != 0) {
		msr_it_resp_free(&r);
		return -1;
	}
	st = r.status;
	msr_it_resp_free(&r);
	return st;
}

const char *
msr_it_error_code(const struct msr_it_resp *r)
{
	const char *s = json_string_value(json_object_get(json_object_get(r->json, "error"),
	    "code"));

	return s ? s : "";
}

void
msr_it_client(struct msr_it *it, const char *role, const char *name, const char *org,
    char *key_out, size_t keylen)
{
	struct msr_it_resp r;
	json_t *req = json_pack("{s:s, s:s}", "name", name, "role", role);
	char *body;

	if (org != NULL)
		json_object_set_new(req, "org", json_string(org));
	body = json_dumps(req, JSON_COMPACT);
	if (msr_it_request(it, "POST", "/v1/clients", it->admin_key, NULL, body, &r) != 0 ||
	    r.status != 201)
		die("cannot create client %s (%s): %ld %s", name, role, r.status, r.body);
	snprintf(key_out, keylen, "%s", json_string_value(json_object_get(r.json, "api_key")));
	msr_it_resp_free(&r);
	free(body);
	json_decref(req);
}

void
msr_it_srcpath(const char *rel, char *out, size_t len)
{
	const char *bin = getenv("MSR_IT_BIN");

	snprintf(out, len, "%s/../%s", bin ? bin : "bin", rel);
}

static int
pg_sh(const char *cmd, const char *base, const char *arg)
{
	char script[600];
	char *argv[] = { script, (char *)cmd, (char *)base, (char *)arg, NULL };
	char *out = NULL;
	int rc;

	msr_it_srcpath("deploy/pg.sh", script, sizeof(script));
	rc = msr_it_run(argv, &out);
	if (rc != 0)
		fprintf(stderr, "harness: pg.sh %s %s failed (%d): %s\n", cmd, base, rc, out);
	free(out);
	return rc;
}

int
msr_it_cluster_start(const char *base)
{
	return pg_sh("start", base, NULL);
}

int
msr_it_cluster_stop(const char *base)
{
	return pg_sh("stop", base, NULL);
}

int
msr_it_replica_start(const char *base, const char *primary)
{
	return pg_sh("replica", base, primary);
}

void
msr_it_pgurl(const char *base, const char *db, const char *role, char *out, size_t len)
{
	snprintf(out, len, "postgresql://%s@/%s?host=%s/run", role ? role : cluster_superuser(),
	    db, base);
}

char *
msr_it_query(const char *url, const char *sql)
{
	PGconn *pg = PQconnectdb(url);
	PGresult *res;
	char *ret = NULL;

	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "harness: cannot connect to %s: %s", url, PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	res = PQexec(pg, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		ret = strdup(PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ?
		    PQgetvalue(res, 0, 0) : "");
	else if (PQresultStatus(res) == PGRES_COMMAND_OK)
		ret = strdup("");
	else
		fprintf(stderr, "harness: %s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(pg);
	return ret;
}

/* Copy s into out (len bytes) with every occurrence of from replaced by to. */
static void
replace_all(const char *s, const char *from, const char *to, char *out, size_t len)
{
	size_t used = 0, nf = strlen(from);
	const char *p;

	out[0] = '\0';
	while ((p = strstr(s, from)) != NULL && used < len) {
		used += (size_t)snprintf(out + used, len - used, "%.*s%s", (int)(p - s), s, to);
		s = p + nf;
	}
	if (used < len)
		snprintf(out + used, len - used, "%s", s);
}

int
msr_it_instance_on(const struct msr_it *src, struct msr_it *dst, const char *tag,
    const char *extra_ini, const char *pgbase)
{
	char line[1024], fixed[1400], tmp[768], from[600], to[600];
	FILE *in, *out;

	*dst = *src;
	dst->pid = 0;
	dst->port = free_port();
	snprintf(dst->pgbase, sizeof(dst->pgbase), "%s", pgbase);
	snprintf(dst->config, sizeof(dst->config), "%s/msreg-%s.ini", src->dir, tag);
	/* only the socket directory in libpq URLs changes */
	snprintf(from, sizeof(from), "host=%s/run", src->pgbase);
	snprintf(to, sizeof(to), "host=%s/run", pgbase);
	replace_all(src->url_app, from, to, tmp, sizeof(tmp));
	snprintf(dst->url_app, sizeof(dst->url_app), "%s", tmp);
	replace_all(src->url_owner, from, to, tmp, sizeof(tmp));
	snprintf(dst->url_owner, sizeof(dst->url_owner), "%s", tmp);
	replace_all(src->url_super, from, to, tmp, sizeof(tmp));
	snprintf(dst->url_super, sizeof(dst->url_super), "%s", tmp);
	in = fopen(src->config, "r");
	out = fopen(dst->config, "w");
	if (in == NULL || out == NULL)
		die("cannot copy %s to %s", src->config, dst->config);
	while (fgets(line, sizeof(line), in) != NULL) {
		if (strncmp(line, "port = ", 7) == 0) {
			fprintf(out, "port = %d\n", dst->port);
			continue;
		}
		replace_all(line, from, to, fixed, sizeof(fixed));
		fputs(fixed, out);
	}
	if (extra_ini != NULL)
		fprintf(out, "\n%s\n", extra_ini);
	fclose(in);
	fclose(out);
	return msr_it_start(dst);
}
