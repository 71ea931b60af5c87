// search.js — the examiner's view: readings of several casings, ranked
// candidates, refusals explained in words, and a printable case report whose
// audit receipt is verified here in the browser (tlog.js).

import { ApiError, get, post } from './api.js';
import { download, field, fill, h, nextId, table } from './dom.js';
import { disagreements, formatReading, parseReading } from './readings.js';
import { cryptoAvailable, parseVerifierKey, verifyReceipt } from './tlog.js';

const CASE = 'msreg.case';
const MAX_CASINGS = 8;

let last = null;     // {request, response, auditIndex, time}

function remembered() {
	try {
		return JSON.parse(sessionStorage.getItem(CASE)) || {};
	} catch (e) {
		return {};
	}
}

// One casing: its text field and its 8-box editor, kept in step.
function casingEditor(n, initial, onRemove) {
	const text = h('input', { type: 'text', class: 'reading', autocomplete: 'off',
		spellcheck: 'false', value: initial || '' });
	const boxes = [];
	const boxRow = h('div', { class: 'boxes' });
	for (let i = 0; i < 8; i++) {
		const id = nextId('box');
		const box = h('input', { type: 'text', id, class: 'box', maxlength: '8',
			autocomplete: 'off', spellcheck: 'false', inputmode: 'text' });
		box.addEventListener('input', () => {
			text.value = formatReading(boxes.map((b) => b.value));
			markBoxes();
		});
		boxes.push(box);
		boxRow.append(h('div', { class: 'boxcell' },
			h('label', { for: id }, h('span', { class: 'sr-only' }, `Reading ${n}, position `), String(i + 1)),
			box));
	}
	function markBoxes() {
		for (const b of boxes) {
			const v = b.value.trim();
			b.classList.toggle('unreadable', v === '' || v.includes('?'));
			b.classList.toggle('alternatives', v.length > 1 && !v.includes('?'));
		}
	}
	function fromText() {
		const pos = parseReading(text.value);
		const ok = pos !== null && pos.length === 8;
		boxRow.classList.toggle('inactive', !ok && text.value.trim() !== '');
		if (pos === null)
			return;
		for (let i = 0; i < 8; i++)
			boxes[i].value = pos[i] ?? '';
		markBoxes();
	}
	text.addEventListener('input', fromText);
	fromText();
	const hintId = nextId('hint');
	const el = h('div', { class: 'casing' },
		h('div', { class: 'casing-row' },
			field(`Casing ${n}`, text, {}, null),
			onRemove ? h('button', { type: 'button', class: 'quiet', onclick: onRemove }, `Remove casing ${n}`) : null),
		boxRow,
		h('p', { class: 'hint', id: hintId },
			'Each box: one symbol, several symbols for alternatives, or ? if unreadable.'));
	for (const b of boxes)
		b.setAttribute('aria-describedby', hintId);
	return { el, text, parsed: () => parseReading(text.value) };
}

// The chance that at least one registered code matches these readings by
// chance alone (Poisson with the registry's expected number of random matches).
function chance(expected) {
	if (typeof expected !== 'number')
		return 'not reported';
	const p = -Math.expm1(-expected);
	let shown;
	if (p < 1e-6)
		shown = 'less than 1 in a million';
	else if (p < 0.01)
		shown = `about 1 in ${Math.round(1 / p).toLocaleString('en')}`;
	else
		shown = `${(p * 100).toFixed(p < 0.1 ? 1 : 0)} %`;
	return `${shown} (expected random matches among the registered codes: ${expected.toPrecision(2)})`;
}

function count(x) {
	const n = Number(x);
	return n >= 10 ? Math.round(n).toLocaleString('en') : n.toFixed(1);
}

function num(x, digits = 1) {
	const n = Number(x);
	return Number.isFinite(n) ? n.toFixed(digits).replace(/\.0+$/, '') : '?';
}

const WINDOWS = { '24h': '24 hours', '30d': '30 days' };

function wait(seconds) {
	const s = Number(seconds);
	if (!(s > 0))
		return '';
	if (s < 120)
		return `${Math.ceil(s)} seconds`;
	if (s < 7200)
		return `${Math.ceil(s / 60)} minutes`;
	if (s < 172800)
		return `${Math.ceil(s / 3600)} hours`;
	return `${Math.ceil(s / 86400)} days`;
}

