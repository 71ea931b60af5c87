// clients.js — the admin's view: create API clients (the key is shown once,
// with a copy button), revoke them, and create manufacturers.

import { del, get, post, query } from './api.js';
import { field, fill, h, select, table } from './dom.js';

const ROLES = [['investigator', 'Investigator'], ['auditor', 'Auditor'], ['manufacturer', 'Manufacturer'],
	['dealer', 'Dealer'], ['admin', 'Admin']];
const ORG_HINT = {
	investigator: 'The agency\'s 9-character ORI, e.g. CA0194200',
	auditor: 'Optional',
	manufacturer: 'The manufacturer\'s id, e.g. acme',
	dealer: 'The dealer\'s licence (FFL), e.g. 1-23-456-07-6B-12345',
	admin: 'Optional',
};

function keyBox(key, name) {
	const out = h('output', { class: 'key mono' }, key);
	const msg = h('span', { class: 'sub', 'aria-live': 'polite' });
	const copy = h('button', { type: 'button', onclick: async () => {
		try {
			await navigator.clipboard.writeText(key);
			msg.textContent = 'Copied';
		} catch (e) {
			const range = document.createRange();
			range.selectNodeContents(out);
			getSelection().removeAllRanges();
			getSelection().addRange(range);
			msg.textContent = 'Selected: press Ctrl+C to copy';
		}
	} }, 'Copy key');
	return h('div', { class: 'newkey' },
		h('p', {}, `The key of ${name}. It is shown only this once: copy it now and hand it over safely.`),
		out, ' ', copy, ' ', msg);
}

export function render(main, ctx) {
	const name = h('input', { type: 'text', required: true, autocomplete: 'off' });
	const role = select(ROLES);
	const org = h('input', { type: 'text', autocomplete: 'off' });
	const orgHint = h('span', { class: 'hint' });
	const created = h('div', {});
	const listBox = h('div', { class: 'tablebox' });
	const showRevoked = h('input', { type: 'checkbox' });

	function hint() {
		orgHint.textContent = ORG_HINT[role.value];
		org.required = role.value !== 'auditor' && role.value !== 'admin';
	}
	role.addEventListener('change', hint);
	hint();

	async function load() {
		try {
			let all = [], after = 0;
			for (let i = 0; i < 20 && after !== null; i++) {
				const r = (await get('/v1/clients' + query({ after, limit: 1000 }))).data;
				all = all.concat(r.clients);
				after = r.next_after;
			}
			const me = ctx.me();
			const rows = all.filter((c) => showRevoked.checked || !c.revoked_at).map((c) => [String(c.id), c.name, c.role, c.org || '',
				c.created_at || '', c.revoked_at ? `Revoked ${c.revoked_at}` : 'Active',
				c.revoked_at ? '' : c.id === me.id ? 'This is you'
					: h('button', { type: 'button', class: 'danger', 'data-client': String(c.id), onclick: async () => {
						ctx.clearError();
						try {
							await del(`/v1/clients/${c.id}`);
							ctx.announce(`Client ${c.id} (${c.name}) revoked`);
							load();
						} catch (e) {
							ctx.showError(e);
						}
					} }, 'Revoke')]);
			fill(listBox, table('API clients', ['Id', 'Name', 'Role', 'Organisation', 'Created', 'Status', 'Action'], rows, { class: 'clients' }));
		} catch (e) {
			ctx.showError(e);
		}
	}
	showRevoked.addEventListener('change', load);

	const form = h('form', { class: 'card', onsubmit: async (ev) => {
		ev.preventDefault();
		ctx.clearError();
		fill(created);
		const body = { name: name.value.trim(), role: role.value };
		if (org.value.trim())
			body.org = org.value.trim();
		try {
			const r = await post('/v1/clients', body);
			fill(created, keyBox(r.data.api_key, `${r.data.name} (client ${r.data.id}, ${r.data.role})`));
			ctx.announce(`Client ${r.data.id} created`);
			name.value = '';
			org.value = '';
			load();
		} catch (e) {
			ctx.showError(e);
		}
	} },
	h('h2', {}, 'Create a client'),
	h('div', { class: 'row' }, field('Name', name), field('Role', role),
		h('div', { class: 'field' }, h('label', { for: org.id = 'org' }, 'Organisation'), org, orgHint)),
	h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create client')),
	created);
	orgHint.id = 'org-hint';
	org.setAttribute('aria-describedby', 'org-hint');

	const mId = h('input', { type: 'text', required: true, autocomplete: 'off', pattern: '[a-z0-9][a-z0-9_.\\-]{0,63}' });
	const mCompany = h('input', { type: 'text', required: true, autocomplete: 'off' });
	const mFfl = h('input', { type: 'text', autocomplete: 'off' });
	const mOut = h('div', { 'aria-live': 'polite' });
	const mForm = h('form', { class: 'card', onsubmit: async (ev) => {
		ev.preventDefault();
		ctx.clearError();
		const body = { id: mId.value.trim(), name: mCompany.value.trim() };
		if (mFfl.value.trim())
			body.ffl = mFfl.value.trim();
		try {
			await post('/v1/manufacturers', body);
			fill(mOut, h('p', { class: 'ok' }, `Manufacturer ${body.id} created`));
			mId.value = mCompany.value = mFfl.value = '';
		} catch (e) {
			ctx.showError(e);
		}
	} },
	h('h2', {}, 'Create a manufacturer'),
	h('div', { class: 'row' },
		field('Manufacturer id', mId, {}, 'a-z, 0-9, ".", "_" or "-"'),
		field('Company', mCompany),
		field('Licence (FFL, optional)', mFfl)),
	h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create manufacturer')),
	mOut);

	fill(main, h('h1', {}, 'Clients'), form,
		h('section', { class: 'card' }, h('h2', {}, 'API clients'),
			h('div', { class: 'field inline' }, showRevoked, h('label', { for: showRevoked.id = 'show-revoked' }, 'Show revoked clients')),
			listBox),
		mForm);
	load();
	name.focus();
}
