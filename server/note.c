/*
 * note.c — the audit log's signed statements: C2SP signed notes with Ed25519
 * keys, C2SP tlog checkpoints, and C2SP tlog-proof receipts that a client can
 * verify offline with nothing but the log's verifier key.
 *
 * Formats (byte-for-byte what golang.org/x/mod/sumdb/note produces and accepts)
 *
 *   signed note   c2sp.org/signed-note: a text that ends in "\n", a blank line,
 *                 then one or more signature lines
 *                     "— " <key name> " " base64(key id (4 bytes BE) || sig) "\n"
 *                 where "—" is U+2014 (E2 80 94). The whole note is UTF-8 with no
 *                 control characters but "\n"; the text ends at the LAST blank
 *                 line. Ed25519 signs the text, final "\n" included.
 *   key id        SHA-256(name || 0x0A || 0x01 || 32-byte public key)[0:4], read
 *                 big-endian; 0x01 is the Ed25519 signature type.
 *   key names     non-empty UTF-8, no Unicode space, no '+' (and, here, no
 *                 control character and at most MSR_NOTE_NAME_MAX bytes).
 *   signer key    "PRIVATE+KEY+" name "+" %08x key id "+" base64(0x01 || seed)
 *   verifier key  name "+" %08x key id "+" base64(0x01 || public key)
 *   checkpoint    c2sp.org/tlog-checkpoint: the note text
 *                     origin "\n" size "\n" base64(root hash) "\n" [ext "\n"]...
 *                 origin non-empty; size decimal without leading zeros; root the
 *                 RFC 9162 MTH at that size; extension lines non-empty.
 *   receipt       c2sp.org/tlog-proof:
 *                     "c2sp.org/tlog-proof@v1\n"
 *                     ["extra " base64(opaque data) "\n"]
 *                     "index " decimal "\n"
 *                     [base64(hash) "\n"]...      RFC 9162 PATH, leaf side first
 *                     "\n"
 *                     signed checkpoint note, verbatim
 *   base64 is RFC 4648 section 4 with padding (sodium_base64_VARIANT_ORIGINAL),
 *   and decoding is strict: the 65-character alphabet only, canonical padding
 *   and zero trailing bits, so every accepted encoding is the one we write.
 *
 * Invariants
 *   1. Parsers read only within (text, len); they never need NUL termination
 *      and reject NUL bytes (control characters) where text is expected.
 *   2. Every input is bounded: MSR_NOTE_MAX_LEN per note, MSR_NOTE_MAX_SIGS
 *      signature lines, MSR_NOTE_RECEIPT_MAX per receipt, MSR_MERKLE_PROOF_MAX
 *      proof hashes.
 *   3. A note opens only if a signature line names the verifier's key (name and
 *      id) and verifies; a line naming that key that does not verify rejects the
 *      note; lines by other keys are checked for syntax only (C2SP signed-note).
 *   4. Secret material (seeds, secret keys, signer key text) lives only in the
 *      caller's struct msr_note_signer or buffers, and every temporary copy made
 *      here is wiped with sodium_memzero before return.
 *   5. What a format function writes, the matching parse function accepts and
 *      maps back to the same values (tests/check_note.c, tests/fuzz/fuzz_note.c).
 */
#include "msreg/note.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B64		sodium_base64_VARIANT_ORIGINAL
#define ALG_ED25519	0x01
#define DASH		"\xe2\x80\x94 "		/* U+2014, space */
#define DASH_LEN	4
#define PRIV_PREFIX	"PRIVATE+KEY+"
#define PRIV_PREFIX_LEN	12
#define ID_HEX_LEN	8
#define SIG_LEN		crypto_sign_BYTES	/* 64 */
#define SIG_BLOB_LEN	(4 + SIG_LEN)
#define SIG_DECODE_MAX	8192		/* bytes of any one signature line */
#define HASH_B64_LEN	44		/* base64 of 32 bytes */

/* ---- text helpers ------------------------------------------------------- */

