/*
 * driver.c — sets the stage for the browser tests of the web console and runs
 * them: a real msregd on a throwaway database (tests/harness.c, under
 * tests/run-integration.sh), a client of every role, a manufacturer with
 * firearms (one of them sold, so a search finds a sale), and a 1,000-line
 * production file for the upload. Then it runs `node console.test.mjs STAGE`
 * (tests/browser/), which drives Debian's Chromium through playwright-core,
 * and exits with its status.
 *
 * msregd runs with the abuse limits on, as in production (the harness turns
 * them off for tests of other features).
 *
 * The stage is a JSON file in the test's scratch directory (mode 0600): the
 * daemon's URL, one API key per role, the expected search candidate and the
 * production file's path and expected counts. Keys go to the browser only by
 * typing them into the sign-in form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define UPLOAD_LINES 1000
#define BAD_LINES    2      /* one rejected in the browser, one by the API */
#define BUDGET_CASE  3      /* [budget] case_24h: redteam.test.mjs's 4th firearm is refused */
#define EXTRA_CODES  (2 + BUDGET_CASE + 2)

/* Attacker-controlled strings (redteam.test.mjs): markup that would run if a
 * view ever put API text into innerHTML or an attribute that takes code. */
#define XSS_MODEL   "<img src=x onerror=window.__pwned=1>"
#define XSS_SERIAL  "\"><svg onload=window.__pwned=2>"
#define XSS_CALIBER "<script>window.__pwned=3</script>"
#define XSS_CLIENT  "<img src=x onerror=window.__pwned=4> Det. Mallory"

static void
die(const char *what, const struct msr_it_resp *r)
{
	fprintf(stderr, "browser driver: %s: %ld %s\n", what, r ? r->status : 0L,
	    r && r->body ? r->body : "");
	exit(1);
}

/* POST and expect `want`; returns the parsed reply (caller decrefs). */
static json_t *
post(struct msr_it *it, const char *path, const char *key, json_t *body, long want)
{
	struct msr_it_resp r;
	char *text = json_dumps(body, JSON_COMPACT);
	json_t *out;

	if (msr_it_request(it, "POST", path, key, NULL, text, &r) != 0 || r.status != want)
		die(path, &r);
	out = json_incref(r.json);
	msr_it_resp_free(&r);
	free(text);
	json_decref(body);
	return out;
}

static json_t *
firearm_of(const char *model, const char *serial, const char *caliber, const char *code)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s}]}", "model", model,
	    "serial", serial, "type", "pistol", "caliber", caliber, "manufactured_on", "2026-10-01",
	    "codes", "code", code, "component", "firing_pin");
}

static json_t *
firearm(const char *serial, const char *code)
{
	return firearm_of("P320", serial, "9mm", code);
}

/* node SCRIPT STAGE; its exit status (1 if it could not run). */
static int
run_node(const char *script, const char *stage)
{
	int status = 1;
	pid_t pid = fork();

	if (pid == 0) {
		execlp("node", "node", script, stage, (char *)NULL);
		perror("node");
		_exit(127);
	}
	if (pid > 0 && waitpid(pid, &status, 0) == pid)
		status = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	return status;
}