// Why the registry refused, in words. The detail fields are the API's
// (API.md): query_too_broad has bits and min_bits when the readings pin down
// too little of a code whatever the registry's size, and expected_matches and
// max_expected_matches when too many registered codes would match by chance;
// disclosure_budget_exhausted has scope, window, budget, used, requested and
// retry_after.
function explain(e, casings) {
	const d = e.detail || {};
	switch (e.code) {
	case 'query_too_broad':
		if (d.bits !== undefined && d.min_bits !== undefined)
			return `The readings are too incomplete to name a firearm: together they pin down ${num(d.bits)} bits ` +
				`of the code, and the registry answers only readings that pin down at least ${num(d.min_bits)} bits ` +
				`(a random code would match these readings with a chance of 1 in ${Math.round(2 ** Number(d.bits)).toLocaleString('en')}). ` +
				'Read more positions, add another casing, or allow fewer misread characters.';
		return `The readings are too incomplete to name a firearm: about ${count(d.expected_matches)} ` +
			`registered codes would match them by chance, and at most ${num(d.max_expected_matches)} are allowed. ` +
			'Read more positions, add another casing, or allow fewer misread characters.';
	case 'disclosure_budget_exhausted': {
		const who = d.scope === 'case' ? 'this case' : d.scope === 'key' ? 'your API key' : 'you';
		const win = WINDOWS[d.window] || d.window || 'this period';
		const left = Number(d.budget) - Number(d.used);
		const when = wait(d.retry_after ?? e.retryAfter);
		return `The disclosure budget of ${who} is used up: the registry reveals at most ${d.budget ?? '?'} ` +
			`different firearms to ${who} in ${win}, ${d.used ?? '?'} have been revealed, ` +
			`${Number.isFinite(left) && left > 0 ? `only ${left} remain` : 'none remain'}, and this search ` +
			`would reveal ${d.requested ?? 'more'}. Nothing was disclosed. Narrow the readings or lower ` +
			'Maximum results' + (when ? `, try again in about ${when},` : ',') +
			' or ask an administrator for a grant.';
	}
	case 'rate_limited':
		return `Too many requests in a short time. Wait ${e.retryAfter || 'a few'} seconds and search again.`;
	case 'invalid_pattern':
		if (d.reading && d.reading <= casings)
			return `Check casing ${d.reading}${d.position ? `, position ${d.position}` : ''}.`;
		if (d.reading)
			return 'Check the gear reading.';
		return '';
	default:
		return '';
	}
}

function firstSale(s) {
	if (!s)
		return 'Not sold';
	return [`Dealer licence ${s.dealer_ffl}`, s.sold_on ? `sold ${s.sold_on}` : '',
		s.state ? `in ${s.state}` : '', s.transaction_ref ? `(transaction ${s.transaction_ref})` : '']
		.filter(Boolean).join(' ');
}

function codeCell(code, readings) {
	const bad = new Map();
	readings.forEach((pos, k) => {
		for (const d of disagreements(code, pos)) {
			const list = bad.get(d.position) || [];
			list.push(`casing ${k + 1} reads ${d.read}`);
			bad.set(d.position, list);
		}
	});
	const symbols = [...code].map((c, i) => bad.has(i + 1)
		? h('mark', { class: 'disagree', title: `position ${i + 1}: ${bad.get(i + 1).join(', ')}` }, c)
		: h('span', {}, c));
	return { cell: h('span', { class: 'code' }, symbols), bad };
}

function resultsTable(resp, readings, caption) {
	const rows = resp.candidates.map((c) => {
		const { cell, bad } = codeCell(c.code, readings);
		const where = bad.size === 0 ? 'none'
			: [...bad.entries()].map(([p, why]) => `${p} (${why.join('; ')})`).join(', ');
		const f = c.firearm || {};
		return [cell, String(c.mismatches), where, c.status || '', c.component || '',
			f.manufacturer || '', f.model || '', f.serial || '',
			[f.type, f.caliber].filter(Boolean).join(', '), firstSale(c.first_sale)];
	});
	// in a scrolling box: a long model or serial (written by a manufacturer)
	// must not push the page off the screen
	return h('div', { class: 'tablebox' }, table(caption, ['Code', 'Mismatches', 'Disagreeing positions',
		'Status', 'Component', 'Manufacturer', 'Model', 'Serial', 'Type', 'First sale'], rows, { class: 'results' }));
}

