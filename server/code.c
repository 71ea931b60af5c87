/*
 * code.c — the microstamp code scheme: Crockford symbols, GF(32) arithmetic and
 * the rs8 Reed–Solomon code. Pure functions: no I/O, no allocation, no global
 * mutable state, so every function is safe to call from any thread.
 *
 * GF(32)
 *   Elements are polynomials over GF(2) of degree < 5, stored as 5-bit integers
 *   (bit k = coefficient of x^k), reduced modulo the primitive polynomial
 *   p(x) = x^5 + x^2 + 1 (0x25). Addition is XOR. alpha = x (the integer 2)
 *   generates the multiplicative group of order 31, so every nonzero a is
 *   alpha^log(a) for one log(a) in 0..30. Multiplication is a table lookup:
 *   a*b = exp[log a + log b]. gf_exp holds alpha^0..alpha^61 (the 31 powers
 *   twice over) so that the sum of two logs never needs reducing mod 31, and
 *   a/b = exp[log a + 31 - log b]. The tables are constants generated from
 *   p(x); tests/check_code.c checks them against the shared vectors and against
 *   bit-by-bit multiplication of every pair.
 *
 * rs8
 *   A codeword is 8 symbols c0..c7, read as the polynomial
 *       c(x) = c0*x^7 + c1*x^6 + ... + c6*x + c7,
 *   that has alpha and alpha^2 as roots, i.e. is a multiple of the generator
 *       g(x) = (x - alpha)(x - alpha^2) = x^2 + 6x + 8.
 *   Encoding is systematic: c0..c5 are data and c6*x + c7 is the remainder of
 *   (c0*x^5 + ... + c5) * x^2 divided by g(x), computed with the usual
 *   two-register division (LFSR). The code is MDS with n = 8, k = 6, so its
 *   minimum distance is n - k + 1 = 3.
 *
 *   Position i has locator X_i = alpha^(7-i) (the power of x it multiplies).
 *   For a word w the syndromes are S1 = w(alpha) and S2 = w(alpha^2); w is a
 *   codeword iff S1 = S2 = 0.
 *
 * Erasure completion
 *   Zero the unknown positions and take the syndromes S1, S2 of that word. The
 *   missing values e_i must cancel them (characteristic 2: minus is plus):
 *       sum e_i X_i   = S1
 *       sum e_i X_i^2 = S2
 *   Two unknowns i, j (X_i != X_j because the 8 locators are distinct powers of
 *   alpha): a 2x2 Vandermonde-like system with the single solution
 *       e_i = (S2 + X_j S1) / (X_i (X_i + X_j)),   e_j = (S1 + e_i X_i) / X_j.
 *   One unknown i: e_i = S1 / X_i, and the second equation must then hold as
 *   well (S2 = S1 X_i), otherwise no codeword agrees with the 7 known symbols.
 *   No unknown: the word is a codeword iff S1 = S2 = 0.
 *
 * Invariants
 *   1. msr_rs8_encode, msr_rs8_from_data and a successful msr_rs8_complete
 *      always produce a codeword (msr_rs8_valid returns 1 for it).
 *   2. A completion agrees with sym at every known position; sym is not written
 *      unless msr_rs8_complete returns 1.
 *   3. With exactly two unknown positions msr_rs8_complete always returns 1:
 *      any 6 positions of an MDS code with k = 6 determine one codeword.
 *   4. Any two codewords differ in at least 3 positions, so one or two wrong
 *      symbols always make msr_rs8_valid return 0.
 *   5. msr_rs8_from_data is a bijection from 0..2^30-1 onto the codewords.
 *   6. No function reads outside its tables, whatever byte values it is given:
 *      field arguments are masked to 5 bits, symbols above 31 are rejected.
 */
#include "msreg/code.h"

#define GF_ORDER 31     /* size of the multiplicative group of GF(32) */

