/*
 * log.c — leveled logging to stderr (see log.h).
 *
 * Each message is formatted into one buffer and written with a single write(2)
 * so lines from concurrent threads never interleave.
 */
#include "msreg/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = MSR_LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
msr_log_set_level(enum msr_log_level level)
{
	log_level = level;
}

int
msr_log_parse_level(const char *s)
{
	for (size_t i = 0; i < MSR_ARRAY_LEN(level_names); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

static void
log_vwrite(enum msr_log_level level, const char *fmt, va_list ap)
{
	char buf[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int w;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	w = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ %-5s ",
	    ts.tv_nsec / 1000000, level_names[level]);
	if (w > 0)
		n += (size_t)w;
	w = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	if (w > 0)
		n += (size_t)w;
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nowhere left to report it */
	}
}

void
msr_log(enum msr_log_level level, const char *fmt, ...)
{
	va_list ap;

	if ((int)level < log_level)
		return;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

void
msr_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(MSR_LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
