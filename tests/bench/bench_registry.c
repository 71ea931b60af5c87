/*
 * bench_registry.c — registry core throughput and latency, end to end over
 * HTTP against a real msregd and PostgreSQL (tests/bench/run.sh provides the
 * throwaway cluster), each figure next to a baseline measured in the same run:
 *
 *   1. allocation: POST /v1/codes/allocate {"count":10000} from clients
 *      parallel clients → codes/s;
 *   2. registration: POST /v1/firearms/batch with 10,000-firearm batches
 *      (one allocated rs8 code each) from clients parallel clients →
 *      firearms/s, against a plain COPY of the same rows (firearms + codes,
 *      10,000 per transaction, same number of parallel connections) into the
 *      same tables, and the ratio;
 *   3. exact lookup: GET /v1/codes/{code} (audited: each answer waits for its
 *      audit entry's group commit) from LOOKUP_THREADS threads at the final
 *      registry size → p50/p99 and lookups/s, against the same SELECT run
 *      directly through libpq.
 *
 * BENCH_CLIENTS sets the number of parallel clients (default 4, at most 16).
 * Registration runs in ROUNDS rounds, each a COPY phase then an HTTP phase of
 * the same size (one batch per client per round with BENCH_SCALE=small, 8
 * otherwise: 1.2e5 or 9.6e5 rows per side); the goal compares the medians.
 * Request bodies are built before the clock starts, so the figures measure
 * the server, not the client's JSON encoder. Any failed request or COPY ends
 * the run with exit 1.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "harness.h"

#define BATCH          10000
#define MAX_CLIENTS    16
#define LOOKUP_THREADS 8
#define CODE_LEN       8
#define ROUNDS         3

static struct msr_it it;
static char k_mfr[128], k_inv[128];
static int clients = 4;           /* BENCH_clients overrides */

static void __attribute__((noreturn))
fail(const char *what)
{
	fprintf(stderr, "bench_registry: %s\n", what);
	exit(1);
}

/* ---- a keep-alive HTTP client per thread ---------------------------------- */

struct client {
	CURL              *curl;
	struct curl_slist *headers;
	char              *buf;
	size_t             len, cap;
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *user)
{
	struct client *c = user;
	size_t n = size * nmemb;

	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 65536;
		char *p;
		while (cap < c->len + n + 1)
			cap *= 2;
		p = realloc(c->buf, cap);
		if (p == NULL)
			return 0;
		c->buf = p;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, data, n);
	c->len += n;
	c->buf[c->len] = '\0';
	return n;
}

static void
client_init(struct client *c, const char *key)
{
	char hdr[256];

	memset(c, 0, sizeof(*c));
	c->curl = curl_easy_init();
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", key);
	c->headers = curl_slist_append(c->headers, hdr);
	c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
	c->headers = curl_slist_append(c->headers, "Expect:");
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 300L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
}

static void
client_free(struct client *c)
{
	curl_slist_free_all(c->headers);
	curl_easy_cleanup(c->curl);
	free(c->buf);
}

/* One request; returns the HTTP status (reply in c->buf), -1 on transport error. */
static long
client_call(struct client *c, const char *method, const char *path, const char *body)
{
	char url[512];
	long status = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", it.port, path);
	c->len = 0;
	if (c->buf)
		c->buf[0] = '\0';
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	}
	if (curl_easy_perform(c->curl) == CURLE_OK)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* ---- 1. allocation ------------------------------------------------------- */

struct alloc_job {
	int    requests;
	char  *codes;          /* requests * BATCH codes of CODE_LEN chars, packed */
	int    ok;
};

static void *
alloc_thread(void *arg)
{
	struct alloc_job *j = arg;
	struct client c;
	char body[32];
	size_t k = 0;

	client_init(&c, k_mfr);
	snprintf(body, sizeof(body), "{\"count\":%d}", BATCH);
	j->ok = 1;
	for (int i = 0; i < j->requests; i++) {
		json_t *reply, *list;
		if (client_call(&c, "POST", "/v1/codes/allocate", body) != 201) {
			fprintf(stderr, "allocate: %s\n", c.buf ? c.buf : "");
			j->ok = 0;
			break;
		}
		reply = json_loads(c.buf, 0, NULL);
		list = json_object_get(reply, "codes");
		for (size_t n = 0; n < json_array_size(list); n++)
			memcpy(j->codes + CODE_LEN * k++, json_string_value(json_array_get(list, n)),
			    CODE_LEN);
		json_decref(reply);
	}
	client_free(&c);
	return NULL;
}