int
main(void)
{
	struct msr_it it;
	char inv[128], aud[128], man[128], dea[128], xss[128], url[64], stage[700], csv[700];
	json_t *codes, *reply, *st, *budget_codes;
	const char *search_code, *c;
	FILE *f;
	int status = 1;

	/* the console must work under the production limits (config.example.ini):
	 * a page load is ~15 unauthenticated requests from one address */
	msr_it_setup(&it, "browser", "[rate]\nenabled = true\n\n[http]\nper_address_connections = 64"
	    "\n\n[budget]\nenabled = true\ncase_24h = 3\n\n[search]\nmin_bits = 20");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", it.port);

	/* clients of every role, a manufacturer and its firearms */
	json_decref(post(&it, "/v1/manufacturers", it.admin_key,
	    json_pack("{s:s, s:s}", "id", "acme", "name", "Acme Arms"), 201));
	msr_it_client(&it, "investigator", "Det. Rivera", "CA0194200", inv, sizeof(inv));
	msr_it_client(&it, "auditor", "Inspector Chen", NULL, aud, sizeof(aud));
	msr_it_client(&it, "manufacturer", "Acme production office", "acme", man, sizeof(man));
	msr_it_client(&it, "dealer", "Main Street Guns", "1-23-456-07-6B-12345", dea, sizeof(dea));
	msr_it_client(&it, "investigator", XSS_CLIENT, "CA0194200", xss, sizeof(xss));
	reply = post(&it, "/v1/codes/allocate", man,
	    json_pack("{s:i}", "count", UPLOAD_LINES + EXTRA_CODES), 201);
	codes = json_object_get(reply, "codes");
	search_code = json_string_value(json_array_get(codes, 0));
	json_decref(post(&it, "/v1/firearms", man, firearm("58A123456", search_code), 201));
	json_decref(post(&it, "/v1/firearms", man,
	    firearm("SALE-1", json_string_value(json_array_get(codes, 1))), 201));
	/* firearms for the red-team tests: one with markup in its fields, and
	 * BUDGET_CASE + 1 for the case budget */
	budget_codes = json_array();
	for (int i = 0; i <= BUDGET_CASE; i++) {
		char serial[32];
		const char *bc = json_string_value(json_array_get(codes,
		    (size_t)(UPLOAD_LINES + 2 + i)));

		snprintf(serial, sizeof(serial), "BUDGET-%d", i + 1);
		json_decref(post(&it, "/v1/firearms", man, firearm(serial, bc), 201));
		json_array_append_new(budget_codes, json_string(bc));
	}
	json_decref(post(&it, "/v1/firearms", man, firearm_of(XSS_MODEL, XSS_SERIAL, XSS_CALIBER,
	    json_string_value(json_array_get(codes, UPLOAD_LINES + 3 + BUDGET_CASE))), 201));
	json_decref(post(&it, "/v1/sales", dea, json_pack("{s:s, s:s, s:s, s:s, s:s}",
	    "manufacturer", "acme", "serial", "58A123456", "sold_on", "2026-11-02",
	    "transaction_ref", "2026-000187", "state", "CA"), 201));

	/* the production file: 1,000 lines, two of them bad */
	snprintf(csv, sizeof(csv), "%s/production.csv", it.dir);
	f = fopen(csv, "w");
	if (f == NULL)
		die("cannot write the production file", NULL);
	fprintf(f, "serial,model,type,caliber,manufactured_on,code,component,scheme\r\n");
	for (int i = 0; i < UPLOAD_LINES; i++) {
		c = json_string_value(json_array_get(codes, (size_t)i + 2));
		if (i == 100)          /* line 102: rejected in the browser */
			fprintf(f, "UP-%05d,P365,pistol,9mm,2026-11-20,%s,trigger,rs8\r\n", i, c);
		else if (i == 700)     /* line 702: not an rs8 codeword, rejected by the API */
			fprintf(f, "UP-%05d,P365,pistol,9mm,2026-11-20,%.7sU,firing_pin,\r\n", i, c);
		else
			fprintf(f, "UP-%05d,P365,pistol,9mm,2026-11-20,%s,firing_pin,\r\n", i, c);
	}
	fclose(f);

	st = json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:i, s:i, s:[i, i],"
	    " s:o, s:i, s:{s:s, s:s, s:s, s:s, s:s}}",
	    "url", url, "keys", "admin", it.admin_key, "investigator", inv, "auditor", aud,
	    "manufacturer", man, "dealer", dea, "xss", xss, "search_code", search_code,
	    "search_serial", "58A123456", "production_file", csv,
	    "production_lines", UPLOAD_LINES, "production_registered", UPLOAD_LINES - BAD_LINES,
	    "production_rejected_lines", 102, 702,
	    "budget_codes", budget_codes, "budget_case", BUDGET_CASE,
	    "xss", "model", XSS_MODEL, "serial", XSS_SERIAL, "caliber", XSS_CALIBER,
	    "client", XSS_CLIENT,
	    "code", json_string_value(json_array_get(codes, UPLOAD_LINES + 3 + BUDGET_CASE)));
	snprintf(stage, sizeof(stage), "%s/stage.json", it.dir);
	if (json_dump_file(st, stage, JSON_INDENT(1)) != 0 || chmod(stage, 0600) != 0)
		die("cannot write the stage file", NULL);
	json_decref(st);
	json_decref(reply);

	status = run_node("tests/browser/console.test.mjs", stage);
	if (status == 0)
		status = run_node("tests/browser/redteam.test.mjs", stage);
	msr_it_teardown(&it);
	return status;
}
