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

/*
 * Process-wide families fed by other subsystems (lock-free, callable from any
 * thread; rendered by msr_metrics_render):
 */
/* One committed audit batch of `entries` entries that took ns (audit.c). */
void msr_metrics_audit_batch(size_t entries, uint64_t ns);
/* One request's time in one phase (metrics.c names them). */
enum msr_phase {
	MSR_PHASE_RECEIVE, MSR_PHASE_HANDLER, MSR_PHASE_AUDIT, MSR_PHASE_COMMIT, MSR_PHASE_SEND,
	MSR_PHASES
};
void msr_metrics_phase(enum msr_phase p, uint64_t ns);
/* A request starts (+1) or stops (-1) waiting for a pooled connection (db.c). */
void msr_metrics_pool_wait(int delta);
/* A connection acquisition gave up after [database] pool_wait_ms (db.c). */
void msr_metrics_pool_timeout(void);
/* A refusal by error code; codes outside the refusal set are ignored (http.c). */
void msr_metrics_refusal(const char *code);
/* The search feed completed a catch-up: the index is current as of now (feed.c). */
void msr_metrics_feed_caught_up(void);

#endif
