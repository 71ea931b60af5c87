/*
 * auth.c — API key generation, hashing and lookup (see auth.h).
 *
 * Invariants:
 *  1. The plaintext key exists only in the creating call's output buffer and in
 *     the request headers; every local copy is wiped with sodium_memzero.
 *  2. Stored: BLAKE2b-256 keyed with the 32-byte server secret, so a database
 *     dump without the secret cannot even confirm a guessed key offline.
 *  3. The lookup is by hash (unique index) and the fetched hash is compared
 *     with sodium_memcmp, so no timing depends on how much of a key matched.
 *  4. revoked_at is checked on every request: a revoked key is refused at once
 *     on every msregd instance.
 */
#include "msreg/auth.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msreg/common.h"
#include "msreg/db.h"
#include "msreg/log.h"

static const struct msr_db_stmt stmt_lookup = {
	"auth_lookup",
	"SELECT id, role, coalesce(org, ''), name, key_hash FROM api_clients"
	" WHERE key_hash = $1 AND revoked_at IS NULL",
	1,
};

static const struct msr_db_stmt stmt_secret = {
	"auth_secret",
	"SELECT value FROM server_secrets WHERE name = 'api_key_hash'",
	0,
};

static const struct msr_db_stmt stmt_create = {
	"auth_create",
	"INSERT INTO api_clients (name, role, org, key_hash) VALUES ($1, $2, $3, $4)"
	" RETURNING id",
	4,
};

static const char *const role_names[] = {
	[MSR_ROLE_NONE] = "none",
	[MSR_ROLE_MANUFACTURER] = "manufacturer",
	[MSR_ROLE_DEALER] = "dealer",
	[MSR_ROLE_INVESTIGATOR] = "investigator",
	[MSR_ROLE_AUDITOR] = "auditor",
	[MSR_ROLE_ADMIN] = "admin",
};

const char *
msr_role_name(enum msr_role r)
{
	if ((size_t)r >= MSR_ARRAY_LEN(role_names))
		return "none";
	return role_names[r];
}

enum msr_role
msr_role_parse(const char *s)
{
	for (size_t i = 1; i < MSR_ARRAY_LEN(role_names); i++)
		if (s != NULL && strcmp(s, role_names[i]) == 0)
			return (enum msr_role)i;
	return MSR_ROLE_NONE;
}

void
msr_auth_new_key(char out[MSR_KEY_TEXT_LEN + 1])
{
	uint8_t raw[32];

	randombytes_buf(raw, sizeof(raw));
	memcpy(out, MSR_KEY_PREFIX, 4);
	sodium_bin2hex(out + 4, 65, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
}

void
msr_auth_hash(const uint8_t secret[32], const char *key, uint8_t out[32])
{
	crypto_generichash(out, 32, (const unsigned char *)key, strlen(key), secret, 32);
}

int
msr_auth_lookup(struct msr_db_conn *db, const uint8_t secret[32], const char *key,
    struct msr_client *client)
{
	uint8_t hash[32];
	const char *values[1] = { (const char *)hash };
	const int lengths[1] = { 32 };
	const int formats[1] = { 1 };
	PGresult *res = NULL;
	int ret = -1;

	if (strlen(key) != MSR_KEY_TEXT_LEN || strncmp(key, MSR_KEY_PREFIX, 4) != 0) {
		ret = 0;
		goto done;
	}
	msr_auth_hash(secret, key, hash);
	res = msr_db_exec_params(db, &stmt_lookup, values, lengths, formats, 1);
	if (!msr_db_ok(res))
		goto done;
	if (PQntuples(res) != 1 || PQgetlength(res, 0, 4) != 32 ||
	    sodium_memcmp(PQgetvalue(res, 0, 4), hash, 32) != 0) {
		ret = 0;
		goto done;
	}
	/* binary results: id is int8 big-endian */
	client->id = (int64_t)msr_load_be((const uint8_t *)PQgetvalue(res, 0, 0), 8);
	client->role = msr_role_parse(PQgetvalue(res, 0, 1));
	snprintf(client->org, sizeof(client->org), "%s", PQgetvalue(res, 0, 2));
	snprintf(client->name, sizeof(client->name), "%s", PQgetvalue(res, 0, 3));
	ret = client->role == MSR_ROLE_NONE ? 0 : 1;
done:
	sodium_memzero(hash, sizeof(hash));
	PQclear(res);
	return ret;
}

int
msr_auth_load_secret(struct msr_db_conn *db, uint8_t secret[32])
{
	PGresult *res = msr_db_exec_params(db, &stmt_secret, NULL, NULL, NULL, 1);
	int ret = -1;

	if (msr_db_ok(res) && PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 32) {
		memcpy(secret, PQgetvalue(res, 0, 0), 32);
		ret = 0;
	}
	PQclear(res);
	return ret;
}

int
msr_auth_create_client(struct msr_db_conn *db, const uint8_t secret[32], const char *name,
    enum msr_role role, const char *org, char key_out[MSR_KEY_TEXT_LEN + 1], int64_t *id,
    char *err, size_t errlen)
{
	uint8_t hash[32];
	const char *values[4];
	int lengths[4] = { 0, 0, 0, 32 };
	int formats[4] = { 0, 0, 0, 1 };
	PGresult *res;
	int ret = -1;

	msr_auth_new_key(key_out);
	msr_auth_hash(secret, key_out, hash);
	values[0] = name;
	values[1] = msr_role_name(role);
	values[2] = (org != NULL && org[0] != '\0') ? org : NULL;
	values[3] = (const char *)hash;
	res = msr_db_exec_params(db, &stmt_create, values, lengths, formats, 0);
	if (!msr_db_ok(res) || PQntuples(res) != 1) {
		snprintf(err, errlen, "%s", res ? PQresultErrorMessage(res) : "database unavailable");
		err[strcspn(err, "\n")] = '\0';
		sodium_memzero(key_out, MSR_KEY_TEXT_LEN + 1);
		goto done;
	}
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	ret = 0;
done:
	sodium_memzero(hash, sizeof(hash));
	PQclear(res);
	return ret;
}
