// sales.js — the dealer's view: record a firearm's first retail sale. The
// dealer licence comes from the key (the server takes it from there).

import { post } from './api.js';
import { field, fill, h } from './dom.js';

export function render(main, ctx) {
	const mk = (attrs = {}) => h('input', { type: 'text', required: true, autocomplete: 'off', ...attrs });
	const manufacturer = mk();
	const serial = mk();
	const date = mk({ type: 'date', value: new Date().toISOString().slice(0, 10) });
	const ref = mk();
	const state = mk({ maxlength: '2', pattern: '[A-Za-z]{2}', size: '3' });
	const out = h('div', { 'aria-live': 'polite' });
	const form = h('form', { class: 'card', onsubmit: async (ev) => {
		ev.preventDefault();
		ctx.clearError();
		fill(out);
		const body = { manufacturer: manufacturer.value.trim(), serial: serial.value.trim(),
			sold_on: date.value, transaction_ref: ref.value.trim(), state: state.value.trim().toUpperCase() };
		try {
			const r = await post('/v1/sales', body);
			fill(out, h('p', { class: 'big ok' }, 'Sale recorded'),
				h('p', {}, `${body.manufacturer} ${body.serial}, sold ${body.sold_on} in ${body.state}, transaction ${body.transaction_ref}` +
					(ctx.me().org ? `, dealer licence ${ctx.me().org}` : '') + ` (audit log entry ${r.auditIndex}).`));
			serial.value = '';
			ref.value = '';
			serial.focus();
		} catch (e) {
			ctx.showError(e);
		}
	} },
	h('h1', {}, 'Record a first retail sale'),
	h('div', { class: 'row' }, field('Manufacturer', manufacturer, {}, 'The manufacturer\'s id, e.g. acme'), field('Serial', serial)),
	h('div', { class: 'row' }, field('Date of sale', date), field('Transaction number', ref),
		field('State', state, {}, 'Two letters, e.g. CA')),
	h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Record sale')),
	out);
	fill(main, form);
	manufacturer.focus();
}
