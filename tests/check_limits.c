/*
 * check_limits.c — unit tests of issue 8's building blocks: the JSON pre-scan,
 * UTF-8 cleaning of error messages, per-class token buckets, the rate classes'
 * configuration, the request-limit keys and the signer key mode check.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "msreg/config.h"
#include "msreg/http.h"
#include "msreg/jsonv.h"
#include "msreg/ratelimit.h"
#include "harness.h"

START_TEST(prescan)
{
	size_t v;
	int d;

	msr_json_prescan("{}", 2, &v, &d);
	ck_assert_uint_eq(v, 2);
	ck_assert_int_eq(d, 1);
	/* an object with two members: itself, two keys, two values */
	msr_json_prescan("{\"a\":1,\"b\":[2]}", 15, &v, &d);
	ck_assert_uint_ge(v, 5);
	ck_assert_int_eq(d, 2);
	/* structure inside strings does not count, escapes are skipped */
	msr_json_prescan("{\"a\":\"[[[,,:\\\"]]]\"}", 20, &v, &d);
	ck_assert_uint_eq(v, 3);
	ck_assert_int_eq(d, 1);
	/* the amplification shape: one value per 3 bytes is counted */
	{
		size_t n = 3000;
		char *s = malloc(n + 2);
		s[0] = '[';
		for (size_t i = 1; i < n; i += 3)
			memcpy(s + i, "[],", 3);
		s[n] = ']';
		msr_json_prescan(s, n + 1, &v, &d);
		ck_assert_uint_ge(v, 1000);
		ck_assert_int_eq(d, 2);
		free(s);
	}
	msr_json_prescan("[[[[[[[[[[", 10, &v, &d);
	ck_assert_int_eq(d, 10);
}
END_TEST

START_TEST(utf8_clean)
{
	char out[16];

	ck_assert_uint_eq(msr_utf8_clean("abc", 3, out, sizeof(out)), 3);
	ck_assert_str_eq(out, "abc");
	/* an invalid byte is escaped as text */
	msr_utf8_clean("a\xff" "b", 3, out, sizeof(out));
	ck_assert_str_eq(out, "a\\xFFb");
	/* overlong, surrogate and truncated sequences are invalid */
	msr_utf8_clean("\xc0\xaf", 2, out, sizeof(out));
	ck_assert_str_eq(out, "\\xC0\\xAF");
	msr_utf8_clean("\xed\xa0\x80", 3, out, sizeof(out));
	ck_assert_str_eq(out, "\\xED\\xA0\\x80");
	/* a cut never splits a character: 5 x "€" (3 bytes) into 16 bytes -> 5 */
	ck_assert_uint_eq(msr_utf8_clean("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
	    "\xe2\x82\xac\xe2\x82\xac", 18, out, sizeof(out)), 15);
	/* and a truncated character at the end of the input is escaped, not kept */
	msr_utf8_clean("ab\xe2\x82", 4, out, sizeof(out));
	ck_assert_str_eq(out, "ab\\xE2\\x82");
}
END_TEST

START_TEST(buckets)
{
	struct msr_ratelimit *rl = msr_ratelimit_new(1, 1);
	double ra = 0;
	int ok = 0;

	/* a rate of 0 is unlimited */
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(msr_ratelimit_take_rate(rl, 7, 0, 1, 1, NULL), 0);
	/* the caller's rate and burst, per key */
	for (int i = 0; i < 10; i++)
		ok += msr_ratelimit_take_rate(rl, 8, 0.01, 3, 1, NULL) == 0;
	ck_assert_int_eq(ok, 3);
	ck_assert_int_eq(msr_ratelimit_take_rate(rl, 8, 0.01, 3, 1, &ra), -1);
	ck_assert_double_gt(ra, 50);             /* about 100 s for a token at 0.01/s */
	/* a peek takes nothing */
	ck_assert_int_eq(msr_ratelimit_take_rate(rl, 9, 0.01, 2, 0, NULL), 0);
	ck_assert_int_eq(msr_ratelimit_take_rate(rl, 9, 0.01, 2, 0, NULL), 0);
	ck_assert_int_eq(msr_ratelimit_take_rate(rl, 9, 0.01, 2, 1, NULL), 0);
	ck_assert_int_eq(msr_ratelimit_take_rate(rl, 9, 0.01, 2, 1, NULL), 0);
	ck_assert_int_eq(msr_ratelimit_take_rate(rl, 9, 0.01, 2, 0, NULL), -1);
	ck_assert_int_eq(msr_ratelimit_take_rate(NULL, 9, 1, 1, 1, NULL), 0);
	msr_ratelimit_free(rl);
}
END_TEST

