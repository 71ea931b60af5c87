/*
 * cosig.h — witness cosignatures: C2SP tlog-cosignature "cosignature/v1"
 * (Ed25519) keys, signing and verification (pure, no I/O).
 *
 *   key id       SHA-256(name || "\n" || 0x04 || 32-byte public key)[0:4], BE
 *   verifier key <name>+<key id hex>+<base64(0x04 || public key)>   (a vkey)
 *   signer key   PRIVATE+KEY+<name>+<key id hex>+<base64(0x04 || seed)>
 *                (the signed-note signer key form with the cosignature/v1
 *                type byte; `msreg witness keygen` writes it)
 *   message      "cosignature/v1\n" "time " <t> "\n" <checkpoint note text>
 *   signature    "— " <name> " " base64(key id || u64 t BE || Ed25519 sig) "\n"
 *
 * sodium_init() must have succeeded before anything here is called.
 * Return values: 0 on success, -1 on failure. A struct msr_cosig_signer holds a
 * secret: release it with msr_cosig_signer_wipe().
 */
#ifndef MSREG_COSIG_H
#define MSREG_COSIG_H

#include <stddef.h>
#include <stdint.h>

#define MSR_COSIG_ALG		0x04
#define MSR_COSIG_NAME_MAX	255
#define MSR_COSIG_KEY_TEXT_MAX	384
#define MSR_COSIG_LINE_MAX	(MSR_COSIG_NAME_MAX + 160)	/* one signature line */

struct msr_cosig_verifier {
	char		name[MSR_COSIG_NAME_MAX + 1];
	uint32_t	key_id;
	uint8_t		pub[32];
};

struct msr_cosig_signer {
	struct msr_cosig_verifier v;
	uint8_t		sk[64];		/* secret: seed || public key */
};

uint32_t msr_cosig_key_id(const char *name, size_t len, const uint8_t pub[32]);
int msr_cosig_signer_generate(struct msr_cosig_signer *s, const char *name);
/* Parse key text (one trailing "\n" allowed); the type byte must be 0x04. */
int msr_cosig_signer_parse(struct msr_cosig_signer *s, const char *text, size_t len);
int msr_cosig_verifier_parse(struct msr_cosig_verifier *v, const char *text,
    size_t len);
int msr_cosig_signer_format(const struct msr_cosig_signer *s, char *buf, size_t cap);
int msr_cosig_verifier_format(const struct msr_cosig_verifier *v, char *buf,
    size_t cap);
void msr_cosig_signer_wipe(struct msr_cosig_signer *s);

/*
 * Cosign a checkpoint note text (text[0 .. len), ending in "\n") at POSIX time
 * t: write the NUL-terminated signature line into line (cap bytes;
 * MSR_COSIG_LINE_MAX suffices).
 */
int msr_cosig_sign(const struct msr_cosig_signer *s, const char *text, size_t len,
    uint64_t t, char *line, size_t cap);

/*
 * The text of a signed note msg[0 .. len): *text_len is the length of the text
 * (through its final "\n"; the blank line and the signature lines follow).
 */
int msr_cosig_note_text(const char *msg, size_t len, size_t *text_len);

/*
 * 0 if the signed note msg carries a valid cosignature by v (name and key id
 * match, the signature verifies); *t (may be NULL) gets its timestamp. -1 if
 * there is none, or if a line by v does not verify.
 */
int msr_cosig_verify(const struct msr_cosig_verifier *v, const char *msg, size_t len,
    uint64_t *t);

#endif
