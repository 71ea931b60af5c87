/*
 * fuzz_prescan.c — libFuzzer target for the JSON pre-scan (msr_json_prescan
 * in server/jsonv.c), the bound http.c relies on before it lets jansson build
 * a tree from a request body.
 *
 * The input is a request body. Checked:
 *   - the pre-scan reads only the input's bytes and allocates nothing;
 *   - when jansson parses the input as http.c does (JSON_REJECT_DUPLICATES),
 *     the tree it built has no more values (each object key counted as one)
 *     than the pre-scan said, and nests no deeper: the pre-scan is an upper
 *     bound, so a body it lets through cannot cost more than it estimated.
 * Any broken invariant aborts, which libFuzzer reports as a crash.
 */
#include "msreg/jsonv.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do {                                                \
	if (!(cond)) {                                                  \
		fprintf(stderr, "%s:%d: invariant failed: %s\n",        \
		    __FILE__, __LINE__, #cond);                         \
		abort();                                                \
	}                                                               \
} while (0)

/* Values in v (keys counted), and its depth (containers nested). */
static size_t
count(json_t *v, int level, int *depth)
{
	size_t n = 1, i;
	const char *k;
	json_t *m;

	if (json_is_array(v) || json_is_object(v)) {
		if (level + 1 > *depth)
			*depth = level + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, m) {
			n += count(m, level + 1, depth);
		}
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, m) {
			n += 1 + count(m, level + 1, depth);
		}
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t values, actual;
	int depth, actual_depth = 0;
	json_t *j;

	msr_json_prescan((const char *)data, size, &values, &depth);
	CHECK(values >= 1);
	CHECK(depth >= 0);
	CHECK(values <= size + 1);
	j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (j == NULL)
		return 0;
	actual = count(j, 0, &actual_depth);
	CHECK(actual <= values);
	CHECK(actual_depth <= depth);
	json_decref(j);
	return 0;
}
