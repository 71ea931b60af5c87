/*
 * code.h — the microstamp code scheme (pure, no I/O).
 *
 * Alphabet: Crockford base32 "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; a symbol is its
 * index 0..31. rs8 codes: 6 data symbols c0..c5 then 2 Reed–Solomon check symbols
 * c6,c7 over GF(32) (primitive polynomial x^5+x^2+1, alpha = 2). The codeword is
 * the polynomial c0*x^7 + ... + c7 and has roots alpha and alpha^2, so any two
 * codewords differ in at least 3 positions. free codes: 6..16 symbols, any values.
 * Gear bits: the symbols as 5-bit big-endian groups (40 bits for rs8).
 */
#ifndef MSREG_CODE_H
#define MSREG_CODE_H

#include <stddef.h>
#include <stdint.h>

#define MSR_ALPHABET       "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#define MSR_RS8_LEN        8
#define MSR_RS8_DATA       6
#define MSR_FREE_MIN       6
#define MSR_FREE_MAX       16
#define MSR_CODE_MAX       16   /* longest code of any scheme, in symbols */

enum msr_scheme { MSR_SCHEME_RS8 = 0, MSR_SCHEME_FREE = 1 };

/* GF(32) arithmetic (x^5+x^2+1). Elements are 0..31; only the low 5 bits of
 * an argument are used. */
uint8_t msr_gf_mul(uint8_t a, uint8_t b);
uint8_t msr_gf_inv(uint8_t a);          /* a != 0; msr_gf_inv(0) returns 0 */
uint8_t msr_gf_exp(unsigned i);         /* alpha^i (i taken mod 31) */

/* Symbol value of an input character after Crockford normalisation
 * (case-insensitive, I/L -> 1, O -> 0), or -1 if it is not a symbol. */
int msr_sym_value(char c);
/* Character for a symbol 0..31 ('?' for anything larger). */
char msr_sym_char(uint8_t v);

/*
 * Normalise user input into symbol values: hyphens and spaces dropped, Crockford
 * substitutions applied. Writes at most cap symbols to out and the count to *n.
 * Returns 0, or -1 on an invalid character (its 0-based input offset in *bad_at)
 * or when the input has more than cap symbols (*bad_at = -1).
 * An invalid character is reported even if it comes after the cap'th symbol.
 * On success *bad_at = -1; on failure *n = 0. n and bad_at may be NULL.
 */
int msr_code_normalize(const char *in, uint8_t *out, size_t cap, size_t *n,
                       long *bad_at);
/* Render symbols as text; buf must hold n+1 bytes. */
void msr_code_format(const uint8_t *sym, size_t n, char *buf);

/* Fill sym[6], sym[7] from the 6 data symbols sym[0..5]. */
void msr_rs8_encode(uint8_t sym[MSR_RS8_LEN]);
/* 1 if the 8 symbols form an rs8 codeword. */
int msr_rs8_valid(const uint8_t sym[MSR_RS8_LEN]);
/*
 * Complete a reading with erasures: known[i] = 0 marks position i unknown (its
 * value in sym is ignored). At most one codeword agrees with the known symbols;
 * if there is one it is written to sym and 1 returned. Returns 0 when the known
 * symbols are inconsistent with every codeword, -1 when more than 2 positions are
 * unknown; in both cases sym is left unchanged.
 *   2 unknown: there is always exactly one completion (6 symbols fix a codeword).
 *   1 unknown: one completion if the 7 known symbols are consistent, else 0
 *              (e.g. one erased and one misread character).
 *   0 unknown: 1 if sym is a codeword, else 0.
 * A known symbol outside 0..31 is inconsistent with every codeword.
 */
int msr_rs8_complete(uint8_t sym[MSR_RS8_LEN], const uint8_t known[MSR_RS8_LEN]);

/*
 * Turn a 30-bit data integer into a codeword: sym[0..5] are its 5-bit groups,
 * most significant first (bits above bit 29 are ignored), then sym[6..7] are
 * the check symbols. A bijection from 0..2^30-1 onto the rs8 codewords, so
 * drawing data30 uniformly (randombytes_uniform(MSR_RS8_DATA_SPACE)) draws a
 * codeword uniformly. msr_rs8_pack(sym) >> 10 == data30.
 */
#define MSR_RS8_DATA_SPACE (UINT32_C(1) << 30)
void msr_rs8_from_data(uint32_t data30, uint8_t sym[MSR_RS8_LEN]);

/* Pack/unpack an rs8 code as a 40-bit integer (symbol 0 most significant;
 * pack uses the low 5 bits of each symbol, unpack ignores bits above bit 39). */
uint64_t msr_rs8_pack(const uint8_t sym[MSR_RS8_LEN]);
void msr_rs8_unpack(uint64_t v, uint8_t sym[MSR_RS8_LEN]);

/* Gear rendering: n symbols to 5n '0'/'1' chars + NUL (buf holds 5n+1). */
void msr_code_gear(const uint8_t *sym, size_t n, char *buf);

#endif
