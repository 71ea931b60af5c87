/*
 * registry.h — registry rules shared by handlers and tools.
 */
#ifndef MSREG_REGISTRY_H
#define MSREG_REGISTRY_H

/* 1 if s is a Federal Firearms Licence number "1-23-456-07-6B-12345". */
int msr_ffl_valid(const char *s);

#endif
