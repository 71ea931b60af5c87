/*
 * routes.h — read-only facts about the route table (routes.c) for modules
 * below the HTTP layer (metrics.c), so that they need not include http.h
 * (which includes them back).
 */
#ifndef MSREG_ROUTES_H
#define MSREG_ROUTES_H

#include <stddef.h>

/* Route i's path pattern and method (i < msr_routes_len; static strings). */
const char *msr_route_pattern(size_t i);
const char *msr_route_method(size_t i);

#endif
