/*
 * migrate.h — apply the embedded SQL migrations (sql/NNN_*.sql) in order.
 *
 * Each migration runs in its own transaction together with its row in
 * schema_migrations, under an advisory lock, so concurrent `msreg migrate`
 * runs serialise and re-running is a no-op. Also creates the server secret
 * that keys API-key hashes, once.
 */
#ifndef MSREG_MIGRATE_H
#define MSREG_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

/* Returns the number of migrations applied (0 if up to date), or -1 (err filled). */
int msr_migrate(PGconn *pg, char *err, size_t errlen);

#endif
