// audit.js — the auditor's view: the latest checkpoint, "Verify log", and the
// entries as a filterable table.
//
// Verify log, all in the browser against the log's key (GET /v1/audit/key):
//   1. the checkpoint's signature;
//   2. consistency with the checkpoint this browser verified last time
//      (localStorage), through GET /v1/audit/proof/consistency, and the same
//      log key as then (a log whose key changed does not verify);
//   3. the inclusion of every entry: up to FULL_MAX entries, every entry is
//      fetched and the tree's root recomputed from them (which also proves the
//      entries shown); beyond that, each entry shown is checked with its
//      inclusion proof.
// Only then is the checkpoint stored as the new "seen last time". The table
// shows entries parsed from their exact bytes (fetchEntries), never the
// server's separate parsed copy.

import { ApiError, get, query } from './api.js';
import { download, field, fill, h, table } from './dom.js';
import { b64decode, b64encode, leafHash, parseVerifierKey, parseVerifierKeys, rootFromLeafHashes,
	verifyCheckpoint, verifyConsistency, verifyInclusion, verifyReceipt } from './tlog.js';

const SEEN = 'msreg.audit.checkpoint';

// Does the signed checkpoint carry a valid signature by key (origin included)?
async function signs(note, key) {
	try {
		await verifyCheckpoint(note, key);
		return true;
	} catch (e) {
		return false;
	}
}
const PAGE = 1000;           // the API's maximum page
const SHOW = 200;            // entries loaded into the table at a time
const FULL_MAX = 100000;     // recompute the whole tree up to this size

const utf8 = new TextDecoder('utf-8', { fatal: true });

// A page of entries. What the table shows is parsed here from the entry's
// exact bytes (leaf), the bytes that Verify log hashes into the tree: the
// server's parsed copy (entry) is ignored, so nothing is shown that was not
// verified along with it.
async function fetchEntries(start, limit) {
	const r = await get('/v1/audit/entries' + query({ start, limit }));
	return r.data.entries.map((e) => {
		let entry = null;
		try {
			entry = JSON.parse(utf8.decode(b64decode(e.leaf)));
		} catch (err) {
			entry = { action: '(entry is not JSON)' };
		}
		return { index: e.index, leaf: e.leaf, entry };
	});
}

function entryRow(e, ctx) {
	const x = e.entry || {};
	// The entry's JSON opens in a full-width row below its own.
	const details = h('button', { type: 'button', class: 'quiet', 'aria-expanded': 'false',
		onclick: (ev) => {
			const tr = ev.currentTarget.closest('tr');
			const open = tr.nextElementSibling?.classList.contains('jsonrow');
			if (open) {
				tr.nextElementSibling.remove();
			} else {
				tr.after(h('tr', { class: 'jsonrow' }, h('td', { colspan: '9' },
					h('pre', { class: 'json', 'aria-label': `Entry ${e.index} as JSON` },
						JSON.stringify(x, null, 2)))));
			}
			ev.currentTarget.setAttribute('aria-expanded', open ? 'false' : 'true');
		} }, 'JSON');
	const receipt = h('button', { type: 'button', class: 'quiet', onclick: async () => {
		try {
			const r = await get(`/v1/audit/receipt/${e.index}`, { text: true });
			download(`receipt-${e.index}.txt`, r.data);
		} catch (err) {
			ctx.showError(err, `Receipt for entry ${e.index}`);
		}
	} }, `Receipt ${e.index}`);
	const time = x.time ? String(x.time) : '';
	const when = time ? { content: h('time', { datetime: time, title: time },
		time.replace('T', ' ').replace(/\.\d+Z$/, '')), class: 'nowrap' } : '';
	return { cells: [String(e.index), when, String(x.client ?? ''), String(x.role ?? ''),
		String(x.action ?? ''), String(x.case_number ?? ''), String(x.status ?? ''), details, receipt],
	class: e.verified === false ? 'unverified' : '' };
}

// Check a receipt file someone hands over (c2sp.org/tlog-proof), offline
// against the log's key: nothing but the key is fetched.
function receiptCard(ctx) {
	const file = h('input', { type: 'file', accept: '.txt,text/plain' });
	const result = h('div', { 'aria-live': 'polite' });
	file.addEventListener('change', async () => {
		const f = file.files[0];
		if (!f)
			return;
		fill(result);
		try {
			const key = await parseVerifierKey((await get('/v1/audit/key', { auth: false, text: true })).data);
			const r = await verifyReceipt(await f.text(), key);
			const x = r.entry || {};
			fill(result, h('p', { class: 'verdict ok' }, `Receipt file verified: entry ${r.index}`),
				h('p', {}, `In the log of ${r.checkpoint.size} entries signed by ${key.name}: ` +
					`${x.action || '?'} by client ${x.client ?? '?'} at ${x.time || '?'}` +
					(x.case_number ? `, case ${x.case_number}` : '') + '.'));
		} catch (e) {
			fill(result, h('p', { class: 'verdict bad' }, 'Receipt file does not verify'), h('p', {}, e.message));
			if (e instanceof ApiError)
				ctx.showError(e);
		}
		file.value = '';
	});
	return h('section', { class: 'card' },
		h('h2', {}, 'Check a receipt'),
		field('Receipt file', file, {}, 'A receipt (c2sp.org/tlog-proof) from this log, checked here against the log\'s key.'),
		result);
}