/*
 * Decode the UTF-8 sequence at s[0 .. n), n >= 1: its length, or 0 if it is not
 * valid (overlong, surrogate, beyond U+10FFFF, truncated).
 */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t v, min;
	size_t len, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		v = s[0] & 0x1f;
		min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		v = s[0] & 0x0f;
		min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		v = s[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Unicode White_Space (Go's unicode.IsSpace). */
static int
is_space(uint32_t c)
{
	switch (c) {
	case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
	case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029:
	case 0x202f: case 0x205f: case 0x3000:
		return 1;
	default:
		return c >= 0x2000 && c <= 0x200a;
	}
}

/* Valid UTF-8 without control characters (but "\n" when newlines is set). */
static int
text_ok(const char *s, size_t n, int newlines)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t c;
	size_t i, k;

	for (i = 0; i < n; i += k) {
		k = utf8_decode(p + i, n - i, &c);
		if (k == 0)
			return 0;
		if (c < 0x20 && !(newlines && c == '\n'))
			return 0;
	}
	return 1;
}

int
msr_note_valid_name(const char *name, size_t len)
{
	const unsigned char *p = (const unsigned char *)name;
	uint32_t c;
	size_t i, k;

	if (len == 0 || len > MSR_NOTE_NAME_MAX)
		return 0;
	for (i = 0; i < len; i += k) {
		k = utf8_decode(p + i, len - i, &c);
		if (k == 0 || c < 0x20 || c == '+' || is_space(c))
			return 0;
	}
	return 1;
}

/* Strict decimal: digits only, no leading zero (but "0"), fits uint64_t. */
static int
parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Exactly 8 hex digits (either case, as Go's strconv.ParseUint(s, 16, 32)). */
static int
parse_id(const char *s, size_t n, uint32_t *out)
{
	uint32_t v = 0;
	size_t i;
	int d;

	if (n != ID_HEX_LEN)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return -1;
		v = (v << 4) | (uint32_t)d;
	}
	*out = v;
	return 0;
}

/*
 * Strict base64 of s[0 .. n), n > 0, into out (cap bytes); *outlen bytes.
 * libsodium 1.0.18 reads every byte >= 0x80 as '/', so the alphabet is checked
 * here first; libsodium then enforces padding and zero trailing bits.
 */
static int
b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
	size_t i;
	char c;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
			return -1;
	}
	return sodium_base642bin(out, cap, s, n, NULL, outlen, NULL, B64) == 0 ?
	    0 : -1;
}

/* A base64 line that must hold exactly one hash. */
static int
b64_hash(const char *s, size_t n, uint8_t out[MSR_MERKLE_HASH_LEN])
{
	size_t got;

	if (n != HASH_B64_LEN ||
	    b64_decode(s, n, out, MSR_MERKLE_HASH_LEN, &got) == -1 ||
	    got != MSR_MERKLE_HASH_LEN)
		return -1;
	return 0;
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	    (uint32_t)p[3];
}

/*
 * The line starting at *pos: its start and length (without "\n"); *pos moves
 * past the "\n". -1 if there is no "\n" before end.
 */
static int
next_line(const char *text, size_t len, size_t *pos, const char **line,
    size_t *line_len)
{
	const char *nl;

	if (*pos >= len)
		return -1;
	nl = memchr(text + *pos, '\n', len - *pos);
	if (nl == NULL)
		return -1;
	*line = text + *pos;
	*line_len = (size_t)(nl - *line);
	*pos += *line_len + 1;
	return 0;
}

/*
 * An output buffer of known maximum size, allocated once. out_add never writes
 * past cap; it marks the buffer failed instead (that would be a sizing bug).
 */
struct out {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 failed;
};

static int
out_init(struct out *o, size_t cap)
{
	o->len = 0;
	o->cap = cap;
	o->failed = 0;
	o->p = malloc(cap + 1);
	return o->p == NULL ? -1 : 0;
}

static void
out_add(struct out *o, const void *s, size_t n)
{
	if (o->failed || n > o->cap - o->len) {
		o->failed = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void
out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void
out_b64(struct out *o, const uint8_t *bin, size_t n)
{
	size_t room = sodium_base64_ENCODED_LEN(n, B64);

	if (o->failed || room > o->cap - o->len + 1) {
		o->failed = 1;
		return;
	}
	sodium_bin2base64(o->p + o->len, room, bin, n, B64);
	o->len += room - 1;
}

static void
out_u64(struct out *o, uint64_t v)
{
	char tmp[24];

	snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
	out_str(o, tmp);
}

/* Hand the buffer over (NUL-terminated), or free it if anything failed. */
static int
out_finish(struct out *o, char **res, size_t *res_len)
{
	if (o->failed) {
		free(o->p);
		o->p = NULL;
		return -1;
	}
	o->p[o->len] = '\0';
	*res = o->p;
	*res_len = o->len;
	o->p = NULL;
	return 0;
}

/* ---- keys ------------------------------------------------------------- */

uint32_t
msr_note_key_id(const char *name, size_t len, const uint8_t pub[MSR_NOTE_PUB_LEN])
{
	static const uint8_t sep[2] = { '\n', ALG_ED25519 };
	crypto_hash_sha256_state st;
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)name, len);
	crypto_hash_sha256_update(&st, sep, sizeof(sep));
	crypto_hash_sha256_update(&st, pub, MSR_NOTE_PUB_LEN);
	crypto_hash_sha256_final(&st, h);
	return be32(h);
}

