/*
 * auth.h — API keys.
 *
 * A key is "msr_" followed by 64 hex digits (256 random bits from libsodium).
 * Only its keyed BLAKE2b-256 hash (key = the server secret stored by
 * `msreg migrate`) is stored; lookups hash the presented key and compare the
 * stored hash in constant time. Keys are never logged.
 */
#ifndef MSREG_AUTH_H
#define MSREG_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "msreg/http.h"

#define MSR_KEY_PREFIX   "msr_"
#define MSR_KEY_TEXT_LEN (4 + 64)

struct msr_db_conn;

/* Generate a new key text (NUL-terminated, MSR_KEY_TEXT_LEN+1 bytes). */
void msr_auth_new_key(char out[MSR_KEY_TEXT_LEN + 1]);
/* Keyed hash of a presented key. */
void msr_auth_hash(const uint8_t secret[32], const char *key, uint8_t out[32]);
/*
 * Look up a presented key: 1 and *client filled if valid and not revoked,
 * 0 if unknown or revoked, -1 on database failure.
 */
int msr_auth_lookup(struct msr_db_conn *db, const uint8_t secret[32], const char *key,
                    struct msr_client *client);
/* Load the server secret (server_secrets 'api_key_hash'). 0 on success. */
int msr_auth_load_secret(struct msr_db_conn *db, uint8_t secret[32]);
/*
 * Create a client; writes its key (shown once) to key_out and its id to *id.
 * Returns 0, or -1 on database error (message in err).
 */
int msr_auth_create_client(struct msr_db_conn *db, const uint8_t secret[32],
                           const char *name, enum msr_role role, const char *org,
                           char key_out[MSR_KEY_TEXT_LEN + 1], int64_t *id,
                           char *err, size_t errlen);

#endif
