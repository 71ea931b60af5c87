/*
 * note.h — C2SP signed notes (Ed25519), tlog checkpoints and tlog-proof receipts
 * (pure, no I/O, except msr_note_signer_load and msr_note_checkpoint_load, which
 * read one small file).
 *
 *   signer key    PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || 32-byte seed)>
 *   verifier key  <name>+<key id hex>+<base64(0x01 || 32-byte public key)>
 *   key id        SHA-256(name || "\n" || 0x01 || public key)[0:4], big-endian
 *   signed note   <text ending in "\n">"\n"
 *                 "— <name> <base64(key id (4 bytes BE) || signature (64))>\n"...
 *   checkpoint    <origin>\n<size>\n<base64 root>\n[<extension line>\n]...
 *   receipt       c2sp.org/tlog-proof@v1\n[extra <base64>\n]index <N>\n
 *                 [<base64 hash>\n]...\n<signed checkpoint note>
 *
 * sodium_init() must have succeeded before anything here is called.
 *
 * Ownership: functions that return text (`char **out`) allocate it with malloc,
 * NUL-terminate it (the NUL is not counted in *out_len) and the caller frees it
 * with free(). Pointers documented as borrowed point into the caller's input and
 * live as long as it does. A struct msr_note_signer holds a secret key: release
 * it with msr_note_signer_wipe(); formatted signer key text is secret too and
 * the caller wipes it (sodium_memzero) when done.
 * Return values: 0 on success, -1 on failure; `why`, when not NULL, receives a
 * static English reason on failure.
 */
#ifndef MSREG_NOTE_H
#define MSREG_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "msreg/merkle.h"

#define MSR_NOTE_NAME_MAX	255		/* key name / origin, bytes */
#define MSR_NOTE_KEY_TEXT_MAX	384		/* formatted key text, NUL included */
#define MSR_NOTE_MAX_LEN	(1 << 20)	/* largest signed note accepted */
#define MSR_NOTE_MAX_SIGS	100		/* signature lines per note */
#define MSR_NOTE_RECEIPT_MAX	(MSR_NOTE_MAX_LEN + (1 << 16))
#define MSR_NOTE_PUB_LEN	32
#define MSR_NOTE_SEED_LEN	32
#define MSR_NOTE_RECEIPT_HEADER	"c2sp.org/tlog-proof@v1"
#define MSR_NOTE_MAX_KEYS	8		/* trusted keys in one chain (rotation) */

struct msr_note_verifier {
	char		name[MSR_NOTE_NAME_MAX + 1];	/* NUL-terminated */
	uint32_t	key_id;
	uint8_t		pub[MSR_NOTE_PUB_LEN];
	/*
	 * Key rotation: further keys trusted as well (the same name, other key
	 * ids), a NULL-terminated chain of at most MSR_NOTE_MAX_KEYS keys in all,
	 * borrowed. Everything that takes a verifier accepts a signature by any key
	 * of the chain. Parsing sets it to NULL; msr_note_keys_chain() links.
	 */
	const struct msr_note_verifier *also;
};

struct msr_note_signer {
	struct msr_note_verifier v;	/* the public half */
	uint8_t		sk[64];		/* secret: seed || public key (libsodium) */
};

/*
 * 1 if name (len bytes) is a valid key name: non-empty, at most
 * MSR_NOTE_NAME_MAX bytes of UTF-8 without Unicode spaces, '+' or control
 * characters. Else 0.
 */
int msr_note_valid_name(const char *name, size_t len);
uint32_t msr_note_key_id(const char *name, size_t len,
    const uint8_t pub[MSR_NOTE_PUB_LEN]);

/* Keys. name is NUL-terminated. */
int msr_note_signer_generate(struct msr_note_signer *s, const char *name);
int msr_note_signer_from_seed(struct msr_note_signer *s, const char *name,
    const uint8_t seed[MSR_NOTE_SEED_LEN]);
void msr_note_signer_wipe(struct msr_note_signer *s);
/*
 * Parse key text (one trailing "\n" is allowed). The key id must match the
 * name and key; the algorithm byte must be 0x01 (Ed25519). On failure the
 * output struct is wiped.
 */
int msr_note_signer_parse(struct msr_note_signer *s, const char *text,
    size_t len);
int msr_note_verifier_parse(struct msr_note_verifier *v, const char *text,
    size_t len);
/* Write NUL-terminated key text into buf (cap bytes; MSR_NOTE_KEY_TEXT_MAX
 * always suffices). */
int msr_note_signer_format(const struct msr_note_signer *s, char *buf,
    size_t cap);
int msr_note_verifier_format(const struct msr_note_verifier *v, char *buf,
    size_t cap);

/*
 * Link keys[0..n) into one chain (keys[0] first; it stays the one whose name
 * counts). 0, or -1 when n is 0 or above MSR_NOTE_MAX_KEYS or the names differ.
 */
int msr_note_keys_chain(struct msr_note_verifier *keys, size_t n);
/*
 * Parse a list of verifier keys separated by commas and/or white space into
 * keys[*n ..) (at most cap in all), advancing *n. Not chained. 0, or -1 with
 * *n unchanged when a key is malformed or there are too many.
 */
int msr_note_keys_parse_list(const char *list, struct msr_note_verifier *keys,
    size_t cap, size_t *n);
/* 1 if a key with v's name and key id and public key is in the chain. */
int msr_note_keys_has(const struct msr_note_verifier *chain,
    const struct msr_note_verifier *v);

/*
 * Sign a note text (valid UTF-8, no control characters but "\n", ending in
 * "\n"): *out = text "\n" "— <name> <base64(key id || signature)>\n".
 */
int msr_note_sign(const struct msr_note_signer *s, const char *text, size_t len,
    char **out, size_t *out_len);
