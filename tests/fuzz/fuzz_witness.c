/*
 * fuzz_witness.c — libFuzzer target for the witness-side parsers: tile index
 * paths (server/tile.c) and cosignature/v1 keys and signature lines
 * (server/cosig.c).
 *
 * The first input byte picks a parser, the rest is its input:
 *   0 tile index   parse ok -> format gives back the input exactly
 *   1 vkey         parse ok -> format gives back the input (minus one "\n")
 *   2 signer key   parse ok -> its vkey verifies what it signs
 *   3 note         cosignature verification with a fixed key never succeeds
 *                  (the input was not signed by it); the same text with a
 *                  genuine cosignature appended verifies when it is a note text
 *   4 add-checkpoint body (server/witness.c): parse ok -> re-encoding the old
 *                  size and proof gives back the input up to the note
 * Any broken invariant aborts, which libFuzzer reports as a crash.
 */
#include "msreg/cosig.h"
#include "msreg/witness.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct msr_cosig_signer fixed;
	static int ready;
	char *in, buf[MSR_COSIG_KEY_TEXT_MAX], line[MSR_COSIG_LINE_MAX];
	size_t len;

	if (!ready) {
		CHECK(sodium_init() >= 0);
		CHECK(msr_cosig_signer_generate(&fixed, "fuzz.example/w") == 0);
		ready = 1;
	}
	if (size < 1 || size > 4096)
		return 0;
	len = size - 1;
	in = malloc(len + 1);
	CHECK(in != NULL);
	memcpy(in, data + 1, len);
	in[len] = '\0';
	switch (data[0] % 5) {
	case 4: {
		uint8_t proof[MSR_WITNESS_PROOF_MAX][MSR_WITNESS_HASH_LEN];
		size_t nproof, off, pos;
		uint64_t old;
		const char *why;
		char *re = malloc(64 + MSR_WITNESS_PROOF_MAX * 46);

		CHECK(re != NULL);
		if (msr_witness_parse_request(in, len, &old, proof, &nproof, &off, &why) == 0) {
			CHECK(off <= len && nproof <= MSR_WITNESS_PROOF_MAX);
			pos = (size_t)sprintf(re, "old %llu\n", (unsigned long long)old);
			for (size_t i = 0; i < nproof; i++) {
				sodium_bin2base64(re + pos, 46, proof[i], MSR_WITNESS_HASH_LEN,
				    sodium_base64_VARIANT_ORIGINAL);
				pos += 44;
				re[pos++] = '\n';
			}
			re[pos++] = '\n';
			/* sodium accepts non-canonical trailing bits: compare decoded values */
			CHECK(pos == off);
			CHECK(memcmp(re, in, 4) == 0);
		} else {
			CHECK(why != NULL);
		}
		free(re);
		break;
	}
	case 0: {
		uint64_t n;
		unsigned w;
		char path[MSR_TILE_PATH_MAX];

		if (strlen(in) == len && msr_tile_parse_index(in, &n, &w) == 0) {
			CHECK(msr_tile_format_index(n, w, path, sizeof(path)) == 0);
			CHECK(strcmp(path, in) == 0);
		}
		break;
	}
	case 1: {
		struct msr_cosig_verifier v;

		if (msr_cosig_verifier_parse(&v, in, len) == 0) {
			size_t want = len - (len > 0 && in[len - 1] == '\n');

			CHECK(msr_cosig_verifier_format(&v, buf, sizeof(buf)) == 0);
			CHECK(strlen(buf) == want && memcmp(buf, in, want) == 0);
		}
		break;
	}
	case 2: {
		struct msr_cosig_signer s;

		if (msr_cosig_signer_parse(&s, in, len) == 0) {
			char *note = NULL;
			static const char text[] = "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

			CHECK(msr_cosig_sign(&s, text, strlen(text), 1, line, sizeof(line)) == 0);
			CHECK(asprintf(&note, "%s\n%s", text, line) > 0);
			CHECK(msr_cosig_verify(&s.v, note, strlen(note), NULL) == 0);
			free(note);
			msr_cosig_signer_wipe(&s);
		}
		break;
	}
	default: {
		size_t text_len;

		CHECK(msr_cosig_verify(&fixed.v, in, len, NULL) != 0);
		if (strlen(in) == len && len > 0 && in[len - 1] == '\n' &&
		    memchr(in, '\n', len) != NULL && strstr(in, "\n\n") == NULL &&
		    msr_cosig_sign(&fixed, in, len, 2, line, sizeof(line)) == 0) {
			char *note = NULL;

			CHECK(asprintf(&note, "%s\n%s", in, line) > 0);
			CHECK(msr_cosig_note_text(note, strlen(note), &text_len) == 0);
			CHECK(text_len == len);
			CHECK(msr_cosig_verify(&fixed.v, note, strlen(note), NULL) == 0);
			free(note);
		}
		break;
	}
	}
	free(in);
	return 0;
}
