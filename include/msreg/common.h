/*
 * common.h — small shared definitions: attribute macros, the monotonic clock,
 * big-endian loads.
 */
#ifndef MSREG_COMMON_H
#define MSREG_COMMON_H

#include <stdint.h>
#include <time.h>

#define MSR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MSR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MSR_UNUSED       __attribute__((unused))

/* Monotonic clock in nanoseconds and in seconds. */
static inline uint64_t
msr_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double
msr_now_s(void)
{
	return (double)msr_now_ns() / 1e9;
}

/* Big-endian unsigned integer of n bytes (n <= 8), e.g. libpq binary results. */
static inline uint64_t
msr_load_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

#endif