/* Allocate requests*BATCH codes per client; returns them packed (caller frees). */
static char *
bench_allocate(int requests_per_client, size_t *ncodes)
{
	pthread_t th[MAX_CLIENTS];
	struct alloc_job jobs[MAX_CLIENTS];
	size_t per = (size_t)requests_per_client * BATCH;
	char *all = malloc(per * clients * CODE_LEN);
	double t0, t;

	if (all == NULL)
		fail("out of memory");
	t0 = msr_now_s();
	for (int i = 0; i < clients; i++) {
		jobs[i].requests = requests_per_client;
		jobs[i].codes = all + (size_t)i * per * CODE_LEN;
		pthread_create(&th[i], NULL, alloc_thread, &jobs[i]);
	}
	for (int i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		if (!jobs[i].ok)
			fail("allocation failed");
	}
	t = msr_now_s() - t0;
	*ncodes = per * clients;
	printf("allocation      %zu codes in %.2f s: %.0f codes/s "
	    "(%d clients x %d requests of %d)\n", *ncodes, t, (double)*ncodes / t,
	    clients, requests_per_client, BATCH);
	return all;
}

/* ---- 2. registration over HTTP vs COPY ----------------------------------- */

/* Batch body for firearms [first, first+BATCH) using codes[first..]. */
static char *
batch_body(const char *codes, size_t first)
{
	size_t cap = (size_t)BATCH * 200 + 64, len = 0;
	char *b = malloc(cap);
	int n;

	if (b == NULL)
		fail("out of memory");
	len += (size_t)snprintf(b, cap, "{\"firearms\":[");
	for (size_t i = first; i < first + BATCH; i++) {
		n = snprintf(b + len, cap - len,
		    "%s{\"model\":\"P320\",\"serial\":\"API-%zu\",\"type\":\"pistol\","
		    "\"caliber\":\"9mm\",\"manufactured_on\":\"2026-01-15\","
		    "\"codes\":[{\"code\":\"%.8s\",\"component\":\"firing_pin\"}]}",
		    i == first ? "" : ",", i, codes + CODE_LEN * i);
		len += (size_t)n;
	}
	snprintf(b + len, cap - len, "]}");
	return b;
}

struct reg_job {
	char  **bodies;
	int     nbodies;
	int     first, step;      /* this client sends bodies first, first+step, ... */
	int     ok;
};

static void *
reg_thread(void *arg)
{
	struct reg_job *j = arg;
	struct client c;

	client_init(&c, k_mfr);
	j->ok = 1;
	for (int i = j->first; i < j->nbodies; i += j->step)
		if (client_call(&c, "POST", "/v1/firearms/batch", j->bodies[i]) != 201) {
			fprintf(stderr, "batch: %.300s\n", c.buf ? c.buf : "");
			j->ok = 0;
			break;
		}
	client_free(&c);
	return NULL;
}

/*
 * CPU seconds (user + system) msregd's threads have used so far: [0] the HTTP
 * worker threads (handlers, JSON), [1] every other thread (search feed, audit
 * sequencer, main).
 */
static void
daemon_cpu(double out[2])
{
	char path[320], buf[1024], *p;
	unsigned long long ut, st;
	struct dirent *d;
	DIR *dir;
	FILE *f;

	out[0] = out[1] = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)it.pid);
	dir = opendir(path);
	if (dir == NULL)
		return;
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)it.pid, d->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		ut = st = 0;
		if (fgets(buf, sizeof(buf), f) != NULL) {
			p = strrchr(buf, ')');
			if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			    "%llu %llu", &ut, &st) == 2)
				out[strstr(buf, "(MHD") != NULL ? 0 : 1] +=
				    (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
		}
		fclose(f);
	}
	closedir(dir);
}

