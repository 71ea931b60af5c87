/*
 * harness.h — shared helpers for unit and integration tests.
 *
 * Unit tests use msr_test_load_json() to read reference vectors from tests/data/
 * (copies of shared/testdata, produced by Go's sumdb/tlog and sumdb/note and the
 * rs8 reference). Integration tests use the daemon/HTTP helpers below against a
 * real msregd and a real PostgreSQL cluster started by tests/run-integration.sh.
 */
#ifndef MSREG_TEST_HARNESS_H
#define MSREG_TEST_HARNESS_H

#include <jansson.h>
#include <stddef.h>

/* Load tests/data/<name>; aborts the test process if it cannot. Caller decrefs. */
json_t *msr_test_load_json(const char *name);

#endif
