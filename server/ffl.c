/*
 * ffl.c — Federal Firearms Licence numbers.
 *
 * Form "R-DD-CCC-TT-XM-SSSSS": region 1-9, district (2 digits), county
 * (3 digits), licence type (2 digits), expiration (year digit and month letter
 * A-M), sequence (5 digits) — 20 characters with hyphens.
 */
#include <string.h>

#include "msreg/registry.h"

int
msr_ffl_valid(const char *s)
{
	static const char shape[] = "N-NN-NNN-NN-NL-NNNNN";
	size_t n = strlen(shape);

	if (strlen(s) != n || s[0] < '1' || s[0] > '9')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		switch (shape[i]) {
		case 'N':
			if (c < '0' || c > '9')
				return 0;
			break;
		case 'L':
			if (c < 'A' || c > 'M')
				return 0;
			break;
		default:
			if (c != shape[i])
				return 0;
		}
	}
	return 1;
}