static double
bench_register_http(const char *codes, size_t first, size_t n)
{
	double cpu0[2], cpu1[2];
	pthread_t th[MAX_CLIENTS];
	struct reg_job jobs[MAX_CLIENTS];
	int nb = (int)(n / BATCH);
	char **bodies = calloc((size_t)nb, sizeof(*bodies));
	double t0, t;

	n = (size_t)nb * BATCH;
	for (int i = 0; i < nb; i++)
		bodies[i] = batch_body(codes, first + (size_t)i * BATCH);
	daemon_cpu(cpu0);
	t0 = msr_now_s();
	for (int i = 0; i < clients; i++) {
		jobs[i].bodies = bodies;
		jobs[i].nbodies = nb;
		jobs[i].first = i;
		jobs[i].step = clients;
		pthread_create(&th[i], NULL, reg_thread, &jobs[i]);
	}
	for (int i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		if (!jobs[i].ok)
			fail("batch registration failed");
	}
	t = msr_now_s() - t0;
	for (int i = 0; i < nb; i++)
		free(bodies[i]);
	free(bodies);
	daemon_cpu(cpu1);
	printf("register HTTP   %zu firearms in %.2f s: %.0f firearms/s "
	    "(%d clients, batches of %d, one rs8 code each)\n",
	    n, t, (double)n / t, clients, BATCH);
	printf("                msregd CPU: %.2f s in HTTP workers, %.2f s in other threads "
	    "(search feed, audit)\n", cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]);
	return (double)n / t;
}

struct copy_job {
	const char *codes;
	long long   created_by;         /* the manufacturer client, as the API records */
	size_t      first, end, step;   /* rows [first, end) in steps of BATCH*clients */
	int         ok;
};

static int
copy_rows(PGconn *pg, const char *sql, const char *data, size_t len)
{
	PGresult *res = PQexec(pg, sql);
	int ok = PQresultStatus(res) == PGRES_COPY_IN;

	PQclear(res);
	if (!ok)
		return 0;
	if (PQputCopyData(pg, data, (int)len) != 1 || PQputCopyEnd(pg, NULL) != 1)
		return 0;
	res = PQgetResult(pg);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "COPY: %s", PQresultErrorMessage(res));
	PQclear(res);
	while ((res = PQgetResult(pg)) != NULL)
		PQclear(res);
	return ok;
}

static void *
copy_thread(void *arg)
{
	struct copy_job *j = arg;
	PGconn *pg = PQconnectdb(it.url_app);
	size_t cap = (size_t)BATCH * 128, len;
	char *f = malloc(cap), *c = malloc(cap);
	PGresult *res;

	j->ok = PQstatus(pg) == CONNECTION_OK && f != NULL && c != NULL;
	for (size_t b = j->first; j->ok && b + BATCH <= j->end; b += j->step) {
		long long id;
		res = PQexec(pg, "BEGIN");
		PQclear(res);
		res = PQexec(pg, "SELECT nextval('firearms_id_seq') FROM generate_series(1, 10000)");
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != BATCH) {
			PQclear(res);
			j->ok = 0;
			break;
		}
		len = 0;
		for (int i = 0; i < BATCH; i++) {
			id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
			len += (size_t)snprintf(f + len, cap - len,
			    "%lld\tacme\tP320\tCOPY-%zu\tpistol\t9mm\t2026-01-15\t%lld\n", id,
			    b + (size_t)i, j->created_by);
		}
		if (!copy_rows(pg, "COPY firearms (id, manufacturer_id, model, serial, type,"
		    " caliber, manufactured_on, created_by) FROM STDIN", f, len)) {
			PQclear(res);
			j->ok = 0;
			break;
		}
		len = 0;
		for (int i = 0; i < BATCH; i++)
			len += (size_t)snprintf(c + len, cap - len, "%.8s\trs8\tfiring_pin\t%s\n",
			    j->codes + CODE_LEN * (b + (size_t)i), PQgetvalue(res, i, 0));
		PQclear(res);
		if (!copy_rows(pg, "COPY codes (code, scheme, component, firearm_id) FROM STDIN",
		    c, len)) {
			j->ok = 0;
			break;
		}
		res = PQexec(pg, "COMMIT");
		j->ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	free(f);
	free(c);
	PQfinish(pg);
	return NULL;
}