/*
 * An empty bucket of a slow key is not recycled by a faster key probing the
 * same slots (10 and 10 + 2^62 start at the same slot): judged at the fast
 * key's rate it looked full, and the slow key got a fresh burst back.
 */
START_TEST(buckets_not_recycled_at_another_rate)
{
	struct msr_ratelimit *rl = msr_ratelimit_new(1, 1);
	const int64_t slow = 10, fast = 10 + ((int64_t)1 << 62);

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(msr_ratelimit_take_rate(rl, slow, 0.001, 3, 1, NULL), 0);
	ck_assert_int_eq(msr_ratelimit_take_rate(rl, slow, 0.001, 3, 1, NULL), -1);
	nanosleep(&(struct timespec){ 0, 2 * 1000000L }, NULL);
	ck_assert_int_eq(msr_ratelimit_take_rate(rl, fast, 1e6, 1, 1, NULL), 0);
	ck_assert_int_eq(msr_ratelimit_take_rate(rl, slow, 0.001, 3, 1, NULL), -1);
	msr_ratelimit_free(rl);
}
END_TEST

static int
load(const char *text, struct msr_config *cfg, char *err, size_t errlen)
{
	char path[64];
	int fd, rc;

	snprintf(path, sizeof(path), "/tmp/msreg-lim-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	msr_config_defaults(cfg);
	rc = msr_config_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

START_TEST(rate_config)
{
	struct msr_config cfg;
	char err[512];
	double r, b;

	msr_config_defaults(&cfg);
	ck_assert_int_eq(cfg.rate_enabled, 1);
	msr_config_rate(&cfg, MSR_RATE_INVESTIGATOR, &r, &b);
	ck_assert_double_eq(r, 5);
	ck_assert_double_eq(b, 30);
	msr_config_free(&cfg);
	/* the legacy keys stand in for every role not set by name, not for addresses */
	ck_assert_msg(load("[rate]\nper_second = 1\nburst = 3\ndealer_per_second = 7\n"
	    "enabled = false\n", &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(cfg.rate_enabled, 0);
	msr_config_rate(&cfg, MSR_RATE_ADMIN, &r, &b);
	ck_assert_double_eq(r, 1);
	ck_assert_double_eq(b, 3);
	msr_config_rate(&cfg, MSR_RATE_DEALER, &r, &b);
	ck_assert_double_eq(r, 7);
	ck_assert_double_eq(b, 3);
	msr_config_rate(&cfg, MSR_RATE_ADDRESS, &r, &b);
	ck_assert_double_eq(r, 20);
	msr_config_free(&cfg);
	ck_assert_int_eq(load("[rate]\nenabled = maybe\n", &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not true or false"));
	msr_config_free(&cfg);
	ck_assert_int_eq(load("[http]\nbody_memory_limit = 1048576\n", &cfg, err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "body_memory_limit"));
	msr_config_free(&cfg);
}
END_TEST

START_TEST(key_mode)
{
	struct msr_config cfg;
	char key[64], ini[256], err[512];
	int fd;

	snprintf(key, sizeof(key), "/tmp/msreg-key-XXXXXX");
	fd = mkstemp(key);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(ini, sizeof(ini), "[audit]\nkey_file = %s\n", key);
	chmod(key, 0600);
	ck_assert_msg(load(ini, &cfg, err, sizeof(err)) == 0, "%s", err);
	msr_config_free(&cfg);
	chmod(key, 0640);
	ck_assert_int_eq(load(ini, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "0640"));
	msr_config_free(&cfg);
	chmod(key, 0604);
	ck_assert_int_eq(load(ini, &cfg, err, sizeof(err)), -1);
	msr_config_free(&cfg);
	unlink(key);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");

	tcase_add_test(tc, prescan);
	tcase_add_test(tc, utf8_clean);
	tcase_add_test(tc, buckets);
	tcase_add_test(tc, buckets_not_recycled_at_another_rate);
	tcase_add_test(tc, rate_config);
	tcase_add_test(tc, key_mode);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
