/*
 * jsonv.h — validating accessors for JSON request fields.
 *
 * Each returns 0 with the value in *out, or -1 after replying
 * 400 invalid_field (detail.field names the field). A missing optional field
 * leaves *out at the default given. Strings returned point into obj.
 */
#ifndef MSREG_JSONV_H
#define MSREG_JSONV_H

#include <jansson.h>
#include <stddef.h>

#include "msreg/http.h"

int msr_jv_string(struct msr_req *r, json_t *obj, const char *field, int required,
                  size_t maxlen, const char **out);
int msr_jv_int(struct msr_req *r, json_t *obj, const char *field, int required,
               json_int_t min, json_int_t max, json_int_t *out);
/* A calendar date YYYY-MM-DD; not_future refuses dates after today (UTC). */
int msr_jv_date(struct msr_req *r, json_t *obj, const char *field, int required,
                int not_future, const char **out);
/* One of the NULL-terminated allowed values. */
int msr_jv_enum(struct msr_req *r, json_t *obj, const char *field, int required,
                const char *const *allowed, const char **out);
/* Refuse keys not in the NULL-terminated list (typos must not pass silently). */
int msr_jv_known_keys(struct msr_req *r, json_t *obj, const char *const *keys);
/* Add key=value (stolen) to the detail object of the error already replied. */
void msr_reply_add_detail(struct msr_req *r, const char *key, json_t *value);
/*
 * Pre-scan a JSON text without building anything: *values gets an upper bound
 * of the values and keys it holds (counted from its structural characters
 * outside strings), *depth its deepest nesting. Linear, no allocation: run it
 * before json_loadb() so that a body like "[],[],..." cannot cost 50 times
 * its size in memory.
 */
void msr_json_prescan(const char *text, size_t len, size_t *values, int *depth);
/* Parse a decimal id from a path segment: 0 ok, -1 if not a positive integer. */
int msr_parse_id(const char *s, int64_t *out);

#endif
