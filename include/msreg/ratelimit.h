/*
 * ratelimit.h — token buckets per API key (at its role's rate) and per source
 * address of unauthenticated traffic ([rate] in config.example.ini).
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
/*
 * Take cost tokens for key at the given rate (tokens/s, <= 0 = unlimited) and
 * burst instead of the table's own: 0 if allowed, -1 if over the limit, with
 * *retry_after (may be NULL) the seconds until it would be allowed. A cost of
 * 0 only asks whether one token is there, taking nothing.
 */
int msr_ratelimit_take_rate(struct msr_ratelimit *rl, int64_t key, double rate,
                            double burst, double cost, double *retry_after);

#endif
