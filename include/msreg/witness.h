/*
 * witness.h — tamper-evidence beyond the database: the C2SP tlog-witness that
 * `msreg witness` runs (witness.c), msregd's submitter of checkpoints to
 * witnesses (witness_client.c) and the tile path syntax shared by the tile API
 * (handlers_tiles.c) and `msreg audit monitor` (cli_monitor.c).
 */
#ifndef MSREG_WITNESS_H
#define MSREG_WITNESS_H

#include <stddef.h>
#include <stdint.h>

struct msr_config;
struct msr_db_pool;

/* --- tile paths (c2sp.org/tlog-tiles) --- */

#define MSR_TILE_WIDTH	256
#define MSR_TILE_HEIGHT	8
#define MSR_TILE_PATH_MAX	96

/*
 * Parse "<N>[.p/<W>]" (N in x001/x234/067 form, W 1..255 without leading
 * zeros). *w is 256 for a full tile. 0 or -1.
 */
int msr_tile_parse_index(const char *s, uint64_t *n, unsigned *w);
/* Write "<N>[.p/<W>]" for tile n of width w (1..256) into buf. 0 or -1. */
int msr_tile_format_index(uint64_t n, unsigned w, char *buf, size_t cap);

/* --- the witness (witness.c) --- */

#define MSR_WITNESS_PROOF_MAX	63
#define MSR_WITNESS_HASH_LEN	32

/*
 * Parse an add-checkpoint request body (c2sp.org/tlog-witness): "old <n>\n"
 * (no leading zeros), at most 63 base64 hash lines, an empty line; the note
 * starts at b + *note_off. 0, or -1 with a static reason in *why.
 */
int msr_witness_parse_request(const char *b, size_t len, uint64_t *old,
    uint8_t proof[][MSR_WITNESS_HASH_LEN], size_t *nproof, size_t *note_off,
    const char **why);

/* --- msregd's witness submitter (witness_client.c) --- */

struct msr_witness_client;

/*
 * Parse the [witness] configuration and start the submitter thread; NULL with
 * no thread when no witness is configured. *err (errlen bytes) gets the reason
 * and *bad is set when the configuration is invalid.
 */
struct msr_witness_client *msr_witness_client_start(const struct msr_config *cfg,
    struct msr_db_pool *db, int *bad, char *err, size_t errlen);
void msr_witness_client_stop(struct msr_witness_client *wc);
/*
 * The signed note with every cosignature this msregd holds for exactly its text
 * appended, malloc'd (caller frees); NULL when there is none to add (or wc is
 * NULL): serve note as is.
 */
char *msr_witness_client_decorate(struct msr_witness_client *wc, const char *note,
    size_t len);
/* 1 when policy = refuse and the quorum of fresh cosignatures is not met. */
int msr_witness_client_refusing(struct msr_witness_client *wc);
/* Append Prometheus text (cosignature age, failures) to buf (cap bytes). */
void msr_witness_client_metrics(struct msr_witness_client *wc, char *buf, size_t cap);

/* --- CLI --- */

/* msreg witness --config FILE | msreg witness keygen --name NAME --out FILE */
int msr_cli_witness(const struct msr_config *cfg, int argc, char **argv);
/* msreg audit monitor --url URL --state FILE ... */
int msr_cli_monitor(const struct msr_config *cfg, int argc, char **argv);

#endif