/* alpha^i for i = 0..61 (alpha^(i+31) = alpha^i). */
static const uint8_t gf_exp[2 * GF_ORDER] = {
	 1,  2,  4,  8, 16,  5, 10, 20,
	13, 26, 17,  7, 14, 28, 29, 31,
	27, 19,  3,  6, 12, 24, 21, 15,
	30, 25, 23, 11, 22,  9, 18,  1,
	 2,  4,  8, 16,  5, 10, 20, 13,
	26, 17,  7, 14, 28, 29, 31, 27,
	19,  3,  6, 12, 24, 21, 15, 30,
	25, 23, 11, 22,  9, 18,
};

/* log_alpha(a) for a = 1..31; gf_log[0] is unused (0 has no logarithm). */
static const uint8_t gf_log[32] = {
	 0,  0,  1, 18,  2,  5, 19, 11,
	 3, 29,  6, 27, 20,  8, 12, 23,
	 4, 10, 30, 17,  7, 22, 28, 26,
	21, 25,  9, 16, 13, 14, 24, 15,
};

/* Generator g(x) = x^2 + G1*x + G0. */
#define RS8_G1 6
#define RS8_G0 8

uint8_t
msr_gf_mul(uint8_t a, uint8_t b)
{
	a &= 31;
	b &= 31;
	if (a == 0 || b == 0)
		return 0;
	return gf_exp[gf_log[a] + gf_log[b]];
}

uint8_t
msr_gf_inv(uint8_t a)
{
	a &= 31;
	if (a == 0)
		return 0;
	return gf_exp[GF_ORDER - gf_log[a]];
}

uint8_t
msr_gf_exp(unsigned i)
{
	return gf_exp[i % GF_ORDER];
}

/* a / b for b != 0 (both already in 0..31). */
static uint8_t
gf_div(uint8_t a, uint8_t b)
{
	if (a == 0 || b == 0)
		return 0;
	return gf_exp[gf_log[a] + GF_ORDER - gf_log[b]];
}

int
msr_sym_value(char c)
{
	unsigned char u = (unsigned char)c;
	const char *alpha = MSR_ALPHABET;
	int v;

	if (u >= '0' && u <= '9')
		return u - '0';
	if (u >= 'a' && u <= 'z')
		u = (unsigned char)(u - 'a' + 'A');
	if (u == 'I' || u == 'L')
		return 1;
	if (u == 'O')
		return 0;
	for (v = 10; v < 32; v++) {
		if ((unsigned char)alpha[v] == u)
			return v;
	}
	return -1;
}

char
msr_sym_char(uint8_t v)
{
	if (v > 31)
		return '?';
	return MSR_ALPHABET[v];
}

int
msr_code_normalize(const char *in, uint8_t *out, size_t cap, size_t *n,
                   long *bad_at)
{
	size_t count = 0;
	long bad = -1;
	size_t i;
	int v;

	for (i = 0; in[i] != '\0'; i++) {
		if (in[i] == '-' || in[i] == ' ')
			continue;
		v = msr_sym_value(in[i]);
		if (v < 0) {
			bad = (long)i;
			break;
		}
		if (count < cap)
			out[count] = (uint8_t)v;
		count++;
	}

	if (bad_at != NULL)
		*bad_at = bad;
	if (bad >= 0 || count > cap) {
		if (n != NULL)
			*n = 0;
		return -1;
	}
	if (n != NULL)
		*n = count;
	return 0;
}

void
msr_code_format(const uint8_t *sym, size_t n, char *buf)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = msr_sym_char(sym[i]);
	buf[n] = '\0';
}

void
msr_code_gear(const uint8_t *sym, size_t n, char *buf)
{
	size_t i;
	int bit;

	for (i = 0; i < n; i++) {
		for (bit = 4; bit >= 0; bit--)
			*buf++ = (char)('0' + ((sym[i] >> bit) & 1));
	}
	*buf = '\0';
}

/* X_i = alpha^(7-i), the power of x that symbol i multiplies. */
static uint8_t
rs8_locator(unsigned i)
{
	return gf_exp[MSR_RS8_LEN - 1 - i];
}

