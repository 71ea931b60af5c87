/*
 * ratelimit.c — per-key token buckets in a fixed open-addressing table.
 *
 * The table has a fixed number of slots (bounded memory whatever the number of
 * keys); a slot is keyed by client id and recycled when its bucket is full and
 * idle, so an unused key costs nothing after it has refilled.
 *
 * msr_ratelimit_take_rate() lets one table hold keys of different classes
 * (each API key at its role's rate, each source address at the address rate):
 * the rate and burst are the caller's, the table only keeps the buckets. Keys
 * of different kinds must not collide (http.c tags address keys).
 *
 * A bucket remembers the rate and burst it was last taken at, and whether it
 * is full (recyclable) is judged at those, never at the rate of the client
 * looking for a slot: a fast class probing past a slow key's empty bucket
 * must not recycle it, which would hand that key a fresh burst.
 */
#include "msreg/common.h"
#include "msreg/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define SLOTS 4096

struct bucket {
	int64_t client;      /* 0 = empty */
	double  tokens;
	double  last;        /* seconds, monotonic */
	double  rate, burst; /* the owner's, as of its last take */
};

struct msr_ratelimit {
	double          rate, burst;
	pthread_mutex_t lock;
	struct bucket   b[SLOTS];
};

struct msr_ratelimit *
msr_ratelimit_new(double per_second, double burst)
{
	struct msr_ratelimit *rl;

	if (per_second <= 0)
		return NULL;
	rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return NULL;
	rl->rate = per_second;
	rl->burst = burst;
	pthread_mutex_init(&rl->lock, NULL);
	return rl;
}

void
msr_ratelimit_free(struct msr_ratelimit *rl)
{
	if (rl == NULL)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

int
msr_ratelimit_take(struct msr_ratelimit *rl, int64_t client_id)
{
	if (rl == NULL)
		return 0;
	return msr_ratelimit_take_rate(rl, client_id, rl->rate, rl->burst, 1.0, NULL);
}

int
msr_ratelimit_take_rate(struct msr_ratelimit *rl, int64_t client_id, double rate,
    double burst, double cost, double *retry_after)
{
	struct bucket *b = NULL;
	double t;
	int ret = -1;

	if (retry_after != NULL)
		*retry_after = 0;
	if (rl == NULL || rate <= 0)
		return 0;
	t = msr_now_s();
	pthread_mutex_lock(&rl->lock);
	for (size_t i = 0; i < 16; i++) {
		struct bucket *c = &rl->b[((uint64_t)client_id * 0x9E3779B97F4A7C15u + i) % SLOTS];
		double tok;
		if (c->client == client_id) {
			b = c;
			break;
		}
		tok = c->tokens + (t - c->last) * c->rate;
		if (b == NULL && (c->client == 0 || tok >= c->burst))
			b = c;
	}
	if (b == NULL) {
		ret = 0;     /* table hot everywhere: fail open rather than refuse */
		goto done;
	}
	if (b->client != client_id) {
		b->client = client_id;
		b->tokens = burst;
		b->last = t;
	}
	b->tokens += (t - b->last) * rate;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last = t;
	b->rate = rate;
	b->burst = burst;
	if (cost <= 0 && b->tokens >= 1.0) {
		ret = 0;                  /* a peek: would one more request pass? */
	} else if (cost > 0 && b->tokens >= cost) {
		b->tokens -= cost;
		ret = 0;
	} else if (retry_after != NULL) {
		*retry_after = ((cost > 0 ? cost : 1.0) - b->tokens) / rate;
	}
done:
	pthread_mutex_unlock(&rl->lock);
	return ret;
}
