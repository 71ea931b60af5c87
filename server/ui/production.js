// production.js — the manufacturer's view: allocate codes (and download them
// as CSV), upload the day's production file through the batch API in chunks
// with a progress bar, list and open the manufacturer's own firearms, and add
// a replacement part.
//
// Upload: the file is parsed and checked here first (csv.js); firearms then go
// to POST /v1/firearms/batch CHUNK at a time. A batch is all or nothing and
// names the offending item in detail.index: that firearm's lines are rejected
// with the API's message and the rest of the chunk is sent again, so one bad
// line costs one retry, and every line ends up registered or listed with its
// line number.

import { ApiError, get, post, query } from './api.js';
import { download, field, fill, h, select, table } from './dom.js';
import { parseProduction } from './csv.js';

const CHUNK = 100;

// One CSV cell (RFC 4180), safe to open in a spreadsheet: a cell that a
// spreadsheet would read as a formula (starting with = + - @, a tab or a
// carriage return) is prefixed with ' so it stays text, and a cell holding a
// comma, quote or line break is quoted.
export function csvCell(value) {
	let v = String(value ?? '');
	if (/^[=+\-@\t\r]/.test(v))
		v = `'${v}`;
	return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}
const COMPONENTS = [['firing_pin', 'Firing pin'], ['breech_face', 'Breech face'],
	['ejector', 'Ejector'], ['extractor', 'Extractor'], ['other', 'Other']];

function allocateCard(ctx) {
	const count = h('input', { type: 'number', min: '1', max: '10000', step: '1', value: '10', required: true });
	const out = h('div', { class: 'codes', 'aria-live': 'polite' });
	const form = h('form', { class: 'card', onsubmit: async (ev) => {
		ev.preventDefault();
		ctx.clearError();
		try {
			const r = await post('/v1/codes/allocate', { count: Number(count.value) });
			const codes = r.data.codes;
			const csv = 'code\n' + codes.map(csvCell).join('\n') + '\n';
			fill(out,
				h('p', {}, `${codes.length} new codes reserved to you:`),
				h('pre', { class: 'codelist' }, codes.join('\n')),
				h('button', { type: 'button', onclick: () => download(`codes-${new Date().toISOString().slice(0, 10)}.csv`, csv, 'text/csv') }, 'Download CSV'));
			ctx.announce(`${codes.length} codes allocated`);
		} catch (e) {
			ctx.showError(e);
		}
	} },
	h('h2', {}, 'Allocate codes'),
	h('div', { class: 'row' }, field('Count', count, {}, '1 to 10,000 new random codes')),
	h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Allocate codes')),
	out);
	return form;
}

function uploadCard(ctx, onDone) {
	const file = h('input', { type: 'file', accept: '.csv,text/csv' });
	const progressBox = h('div', { class: 'progress' });
	const result = h('div', { 'aria-live': 'polite' });
	const uploadBtn = h('button', { type: 'button', class: 'primary', onclick: () => start() }, 'Upload');
	let running = false;

	async function start() {
		const f = file.files[0];
		if (!f || running)
			return;
		running = true;
		uploadBtn.disabled = true;
		ctx.clearError();
		fill(result);
		let parsed;
		try {
			parsed = parseProduction(await f.text());
		} catch (e) {
			ctx.showError(e, `${f.name}`);
			running = false;
			uploadBtn.disabled = false;
			return;
		}
		const total = parsed.firearms.length;
		const bar = h('progress', { max: String(Math.max(total, 1)), value: '0', 'aria-label': 'Upload progress' });
		const label = h('p', {}, `0 of ${total} firearms sent`);
		fill(progressBox, bar, label);
		const rejected = parsed.rejected.slice();
		let created = 0, done = 0, stopped = null;
		for (let i = 0; i < total && !stopped; i += CHUNK) {
			let chunk = parsed.firearms.slice(i, i + CHUNK);
			while (chunk.length) {
				try {
					const r = await post('/v1/firearms/batch', { firearms: chunk.map((g) => g.item) });
					created += r.data.created;
					break;
				} catch (e) {
					const k = e instanceof ApiError ? e.detail?.index : undefined;
					if (e.status >= 400 && e.status < 500 && Number.isInteger(k) && k >= 0 && k < chunk.length) {
						for (const l of chunk[k].lines)
							rejected.push({ line: l, reason: e.message });
						chunk = chunk.slice(0, k).concat(chunk.slice(k + 1));
						continue;
					}
					stopped = e;
					break;
				}
			}
			done = Math.min(total, i + CHUNK);
			bar.value = done;
			fill(label, `${done} of ${total} firearms sent`);
		}
		rejected.sort((a, b) => a.line - b.line);
		fill(result,
			h('p', { class: 'big' }, `Registered ${created} firearms`),
			h('p', {}, `${parsed.rows} lines read from ${f.name}; ${rejected.length} rejected.`),
			rejected.length ? table(`Rejected lines of ${f.name}`, ['Line', 'Reason'],
				rejected.map((r) => [String(r.line), r.reason]), { class: 'rejected' }) : null);
		if (stopped)
			ctx.showError(stopped, `Upload stopped after ${done} of ${total} firearms`);
		running = false;
		uploadBtn.disabled = false;
		file.value = '';
		onDone();
	}
	file.addEventListener('change', () => start());
	return h('section', { class: 'card' },
		h('h2', {}, 'Production file'),
		h('p', { class: 'hint' }, 'CSV with the header serial,model,type,caliber,manufactured_on,code,component,scheme — one line per code; lines with the same serial are one firearm. The upload starts when you choose the file.'),
		field('Production file', file),
		h('div', { class: 'actions' }, uploadBtn),
		progressBox, result);
}