int
msr_note_signer_from_seed(struct msr_note_signer *s, const char *name,
    const uint8_t seed[MSR_NOTE_SEED_LEN])
{
	size_t len = strlen(name);
	int ret = -1;

	sodium_memzero(s, sizeof(*s));
	if (!msr_note_valid_name(name, len))
		goto done;
	if (crypto_sign_seed_keypair(s->v.pub, s->sk, seed) != 0)
		goto done;
	memcpy(s->v.name, name, len + 1);
	s->v.key_id = msr_note_key_id(name, len, s->v.pub);
	ret = 0;
done:
	if (ret != 0)
		sodium_memzero(s, sizeof(*s));
	return ret;
}

int
msr_note_signer_generate(struct msr_note_signer *s, const char *name)
{
	uint8_t seed[MSR_NOTE_SEED_LEN];
	int ret;

	randombytes_buf(seed, sizeof(seed));
	ret = msr_note_signer_from_seed(s, name, seed);
	sodium_memzero(seed, sizeof(seed));
	return ret;
}

void
msr_note_signer_wipe(struct msr_note_signer *s)
{
	sodium_memzero(s, sizeof(*s));
}

/*
 * Split "<name>+<id hex>+<base64 key>" into its parts, as Go's note package
 * does (at the first two '+'; the key's base64 may itself contain '+'), strip
 * one trailing "\n", and decode the key, which must be 0x01 || 32 bytes.
 */
static int
split_key(const char *text, size_t len, const char **name, size_t *name_len,
    uint32_t *id, uint8_t key[1 + 32])
{
	const char *p1, *p2, *end;
	size_t got;
	int ret = -1;

	if (len > 0 && text[len - 1] == '\n')
		len--;
	end = text + len;
	p1 = memchr(text, '+', len);
	if (p1 == NULL)
		goto done;
	p2 = memchr(p1 + 1, '+', (size_t)(end - (p1 + 1)));
	if (p2 == NULL)
		goto done;
	*name = text;
	*name_len = (size_t)(p1 - text);
	if (!msr_note_valid_name(*name, *name_len))
		goto done;
	if (parse_id(p1 + 1, (size_t)(p2 - (p1 + 1)), id) == -1)
		goto done;
	if (b64_decode(p2 + 1, (size_t)(end - (p2 + 1)), key, 33, &got) == -1 ||
	    got != 33 || key[0] != ALG_ED25519)
		goto done;
	ret = 0;
done:
	return ret;
}

int
msr_note_verifier_parse(struct msr_note_verifier *v, const char *text,
    size_t len)
{
	uint8_t key[33];
	const char *name;
	size_t name_len;
	uint32_t id;
	int ret = -1;

	memset(v, 0, sizeof(*v));
	if (split_key(text, len, &name, &name_len, &id, key) == -1)
		goto done;
	if (msr_note_key_id(name, name_len, key + 1) != id)
		goto done;
	memcpy(v->name, name, name_len);
	v->name[name_len] = '\0';
	v->key_id = id;
	memcpy(v->pub, key + 1, MSR_NOTE_PUB_LEN);
	ret = 0;
done:
	if (ret != 0)
		memset(v, 0, sizeof(*v));
	return ret;
}

int
msr_note_signer_parse(struct msr_note_signer *s, const char *text, size_t len)
{
	uint8_t key[33];
	const char *name;
	size_t name_len;
	uint32_t id;
	int ret = -1;

	sodium_memzero(s, sizeof(*s));
	if (len < PRIV_PREFIX_LEN || memcmp(text, PRIV_PREFIX, PRIV_PREFIX_LEN) != 0)
		goto done;
	text += PRIV_PREFIX_LEN;
	len -= PRIV_PREFIX_LEN;
	if (split_key(text, len, &name, &name_len, &id, key) == -1)
		goto done;
	if (crypto_sign_seed_keypair(s->v.pub, s->sk, key + 1) != 0)
		goto done;
	if (msr_note_key_id(name, name_len, s->v.pub) != id)
		goto done;
	memcpy(s->v.name, name, name_len);
	s->v.name[name_len] = '\0';
	s->v.key_id = id;
	ret = 0;
done:
	sodium_memzero(key, sizeof(key));
	if (ret != 0)
		sodium_memzero(s, sizeof(*s));
	return ret;
}

/* "<prefix><name>+<id>+<base64(0x01 || key)>" into buf. */
static int
format_key(char *buf, size_t cap, const char *prefix, const char *name,
    uint32_t id, const uint8_t key32[32])
{
	char b64[sodium_base64_ENCODED_LEN(33, B64)];
	uint8_t raw[33];
	int n, ret = -1;

	if (!msr_note_valid_name(name, strlen(name)))
		goto done;
	raw[0] = ALG_ED25519;
	memcpy(raw + 1, key32, 32);
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), B64);
	n = snprintf(buf, cap, "%s%s+%08" PRIx32 "+%s", prefix, name, id, b64);
	if (n < 0 || (size_t)n >= cap) {
		if (cap > 0)
			sodium_memzero(buf, cap);
		goto done;
	}
	ret = 0;
