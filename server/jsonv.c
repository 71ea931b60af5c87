/*
 * jsonv.c — validating accessors for JSON request fields (see jsonv.h).
 *
 * Text fields must be valid UTF-8 (jansson guarantees it), non-empty after
 * trimming when required, free of control characters, and within maxlen
 * bytes, so nothing unprintable reaches the database or the audit log.
 */
#include "msreg/jsonv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A field name echoed in an error: a client's key can be megabytes long. */
static json_t *
field_detail(const char *field)
{
	char buf[129];

	msr_utf8_clean(field, strlen(field), buf, sizeof(buf));
	return json_pack("{s:s}", "field", buf);
}

static int
missing(struct msr_req *r, const char *field)
{
	msr_reply_error(r, 400, "invalid_field", field_detail(field),
	    "%.128s is required", field);
	return -1;
}

static int
bad(struct msr_req *r, const char *field, const char *why)
{
	msr_reply_error(r, 400, "invalid_field", field_detail(field),
	    "%.128s %s", field, why);
	return -1;
}

int
msr_jv_string(struct msr_req *r, json_t *obj, const char *field, int required,
    size_t maxlen, const char **out)
{
	json_t *v = json_object_get(obj, field);
	const char *s;
	size_t n;

	if (v == NULL || json_is_null(v))
		return required ? missing(r, field) : 0;
	if (!json_is_string(v))
		return bad(r, field, "must be a string");
	s = json_string_value(v);
	n = json_string_length(v);
	if (strlen(s) != n)
		return bad(r, field, "must not contain NUL characters");
	if (n == 0 || strspn(s, " \t") == n)
		return bad(r, field, "must not be empty");
	if (n > maxlen) {
		char why[64];
		snprintf(why, sizeof(why), "is longer than %zu bytes", maxlen);
		return bad(r, field, why);
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return bad(r, field, "must not contain control characters");
	*out = s;
	return 0;
}

int
msr_jv_int(struct msr_req *r, json_t *obj, const char *field, int required,
    json_int_t min, json_int_t max, json_int_t *out)
{
	json_t *v = json_object_get(obj, field);
	json_int_t x;

	if (v == NULL || json_is_null(v))
		return required ? missing(r, field) : 0;
	if (!json_is_integer(v))
		return bad(r, field, "must be an integer");
	x = json_integer_value(v);
	if (x < min || x > max) {
		char why[96];
		snprintf(why, sizeof(why), "must be between %lld and %lld",
		    (long long)min, (long long)max);
		return bad(r, field, why);
	}
	*out = x;
	return 0;
}

int
msr_jv_date(struct msr_req *r, json_t *obj, const char *field, int required,
    int not_future, const char **out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *s = NULL;
	int y, m, d, leap;
	char today[11];
	time_t now;
	struct tm tm;

	if (msr_jv_string(r, obj, field, required, 10, &s) != 0)
		return -1;
	if (s == NULL)
		return 0;
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
	    strspn(s, "0123456789") != 4 || strspn(s + 5, "0123456789") != 2 ||
	    strspn(s + 8, "0123456789") != 2)
		return bad(r, field, "must be a date YYYY-MM-DD");
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 1800 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
	    (m == 2 && d == 29 && !leap))
		return bad(r, field, "is not a valid calendar date");
	if (not_future) {
		now = time(NULL);
		gmtime_r(&now, &tm);
		strftime(today, sizeof(today), "%Y-%m-%d", &tm);
		if (strcmp(s, today) > 0)
			return bad(r, field, "must not be in the future");
	}
	*out = s;
	return 0;
}

int
msr_jv_enum(struct msr_req *r, json_t *obj, const char *field, int required,
    const char *const *allowed, const char **out)
{
	const char *s = NULL;
	char why[256];
	size_t n;

	if (msr_jv_string(r, obj, field, required, 64, &s) != 0)
		return -1;
	if (s == NULL)
		return 0;
	for (size_t i = 0; allowed[i] != NULL; i++)
		if (strcmp(s, allowed[i]) == 0) {
			*out = allowed[i];
			return 0;
		}
	n = (size_t)snprintf(why, sizeof(why), "must be one of");
	for (size_t i = 0; allowed[i] != NULL && n < sizeof(why); i++)
		n += (size_t)snprintf(why + n, sizeof(why) - n, "%s %s", i ? "," : "", allowed[i]);
	return bad(r, field, why);
}

int
msr_jv_known_keys(struct msr_req *r, json_t *obj, const char *const *keys)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		size_t i;
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(k, keys[i]) == 0)
				break;
		if (keys[i] == NULL)
			return bad(r, k, "is not a known field");
	}
	return 0;
}

void
msr_reply_add_detail(struct msr_req *r, const char *key, json_t *value)
{
	json_t *err = json_object_get(r->reply_json, "error");
	json_t *detail;

	if (err == NULL) {
		json_decref(value);
		return;
	}
	detail = json_object_get(err, "detail");
	if (detail == NULL) {
		detail = json_object();
		json_object_set_new(err, "detail", detail);
	}
	json_object_set_new(detail, key, value);
}

void
msr_json_prescan(const char *text, size_t len, size_t *values, int *depth)
{
	size_t n = 1;
	int d = 0, max = 0, in_string = 0;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
			continue;
		}
		switch (c) {
		case '"':
			in_string = 1;
			break;
		case '[':
		case '{':
			n++;
			if (++d > max)
				max = d;
			break;
		case ']':
		case '}':
			d--;
			break;
		case ',':
		case ':':
			n++;
			break;
		default:
			break;
		}
	}
	*values = n;
	*depth = max;
}

int
msr_parse_id(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	*out = v;
	return 0;
}
