/*
 * harness.c — see harness.h.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

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
