/*
 * metrics.h — request counters and latency histograms per route, Prometheus text.
 */
#ifndef MSREG_METRICS_H
#define MSREG_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct msr_metrics;

struct msr_metrics *msr_metrics_new(size_t nroutes);
void msr_metrics_free(struct msr_metrics *m);
/* Record one request; route -1 = unrouted (404/405). Lock-free. */
void msr_metrics_observe(struct msr_metrics *m, int route, unsigned status, uint64_t ns);
/* Render the exposition text (caller frees). extra is appended verbatim (may be NULL). */
char *msr_metrics_render(struct msr_metrics *m, const char *extra);

#endif
