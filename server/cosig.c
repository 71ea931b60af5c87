/*
 * cosig.c — witness cosignatures (c2sp.org/tlog-cosignature, cosignature/v1):
 * the keys a witness signs with, the signature lines it returns from
 * add-checkpoint (c2sp.org/tlog-witness), and their verification by msregd, by
 * `msreg audit monitor` and by the tests.
 *
 * Formats (header comment of include/msreg/cosig.h)
 *   A cosignature is a signed-note signature line whose key id is
 *   SHA-256(name || 0x0A || 0x04 || pub)[0:4] and whose signature blob is
 *   key id (4) || timestamp (u64 big-endian) || Ed25519 signature (64) over
 *       "cosignature/v1\ntime <timestamp>\n" || checkpoint note text.
 *   Keys use the signed-note key text with type byte 0x04 instead of 0x01, so a
 *   witness key can never be mistaken for (or loaded as) a log signer key.
 *
 * Invariants
 *   1. Parsers read only within (text, len), bounded by MSR_NOTE_MAX_LEN.
 *   2. base64 is strict (RFC 4648 section 4, canonical): a blob is accepted only
 *      if re-encoding it gives back the same characters.
 *   3. A note line naming v's key (name and key id) that does not verify fails
 *      the whole verification, as signed-note asks; other lines are ignored.
 *   4. Secret seeds are wiped (sodium_memzero) before return.
 */
#include "msreg/cosig.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/note.h"

#define B64		sodium_base64_VARIANT_ORIGINAL
#define DASH		"\xe2\x80\x94 "
#define DASH_LEN	4
#define PRIV		"PRIVATE+KEY+"
#define PRIV_LEN	12
#define BLOB_LEN	(4 + 8 + 64)
#define HEADER		"cosignature/v1\ntime "

uint32_t
msr_cosig_key_id(const char *name, size_t len, const uint8_t pub[32])
{
	crypto_hash_sha256_state st;
	uint8_t h[32], sep[2] = { '\n', MSR_COSIG_ALG };

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)name, len);
	crypto_hash_sha256_update(&st, sep, 2);
	crypto_hash_sha256_update(&st, pub, 32);
	crypto_hash_sha256_final(&st, h);
	return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

/* Strict base64 of exactly want bytes. 0 or -1. */
static int
b64_exact(const char *s, size_t n, uint8_t *out, size_t want)
{
	char check[512];
	size_t got = 0;

	if (n == 0 || n >= sizeof(check) ||
	    sodium_base642bin(out, want, s, n, NULL, &got, NULL, B64) != 0 || got != want)
		return -1;
	sodium_bin2base64(check, sizeof(check), out, want, B64);
	return strlen(check) == n && memcmp(check, s, n) == 0 ? 0 : -1;
}

static int
hex_id(const char *s, size_t n, uint32_t *id)
{
	uint32_t v = 0;

	if (n != 8)
		return -1;
	for (size_t i = 0; i < 8; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else
			return -1;
	}
	*id = v;
	return 0;
}

/*
 * Split "name+hex+b64" (after any PRIVATE+KEY+ prefix) and decode the 33-byte
 * key material (type byte || 32 bytes). 0 or -1.
 */
static int
key_split(const char *text, size_t len, struct msr_cosig_verifier *v, uint8_t mat[33])
{
	const char *p1, *p2;
	size_t nlen;

	if (len > 0 && text[len - 1] == '\n')
		len--;
	p1 = memchr(text, '+', len);
	if (p1 == NULL)
		return -1;
	nlen = (size_t)(p1 - text);
	p2 = memchr(p1 + 1, '+', len - nlen - 1);
	if (p2 == NULL || nlen > MSR_COSIG_NAME_MAX || !msr_note_valid_name(text, nlen) ||
	    hex_id(p1 + 1, (size_t)(p2 - p1 - 1), &v->key_id) != 0 ||
	    b64_exact(p2 + 1, len - (size_t)(p2 + 1 - text), mat, 33) != 0 ||
	    mat[0] != MSR_COSIG_ALG)
		return -1;
	memcpy(v->name, text, nlen);
	v->name[nlen] = '\0';
	return 0;
}