/*
 * Open a signed note: 0 if it is well formed and carries a valid signature by
 * v or a key of its chain (matching name and key id). Signatures by other
 * keys are ignored; a signature by a trusted key that does not verify rejects
 * the note. On success the text is
 * msg[0 .. *text_len).
 */
int msr_note_open(const struct msr_note_verifier *v, const char *msg, size_t len,
    size_t *text_len, const char **why);

/* Checkpoints (the text of a signed note). */
struct msr_note_checkpoint {
	char		origin[MSR_NOTE_NAME_MAX + 1];	/* NUL-terminated */
	uint64_t	size;
	uint8_t		root[MSR_MERKLE_HASH_LEN];
	const char	*ext;		/* extension lines, each ending "\n"; NULL */
	size_t		ext_len;	/* or ext_len 0 for none. Borrowed. */
};

int msr_note_checkpoint_format(const struct msr_note_checkpoint *c, char **out,
    size_t *out_len);
/* Parse checkpoint text; c->ext then borrows from text. */
int msr_note_checkpoint_parse(struct msr_note_checkpoint *c, const char *text,
    size_t len);
/* Format c and sign it as a note by s (normally s's name is c->origin). */
int msr_note_checkpoint_sign(const struct msr_note_signer *s,
    const struct msr_note_checkpoint *c, char **out, size_t *out_len);
/*
 * The same with n signers (1 <= n <= MSR_NOTE_MAX_KEYS): one signature line
 * each, in the order given (key rotation: the current key, then the next).
 */
int msr_note_checkpoint_sign_all(const struct msr_note_signer *const *s, size_t n,
    const struct msr_note_checkpoint *c, char **out, size_t *out_len);
/*
 * Open a signed checkpoint note (NUL-terminated): signed by v, well formed, and
 * its origin is v's name. 0 and *cp filled (cp->ext borrows from note), or -1.
 */
int msr_note_checkpoint_open(const struct msr_note_verifier *v, const char *note,
    struct msr_note_checkpoint *cp);
/*
 * The same WITHOUT the signature arithmetic: the note is well formed and has a
 * 68-byte signature line naming v (name and key id), but the signature itself
 * is not checked. Only for a checkpoint whose root is authenticated otherwise
 * (the log verifier: an older checkpoint whose root equals the recomputed root
 * of a prefix of a tree whose newest root was verified).
 */
int msr_note_checkpoint_read(const struct msr_note_verifier *v, const char *note,
    struct msr_note_checkpoint *cp);
/*
 * A fast sufficient test for msr_note_checkpoint_read plus "its body is
 * (v's name, size, root)": 0 if the note is exactly that body without
 * extension lines and ONE well-formed signature line naming v or a key of its
 * chain (signature not verified); -1 otherwise, which proves nothing (callers
 * fall back to msr_note_checkpoint_read). Anything it accepts, _read accepts.
 */
int msr_note_checkpoint_is(const struct msr_note_verifier *v, const char *note,
    uint64_t size, const uint8_t root[MSR_MERKLE_HASH_LEN]);

/*
 * Files. msr_note_signer_load reads a signer key file (the text form above,
 * PRIVATE+KEY+...) into s; the caller wipes s. msr_note_checkpoint_load reads a
 * signed checkpoint note of at most MSR_NOTE_MAX_LEN bytes into *note (malloc,
 * NUL-terminated; caller frees) and opens it with v into *cp (cp->ext borrows
 * from *note). Both return 0, or -1 with a reason in err (and, for a checkpoint
 * file that does not exist, *missing = 1 when missing is not NULL).
 */
int msr_note_signer_load(const char *path, struct msr_note_signer *s, char *err,
    size_t errlen);
int msr_note_checkpoint_load(const char *path, const struct msr_note_verifier *v,
    char **note, struct msr_note_checkpoint *cp, int *missing, char *err,
    size_t errlen);

/* Receipts: C2SP tlog-proof. */
struct msr_note_receipt {
	uint64_t	index;
	uint8_t		*extra;		/* opaque extra data or NULL; see below */
	size_t		extra_len;
	size_t		nproof;		/* inclusion proof, leaf side first */
	uint8_t		proof[MSR_MERKLE_PROOF_MAX][MSR_MERKLE_HASH_LEN];
	const char	*note;		/* the signed checkpoint, verbatim */
	size_t		note_len;
};

/* Format r (r->extra and r->note are only read). */
int msr_note_receipt_format(const struct msr_note_receipt *r, char **out,
    size_t *out_len);
/*
 * Parse receipt text. r->note borrows from text; r->extra is malloc'd (NULL
 * when there is no extra line): release it with msr_note_receipt_clear().
 * Nothing is verified beyond the syntax.
 */
int msr_note_receipt_parse(struct msr_note_receipt *r, const char *text,
    size_t len, const char **why);
void msr_note_receipt_clear(struct msr_note_receipt *r);
/*
 * Verify a receipt offline: the checkpoint is signed by v, its origin is v's
 * name, the index lies inside it, and the inclusion proof takes the leaf to its
 * root. The leaf is given as its bytes (leaf != NULL; leaf_len may be 0) or, when
 * leaf is NULL, as its RFC 9162 leaf hash. On success, cp (if not NULL) gets the
 * checkpoint (cp->ext borrows from text) and index (if not NULL) the index.
 * The extra data is not authenticated and is not looked at.
 */
int msr_note_receipt_verify(const struct msr_note_verifier *v, const char *text,
    size_t len, const uint8_t *leaf, size_t leaf_len,
    const uint8_t leaf_hash[MSR_MERKLE_HASH_LEN], struct msr_note_checkpoint *cp,
    uint64_t *index, const char **why);

#endif