function summary(resp) {
	const n = resp.candidates.length;
	return h('div', { class: 'summary' },
		n === 0 ? h('p', { class: 'big' }, 'No registered code matches')
			: h('p', { class: 'big' }, `${n} candidate${n === 1 ? '' : 's'}` +
				(resp.truncated ? ` shown of ${resp.total}` : '')),
		h('p', {}, 'Chance of a random match: ', chance(resp.expected_random_matches)));
}

async function caseReport(main, ctx, back) {
	const s = last;
	const verdict = h('p', { class: 'verdict pending', role: 'status' }, 'Checking the receipt…');
	const receiptPre = h('pre', { class: 'receipt' });
	const details = h('p', {});
	const readings = s.request.readings.filter((r) => typeof r === 'string').map(parseReading);
	fill(main, h('article', { class: 'report' },
		h('h1', {}, 'Case report'),
		h('dl', { class: 'facts' },
			h('dt', {}, 'Case number'), h('dd', {}, s.request.case_number),
			h('dt', {}, 'Purpose'), h('dd', {}, s.request.purpose),
			h('dt', {}, 'Time of search'), h('dd', {}, s.time),
			h('dt', {}, 'Searched by'), h('dd', {}, `${ctx.me().name} (client ${ctx.me().id}${ctx.me().org ? `, ${ctx.me().org}` : ''})`),
			h('dt', {}, 'Readings'), h('dd', {}, s.request.readings.map((r, i) =>
				h('div', {}, typeof r === 'string' ? `Casing ${i + 1}: ${r}` : `Gear: ${r.gear}`))),
			h('dt', {}, 'Misread characters allowed'), h('dd', {}, String(s.request.max_mismatches)),
			h('dt', {}, 'Audit log entry'), h('dd', {}, s.auditIndex === null ? 'none' : String(s.auditIndex))),
		h('h2', {}, 'Results'),
		summary(s.response),
		s.response.candidates.length ? resultsTable(s.response, readings, 'Candidates') : null,
		h('h2', {}, 'Audit receipt'),
		verdict, details, receiptPre,
		h('div', { class: 'actions noprint' },
			h('button', { type: 'button', class: 'primary', onclick: () => window.print() }, 'Print'),
			h('button', { type: 'button', onclick: () => download(`receipt-${s.auditIndex}.txt`, receiptPre.textContent) }, 'Download receipt'),
			h('button', { type: 'button', onclick: back }, 'Back to the search'))));
	main.focus();
	try {
		if (s.auditIndex === null)
			throw new Error('the search has no audit entry');
		if (!cryptoAvailable())
			throw new Error('this browser cannot check it here (WebCrypto needs HTTPS)');
		const [key, receipt] = await Promise.all([
			get('/v1/audit/key', { auth: false, text: true }),
			get(`/v1/audit/receipt/${s.auditIndex}`, { text: true })]);
		receiptPre.textContent = receipt.data;
		const vk = await parseVerifierKey(key.data);
		const r = await verifyReceipt(receipt.data, vk);
		if (r.index !== s.auditIndex)
			throw new Error(`the receipt is for entry ${r.index}, not ${s.auditIndex}`);
		if (!r.entry || r.entry.action !== 'code.search' || r.entry.case_number !== s.request.case_number ||
		    (r.entry.client !== undefined && r.entry.client !== ctx.me().id))
			throw new Error('the receipt\'s entry is not this search');
		verdict.textContent = 'Receipt verified';
		verdict.className = 'verdict ok';
		fill(details, `Entry ${r.index} is in the audit log of ${r.checkpoint.size} entries ` +
			`(${r.checkpoint.origin}), whose checkpoint is signed by the log key ${vk.name}; ` +
			`the entry records action ${r.entry.action}, case ${r.entry.case_number}, at ${r.entry.time}.`);
	} catch (e) {
		verdict.textContent = 'Receipt does not verify';
		verdict.className = 'verdict bad';
		fill(details, e.message);
		if (e instanceof ApiError)
			ctx.showError(e, 'Receipt');
	}
}

