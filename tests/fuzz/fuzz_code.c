/*
 * fuzz_code.c — libFuzzer target for the code scheme (server/code.c).
 *
 * The input, as a NUL-terminated string, goes through msr_code_normalize. The
 * target checks the normaliser's contract (counts, offsets, that what it
 * accepts survives format -> normalize unchanged), and when the input is 8
 * symbols it runs msr_rs8_complete with every erasure mask of 0..3 unknown
 * positions and checks, for each:
 *   - 3 unknown  -> -1 and sym untouched;
 *   - 2 unknown  -> 1 (there is always exactly one completion);
 *   - 1 unknown  -> 1 iff a brute-force search finds a completion;
 *   - 0 unknown  -> 1 iff msr_rs8_valid;
 *   - on 1: the result is a codeword that agrees on every known position, and
 *     when the input itself was a codeword the result is the input;
 *   - on 0 or -1: sym untouched.
 * Any broken invariant aborts, which libFuzzer reports as a crash.
 */
#include "msreg/code.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do {                                                \
	if (!(cond)) {                                                  \
		fprintf(stderr, "%s:%d: invariant failed: %s\n",        \
		    __FILE__, __LINE__, #cond);                         \
		abort();                                                \
	}                                                               \
} while (0)

static int
has_completion(const uint8_t sym[MSR_RS8_LEN], const uint8_t known[MSR_RS8_LEN])
{
	uint8_t w[MSR_RS8_LEN];
	unsigned i, v;

	for (i = 0; i < MSR_RS8_LEN; i++) {
		if (known[i])
			continue;
		for (v = 0; v < 32; v++) {
			memcpy(w, sym, sizeof(w));
			w[i] = (uint8_t)v;
			if (msr_rs8_valid(w))
				return 1;
		}
		return 0;
	}
	return msr_rs8_valid(sym);
}

static void
check_rs8(const uint8_t in[MSR_RS8_LEN])
{
	uint8_t sym[MSR_RS8_LEN], known[MSR_RS8_LEN];
	unsigned mask, i, nunk;
	int valid = msr_rs8_valid(in);
	int ret;

	CHECK(msr_rs8_pack(in) < (UINT64_C(1) << 40));
	msr_rs8_unpack(msr_rs8_pack(in), sym);
	CHECK(memcmp(sym, in, sizeof(sym)) == 0);

	for (mask = 0; mask < (1u << MSR_RS8_LEN); mask++) {
		nunk = 0;
		for (i = 0; i < MSR_RS8_LEN; i++) {
			known[i] = !((mask >> i) & 1);
			nunk += !known[i];
		}
		if (nunk > 3)
			continue;
		memcpy(sym, in, sizeof(sym));
		ret = msr_rs8_complete(sym, known);
		switch (nunk) {
		case 3:
			CHECK(ret == -1);
			break;
		case 2:
			CHECK(ret == 1);
			break;
		case 1:
			CHECK(ret == has_completion(in, known));
			break;
		default:
			CHECK(ret == valid);
			break;
		}
		if (ret != 1) {
			CHECK(memcmp(sym, in, sizeof(sym)) == 0);
			continue;
		}
		CHECK(msr_rs8_valid(sym));
		for (i = 0; i < MSR_RS8_LEN; i++) {
			if (known[i])
				CHECK(sym[i] == in[i]);
		}
		if (valid)
			CHECK(memcmp(sym, in, sizeof(sym)) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[MSR_CODE_MAX + 1], again[MSR_CODE_MAX];
	char text[MSR_CODE_MAX + 1];
	char *s;
	size_t n = 0, n2 = 0, i;
	long bad_at = 0, bad2 = 0;
	int ret;

	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	out[MSR_CODE_MAX] = 0xa5;
	ret = msr_code_normalize(s, out, MSR_CODE_MAX, &n, &bad_at);
	CHECK(out[MSR_CODE_MAX] == 0xa5);       /* never writes past cap */
	if (ret != 0) {
		CHECK(ret == -1);
		CHECK(n == 0);
		if (bad_at >= 0) {
			CHECK((size_t)bad_at < strlen(s));
			CHECK(msr_sym_value(s[bad_at]) < 0);
			CHECK(s[bad_at] != '-' && s[bad_at] != ' ');
		}
		goto done;
	}

	CHECK(bad_at == -1);
	CHECK(n <= MSR_CODE_MAX);
	for (i = 0; i < n; i++)
		CHECK(out[i] < 32);
	msr_code_format(out, n, text);
	CHECK(strlen(text) == n);
	CHECK(msr_code_normalize(text, again, MSR_CODE_MAX, &n2, &bad2) == 0);
	CHECK(n2 == n && bad2 == -1 && memcmp(again, out, n) == 0);

	if (n == MSR_RS8_LEN)
		check_rs8(out);
done:
	free(s);
	return 0;
}
