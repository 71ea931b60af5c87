/*
 * ratelimit.h — per-API-key token buckets ([rate] per_second, burst).
 *
 * In-process: each msregd instance limits independently. A rate of 0 disables.
 */
#ifndef MSREG_RATELIMIT_H
#define MSREG_RATELIMIT_H

#include <stdint.h>

struct msr_ratelimit;

struct msr_ratelimit *msr_ratelimit_new(double per_second, double burst);
void msr_ratelimit_free(struct msr_ratelimit *rl);
/* Take one token for client id: 0 if allowed, -1 if over the limit. rl may be NULL. */
int msr_ratelimit_take(struct msr_ratelimit *rl, int64_t client_id);

#endif
