/*
 * embedded.h — files compiled into the binaries (deploy/embed.sh): the SQL
 * migrations sql/NNN_*.sql in order, and server/openapi.json.
 */
#ifndef MSREG_EMBEDDED_H
#define MSREG_EMBEDDED_H

struct msr_embedded {
	const char *path;
	const char *text;
};

extern const struct msr_embedded msr_embedded[];
extern const unsigned long msr_embedded_len;

/* The embedded file at path, or NULL. */
const char *msr_embedded_get(const char *path);

#endif
