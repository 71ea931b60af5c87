/*
 * common.h — small shared definitions: result codes and attribute macros.
 */
#ifndef MSREG_COMMON_H
#define MSREG_COMMON_H

#define MSR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MSR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MSR_UNUSED       __attribute__((unused))

#endif
