// app.js — the console's shell: sign-in, the role's navigation, errors.
//
// The key typed into the sign-in form is kept in sessionStorage (api.js) and
// checked with GET /v1/me, which also tells the role; the page then offers
// only the views of that role (the server enforces the same rules anyway).
// Views are modules exporting render(main, ctx); the current one is named in
// the URL fragment (#search), never anything secret.

import { ApiError, clearKey, get, getKey, setKey } from './api.js';
import { field, fill, h } from './dom.js';
import * as search from './search.js';
import * as audit from './audit.js';
import * as production from './production.js';
import * as sales from './sales.js';
import * as clients from './clients.js';

const VIEWS = {
	investigator: [['search', 'Search', search]],
	auditor: [['audit', 'Audit log', audit]],
	manufacturer: [['production', 'Production', production]],
	dealer: [['sales', 'Sales', sales]],
	admin: [['clients', 'Clients', clients]],
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const alertBox = document.getElementById('alert');
const statusBox = document.getElementById('status');
let me = null;
const SIGNED_OUT = 'msreg.signed-out';

// Show an error in the alert region: the API's own message (ApiError), after
// an optional prefix, and an optional explanation in words.
export function showError(e, prefix = '', explanation = '') {
	const msg = e instanceof ApiError || e instanceof Error ? e.message : String(e);
	fill(alertBox, h('p', {}, prefix ? h('strong', {}, `${prefix}: `) : null, msg),
		explanation ? h('p', { class: 'explain' }, explanation) : null);
	alertBox.classList.add('shown');
}

export function clearError() {
	fill(alertBox);
	alertBox.classList.remove('shown');
}

// A short, polite status message (role=status) for changes that leave no
// visible text of their own. Never the visible result texts of UI.md (those
// are in live regions already, and repeating them would make them ambiguous).
export function announce(text) {
	statusBox.textContent = text;
}

const ctx = { showError, clearError, announce, me: () => me };

function signInForm() {
	// no name attribute: even a form submitted without this script would not
	// put the key in a URL
	const key = h('input', { type: 'password', autocomplete: 'off',
		spellcheck: 'false', required: true, class: 'wide' });
	const form = h('form', { class: 'card signin', onsubmit: async (ev) => {
		ev.preventDefault();
		clearError();
		setKey(key.value.trim());
		key.value = '';
		await start();
	} },
	h('h1', {}, 'Sign in'),
	h('p', {}, 'Your API key is kept in this browser tab only and sent to the registry in the Authorization header.'),
	field('API key', key),
	h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
	nav.hidden = true;
	who.hidden = true;
	fill(main, form);
	key.focus();
}

// Forget the key and everything this tab learnt while signed in: the whole
// sessionStorage (key, remembered case number and purpose) and, by loading
// the page afresh, what the views hold in memory (the last search and its
// case report, a client key just created, loaded audit entries).
function signOut() {
	clearKey();
	sessionStorage.clear();
	sessionStorage.setItem(SIGNED_OUT, '1');
	me = null;
	location.replace(location.pathname);
}

function route() {
	const views = VIEWS[me.role] || [];
	const name = location.hash.slice(1);
	const view = views.find(([n]) => n === name) || views[0];
	for (const a of nav.querySelectorAll('a'))
		if (a.dataset.view === view?.[0])
			a.setAttribute('aria-current', 'page');
		else
			a.removeAttribute('aria-current');
	clearError();
	fill(main);
	if (!view) {
		fill(main, h('p', {}, `The role ${me.role} has no view in this console.`));
		return;
	}
	document.title = `${view[1]} — msreg console`;
	view[2].render(main, ctx);
}

async function start() {
	if (!getKey()) {
		signInForm();
		if (sessionStorage.getItem(SIGNED_OUT)) {
			sessionStorage.removeItem(SIGNED_OUT);
			announce('Signed out');
		}
		return;
	}
	try {
		me = (await get('/v1/me')).data;
	} catch (e) {
		if (e instanceof ApiError && e.status === 401)
			clearKey();
		signInForm();
		showError(e, 'Sign-in failed');
		return;
	}
	const views = VIEWS[me.role] || [];
	fill(nav, h('ul', {}, views.map(([n, label]) =>
		h('li', {}, h('a', { href: `#${n}`, 'data-view': n }, label)))));
	fill(who,
		h('span', {}, 'Signed in as ', h('strong', {}, me.name), ` — role ${me.role}`,
			me.org ? ` (${me.org})` : ''),
		h('button', { type: 'button', class: 'quiet', onclick: signOut }, 'Sign out'));
	nav.hidden = false;
	who.hidden = false;
	announce('');
	route();
	if (!main.contains(document.activeElement))
		main.focus();
}

// "Skip to content" moves the focus to the main region; it must not change
// the URL fragment, which names the view (that would redraw the view and lose
// what was typed).
document.querySelector('a.skip')?.addEventListener('click', (ev) => {
	ev.preventDefault();
	main.focus();
});

window.addEventListener('hashchange', () => {
	if (me)
		route();
});
start();
