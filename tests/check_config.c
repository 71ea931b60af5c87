/*
 * check_config.c — unit tests of the INI configuration, API-key helpers, FFL
 * validation and the rate limiter.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msreg/auth.h"
#include "msreg/config.h"
#include "msreg/log.h"
#include "msreg/ratelimit.h"
#include "msreg/registry.h"
#include "harness.h"

static char *
write_tmp(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/msreg-cfg-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int
load(const char *text, struct msr_config *cfg, char *err, size_t errlen)
{
	char *path = write_tmp(text);
	int rc;

	msr_config_defaults(cfg);
	rc = msr_config_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

START_TEST(defaults_and_example)
{
	struct msr_config cfg;
	char err[512];

	msr_config_defaults(&cfg);
	ck_assert_str_eq(cfg.http_address, "127.0.0.1");
	ck_assert_int_eq(cfg.http_port, 8080);
	ck_assert_double_eq(cfg.search_max_expected_matches, 20);
	msr_config_free(&cfg);
	/* the documented example loads, and says exactly the defaults */
	msr_config_defaults(&cfg);
	ck_assert_msg(msr_config_load(&cfg, "config.example.ini", err, sizeof(err)) == 0, "%s", err);
	{
		struct msr_config d;
		msr_config_defaults(&d);
		ck_assert_int_eq(cfg.http_port, d.http_port);
		ck_assert_int_eq(cfg.http_threads, d.http_threads);
		ck_assert_uint_eq(cfg.http_body_limit, d.http_body_limit);
		ck_assert_int_eq(cfg.db_pool_size, d.db_pool_size);
		ck_assert_int_eq(cfg.audit_batch_wait_us, d.audit_batch_wait_us);
		ck_assert_str_eq(cfg.search_confusion, d.search_confusion);
		ck_assert_int_eq(cfg.limits_batch_max, d.limits_batch_max);
		ck_assert_int_eq(cfg.log_level, d.log_level);
		msr_config_free(&d);
	}
	msr_config_free(&cfg);
}
END_TEST

