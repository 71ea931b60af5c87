/*
 * check_routes.c — the route table and the OpenAPI document agree: every route
 * is documented with its method, every documented path is routed, and every
 * authenticated route documents 401/403 and its error responses as JSON.
 * The web console's static files (/ui, /ui/...) are not API: they are left out
 * of the comparison, and must stay public and unaudited.
 */
#include <check.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "msreg/embedded.h"
#include "msreg/http.h"
#include "harness.h"

/* "/v1/firearms/{id}/codes" -> "/v1/firearms/{}/codes" */
static void
shape(const char *path, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = path; *p != '\0' && n + 3 < len; p++) {
		out[n++] = *p;
		if (*p == '{') {
			while (*p != '\0' && *p != '}')
				p++;
			out[n++] = '}';
			if (*p == '\0')
				break;
		}
	}
	out[n] = '\0';
}

/* The console's static routes (handlers_ui.c) are not part of the API. */
static int
is_console(const struct msr_route *rt)
{
	return strcmp(rt->pattern, "/ui") == 0 || strncmp(rt->pattern, "/ui/", 4) == 0;
}

static json_t *
openapi(void)
{
	const char *text = msr_embedded_get("server/openapi.json");
	json_error_t err;
	json_t *doc;

	ck_assert_ptr_nonnull(text);
	doc = json_loads(text, 0, &err);
	ck_assert_msg(doc != NULL, "openapi.json: %s (line %d)", err.text, err.line);
	return doc;
}

static json_t *
find_op(json_t *paths, const struct msr_route *rt)
{
	const char *path;
	json_t *item;
	char s[256], method[16];

	for (size_t i = 0; i < sizeof(method) - 1 && rt->method[i]; i++) {
		method[i] = (char)(rt->method[i] - 'A' + 'a');
		method[i + 1] = '\0';
	}
	json_object_foreach(paths, path, item) {
		shape(path, s, sizeof(s));
		if (strcmp(s, rt->pattern) == 0)
			return json_object_get(item, method);
	}
	return NULL;
}

START_TEST(every_route_documented)
{
	json_t *doc = openapi(), *paths = json_object_get(doc, "paths");

	ck_assert_ptr_nonnull(json_object_get(doc, "openapi"));
	for (size_t i = 0; i < msr_routes_len; i++) {
		const struct msr_route *rt = &msr_routes[i];
		json_t *op, *responses;

		if (is_console(rt))
			continue;
		op = find_op(paths, rt);
		ck_assert_msg(op != NULL, "%s %s is not in openapi.json", rt->method, rt->pattern);
		responses = json_object_get(op, "responses");
		ck_assert_msg(json_object_size(responses) > 0, "%s %s has no responses",
		    rt->method, rt->pattern);
		if (rt->roles != 0) {
			ck_assert_msg(json_object_get(op, "security") != NULL,
			    "%s %s needs a key but documents no security", rt->method, rt->pattern);
			ck_assert_msg(json_object_get(responses, "401") != NULL &&
			    json_object_get(responses, "403") != NULL,
			    "%s %s lacks 401/403", rt->method, rt->pattern);
		}
		ck_assert_msg(rt->action != NULL && rt->action[0] != '\0', "route %zu has no action", i);
	}
	json_decref(doc);
}
END_TEST

START_TEST(every_documented_path_routed)
{
	json_t *doc = openapi(), *paths = json_object_get(doc, "paths"), *item;
	const char *path;

	json_object_foreach(paths, path, item) {
		const char *m;
		json_t *op;
		char s[256];
		shape(path, s, sizeof(s));
		json_object_foreach(item, m, op) {
			int found = 0;
			for (size_t i = 0; i < msr_routes_len && !found; i++)
				found = strcmp(msr_routes[i].pattern, s) == 0 &&
				    strcasecmp(msr_routes[i].method, m) == 0;
			ck_assert_msg(found, "%s %s is documented but not routed", m, path);
		}
	}
	json_decref(doc);
}
END_TEST

START_TEST(console_routes_public)
{
	int n = 0;

	for (size_t i = 0; i < msr_routes_len; i++) {
		const struct msr_route *rt = &msr_routes[i];

		if (!is_console(rt))
			continue;
		n++;
		ck_assert_msg(rt->roles == 0 && rt->flags == 0 && strcmp(rt->method, "GET") == 0,
		    "console route %s %s must be a public, unaudited GET", rt->method, rt->pattern);
	}
	ck_assert_int_eq(n, 3);
}
END_TEST

START_TEST(routes_unique)
{
	for (size_t i = 0; i < msr_routes_len; i++)
		for (size_t j = i + 1; j < msr_routes_len; j++)
			ck_assert_msg(!(strcmp(msr_routes[i].pattern, msr_routes[j].pattern) == 0 &&
			    strcmp(msr_routes[i].method, msr_routes[j].method) == 0),
			    "duplicate route %s %s", msr_routes[i].method, msr_routes[i].pattern);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("routes");
	TCase *tc = tcase_create("routes");

	tcase_add_test(tc, every_route_documented);
	tcase_add_test(tc, every_documented_path_routed);
	tcase_add_test(tc, console_routes_public);
	tcase_add_test(tc, routes_unique);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
