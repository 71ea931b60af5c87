// csv.js — the production file (API.md "Production file"): RFC 4180 CSV with
// a header line, one line per code; lines with the same serial are one
// firearm. parseProduction() turns it into batch items and row-numbered
// rejections before anything is sent.

const COLUMNS = ['serial', 'model', 'type', 'caliber', 'manufactured_on', 'code', 'component', 'scheme'];
const REQUIRED = ['serial', 'model', 'type', 'caliber', 'code', 'component'];
const COMPONENTS = ['firing_pin', 'breech_face', 'ejector', 'extractor', 'other'];
export const MAX_ROWS = 200000;

// Records with the line number each starts on: [{line, fields}].
export function parseCsv(text) {
	const out = [];
	let i = 0, line = 1;
	const n = text.length;
	if (text.charCodeAt(0) === 0xfeff)
		i = 1;
	while (i < n) {
		const start = line;
		const fields = [];
		let f = '';
		for (;;) {
			if (text[i] === '"') {
				i++;
				for (;;) {
					if (i >= n)
						throw new Error(`line ${start}: a quoted field is not closed`);
					if (text[i] === '"') {
						if (text[i + 1] === '"') {
							f += '"';
							i += 2;
							continue;
						}
						i++;
						break;
					}
					if (text[i] === '\n')
						line++;
					f += text[i++];
				}
			}
			while (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r')
				f += text[i++];
			fields.push(f);
			f = '';
			if (text[i] === ',') {
				i++;
				continue;
			}
			if (text[i] === '\r')
				i++;
			if (text[i] === '\n')
				i++;
			line++;
			break;
		}
		if (!(fields.length === 1 && fields[0] === ''))
			out.push({ line: start, fields });
	}
	return out;
}

// {firearms: [{item, lines}], rejected: [{line, reason}], rows}
export function parseProduction(text) {
	const recs = parseCsv(text);
	if (recs.length === 0)
		throw new Error('the file is empty');
	const header = recs[0].fields.map((s) => s.trim().toLowerCase());
	for (const c of REQUIRED)
		if (!header.includes(c))
			throw new Error(`line 1: the header has no "${c}" column (expected ${COLUMNS.join(',')})`);
	if (recs.length - 1 > MAX_ROWS)
		throw new Error(`the file has more than ${MAX_ROWS} lines`);
	const col = Object.fromEntries(COLUMNS.map((c) => [c, header.indexOf(c)]));
	const bySerial = new Map();
	const rejected = [];
	const badSerials = new Map();
	for (const r of recs.slice(1)) {
		const v = (c) => (col[c] >= 0 ? (r.fields[col[c]] ?? '').trim() : '');
		const row = Object.fromEntries(COLUMNS.map((c) => [c, v(c)]));
		let reason = null;
		if (r.fields.length !== header.length)
			reason = `has ${r.fields.length} fields, the header has ${header.length}`;
		else if (REQUIRED.some((c) => row[c] === ''))
			reason = `${REQUIRED.find((c) => row[c] === '')} is empty`;
		else if (!COMPONENTS.includes(row.component))
			reason = `component "${row.component}" is not one of ${COMPONENTS.join(', ')}`;
		else if (row.scheme !== '' && row.scheme !== 'rs8' && row.scheme !== 'free')
			reason = `scheme "${row.scheme}" is not rs8 or free`;
		else if (row.manufactured_on !== '' && !/^\d{4}-\d{2}-\d{2}$/.test(row.manufactured_on))
			reason = `manufactured_on "${row.manufactured_on}" is not a date (YYYY-MM-DD)`;
		let g = bySerial.get(row.serial);
		if (!reason && g) {
			for (const c of ['model', 'type', 'caliber', 'manufactured_on'])
				if ((g.item[c] ?? '') !== row[c]) {
					reason = `${c} "${row[c]}" differs from line ${g.lines[0]} of the same serial`;
					break;
				}
		}
		if (reason) {
			rejected.push({ line: r.line, reason });
			if (row.serial)
				badSerials.set(row.serial, r.line);
			continue;
		}
		if (!g) {
			g = { item: { serial: row.serial, model: row.model, type: row.type, caliber: row.caliber, codes: [] }, lines: [] };
			if (row.manufactured_on)
				g.item.manufactured_on = row.manufactured_on;
			bySerial.set(row.serial, g);
		}
		const code = { code: row.code, component: row.component };
		if (row.scheme)
			code.scheme = row.scheme;
		g.item.codes.push(code);
		g.lines.push(r.line);
	}
	const firearms = [];
	for (const [serial, g] of bySerial) {
		if (badSerials.has(serial)) {
			for (const l of g.lines)
				rejected.push({ line: l, reason: `not sent: line ${badSerials.get(serial)} of the same serial ${serial} was rejected` });
			continue;
		}
		firearms.push(g);
	}
	rejected.sort((a, b) => a.line - b.line);
	return { firearms, rejected, rows: recs.length - 1 };
}