function firearmDetail(ctx, id, box, refresh) {
	(async () => {
		try {
			const f = (await get(`/v1/firearms/${id}`)).data;
			const active = f.codes.filter((c) => c.status === 'active');
			const code = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false' });
			const comp = select(COMPONENTS);
			const scheme = select([['rs8', 'rs8 (allocated code)'], ['free', 'free (6–16 symbols)']]);
			const replaces = select([['', 'Nothing (an extra part)'], ...active.map((c) => [c.code, `${c.code} (${c.component})`])]);
			const form = h('form', { class: 'subcard', onsubmit: async (ev) => {
				ev.preventDefault();
				ctx.clearError();
				const body = { code: code.value.trim(), component: comp.value, scheme: scheme.value };
				if (replaces.value)
					body.replaces = replaces.value;
				try {
					await post(`/v1/firearms/${id}/codes`, body);
					ctx.announce(`Part added to ${f.serial}`);
					firearmDetail(ctx, id, box, refresh);
				} catch (e) {
					ctx.showError(e);
				}
			} },
			h('h3', {}, 'Replacement part'),
			h('div', { class: 'row' }, field('New code', code), field('Component', comp),
				field('Scheme', scheme), field('Replaces', replaces)),
			h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add part')));
			const heading = h('h2', { tabindex: '-1' }, `Firearm ${f.serial}`);
			fill(box, h('section', { class: 'card', 'aria-label': `Firearm ${f.serial}` },
				heading,
				h('dl', { class: 'facts' },
					h('dt', {}, 'Manufacturer'), h('dd', {}, f.manufacturer),
					h('dt', {}, 'Model'), h('dd', {}, f.model),
					h('dt', {}, 'Type'), h('dd', {}, `${f.type}, ${f.caliber}`),
					h('dt', {}, 'Manufactured'), h('dd', {}, f.manufactured_on || 'not given'),
					h('dt', {}, 'First sale'), h('dd', {}, f.first_sale ? `${f.first_sale.sold_on}, dealer licence ${f.first_sale.dealer_ffl}` : 'Not sold')),
				table('Codes', ['Code', 'Component', 'Scheme', 'Status', 'Registered', 'Replaces', 'Replaced by'],
					f.codes.map((c) => [h('span', { class: 'code' }, c.code), c.component, c.scheme, c.status,
						c.registered_at || '', c.replaces || '', c.replaced_by || ''])),
				form));
			heading.scrollIntoView({ block: 'start' });
			heading.focus();
		} catch (e) {
			ctx.showError(e);
		}
	})();
}

function firearmsCard(ctx) {
	const tableBox = h('div', { class: 'tablebox' });
	const detail = h('div', {});
	const pages = [0];
	const prev = h('button', { type: 'button', onclick: () => { pages.pop(); load(); } }, 'Previous page');
	const next = h('button', { type: 'button', onclick: () => { pages.push(nextAfter); load(); } }, 'Next page');
	let nextAfter = null;

	async function load() {
		try {
			const r = (await get('/v1/firearms' + query({ after: pages[pages.length - 1], limit: 20 }))).data;
			nextAfter = r.next_after;
			fill(tableBox, r.firearms.length === 0 ? h('p', {}, 'No firearms registered yet.')
				: table('Your firearms', ['Id', 'Serial', 'Model', 'Type', 'Caliber', 'Manufactured', 'Active codes', 'Details'],
					r.firearms.map((f) => [String(f.id), f.serial, f.model, f.type, f.caliber, f.manufactured_on || '',
						String(f.active_codes),
						h('button', { type: 'button', class: 'quiet', onclick: () => firearmDetail(ctx, f.id, detail, load) }, `Open ${f.serial}`)])));
			prev.disabled = pages.length < 2;
			next.disabled = nextAfter === null;
		} catch (e) {
			ctx.showError(e);
		}
	}
	load();
	return { el: h('section', { class: 'card' }, h('h2', {}, 'Firearms'), tableBox,
		h('div', { class: 'actions' }, prev, next), detail), reload: load };
}

export function render(main, ctx) {
	const firearms = firearmsCard(ctx);
	fill(main, h('h1', {}, 'Production'), allocateCard(ctx), uploadCard(ctx, firearms.reload), firearms.el);
}