done:
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(b64, sizeof(b64));
	return ret;
}

int
msr_note_signer_format(const struct msr_note_signer *s, char *buf, size_t cap)
{
	/* libsodium's secret key is seed || public key. */
	return format_key(buf, cap, PRIV_PREFIX, s->v.name, s->v.key_id, s->sk);
}

int
msr_note_verifier_format(const struct msr_note_verifier *v, char *buf,
    size_t cap)
{
	return format_key(buf, cap, "", v->name, v->key_id, v->pub);
}

/* ---- notes ------------------------------------------------------------ */

int
msr_note_sign(const struct msr_note_signer *s, const char *text, size_t len,
    char **res, size_t *res_len)
{
	uint8_t blob[SIG_BLOB_LEN];
	size_t name_len = strlen(s->v.name);
	struct out o = { NULL, 0, 0, 0 };
	int ret = -1;

	if (len == 0 || len > MSR_NOTE_MAX_LEN - 1024 || text[len - 1] != '\n' ||
	    !text_ok(text, len, 1) || !msr_note_valid_name(s->v.name, name_len))
		goto done;
	blob[0] = (uint8_t)(s->v.key_id >> 24);
	blob[1] = (uint8_t)(s->v.key_id >> 16);
	blob[2] = (uint8_t)(s->v.key_id >> 8);
	blob[3] = (uint8_t)s->v.key_id;
	if (crypto_sign_detached(blob + 4, NULL, (const uint8_t *)text, len,
	    s->sk) != 0)
		goto done;
	if (out_init(&o, len + 1 + DASH_LEN + name_len + 1 +
	    sodium_base64_ENCODED_LEN(SIG_BLOB_LEN, B64)) == -1)
		goto done;
	out_add(&o, text, len);
	out_str(&o, "\n" DASH);
	out_add(&o, s->v.name, name_len);
	out_str(&o, " ");
	out_b64(&o, blob, sizeof(blob));
	out_str(&o, "\n");
	ret = out_finish(&o, res, res_len);
done:
	return ret;
}

/* Does this signature line name v's key? Checks the line's syntax either way. */
static int
sig_line(const char *line, size_t n, uint8_t *buf, size_t *blob_len,
    const char **name, size_t *name_len)
{
	const char *sp;

	if (n < DASH_LEN || memcmp(line, DASH, DASH_LEN) != 0)
		return -1;
	line += DASH_LEN;
	n -= DASH_LEN;
	sp = memchr(line, ' ', n);
	if (sp == NULL)
		return -1;
	*name = line;
	*name_len = (size_t)(sp - line);
	if (!msr_note_valid_name(*name, *name_len))
		return -1;
	if (b64_decode(sp + 1, n - *name_len - 1, buf, SIG_DECODE_MAX, blob_len)
	    == -1 || *blob_len < 5)
		return -1;
	return 0;
}

/*
 * msr_note_open (must_verify 1) verifies the trusted key's signature;
 * msr_note_checkpoint_read (0) only requires a well-formed signature line naming a
 * trusted key (name and key id) and skips the Ed25519 arithmetic.
 */
static int
note_open(const struct msr_note_verifier *v, const char *msg, size_t len,
    size_t *text_len, const char **why, int must_verify)
{
	uint8_t *blob = NULL;
	const char *line, *name, *reason = "malformed note";
	const struct msr_note_verifier *k;
	size_t i, split, pos, line_len, blob_len, name_len, nsigs, nk;
	int verified = 0, ret = -1;

	nsigs = 0;
	if (len > MSR_NOTE_MAX_LEN) {
		reason = "note too large";
		goto done;
	}
	if (!text_ok(msg, len, 1)) {
		reason = "note is not UTF-8 text without control characters";
		goto done;
	}
	/* The text ends at the last blank line: the last "\n\n". */
	for (i = len; i >= 2; i--)
		if (msg[i - 1] == '\n' && msg[i - 2] == '\n')
			break;
	if (i < 2) {
		reason = "malformed note: no signature block";
		goto done;
	}
	split = i - 1;			/* text is msg[0 .. split) */
	if (i == len || msg[len - 1] != '\n') {
		reason = "malformed note: no signature block";
		goto done;
	}
	blob = malloc(SIG_DECODE_MAX);
	if (blob == NULL) {
		reason = "out of memory";
		goto done;
	}
	for (pos = split + 1; pos < len;) {
		if (next_line(msg, len, &pos, &line, &line_len) == -1 ||
		    sig_line(line, line_len, blob, &blob_len, &name, &name_len) == -1) {
			reason = "malformed note: bad signature line";
			goto done;
		}
		if (++nsigs > MSR_NOTE_MAX_SIGS) {
			reason = "malformed note: too many signatures";
			goto done;
		}
		/* The trusted key this line names, if any (bounded chain walk). */
		for (k = v, nk = 0; k != NULL && nk < MSR_NOTE_MAX_KEYS; k = k->also, nk++)
			if (name_len == strlen(k->name) &&
			    memcmp(name, k->name, name_len) == 0 && be32(blob) == k->key_id)
				break;
		if (k == NULL || nk == MSR_NOTE_MAX_KEYS)
			continue;
		if (blob_len != SIG_BLOB_LEN || (must_verify &&
		    crypto_sign_verify_detached(blob + 4, (const uint8_t *)msg,
		    split, k->pub) != 0)) {
			reason = "invalid signature";
			goto done;
		}
		verified = 1;
	}
	if (!verified) {
		reason = "no signature by the expected key";
		goto done;
	}
	*text_len = split;
	ret = 0;
done:
	free(blob);
	if (ret != 0 && why != NULL)
		*why = reason;
	return ret;
}

