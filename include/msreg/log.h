/*
 * log.h — leveled logging to stderr.
 *
 * One line per message: "<time> <level> <message>". Never pass secrets (API
 * keys, signer keys, database passwords) to these functions.
 */
#ifndef MSREG_LOG_H
#define MSREG_LOG_H

#include "msreg/common.h"

enum msr_log_level { MSR_LOG_DEBUG, MSR_LOG_INFO, MSR_LOG_WARN, MSR_LOG_ERROR };

void msr_log_set_level(enum msr_log_level level);
/* Parse "debug", "info", "warn", "error"; -1 if unknown. */
int msr_log_parse_level(const char *s);
void msr_log(enum msr_log_level level, const char *fmt, ...) MSR_PRINTF(2, 3);
/* Log at error level and exit(1). */
void msr_fatal(const char *fmt, ...) MSR_PRINTF(1, 2) __attribute__((noreturn));

#define log_debug(...) msr_log(MSR_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  msr_log(MSR_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  msr_log(MSR_LOG_WARN, __VA_ARGS__)
#define log_error(...) msr_log(MSR_LOG_ERROR, __VA_ARGS__)

#endif