static double
bench_register_copy(const char *codes, size_t first, size_t n, long long created_by)
{
	pthread_t th[MAX_CLIENTS];
	struct copy_job jobs[MAX_CLIENTS];
	double t0, t;

	n = n / BATCH * BATCH;
	t0 = msr_now_s();
	for (int i = 0; i < clients; i++) {
		jobs[i].codes = codes;
		jobs[i].created_by = created_by;
		jobs[i].first = first + (size_t)i * BATCH;
		jobs[i].end = first + n;
		jobs[i].step = (size_t)BATCH * clients;
		pthread_create(&th[i], NULL, copy_thread, &jobs[i]);
	}
	for (int i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		if (!jobs[i].ok)
			fail("COPY failed");
	}
	t = msr_now_s() - t0;
	printf("register COPY   %zu firearms in %.2f s: %.0f firearms/s "
	    "(%d connections, COPY firearms + COPY codes, %d rows per transaction)\n",
	    n, t, (double)n / t, clients, BATCH);
	return (double)n / t;
}

/* The id of the API client named name (the firearms' created_by). */
static long long
client_id(const char *name)
{
	const char *values[1] = { name };
	PGconn *pg = PQconnectdb(it.url_super);
	PGresult *res = PQexecParams(pg, "SELECT id FROM api_clients WHERE name = $1", 1,
	    NULL, values, NULL, NULL, 0);
	long long id = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(pg);
	if (id < 0)
		fail("cannot find the manufacturer client");
	return id;
}

/*
 * Let the previous phase's after-effects (the daemon's search feed catching
 * up, autovacuum's analyze of the new rows) finish before the next clock
 * starts, and checkpoint so that no phase pays for the previous one's WAL
 * (a checkpoint falling inside one timed phase made runs differ by 1.6x).
 */
static void
settle(enum bench_scale scale)
{
	struct timespec ts = { scale == BENCH_SMALL ? 1 : 3, 0 };

	nanosleep(&ts, NULL);
	if (msr_it_sql(&it, "CHECKPOINT") != 0)
		fail("CHECKPOINT failed");
}

/* ---- 3. exact lookup ----------------------------------------------------- */

struct lookup_job {
	const char *codes;
	size_t      ncodes;
	int         n;
	double     *lat;       /* seconds, n entries */
	int         ok;
};

static void *
lookup_thread(void *arg)
{
	struct lookup_job *j = arg;
	struct client c;
	char path[160];

	client_init(&c, k_inv);
	j->ok = 1;
	for (int i = 0; i < j->n; i++) {
		size_t k = randombytes_uniform((uint32_t)j->ncodes);
		double t0 = msr_now_s();
		snprintf(path, sizeof(path),
		    "/v1/codes/%.8s?case_number=BENCH-1&purpose=benchmark", j->codes + CODE_LEN * k);
		if (client_call(&c, "GET", path, NULL) != 200) {
			fprintf(stderr, "lookup: %s\n", c.buf ? c.buf : "");
			j->ok = 0;
			break;
		}
		j->lat[i] = msr_now_s() - t0;
	}
	client_free(&c);
	return NULL;
}

static void
report_latency(const char *what, double *lat, size_t n, double wall, int threads)
{
	double p99 = bench_percentile(lat, n, 99);

	printf("%-15s %zu lookups, %d threads: p50 %.2f ms, p99 %.2f ms, %.0f lookups/s\n",
	    what, n, threads, bench_percentile(lat, n, 50) * 1e3, p99 * 1e3, (double)n / wall);
}

static void
bench_lookup(const char *codes, size_t ncodes, int per_thread)
{
	pthread_t th[LOOKUP_THREADS];
	struct lookup_job jobs[LOOKUP_THREADS];
	size_t total = (size_t)per_thread * LOOKUP_THREADS, sql_total = 20000;
	double *lat = calloc(total > sql_total ? total : sql_total, sizeof(*lat)), t0, wall;
	PGconn *pg;
	PGresult *res;

	t0 = msr_now_s();
	for (int i = 0; i < LOOKUP_THREADS; i++) {
		jobs[i].codes = codes;
		jobs[i].ncodes = ncodes;
		jobs[i].n = per_thread;
		jobs[i].lat = lat + (size_t)i * (size_t)per_thread;
		pthread_create(&th[i], NULL, lookup_thread, &jobs[i]);
	}
	for (int i = 0; i < LOOKUP_THREADS; i++) {
		pthread_join(th[i], NULL);
		if (!jobs[i].ok)
			fail("lookup failed");
	}
	wall = msr_now_s() - t0;
	report_latency("lookup HTTP", lat, total, wall, LOOKUP_THREADS);

	/* baseline: the handler's join, straight through libpq, one connection */
	pg = PQconnectdb(it.url_app);
	res = PQprepare(pg, "q", "SELECT c.code, c.status, c.component, f.id, f.model,"
	    " f.serial, s.dealer_ffl FROM codes c JOIN firearms f ON f.id = c.firearm_id"
	    " LEFT JOIN first_sales s ON s.firearm_id = f.id WHERE c.code = $1", 1, NULL);
	PQclear(res);
	total = sql_total;
	t0 = msr_now_s();
	for (size_t i = 0; i < total; i++) {
		char code[CODE_LEN + 1];
		const char *values[1] = { code };
		double t1 = msr_now_s();
		memcpy(code, codes + CODE_LEN * randombytes_uniform((uint32_t)ncodes), CODE_LEN);
		code[CODE_LEN] = '\0';
		res = PQexecPrepared(pg, "q", 1, values, NULL, NULL, 0);
		if (PQntuples(res) != 1)
			fail("SQL lookup found nothing");
		PQclear(res);
		lat[i] = msr_now_s() - t1;
	}
	wall = msr_now_s() - t0;
	report_latency("lookup SQL", lat, total, wall, 1);
	PQfinish(pg);
	free(lat);
}