int
msr_note_open(const struct msr_note_verifier *v, const char *msg, size_t len,
    size_t *text_len, const char **why)
{
	return note_open(v, msg, len, text_len, why, 1);
}

/* ---- checkpoints ------------------------------------------------------ */

/* Extension lines: empty, or non-empty lines each ending in "\n". */
static int
ext_ok(const char *ext, size_t n)
{
	size_t i;

	if (n == 0)
		return 1;
	if (ext == NULL || ext[0] == '\n' || ext[n - 1] != '\n' ||
	    !text_ok(ext, n, 1))
		return 0;
	for (i = 1; i < n; i++)
		if (ext[i] == '\n' && ext[i - 1] == '\n')
			return 0;
	return 1;
}

int
msr_note_checkpoint_format(const struct msr_note_checkpoint *c, char **res,
    size_t *res_len)
{
	const char *nul = memchr(c->origin, '\0', sizeof(c->origin));
	size_t olen = nul == NULL ? sizeof(c->origin) : (size_t)(nul - c->origin);
	struct out o = { NULL, 0, 0, 0 };
	int ret = -1;

	if (olen == 0 || olen > MSR_NOTE_NAME_MAX || !text_ok(c->origin, olen, 0) ||
	    c->ext_len > MSR_NOTE_MAX_LEN / 4 || !ext_ok(c->ext, c->ext_len))
		goto done;
	if (out_init(&o, olen + 1 + 20 + 1 + HASH_B64_LEN + 1 + c->ext_len) == -1)
		goto done;
	out_add(&o, c->origin, olen);
	out_str(&o, "\n");
	out_u64(&o, c->size);
	out_str(&o, "\n");
	out_b64(&o, c->root, MSR_MERKLE_HASH_LEN);
	out_str(&o, "\n");
	if (c->ext_len > 0)
		out_add(&o, c->ext, c->ext_len);
	ret = out_finish(&o, res, res_len);
done:
	return ret;
}

int
msr_note_checkpoint_parse(struct msr_note_checkpoint *c, const char *text,
    size_t len)
{
	const char *line;
	size_t pos = 0, n;
	int ret = -1;

	memset(c, 0, sizeof(*c));
	if (len > MSR_NOTE_MAX_LEN || !text_ok(text, len, 1))
		goto done;
	if (next_line(text, len, &pos, &line, &n) == -1 || n == 0 ||
	    n > MSR_NOTE_NAME_MAX)
		goto done;
	memcpy(c->origin, line, n);
	c->origin[n] = '\0';
	if (next_line(text, len, &pos, &line, &n) == -1 ||
	    parse_u64(line, n, &c->size) == -1)
		goto done;
	if (next_line(text, len, &pos, &line, &n) == -1 ||
	    b64_hash(line, n, c->root) == -1)
		goto done;
	if (!ext_ok(text + pos, len - pos))
		goto done;
	if (pos < len) {
		c->ext = text + pos;
		c->ext_len = len - pos;
	}
	ret = 0;
done:
	if (ret != 0)
		memset(c, 0, sizeof(*c));
	return ret;
}

int
msr_note_checkpoint_sign(const struct msr_note_signer *s,
    const struct msr_note_checkpoint *c, char **res, size_t *res_len)
{
	char *text = NULL;
	size_t len;
	int ret = -1;

	if (msr_note_checkpoint_format(c, &text, &len) == -1)
		goto done;
	if (msr_note_sign(s, text, len, res, res_len) == -1)
		goto done;
	ret = 0;
done:
	free(text);
	return ret;
}