export function render(main, ctx) {
	const saved = remembered();
	const caseNo = h('input', { type: 'text', required: true, autocomplete: 'off', value: saved.case_number || '' });
	const purpose = h('input', { type: 'text', required: true, autocomplete: 'off', value: saved.purpose || '' });
	const gear = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', class: 'wide' });
	const misread = h('input', { type: 'number', min: '0', max: '2', step: '1', value: String(saved.max_mismatches ?? 0), required: true });
	const limit = h('input', { type: 'number', min: '1', max: '100', step: '1', value: '20' });
	const list = h('div', { class: 'casings' });
	const results = h('section', { 'aria-label': 'Results', class: 'results-section', 'aria-live': 'polite' });
	let casings = [];

	function redraw() {
		const texts = casings.map((c) => c.text.value);
		casings = [];
		fill(list);
		texts.forEach((t, i) => addCasing(t, i));
	}
	function addCasing(initial = '', at = casings.length) {
		if (casings.length >= MAX_CASINGS)
			return null;
		const n = at + 1;
		const c = casingEditor(n, initial, n > 1 ? () => {
			casings.splice(at, 1);
			redraw();
			casings[Math.min(at, casings.length - 1)].text.focus();
		} : null);
		casings.push(c);
		list.append(c.el);
		return c;
	}
	const addBtn = h('button', { type: 'button', onclick: () => {
		const c = addCasing();
		if (c)
			c.text.focus();
		addBtn.disabled = casings.length >= MAX_CASINGS;
	} }, 'Add casing');

	const form = h('form', { class: 'card', onsubmit: async (ev) => {
		ev.preventDefault();
		ctx.clearError();
		const readings = casings.map((c) => c.text.value.trim()).filter(Boolean);
		if (gear.value.trim())
			readings.push({ gear: gear.value.trim() });
		const request = { case_number: caseNo.value.trim(), purpose: purpose.value.trim(), readings,
			max_mismatches: Number(misread.value), limit: Number(limit.value) || 20 };
		sessionStorage.setItem(CASE, JSON.stringify({ case_number: request.case_number,
			purpose: request.purpose, max_mismatches: request.max_mismatches }));
		if (readings.length === 0) {
			ctx.showError(new Error('Type the reading of at least one casing'));
			return;
		}
		fill(results, h('p', {}, 'Searching…'));
		const btn = form.querySelector('button[type=submit]');
		btn.disabled = true;
		try {
			const r = await post('/v1/search', request);
			last = { request, response: r.data, auditIndex: r.auditIndex, time: new Date().toISOString() };
			const parsed = readings.filter((x) => typeof x === 'string').map(parseReading);
			// the Search button was disabled while it ran, which drops the
			// focus; it goes to the results' heading, from where Tab reaches
			// the case report
			const heading = h('h2', { tabindex: '-1' }, 'Results');
			fill(results,
				heading,
				summary(r.data),
				r.data.candidates.length ? resultsTable(r.data, parsed, `Candidates for case ${request.case_number}`) : null,
				h('p', {}, `Audit log entry ${r.auditIndex}.`),
				h('div', { class: 'actions' },
					h('button', { type: 'button', class: 'primary', onclick: () => caseReport(main, ctx, () => render(main, ctx)) }, 'Case report')));
			heading.focus();
		} catch (e) {
			fill(results);
			const why = e instanceof ApiError ? explain(e, casings.length) : '';
			ctx.showError(e, e instanceof ApiError ? 'The registry refused the search' : '', why);
		} finally {
			btn.disabled = false;
			if (document.activeElement === document.body || document.activeElement === null)
				btn.focus();
		}
	} },
	h('h1', {}, 'Search'),
	h('div', { class: 'row' }, field('Case number', caseNo), field('Purpose', purpose)),
	h('p', { class: 'hint' }, 'The case number and purpose are recorded in the audit log with every search, and remembered in this tab.'),
	list,
	h('div', { class: 'actions' }, addBtn),
	field('Gear reading', gear, {}, 'Optional: the gear code as bits, 0, 1 or ? for each.'),
	h('div', { class: 'row' },
		field('Misread characters allowed', misread, {}, '0, 1 or 2 symbols of the code may have been read wrong.'),
		field('Maximum results', limit)),
	h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Search')));

	addCasing(saved.casing1 || '');
	fill(main, form, results);
	if (last && last.request.case_number === caseNo.value)
		results.append(h('p', {}, `Last search: ${last.response.candidates.length} candidates at ${last.time}. `),
			h('button', { type: 'button', onclick: () => caseReport(main, ctx, () => render(main, ctx)) }, 'Case report'));
	(caseNo.value ? casings[0].text : caseNo).focus();
}