int
main(void)
{
	enum bench_scale scale = bench_scale();
	/* batches per client per round: both sides register the same number of rows */
	int per_round = scale == BENCH_SMALL ? 1 : 8;
	size_t side, round_n, ncodes;
	int lookups = scale == BENCH_SMALL ? 500 : 2000;
	char *codes, m[64], b[96];
	double api[ROUNDS], copy[ROUNDS], ratio[ROUNDS], api_m, copy_m, ratio_m;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodium_init() < 0)
		fail("libsodium");
	if (getenv("BENCH_CLIENTS") != NULL)
		clients = atoi(getenv("BENCH_CLIENTS"));
	if (clients < 1 || clients > MAX_CLIENTS)
		fail("BENCH_CLIENTS must be 1 to 16");
	round_n = (size_t)per_round * (size_t)clients * BATCH;
	side = ROUNDS * round_n;
	msr_it_setup(&it, "bench_registry", BENCH_INI);
	if (msr_it_status(&it, "POST", "/v1/manufacturers", it.admin_key,
	    "{\"id\":\"acme\",\"name\":\"Acme Arms\"}") != 201)
		fail("cannot create manufacturer");
	msr_it_client(&it, "manufacturer", "bench line", "acme", k_mfr, sizeof(k_mfr));
	msr_it_client(&it, "investigator", "bench lab", "CA0194200", k_inv, sizeof(k_inv));
	printf("registry bench: %zu firearms through the API, %zu by COPY, in %d alternating "
	    "rounds\n", side, side, ROUNDS);

	codes = bench_allocate((int)(2 * side / ((size_t)BATCH * clients)), &ncodes);
	if (ncodes < 2 * side)
		fail("allocation returned too few codes");
	for (int r = 0; r < ROUNDS; r++) {
		settle(scale);
		copy[r] = bench_register_copy(codes, side + (size_t)r * round_n, round_n,
		    client_id("bench line"));
		settle(scale);
		api[r] = bench_register_http(codes, (size_t)r * round_n, round_n);
		ratio[r] = api[r] / copy[r];
		printf("register round %d HTTP batch API / COPY = %.2f\n", r + 1, ratio[r]);
	}
	/* the verdict: the median of the per-round ratios (each round pairs two
	 * adjacent phases, so a burst of load elsewhere hits both sides alike) */
	api_m = bench_percentile(api, ROUNDS, 50);
	copy_m = bench_percentile(copy, ROUNDS, 50);
	ratio_m = bench_percentile(ratio, ROUNDS, 50);
	printf("register ratio  median of round ratios %.2f (median HTTP %.0f / median COPY %.0f"
	    " firearms/s = %.2f)\n", ratio_m, api_m, copy_m, api_m / copy_m);
	snprintf(m, sizeof(m), "%.0f/s (%.2fx)", api_m, ratio_m);
	snprintf(b, sizeof(b), "COPY same rows %.0f/s", copy_m);
	bench_goal("batch", "batch registration >= 0.8x COPY", m, b, ratio_m >= 0.8);
	settle(scale);
	bench_lookup(codes, 2 * side, lookups);
	free(codes);
	msr_it_teardown(&it);
	return 0;
}