int
msr_note_checkpoint_sign_all(const struct msr_note_signer *const *s, size_t n,
    const struct msr_note_checkpoint *c, char **res, size_t *res_len)
{
	struct out o = { NULL, 0, 0, 0 };
	char *text = NULL, *one = NULL;
	size_t len, one_len, i;
	int ret = -1;

	*res = NULL;
	if (n == 0 || n > MSR_NOTE_MAX_KEYS ||
	    msr_note_checkpoint_format(c, &text, &len) == -1)
		goto done;
	/*
	 * Each signer signs the same text; the note is the text, the blank line,
	 * then every signature line (what follows the text in each one-signer note).
	 */
	if (out_init(&o, len + 1 + n * 512) == -1)
		goto done;
	out_add(&o, text, len);
	out_str(&o, "\n");
	for (i = 0; i < n; i++) {
		if (msr_note_sign(s[i], text, len, &one, &one_len) == -1 ||
		    one_len < len + 1)
			goto done;
		out_add(&o, one + len + 1, one_len - len - 1);
		free(one);
		one = NULL;
	}
	ret = out_finish(&o, res, res_len);
done:
	free(o.p);
	free(one);
	free(text);
	return ret;
}

int
msr_note_keys_chain(struct msr_note_verifier *keys, size_t n)
{
	size_t i;

	if (n == 0 || n > MSR_NOTE_MAX_KEYS)
		return -1;
	for (i = 0; i < n; i++) {
		if (strcmp(keys[i].name, keys[0].name) != 0)
			return -1;
		keys[i].also = i + 1 < n ? &keys[i + 1] : NULL;
	}
	return 0;
}

int
msr_note_keys_parse_list(const char *list, struct msr_note_verifier *keys,
    size_t cap, size_t *n)
{
	const char *p = list, *sep = ", \t\r\n";
	size_t len, got = *n;

	while (p != NULL && *p != '\0') {
		p += strspn(p, sep);
		len = strcspn(p, sep);
		if (len == 0)
			break;
		if (got >= cap || msr_note_verifier_parse(&keys[got], p, len) != 0)
			return -1;
		got++;
		p += len;
	}
	*n = got;
	return 0;
}

int
msr_note_keys_has(const struct msr_note_verifier *chain,
    const struct msr_note_verifier *v)
{
	size_t nk;

	for (nk = 0; chain != NULL && nk < MSR_NOTE_MAX_KEYS; chain = chain->also, nk++)
		if (strcmp(chain->name, v->name) == 0 && chain->key_id == v->key_id &&
		    sodium_memcmp(chain->pub, v->pub, MSR_NOTE_PUB_LEN) == 0)
			return 1;
	return 0;
}

static int
checkpoint_open(const struct msr_note_verifier *v, const char *note,
    struct msr_note_checkpoint *cp, int must_verify)
{
	size_t text_len;

	if (note == NULL || note_open(v, note, strlen(note), &text_len, NULL,
	    must_verify) != 0 ||
	    msr_note_checkpoint_parse(cp, note, text_len) != 0 ||
	    strcmp(cp->origin, v->name) != 0)
		return -1;
	return 0;
}

int
msr_note_checkpoint_open(const struct msr_note_verifier *v, const char *note,
    struct msr_note_checkpoint *cp)
{
	return checkpoint_open(v, note, cp, 1);
}

int
msr_note_checkpoint_read(const struct msr_note_verifier *v, const char *note,
    struct msr_note_checkpoint *cp)
{
	return checkpoint_open(v, note, cp, 0);
}

/* The value of base64 character c (original alphabet), or -1. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int
msr_note_checkpoint_is(const struct msr_note_verifier *v, const char *note, uint64_t size,
    const uint8_t root[MSR_MERKLE_HASH_LEN])
{
	/* body, blank line, "— " name " " 91 base64 characters "=" "\n": no more */
	enum { SIG_CHARS = 91 };
	char body[MSR_NOTE_NAME_MAX + 96], r64[48];
	const struct msr_note_verifier *k;
	const char *sig;
	size_t len = strlen(note), blen, nlen = strlen(v->name), nk;
	uint64_t id = 0;
	int c;

	sodium_bin2base64(r64, sizeof(r64), root, MSR_MERKLE_HASH_LEN,
	    sodium_base64_VARIANT_ORIGINAL);
	blen = (size_t)snprintf(body, sizeof(body), "%s\n%" PRIu64 "\n%s\n\n", v->name, size,
	    r64);
	if (blen >= sizeof(body) || len != blen + DASH_LEN + nlen + 1 + SIG_CHARS + 2 ||
	    memcmp(note, body, blen) != 0)
		return -1;
	sig = note + blen;
	if (memcmp(sig, DASH, DASH_LEN) != 0 || memcmp(sig + DASH_LEN, v->name, nlen) != 0 ||
	    sig[DASH_LEN + nlen] != ' ')
		return -1;
	sig += DASH_LEN + nlen + 1;
	for (int i = 0; i < SIG_CHARS; i++) {
		if ((c = b64_value((unsigned char)sig[i])) < 0)
			return -1;
		if (i < 6)
			id = id << 6 | (uint64_t)c;
	}
	/* 68 bytes: 22 groups of 4, then 3 characters for 16 bits (2 zero) and "=" */
	if ((b64_value((unsigned char)sig[SIG_CHARS - 1]) & 0x3) != 0 ||
	    sig[SIG_CHARS] != '=' || sig[SIG_CHARS + 1] != '\n')
		return -1;
	id >>= 4;			/* 36 bits read, the key id is the first 32 */
	for (k = v, nk = 0; k != NULL && nk < MSR_NOTE_MAX_KEYS; k = k->also, nk++)
		if (strcmp(k->name, v->name) == 0 && k->key_id == (uint32_t)id)
			return 0;
	return -1;
}