int
msr_cosig_verifier_parse(struct msr_cosig_verifier *v, const char *text, size_t len)
{
	uint8_t mat[33];

	memset(v, 0, sizeof(*v));
	if (key_split(text, len, v, mat) != 0)
		return -1;
	memcpy(v->pub, mat + 1, 32);
	if (msr_cosig_key_id(v->name, strlen(v->name), v->pub) != v->key_id) {
		memset(v, 0, sizeof(*v));
		return -1;
	}
	return 0;
}

static int
from_seed(struct msr_cosig_signer *s, const char *name, const uint8_t seed[32])
{
	size_t n = strlen(name);

	if (n > MSR_COSIG_NAME_MAX || !msr_note_valid_name(name, n))
		return -1;
	memset(s, 0, sizeof(*s));
	memcpy(s->v.name, name, n);
	crypto_sign_seed_keypair(s->v.pub, s->sk, seed);
	s->v.key_id = msr_cosig_key_id(name, n, s->v.pub);
	return 0;
}

int
msr_cosig_signer_generate(struct msr_cosig_signer *s, const char *name)
{
	uint8_t seed[32];
	int ret;

	randombytes_buf(seed, sizeof(seed));
	ret = from_seed(s, name, seed);
	sodium_memzero(seed, sizeof(seed));
	return ret;
}

int
msr_cosig_signer_parse(struct msr_cosig_signer *s, const char *text, size_t len)
{
	struct msr_cosig_verifier v;
	uint8_t mat[33];
	int ret = -1;

	memset(s, 0, sizeof(*s));
	if (len < PRIV_LEN || memcmp(text, PRIV, PRIV_LEN) != 0 ||
	    key_split(text + PRIV_LEN, len - PRIV_LEN, &v, mat) != 0)
		goto done;
	if (from_seed(s, v.name, mat + 1) != 0 || s->v.key_id != v.key_id) {
		msr_cosig_signer_wipe(s);
		goto done;
	}
	ret = 0;
done:
	sodium_memzero(mat, sizeof(mat));
	sodium_memzero(&v, sizeof(v));
	return ret;
}