/* S1 = w(alpha), S2 = w(alpha^2), by Horner's rule; symbols must be < 32. */
static void
rs8_syndromes(const uint8_t *w, uint8_t *s1, uint8_t *s2)
{
	uint8_t a = 0, b = 0;
	unsigned i;

	for (i = 0; i < MSR_RS8_LEN; i++) {
		a = msr_gf_mul(a, 2) ^ w[i];
		b = msr_gf_mul(b, 4) ^ w[i];
	}
	*s1 = a;
	*s2 = b;
}

void
msr_rs8_encode(uint8_t sym[MSR_RS8_LEN])
{
	uint8_t r1 = 0, r0 = 0, fb;
	unsigned i;

	/* Remainder of d(x) * x^2 mod g(x): r1*x + r0. */
	for (i = 0; i < MSR_RS8_DATA; i++) {
		fb = (uint8_t)((sym[i] & 31) ^ r1);
		r1 = r0 ^ msr_gf_mul(fb, RS8_G1);
		r0 = msr_gf_mul(fb, RS8_G0);
	}
	sym[6] = r1;
	sym[7] = r0;
}

int
msr_rs8_valid(const uint8_t sym[MSR_RS8_LEN])
{
	uint8_t s1, s2;
	unsigned i;

	for (i = 0; i < MSR_RS8_LEN; i++) {
		if (sym[i] > 31)
			return 0;
	}
	rs8_syndromes(sym, &s1, &s2);
	return s1 == 0 && s2 == 0;
}

int
msr_rs8_complete(uint8_t sym[MSR_RS8_LEN], const uint8_t known[MSR_RS8_LEN])
{
	uint8_t w[MSR_RS8_LEN];
	unsigned unk[2];
	unsigned nunk = 0, i;
	uint8_t s1, s2, xi, xj, ei, ej;

	for (i = 0; i < MSR_RS8_LEN; i++) {
		if (known[i]) {
			if (sym[i] > 31)
				return 0;
			w[i] = sym[i];
			continue;
		}
		if (nunk == 2)
			return -1;
		unk[nunk++] = i;
		w[i] = 0;
	}

	rs8_syndromes(w, &s1, &s2);
	switch (nunk) {
	case 0:
		if (s1 != 0 || s2 != 0)
			return 0;
		break;
	case 1:
		xi = rs8_locator(unk[0]);
		if (s2 != msr_gf_mul(s1, xi))
			return 0;
		w[unk[0]] = gf_div(s1, xi);
		break;
	default:
		xi = rs8_locator(unk[0]);
		xj = rs8_locator(unk[1]);
		ei = gf_div(s2 ^ msr_gf_mul(xj, s1), msr_gf_mul(xi, xi ^ xj));
		ej = gf_div(s1 ^ msr_gf_mul(ei, xi), xj);
		w[unk[0]] = ei;
		w[unk[1]] = ej;
		break;
	}

	for (i = 0; i < MSR_RS8_LEN; i++)
		sym[i] = w[i];
	return 1;
}

void
msr_rs8_from_data(uint32_t data30, uint8_t sym[MSR_RS8_LEN])
{
	unsigned i;

	for (i = 0; i < MSR_RS8_DATA; i++)
		sym[i] = (uint8_t)((data30 >> (5 * (MSR_RS8_DATA - 1 - i))) & 31);
	msr_rs8_encode(sym);
}

uint64_t
msr_rs8_pack(const uint8_t sym[MSR_RS8_LEN])
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < MSR_RS8_LEN; i++)
		v = (v << 5) | (uint64_t)(sym[i] & 31);
	return v;
}

void
msr_rs8_unpack(uint64_t v, uint8_t sym[MSR_RS8_LEN])
{
	unsigned i;

	for (i = 0; i < MSR_RS8_LEN; i++)
		sym[i] = (uint8_t)((v >> (5 * (MSR_RS8_LEN - 1 - i))) & 31);
}