/* ---- files ------------------------------------------------------------ */

/*
 * Read at most cap - 1 bytes of path into buf (NUL-terminated). 0, or -1 with
 * errno set (EFBIG when the file is larger).
 */
static int
read_small(const char *path, char *buf, size_t cap, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t n;
	int ret = -1;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, cap - 1, f);
	if (ferror(f))
		goto done;
	if (n == cap - 1 && fgetc(f) != EOF) {
		errno = EFBIG;
		goto done;
	}
	buf[n] = '\0';
	*len = n;
	ret = 0;
done:
	fclose(f);
	return ret;
}

int
msr_note_signer_load(const char *path, struct msr_note_signer *s, char *err,
    size_t errlen)
{
	char buf[MSR_NOTE_KEY_TEXT_MAX + 2];
	size_t n = 0;
	int ret = -1;

	if (read_small(path, buf, sizeof(buf), &n) != 0) {
		snprintf(err, errlen, "cannot read the audit signer key %s: %s", path,
		    strerror(errno));
		goto done;
	}
	if (msr_note_signer_parse(s, buf, n) != 0) {
		snprintf(err, errlen, "%s is not a signer key (PRIVATE+KEY+<name>+<id>+<key>)",
		    path);
		goto done;
	}
	ret = 0;
done:
	sodium_memzero(buf, sizeof(buf));
	return ret;
}

int
msr_note_checkpoint_load(const char *path, const struct msr_note_verifier *v,
    char **note, struct msr_note_checkpoint *cp, int *missing, char *err,
    size_t errlen)
{
	char *buf = malloc(MSR_NOTE_MAX_LEN + 1);
	size_t n = 0;
	int ret = -1;

	*note = NULL;
	if (missing != NULL)
		*missing = 0;
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (read_small(path, buf, MSR_NOTE_MAX_LEN + 1, &n) != 0) {
		if (errno == ENOENT && missing != NULL)
			*missing = 1;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto done;
	}
	if (strlen(buf) != n || msr_note_checkpoint_open(v, buf, cp) != 0) {
		snprintf(err, errlen, "%s is not a checkpoint signed by %s", path, v->name);
		goto done;
	}
	*note = buf;
	buf = NULL;
	ret = 0;
done:
	free(buf);
	return ret;
}

/* ---- receipts --------------------------------------------------------- */

int
msr_note_receipt_format(const struct msr_note_receipt *r, char **res,
    size_t *res_len)
{
	struct out o = { NULL, 0, 0, 0 };
	size_t i, cap;
	int ret = -1;

	if (r->nproof > MSR_MERKLE_PROOF_MAX || r->note == NULL ||
	    r->note_len == 0 || r->note_len > MSR_NOTE_MAX_LEN ||
	    r->extra_len > MSR_NOTE_RECEIPT_MAX / 2 ||
	    (r->extra_len > 0 && r->extra == NULL))
		goto done;
	cap = sizeof(MSR_NOTE_RECEIPT_HEADER) +
	    (r->extra_len > 0 ? 6 + sodium_base64_ENCODED_LEN(r->extra_len, B64) : 0) +
	    6 + 20 + 1 + r->nproof * (HASH_B64_LEN + 1) + 1 + r->note_len;
	if (out_init(&o, cap) == -1)
		goto done;
	out_str(&o, MSR_NOTE_RECEIPT_HEADER "\n");
	if (r->extra_len > 0) {
		out_str(&o, "extra ");
		out_b64(&o, r->extra, r->extra_len);
		out_str(&o, "\n");
	}
	out_str(&o, "index ");
	out_u64(&o, r->index);
	out_str(&o, "\n");
	for (i = 0; i < r->nproof; i++) {
		out_b64(&o, r->proof[i], MSR_MERKLE_HASH_LEN);
		out_str(&o, "\n");
	}
	out_str(&o, "\n");
	out_add(&o, r->note, r->note_len);
	ret = out_finish(&o, res, res_len);
done:
	return ret;
}

