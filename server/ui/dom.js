// dom.js — building the page without innerHTML: every text goes in as a text
// node, so nothing the API returns can become markup. No inline styles or
// handlers either (the page's CSP is default-src 'self'): looks come from
// classes in style.css, behaviour from listeners added here.

let uid = 0;

// A fresh element id ("f12") for label/control pairs.
export function nextId(prefix = 'f') {
	uid += 1;
	return `${prefix}${uid}`;
}

// h('button', {type: 'submit', class: 'primary', onclick: fn}, 'Search', ...)
// Attributes: class, for, text, on<event> listeners, dataset via data-*,
// booleans (true sets the attribute, false/null/undefined leaves it out).
export function h(tag, attrs = {}, ...children) {
	const el = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === false || v === null || v === undefined)
			continue;
		if (k.startsWith('on') && typeof v === 'function')
			el.addEventListener(k.slice(2), v);
		else if (k === 'text')
			el.textContent = String(v);
		else if (k === 'value')
			el.value = v;
		else if (v === true)
			el.setAttribute(k, '');
		else
			el.setAttribute(k, String(v));
	}
	append(el, children);
	return el;
}

function append(el, children) {
	for (const c of children.flat(Infinity)) {
		if (c === null || c === undefined || c === false)
			continue;
		el.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
}

// Replace el's children.
export function fill(el, ...children) {
	el.replaceChildren();
	append(el, children);
	return el;
}

// A visible <label> and its control, wrapped in a .field div.
// control is an element (input/select/textarea) or a tag name.
export function field(labelText, control, attrs = {}, hint = null) {
	const el = typeof control === 'string' ? h(control, attrs) : control;
	if (!el.id)
		el.id = nextId();
	const parts = [h('label', { for: el.id }, labelText), el];
	if (hint) {
		const hid = nextId('hint');
		el.setAttribute('aria-describedby', hid);
		parts.push(h('span', { class: 'hint', id: hid }, hint));
	}
	return h('div', { class: 'field' }, parts);
}

// <select> with [value, text] options.
export function select(options, attrs = {}) {
	return h('select', attrs, options.map(([v, t]) => h('option', { value: v }, t)));
}

// A real table: caption, column headers (scope=col), rows of cells.
// rows: arrays of cell contents (Node or text); a row may be {cells, class}.
// A cell may be {content, class} for a classed <td>.
export function table(caption, headers, rows, attrs = {}) {
	return h('table', attrs,
		caption ? h('caption', {}, caption) : null,
		h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
		h('tbody', {}, rows.map((r) => {
			const cells = Array.isArray(r) ? r : r.cells;
			return h('tr', Array.isArray(r) ? {} : { class: r.class },
				cells.map((c) => (c && c.content !== undefined && !(c instanceof Node)
					? h('td', { class: c.class }, c.content) : h('td', {}, c))));
		})));
}

// Offer bytes as a file download (a blob: URL, revoked after the click).
export function download(name, text, type = 'text/plain') {
	const url = URL.createObjectURL(new Blob([text], { type }));
	const a = h('a', { href: url, download: name, class: 'hidden' });
	document.body.append(a);
	a.click();
	a.remove();
	setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// Read text from a File.
export function readFile(file) {
	return file.text();
}
