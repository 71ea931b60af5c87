/*
 * embedded.h — files compiled into the binaries (deploy/embed.sh): the SQL
 * migrations sql/NNN_*.sql in order, server/openapi.json, and the web
 * console's files (server/ui/) under "ui/<served name>" (versioned names, see
 * deploy/embed.sh).
 */
#ifndef MSREG_EMBEDDED_H
#define MSREG_EMBEDDED_H

struct msr_embedded {
	const char *path;
	const char *text;
};

extern const struct msr_embedded msr_embedded[];
extern const unsigned long msr_embedded_len;

/* The console's version: the hash in its asset names ("" if none embedded). */
extern const char msr_embedded_ui_version[];

/* The embedded file at path, or NULL. */
const char *msr_embedded_get(const char *path);

#endif