static int
format_key(const char *prefix, const struct msr_cosig_verifier *v, const uint8_t key[32],
    char *buf, size_t cap)
{
	uint8_t mat[33];
	char b64[64];
	int n;

	mat[0] = MSR_COSIG_ALG;
	memcpy(mat + 1, key, 32);
	sodium_bin2base64(b64, sizeof(b64), mat, sizeof(mat), B64);
	n = snprintf(buf, cap, "%s%s+%08" PRIx32 "+%s", prefix, v->name, v->key_id, b64);
	sodium_memzero(mat, sizeof(mat));
	sodium_memzero(b64, sizeof(b64));
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

int
msr_cosig_signer_format(const struct msr_cosig_signer *s, char *buf, size_t cap)
{
	return format_key(PRIV, &s->v, s->sk, buf, cap);	/* sk[0..32) = seed */
}

int
msr_cosig_verifier_format(const struct msr_cosig_verifier *v, char *buf, size_t cap)
{
	return format_key("", v, v->pub, buf, cap);
}

void
msr_cosig_signer_wipe(struct msr_cosig_signer *s)
{
	sodium_memzero(s, sizeof(*s));
}

/* "cosignature/v1\ntime <t>\n": its length. */
static size_t
header(uint64_t t, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, HEADER "%" PRIu64 "\n", t);

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int
msr_cosig_sign(const struct msr_cosig_signer *s, const char *text, size_t len,
    uint64_t t, char *line, size_t cap)
{
	uint8_t blob[BLOB_LEN], *msg = NULL;
	char hdr[64], b64[128];
	size_t hlen;
	int n, ret = -1;

	hlen = header(t, hdr, sizeof(hdr));
	if (hlen == 0 || len == 0 || len > MSR_NOTE_MAX_LEN || text[len - 1] != '\n' ||
	    t > (uint64_t)INT64_MAX)
		return -1;
	msg = malloc(hlen + len);
	if (msg == NULL)
		return -1;
	memcpy(msg, hdr, hlen);
	memcpy(msg + hlen, text, len);
	blob[0] = (uint8_t)(s->v.key_id >> 24);
	blob[1] = (uint8_t)(s->v.key_id >> 16);
	blob[2] = (uint8_t)(s->v.key_id >> 8);
	blob[3] = (uint8_t)s->v.key_id;
	for (int i = 0; i < 8; i++)
		blob[4 + i] = (uint8_t)(t >> (56 - 8 * i));
	if (crypto_sign_detached(blob + 12, NULL, msg, hlen + len, s->sk) != 0)
		goto done;
	sodium_bin2base64(b64, sizeof(b64), blob, sizeof(blob), B64);
	n = snprintf(line, cap, DASH "%s %s\n", s->v.name, b64);
	if (n > 0 && (size_t)n < cap)
		ret = 0;
done:
	free(msg);
	return ret;
}

int
msr_cosig_note_text(const char *msg, size_t len, size_t *text_len)
{
	size_t i;

	if (len < 3 || len > MSR_NOTE_MAX_LEN || msg[len - 1] != '\n')
		return -1;
	/* the text ends at the LAST blank line ("\n\n") */
	for (i = len - 1; i > 0; i--) {
		if (msg[i] == '\n' && msg[i - 1] == '\n') {
			*text_len = i;
			return 0;
		}
	}
	return -1;
}

int
msr_cosig_verify(const struct msr_cosig_verifier *v, const char *msg, size_t len,
    uint64_t *t)
{
	uint8_t blob[BLOB_LEN], *buf = NULL;
	size_t text_len, nlen = strlen(v->name), pos, hlen;
	char hdr[64];
	int found = 0, ret = -1;

	if (msr_cosig_note_text(msg, len, &text_len) != 0)
		return -1;
	for (pos = text_len + 1; pos < len; ) {
		const char *line = msg + pos, *eol = memchr(line, '\n', len - pos);
		size_t llen;
		uint64_t ts = 0;
		uint32_t id;

		if (eol == NULL)
			goto done;
		llen = (size_t)(eol - line);
		pos += llen + 1;
		if (llen < DASH_LEN + nlen + 2 || memcmp(line, DASH, DASH_LEN) != 0 ||
		    memcmp(line + DASH_LEN, v->name, nlen) != 0 ||
		    line[DASH_LEN + nlen] != ' ')
			continue;
		if (b64_exact(line + DASH_LEN + nlen + 1, llen - DASH_LEN - nlen - 1, blob,
		    BLOB_LEN) != 0)
			continue;	/* another key type by this name (e.g. the log's) */
		id = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
		    (uint32_t)blob[2] << 8 | blob[3];
		if (id != v->key_id)
			continue;
		for (int i = 0; i < 8; i++)
			ts = ts << 8 | blob[4 + i];
		hlen = header(ts, hdr, sizeof(hdr));
		if (ts > (uint64_t)INT64_MAX || hlen == 0)
			goto done;
		free(buf);
		buf = malloc(hlen + text_len);
		if (buf == NULL)
			goto done;
		memcpy(buf, hdr, hlen);
		memcpy(buf + hlen, msg, text_len);
		if (crypto_sign_verify_detached(blob + 12, buf, hlen + text_len, v->pub) != 0)
			goto done;	/* invariant 3 */
		if (t != NULL)
			*t = ts;
		found = 1;
	}
	ret = found ? 0 : -1;
done:
	free(buf);
	return ret;
}
