/*
 * feed.h — the daemon's partial-code search index, loaded from PostgreSQL at
 * start and kept current through the change sequence (LISTEN/NOTIFY plus
 * catch-up by sequence number), so a code registered through any msregd
 * instance becomes searchable on every instance within a second.
 */
#ifndef MSREG_FEED_H
#define MSREG_FEED_H

#include <stddef.h>

struct msr_config;
struct msr_feed;
struct msr_index;

/* Start loading in the background; never NULL except out of memory. */
struct msr_feed *msr_feed_start(const struct msr_config *cfg);
void msr_feed_stop(struct msr_feed *f);
/* 1 once the initial load finished and the feed is following changes. */
int msr_feed_ready(struct msr_feed *f);
/* The index (valid for the feed's lifetime; thread-safe for searching). */
struct msr_index *msr_feed_index(struct msr_feed *f);
/* Prometheus lines (index size, bytes, lag) into buf. */
void msr_feed_metrics(struct msr_feed *f, char *buf, size_t len);
/* Block until every change committed before this call is in the index (≤ timeout). */
int msr_feed_sync(struct msr_feed *f, int timeout_ms);

#endif
