// api.js — the only place that talks to msregd.
//
// The API key lives in sessionStorage (gone when the tab closes) and is sent
// only in the Authorization header: never in a URL, a cookie or a log line.
// Errors become ApiError carrying the API's own {code, message, detail}.

const KEY = 'msreg.key';

export class ApiError extends Error {
	constructor(status, code, message, detail, retryAfter) {
		super(message);
		this.status = status;
		this.code = code;
		this.detail = detail || null;
		this.retryAfter = retryAfter || null;
	}
}

export function getKey() {
	return sessionStorage.getItem(KEY);
}

export function setKey(key) {
	sessionStorage.setItem(KEY, key);
}

export function clearKey() {
	sessionStorage.removeItem(KEY);
}

// Query string from an object (values only; the key never goes here).
export function query(params) {
	const q = new URLSearchParams();
	for (const [k, v] of Object.entries(params))
		if (v !== undefined && v !== null && v !== '')
			q.set(k, String(v));
	const s = q.toString();
	return s ? `?${s}` : '';
}

const RETRIES = 3;          // a 429 rate_limited is retried after Retry-After...
const RETRY_MAX_S = 10;     // ...when that is at most this long

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One request. opts: {method, body (object -> JSON), auth (default true),
// text (reply as text)}. Returns {status, data, auditIndex}. A request refused
// by the rate limit (not by a disclosure budget) is sent again after the
// Retry-After the registry names, if that is short.
export async function call(path, opts = {}) {
	for (let attempt = 0; ; attempt++) {
		try {
			return await callOnce(path, opts);
		} catch (e) {
			const wait = Number(e.retryAfter);
			if (!(e instanceof ApiError) || e.code !== 'rate_limited' || attempt >= RETRIES ||
			    !(wait >= 0 && wait <= RETRY_MAX_S))
				throw e;
			await sleep(wait * 1000);
		}
	}
}

async function callOnce(path, opts) {
	const headers = { Accept: opts.text ? 'text/plain' : 'application/json' };
	const init = { method: opts.method || 'GET', headers, credentials: 'omit',
		cache: 'no-store', referrerPolicy: 'no-referrer' };
	if (opts.auth !== false) {
		const key = getKey();
		if (!key)
			throw new ApiError(401, 'unauthenticated', 'Sign in first: no API key is set');
		headers.Authorization = `Bearer ${key}`;
	}
	if (opts.body !== undefined) {
		headers['Content-Type'] = 'application/json';
		init.body = JSON.stringify(opts.body);
	}
	let res;
	try {
		res = await fetch(path, init);
	} catch (e) {
		throw new ApiError(0, 'network', `The registry could not be reached (${e.message})`);
	}
	const ai = res.headers.get('Audit-Index');
	const auditIndex = ai === null ? null : Number(ai);
	const ctype = res.headers.get('Content-Type') || '';
	if (!res.ok) {
		let err = null;
		if (ctype.startsWith('application/json')) {
			try {
				err = (await res.json()).error;
			} catch (e) {
				err = null;
			}
		}
		throw new ApiError(res.status, err?.code || 'http_' + res.status,
			err?.message || `The registry answered ${res.status} ${res.statusText}`,
			err?.detail, res.headers.get('Retry-After'));
	}
	let data = null;
	if (res.status !== 204)
		data = opts.text || !ctype.startsWith('application/json') ? await res.text() : await res.json();
	return { status: res.status, data, auditIndex };
}

export const get = (path, opts = {}) => call(path, { ...opts, method: 'GET' });
export const post = (path, body, opts = {}) => call(path, { ...opts, method: 'POST', body });
export const del = (path, opts = {}) => call(path, { ...opts, method: 'DELETE' });