void
msr_note_receipt_clear(struct msr_note_receipt *r)
{
	free(r->extra);
	memset(r, 0, sizeof(*r));
}

int
msr_note_receipt_parse(struct msr_note_receipt *r, const char *text, size_t len,
    const char **why)
{
	const char *line, *reason = "malformed receipt";
	uint8_t *extra = NULL;
	size_t pos = 0, n, cap, extra_len = 0;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	if (len > MSR_NOTE_RECEIPT_MAX) {
		reason = "receipt too large";
		goto done;
	}
	if (next_line(text, len, &pos, &line, &n) == -1 ||
	    n != strlen(MSR_NOTE_RECEIPT_HEADER) ||
	    memcmp(line, MSR_NOTE_RECEIPT_HEADER, n) != 0) {
		reason = "not a c2sp.org/tlog-proof@v1 receipt";
		goto done;
	}
	if (next_line(text, len, &pos, &line, &n) == -1)
		goto done;
	if (n >= 6 && memcmp(line, "extra ", 6) == 0) {
		cap = (n - 6) / 4 * 3;
		extra = malloc(cap > 0 ? cap : 1);
		if (extra == NULL) {
			reason = "out of memory";
			goto done;
		}
		if (b64_decode(line + 6, n - 6, extra, cap, &extra_len) == -1 ||
		    extra_len == 0) {
			reason = "malformed receipt: bad extra line";
			goto done;
		}
		if (next_line(text, len, &pos, &line, &n) == -1)
			goto done;
	}
	if (n < 6 || memcmp(line, "index ", 6) != 0 ||
	    parse_u64(line + 6, n - 6, &r->index) == -1) {
		reason = "malformed receipt: bad index line";
		goto done;
	}
	for (;;) {
		if (next_line(text, len, &pos, &line, &n) == -1) {
			reason = "malformed receipt: no checkpoint";
			goto done;
		}
		if (n == 0)
			break;
		if (r->nproof == MSR_MERKLE_PROOF_MAX ||
		    b64_hash(line, n, r->proof[r->nproof]) == -1) {
			reason = "malformed receipt: bad proof hash";
			goto done;
		}
		r->nproof++;
	}
	if (pos >= len) {
		reason = "malformed receipt: no checkpoint";
		goto done;
	}
	r->note = text + pos;
	r->note_len = len - pos;
	r->extra = extra;
	r->extra_len = extra_len;
	extra = NULL;
	ret = 0;
done:
	free(extra);
	if (ret != 0) {
		memset(r, 0, sizeof(*r));
		if (why != NULL)
			*why = reason;
	}
	return ret;
}

int
msr_note_receipt_verify(const struct msr_note_verifier *v, const char *text,
    size_t len, const uint8_t *leaf, size_t leaf_len,
    const uint8_t leaf_hash[MSR_MERKLE_HASH_LEN], struct msr_note_checkpoint *cp,
    uint64_t *index, const char **why)
{
	struct msr_note_receipt r;
	struct msr_note_checkpoint c;
	uint8_t h[MSR_MERKLE_HASH_LEN];
	const char *reason = "bad arguments";
	size_t text_len;
	int ret = -1;

	memset(&r, 0, sizeof(r));
	if (leaf == NULL && leaf_hash == NULL)
		goto done;
	if (msr_note_receipt_parse(&r, text, len, &reason) == -1)
		goto done;
	if (msr_note_open(v, r.note, r.note_len, &text_len, &reason) == -1)
		goto done;
	if (msr_note_checkpoint_parse(&c, r.note, text_len) == -1) {
		reason = "malformed checkpoint";
		goto done;
	}
	if (strcmp(c.origin, v->name) != 0) {
		reason = "checkpoint origin is not the key name";
		goto done;
	}
	if (r.index >= c.size) {
		reason = "index is outside the checkpoint's tree";
		goto done;
	}
	if (leaf != NULL)
		msr_merkle_leaf_hash(leaf, leaf_len, h);
	else
		memcpy(h, leaf_hash, sizeof(h));
	if (msr_merkle_verify_inclusion(h, r.index, c.size, r.proof, r.nproof,
	    c.root) == -1) {
		reason = "inclusion proof does not lead to the checkpoint's root";
		goto done;
	}
	if (cp != NULL)
		*cp = c;
	if (index != NULL)
		*index = r.index;
	ret = 0;
done:
	msr_note_receipt_clear(&r);
	if (ret != 0 && why != NULL)
		*why = reason;
	return ret;
}
