/*
 * bench.h — what every benchmark shares: the clock (msr_now_s/msr_now_ns from
 * msreg/common.h) and percentiles by nearest rank.
 */
#ifndef MSREG_BENCH_H
#define MSREG_BENCH_H

#include <stdlib.h>

#include "msreg/common.h"

static inline int
bench_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The pct-th percentile (nearest rank) of v[0..n); v is sorted in place. */
static inline double
bench_percentile(double *v, size_t n, double pct)
{
	size_t i;

	if (n == 0)
		return 0.0;
	qsort(v, n, sizeof(*v), bench_dbl_cmp);
	i = (size_t)(pct / 100.0 * (double)n + 0.999999);
	if (i > 0)
		i--;
	return v[i < n ? i : n - 1];
}

#endif
