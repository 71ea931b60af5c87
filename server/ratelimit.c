/*
 * ratelimit.c — per-key token buckets in a fixed open-addressing table.
 *
 * The table has a fixed number of slots (bounded memory whatever the number of
 * keys); a slot is keyed by client id and recycled when its bucket is full and
 * idle, so an unused key costs nothing after it has refilled.
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
	struct bucket *b = NULL;
	double t;
	int ret = -1;

	if (rl == NULL)
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
		tok = c->tokens + (t - c->last) * rl->rate;
		if (b == NULL && (c->client == 0 || tok >= rl->burst))
			b = c;
	}
	if (b == NULL) {
		ret = 0;     /* table hot everywhere: fail open rather than refuse */
		goto done;
	}
	if (b->client != client_id) {
		b->client = client_id;
		b->tokens = rl->burst;
		b->last = t;
	}
	b->tokens += (t - b->last) * rl->rate;
	if (b->tokens > rl->burst)
		b->tokens = rl->burst;
	b->last = t;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		ret = 0;
	}
done:
	pthread_mutex_unlock(&rl->lock);
	return ret;
}
