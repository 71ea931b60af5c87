// readings.js — the examiner's reading of one casing, as text and as 8 boxes.
//
// Text form (what POST /v1/search takes): one item per position, a symbol
// (Crockford base32), "?" for unreadable, or "[..]" for alternatives, e.g.
// "0H[5S]K?4M3". Box form: an array of strings, one per position: "" or "?"
// unreadable, "5" one symbol, "5S" alternatives. The two convert both ways.

export const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

// Crockford's reading rules: case-insensitive, O is 0, I and L are 1.
export function normSymbol(c) {
	const u = c.toUpperCase();
	if (u === 'O')
		return '0';
	if (u === 'I' || u === 'L')
		return '1';
	return u;
}

// Text to positions; null if the text is not a well-formed reading.
export function parseReading(text) {
	const out = [];
	const t = text.replace(/[\s-]/g, '');
	for (let i = 0; i < t.length; i++) {
		const c = t[i];
		if (c === '?') {
			out.push('?');
		} else if (c === '[') {
			const j = t.indexOf(']', i);
			if (j < 0)
				return null;
			const set = [...t.slice(i + 1, j)].map(normSymbol);
			if (set.length === 0 || set.some((s) => !ALPHABET.includes(s)))
				return null;
			out.push([...new Set(set)].join(''));
			i = j;
		} else {
			const s = normSymbol(c);
			if (!ALPHABET.includes(s))
				return null;
			out.push(s);
		}
	}
	return out;
}

// Positions (box values) to text.
export function formatReading(positions) {
	return positions.map((p) => {
		const set = [...new Set([...(p || '')].map(normSymbol))]
			.filter((s) => ALPHABET.includes(s) || s === '?');
		if (set.length === 0 || set.includes('?'))
			return '?';
		return set.length === 1 ? set[0] : `[${set.join('')}]`;
	}).join('');
}

// Positions where code disagrees with a reading: [{position (1-based), read}].
export function disagreements(code, positions) {
	const out = [];
	if (!positions || positions.length !== code.length)
		return out;
	for (let i = 0; i < code.length; i++) {
		const p = positions[i];
		if (p === '?' || p === '')
			continue;
		if (!p.includes(code[i]))
			out.push({ position: i + 1, read: p.length > 1 ? `[${p}]` : p });
	}
	return out;
}