export function render(main, ctx) {
	let entries = [];     // loaded, newest last
	let cp = null;        // {size, root, origin, signatures, note}
	let vkey = null;
	let signedBy = [];    // served keys that signed cp (two during a key rotation)
	let cpNote = null;    // cp's signed note, verbatim
	const sizeText = h('p', { class: 'big' }, 'Loading the checkpoint…');
	const cpFacts = h('dl', { class: 'facts' });
	const verdict = h('p', { class: 'verdict', 'aria-live': 'polite' });
	const fClient = h('input', { type: 'text', autocomplete: 'off' });
	const fCase = h('input', { type: 'text', autocomplete: 'off' });
	const fAction = h('input', { type: 'text', autocomplete: 'off', list: 'actions' });
	const fFrom = h('input', { type: 'datetime-local', step: '1' });
	const fTo = h('input', { type: 'datetime-local', step: '1' });
	const actions = h('datalist', { id: 'actions' });
	const tableBox = h('div', { class: 'tablebox' });
	const count = h('p', {});
	const older = h('button', { type: 'button', onclick: () => loadOlder() }, 'Load older entries');
	const verifyBtn = h('button', { type: 'button', class: 'primary', onclick: () => verify() }, 'Verify log');

	function matches(e) {
		const x = e.entry || {};
		const has = (v, f) => !f || String(v ?? '').toLowerCase().includes(f.toLowerCase());
		const t = x.time ? Date.parse(x.time) : NaN;
		const from = fFrom.value ? Date.parse(fFrom.value + 'Z') : null;
		const to = fTo.value ? Date.parse(fTo.value + 'Z') : null;
		return has(x.client, fClient.value.trim()) && has(x.case_number, fCase.value.trim()) &&
			has(x.action, fAction.value.trim()) &&
			(from === null || t >= from) && (to === null || t <= to);
	}
	function draw() {
		const shown = entries.filter(matches).reverse();
		fill(actions, [...new Set(entries.map((e) => e.entry?.action).filter(Boolean))].sort()
			.map((a) => h('option', { value: a })));
		fill(count, `${shown.length} of ${entries.length} loaded entries shown` +
			(entries.length ? ` (entries ${entries[0].index} to ${entries[entries.length - 1].index})` : ''));
		fill(tableBox, table('Audit log entries, newest first',
			['Index', 'Time (UTC)', 'Client', 'Role', 'Action', 'Case number', 'Status', 'Entry', 'Receipt'],
			shown.map((e) => entryRow(e, ctx)), { class: 'entries' }));
		older.disabled = entries.length === 0 || entries[0].index === 0;
	}
	async function loadCheckpoint() {
		const [k, c] = await Promise.all([get('/v1/audit/key', { auth: false, text: true }),
			get('/v1/audit/checkpoint', { auth: false, text: true })]);
		vkey = await parseVerifierKey(k.data);
		cp = await verifyCheckpoint(c.data, vkey);
		// Key rotation: the served keys whose signature the checkpoint carries.
		signedBy = [];
		for (const key of await parseVerifierKeys(k.data))
			if (await signs(c.data, key))
				signedBy.push(key);
		cpNote = c.data;
		fill(sizeText, `Tree size ${cp.size}`);
		fill(cpFacts,
			h('dt', {}, 'Origin'), h('dd', {}, cp.origin),
			h('dt', {}, 'Root hash'), h('dd', { class: 'mono' }, b64encode(cp.root)),
			h('dt', {}, 'Fetched'), h('dd', {}, new Date().toISOString()),
			h('dt', {}, 'Signatures'), h('dd', {}, h('ul', {}, cp.signatures.map((s) =>
				h('li', {}, s.own || signedBy.some((key) => key.name === s.name && key.id === s.id)
					? `${s.name} — the log's key${s.own ? '' : ' (key rotation)'}, signature verified`
					: `${s.name} — cosignature (witness; not checked here)`)))));
	}
	async function loadLatest() {
		const size = cp.size;
		const start = Math.max(0, size - SHOW);
		entries = size ? (await fetchEntries(start, size - start)).filter((e) => e.index < size) : [];
		draw();
	}
	async function loadOlder() {
		if (!entries.length)
			return;
		const first = entries[0].index;
		const start = Math.max(0, first - SHOW);
		try {
			const more = await fetchEntries(start, first - start);
			entries = more.concat(entries);
			draw();
		} catch (e) {
			ctx.showError(e);
		}
	}
	async function verify() {
		ctx.clearError();
		verdict.className = 'verdict pending';
		fill(verdict, 'Verifying…');
		verifyBtn.disabled = true;
		try {
			await loadCheckpoint();
			const size = cp.size;
			let seen = null;
			try {
				seen = JSON.parse(localStorage.getItem(SEEN));
			} catch (e) {
				seen = null;
			}
			let consistency = 'no earlier checkpoint seen in this browser';
			// The keys pinned here (seen.keys; seen.key before key rotation):
			// the checkpoint must carry a signature by one of them. A new key is
			// pinned only from a checkpoint also signed by a pinned one (README
			// "Key rotation": old and new key sign together for a while).
			const pinned = seen && seen.origin === cp.origin ? (seen.keys || (seen.key ? [seen.key] : [])) : [];
			if (pinned.length) {
				let ok = false;
				for (const t of pinned) {
					try {
						ok = await signs(cpNote, await parseVerifierKey(t));
					} catch (e) {
						ok = false;
					}
					if (ok)
						break;
				}
				if (!ok)
					throw new Error(`the log's key changed since this browser last verified it (was ${pinned.join(', ')}, now ${vkey.text}) and the checkpoint carries no signature by the key seen before`);
			}
			if (seen && seen.origin === cp.origin) {
				if (seen.size > size)
					throw new Error(`the log shrank: ${seen.size} entries were seen before, the checkpoint says ${size}`);
				const p = await get('/v1/audit/proof/consistency' + query({ first: seen.size, second: size }), { auth: false });
				await verifyConsistency(seen.size, size, p.data.hashes.map(b64decode), b64decode(seen.root), cp.root);
				consistency = `consistent with the checkpoint of size ${seen.size} seen before`;
			}
			if (size <= FULL_MAX) {
				const hashes = [];
				const all = [];
				// page by what arrives, so a server that pages smaller still works
				while (hashes.length < size) {
					const page = await fetchEntries(hashes.length, Math.min(PAGE, size - hashes.length));
					if (page.length === 0)
						throw new Error(`the log returned no entry at ${hashes.length} of ${size}`);
					for (const e of page) {
						if (e.index !== hashes.length)
							throw new Error(`entry ${hashes.length} is missing from the log's answer`);
						const leaf = b64decode(e.leaf);
						hashes.push(await leafHash(leaf));
						all.push(e);
						if (hashes.length === size)
							break;
					}
					fill(verdict, `Verifying… ${hashes.length} of ${size} entries`);
				}
				if (hashes.length !== size)
					throw new Error(`the log returned ${hashes.length} of ${size} entries`);
				const root = await rootFromLeafHashes(hashes);
				if (b64encode(root) !== b64encode(cp.root))
					throw new Error(`the entries do not hash to the checkpoint's root (size ${size})`);
				const byIndex = new Map(all.map((e) => [e.index, e.leaf]));
				for (const e of entries)
					if (e.index < size && byIndex.get(e.index) !== e.leaf)
						throw new Error(`entry ${e.index} shown differs from the log's entry`);
				entries = all.slice(Math.max(0, size - Math.max(SHOW, entries.length)));
			} else {
				for (const e of entries) {
					if (e.index >= size)
						continue;
					const p = await get('/v1/audit/proof/inclusion' + query({ index: e.index, tree_size: size }));
					await verifyInclusion(e.index, size, await leafHash(b64decode(e.leaf)),
						p.data.hashes.map(b64decode), cp.root);
				}
			}
			for (const e of entries)
				e.verified = e.index < size;
			localStorage.setItem(SEEN, JSON.stringify({ origin: cp.origin, size, root: b64encode(cp.root),
				key: vkey.text, keys: signedBy.map((key) => key.text) }));
			draw();
			verdict.className = 'verdict ok';
			fill(verdict, `Log verified: ${size} entries`);
			verdict.append(h('span', { class: 'sub' }, ` — checkpoint signature by ${vkey.name}; ${consistency}.`));
		} catch (e) {
			verdict.className = 'verdict bad';
			fill(verdict, `Log does not verify: ${e.message}`);
			if (e instanceof ApiError)
				ctx.showError(e);
		} finally {
			verifyBtn.disabled = false;
		}
	}

	for (const f of [fClient, fCase, fAction, fFrom, fTo])
		f.addEventListener('input', draw);
	fill(main,
		h('section', { class: 'card' },
			h('h1', {}, 'Audit log'),
			sizeText, cpFacts,
			h('div', { class: 'actions' }, verifyBtn),
			verdict),
		h('section', { class: 'card' },
			h('h2', {}, 'Entries'),
			h('div', { class: 'row filters' },
				field('Client', fClient), field('Case number', fCase), field('Action', fAction),
				field('From (UTC)', fFrom), field('To (UTC)', fTo)),
			actions, count, tableBox,
			h('div', { class: 'actions' }, older)),
		receiptCard(ctx));
	(async () => {
		try {
			await loadCheckpoint();
			await loadLatest();
		} catch (e) {
			fill(sizeText, 'The checkpoint could not be loaded');
			ctx.showError(e, 'Audit log');
		}
	})();
}
