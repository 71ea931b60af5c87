/*
 * tile.c — tile index paths of c2sp.org/tlog-tiles, shared by the tile API
 * (handlers_tiles.c) and `msreg audit monitor` (cli_monitor.c).
 *
 *   <N>        zero-padded 3-digit path elements, all but the last prefixed
 *              with "x": 1234067 -> "x001/x234/067", 5 -> "005"
 *   .p/<W>     partial tiles only: W in 1..255, decimal without leading zeros
 *
 * Invariant: msr_tile_parse_index accepts exactly the strings
 * msr_tile_format_index writes (one spelling per tile), with N below 10^18.
 */
#include "msreg/witness.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MAX_GROUPS 6

int
msr_tile_parse_index(const char *s, uint64_t *n, unsigned *w)
{
	uint64_t v = 0;
	unsigned width = MSR_TILE_WIDTH;
	int groups = 0;

	for (;;) {
		int x = (*s == 'x');

		if (x)
			s++;
		if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' ||
		    s[2] < '0' || s[2] > '9' || ++groups > MAX_GROUPS)
			return -1;
		v = v * 1000 + (uint64_t)((s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0'));
		if (x && groups == 1 && v == 0)
			return -1;	/* "x000/..." is not the spelling of anything */
		s += 3;
		if (x) {
			if (*s++ != '/')
				return -1;
			continue;
		}
		break;
	}
	if (strncmp(s, ".p/", 3) == 0) {
		s += 3;
		if (s[0] < '1' || s[0] > '9')
			return -1;
		width = 0;
		for (int i = 0; s[i] != '\0'; i++) {
			if (s[i] < '0' || s[i] > '9' || i >= 3)
				return -1;
			width = width * 10 + (unsigned)(s[i] - '0');
		}
		if (width >= MSR_TILE_WIDTH)
			return -1;
	} else if (*s != '\0') {
		return -1;
	}
	*n = v;
	*w = width;
	return 0;
}

int
msr_tile_format_index(uint64_t n, unsigned w, char *buf, size_t cap)
{
	unsigned g[8];
	int k = 0, len = 0, m;

	if (w < 1 || w > MSR_TILE_WIDTH || cap < 4)
		return -1;
	do {
		g[k++] = (unsigned)(n % 1000);
		n /= 1000;
	} while (n > 0 && k < 8);
	while (k-- > 0) {
		m = snprintf(buf + len, cap - (size_t)len, k > 0 ? "x%03u/" : "%03u", g[k]);
		if (m < 0 || (size_t)len + (size_t)m >= cap)
			return -1;
		len += m;
	}
	if (w < MSR_TILE_WIDTH) {
		m = snprintf(buf + len, cap - (size_t)len, ".p/%u", w);
		if (m < 0 || (size_t)len + (size_t)m >= cap)
			return -1;
	}
	return 0;
}