START_TEST(values)
{
	struct msr_config cfg;
	char err[512];

	ck_assert_int_eq(load("[http]\naddress = ::1\nport = 9000\nbody_limit = 2048\n"
	    "[database]\nurl = postgresql://x@/y\n[audit]\norigin = reg.example/log\n"
	    "key_file = /k\n[search]\nmax_expected_matches = 2.5\n[log]\nlevel = debug\n",
	    &cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.http_address, "::1");
	ck_assert_int_eq(cfg.http_port, 9000);
	ck_assert_uint_eq(cfg.http_body_limit, 2048);
	ck_assert_str_eq(cfg.db_url, "postgresql://x@/y");
	ck_assert_str_eq(cfg.db_owner_url, "postgresql://x@/y");   /* defaults to url */
	ck_assert_str_eq(cfg.audit_origin, "reg.example/log");
	ck_assert_double_eq(cfg.search_max_expected_matches, 2.5);
	ck_assert_int_eq(cfg.log_level, MSR_LOG_DEBUG);
	msr_config_free(&cfg);
}
END_TEST

static void
expect_error(const char *text, const char *fragment)
{
	struct msr_config cfg;
	char err[512];

	ck_assert_int_eq(load(text, &cfg, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, fragment) != NULL, "error \"%s\" lacks \"%s\"", err, fragment);
	msr_config_free(&cfg);
}

START_TEST(errors_name_the_line)
{
	expect_error("[http]\nport = 80\n\nprot = 1\n", ":4: unknown key \"prot\"");
	expect_error("[http]\nport = 70000\n", ":2: [http] port: 70000 is out of range");
	expect_error("[http]\nport = eighty\n", ":2: [http] port: \"eighty\" is not a number");
	expect_error("[http]\nthreads = 1.5\n", ":2: [http] threads: \"1.5\" is not an integer");
	expect_error("[nosuch]\nx = 1\n", ":2: unknown key \"x\" in section [nosuch]");
	expect_error("[log]\nlevel = loud\n", ":2: [log] level");
	expect_error("[http]\nport 80\n", ":2:");
	expect_error("[http]\ntls_cert = /a\n", "tls_cert and tls_key must be set together");
	expect_error("[audit]\norigin = a b\n", "[audit] origin");
	expect_error("[search]\ndefault_limit = 50\nmax_limit = 10\n", "default_limit");
}
END_TEST

START_TEST(missing_file)
{
	struct msr_config cfg;
	char err[512];

	msr_config_defaults(&cfg);
	ck_assert_int_eq(msr_config_load(&cfg, "/nonexistent/msreg.ini", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/msreg.ini"));
	msr_config_free(&cfg);
}
END_TEST

START_TEST(api_keys)
{
	char a[MSR_KEY_TEXT_LEN + 1], b[MSR_KEY_TEXT_LEN + 1];
	uint8_t s1[32] = { 1 }, s2[32] = { 2 }, h1[32], h2[32], h3[32];

	msr_auth_new_key(a);
	msr_auth_new_key(b);
	ck_assert_int_eq(strlen(a), MSR_KEY_TEXT_LEN);
	ck_assert_int_eq(strncmp(a, "msr_", 4), 0);
	ck_assert_int_eq(strspn(a + 4, "0123456789abcdef"), 64);
	ck_assert_str_ne(a, b);
	msr_auth_hash(s1, a, h1);
	msr_auth_hash(s1, a, h2);
	msr_auth_hash(s2, a, h3);
	ck_assert_mem_eq(h1, h2, 32);
	ck_assert_int_ne(memcmp(h1, h3, 32), 0);   /* keyed: another secret, another hash */
	{
		/* matches libsodium's keyed BLAKE2b-256 directly */
		uint8_t ref[32];
		crypto_generichash(ref, 32, (const unsigned char *)a, strlen(a), s1, 32);
		ck_assert_mem_eq(ref, h1, 32);
	}
}
END_TEST

START_TEST(ffl)
{
	ck_assert(msr_ffl_valid("1-23-456-07-6B-12345"));
	ck_assert(msr_ffl_valid("9-99-999-99-9M-00000"));
	ck_assert(!msr_ffl_valid("0-23-456-07-6B-12345"));
	ck_assert(!msr_ffl_valid("1-23-456-07-6N-12345"));
	ck_assert(!msr_ffl_valid("1-23-456-07-6B-1234"));
	ck_assert(!msr_ffl_valid("1-23-456-07-6B-123456"));
	ck_assert(!msr_ffl_valid("1234560762B12345"));
	ck_assert(!msr_ffl_valid(""));
}
END_TEST

START_TEST(rate_limit)
{
	struct msr_ratelimit *rl = msr_ratelimit_new(1, 5);
	int ok = 0;

	ck_assert_ptr_null(msr_ratelimit_new(0, 5));      /* disabled */
	ck_assert_int_eq(msr_ratelimit_take(NULL, 1), 0);
	for (int i = 0; i < 20; i++)
		ok += msr_ratelimit_take(rl, 42) == 0;
	ck_assert_int_ge(ok, 5);
	ck_assert_int_le(ok, 6);                           /* burst, plus refill during the loop */
	ck_assert_int_eq(msr_ratelimit_take(rl, 43), 0);   /* other keys are independent */
	msr_ratelimit_free(rl);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	if (sodium_init() < 0)
		return 1;
	tcase_add_test(tc, defaults_and_example);
	tcase_add_test(tc, values);
	tcase_add_test(tc, errors_name_the_line);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, api_keys);
	tcase_add_test(tc, ffl);
	tcase_add_test(tc, rate_limit);
	suite_add_tcase(s, tc);
	return msr_test_run(s, 0);
}
