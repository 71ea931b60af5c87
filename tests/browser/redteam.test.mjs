// redteam.test.mjs STAGE — an adversary's tests of the web console, in
// Debian's Chromium through playwright-core (run by driver.c after
// console.test.mjs, on the same msregd and STAGE):
//
//   - injection: a firearm whose model, serial and caliber are markup, a
//     client named with markup and a case number with markup are shown by
//     every view as text: no element or script is created, no CSP violation;
//     the codes CSV neutralises cells a spreadsheet would run as formulas;
//   - crypto: a receipt or a checkpoint altered in any part (signature byte,
//     key id, root, proof hash, index, tree size, origin line, entry) does not
//     verify in the browser, and bin/msreg audit receipt verify agrees on
//     every one of them; a checkpoint validly signed by another key, with a
//     foreign origin or under a changed log key, does not verify either;
//   - refusals: query_too_broad (bits/min_bits) and
//     disclosure_budget_exhausted are explained in words (case_24h = 3);
//   - the key: only in sessionStorage and the Authorization header, no
//     Referer, never in a URL, a console message, an error or the page after
//     Sign out, which forgets everything the tab learnt;
//   - keyboard: the search flow by keyboard alone, in a sensible focus order.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const stage = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const scratch = dirname(process.argv[2]);
const out = join(here, 'out');
const msreg = join(here, '..', '..', 'bin', 'msreg');
const KEYS = Object.values(stage.keys);
const T = 20000;

let browser;
const problems = [];
const messages = [];     // every console message of every page: [name, text]
const pages = [];

before(async () => {
	browser = await chromium.launch({
		executablePath: process.env.MSR_CHROMIUM || '/usr/bin/chromium',
		headless: true,
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
	});
});

afterEach(async () => {
	for (const [name, page] of pages.splice(0))
		if (!page.isClosed())
			await page.screenshot({ path: join(out, `FAILED-redteam-${name}.png`), fullPage: true }).catch(() => {});
});

after(async () => {
	await browser?.close();
});

// A fresh context with the watchers of console.test.mjs, plus: every request
// to the API is checked for a Referer and for where the key goes.
async function open(name) {
	const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
	await context.addInitScript(() => {
		document.addEventListener('securitypolicyviolation', (e) => {
			console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
		});
	});
	const page = await context.newPage();
	page.setDefaultTimeout(T);
	page.on('console', (m) => {
		messages.push([name, m.text()]);
		if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text()))
			problems.push(`${name}: console ${m.type()}: ${m.text()}`);
	});
	page.on('pageerror', (e) => problems.push(`${name}: uncaught ${e.message}`));
	page.on('request', (r) => {
		const url = decodeURIComponent(r.url());
		if (KEYS.some((k) => url.includes(k) || url.includes(k.slice(4))))
			problems.push(`${name}: a request carries an API key in its URL: ${r.method()} ${r.url()}`);
		const hdr = r.headers();
		if (hdr.referer)
			problems.push(`${name}: a request carries a Referer: ${r.url()} <- ${hdr.referer}`);
		if (hdr.authorization && !r.url().startsWith(`${stage.url}/v1/`))
			problems.push(`${name}: the key went to ${r.url()}`);
	});
	pages.push([name, page]);
	return { context, page };
}

// Drop the expected failed-resource messages (a refusal's status) of one page.
function expect(name, status) {
	for (let i = problems.length - 1; i >= 0; i--)
		if (problems[i].startsWith(`${name}:`) && problems[i].includes(`status of ${status}`))
			problems.splice(i, 1);
}

function clean(name) {
	const mine = problems.filter((p) => p.startsWith(`${name}:`));
	assert.deepEqual(mine, [], mine.join('\n'));
}

async function signIn(page, key, role) {
	await page.goto(`${stage.url}/ui/`);
	await page.getByLabel('API key').fill(key);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.getByRole('button', { name: 'Sign out' }).waitFor();
	await page.getByText(`role ${role}`).waitFor();
}

// Nothing from the API became markup: no element a payload would create, no
// payload ran, the only script is the console's own module.
async function noInjection(page, where) {
	const found = await page.evaluate(() => ({
		pwned: window.__pwned ?? null,
		elements: [...document.querySelectorAll('img, svg, iframe, object, embed, script')]
			.filter((e) => !(e.tagName === 'SCRIPT' && e.type === 'module' && /^\/ui\/app\.[0-9a-f]+\.js$/.test(e.getAttribute('src'))))
			.map((e) => e.outerHTML.slice(0, 100)),
		handlers: [...document.querySelectorAll('*')].flatMap((e) =>
			[...e.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `${e.tagName} ${a.name}`)),
	}));
	assert.deepEqual(found, { pwned: null, elements: [], handlers: [] }, `${where}: injected markup`);
}

// ---------------------------------------------------------------- injection

test('injection: markup in firearm fields, client name and case number stays text', async () => {
	const x = stage.xss;
	const caseNo = '<img src=x onerror=window.__pwned=5>';
	const purpose = '<script>window.__pwned=6</script>';
	{
		const { context, page } = await open('xss-investigator');
		await signIn(page, stage.keys.xss, 'investigator');
		await page.getByText(x.client).first().waitFor();        // "Signed in as <img ...>"
		await page.getByLabel('Case number').fill(caseNo);
		await page.getByLabel('Purpose').fill(purpose);
		await page.getByLabel('Casing 1').fill(x.code);
		await page.getByRole('button', { name: 'Search', exact: true }).click();
		const row = page.getByRole('table').getByRole('row').filter({ hasText: x.code });
		await row.waitFor();
		const text = await row.innerText();
		for (const want of [x.model, x.serial])
			assert.ok(text.includes(want), `the row shows ${want} as text: ${text}`);
		await page.getByText(`Candidates for case ${caseNo}`).waitFor();
		await noInjection(page, 'search results');
		await page.getByRole('button', { name: 'Case report' }).click();
		await page.getByText('Receipt verified').waitFor();
		await page.getByText(caseNo).first().waitFor();
		await noInjection(page, 'case report');
		assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
			'long attacker strings do not push the report off the page');
		await page.screenshot({ path: join(out, 'redteam-xss-report.png'), fullPage: true });
		clean('xss-investigator');
		await context.close();
	}
	{
		const { context, page } = await open('xss-auditor');
		await signIn(page, stage.keys.auditor, 'auditor');
		await page.getByText(/^Tree size \d+$/).waitFor();
		await page.getByLabel('Case number').fill('<img');
		const row = page.getByRole('table').getByRole('row').filter({ hasText: caseNo }).first();
		await row.waitFor();
		await row.getByRole('button', { name: 'JSON' }).click();
		await page.getByText(`"purpose": "${purpose}"`).waitFor();
		await page.getByLabel('Case number').fill('');
		await page.getByLabel('Action').fill('');
		await noInjection(page, 'audit log');
		clean('xss-auditor');
		await context.close();
	}
	{
		const { context, page } = await open('xss-manufacturer');
		await signIn(page, stage.keys.manufacturer, 'manufacturer');
		const open1 = page.getByRole('button', { name: `Open ${x.serial}` });
		await open1.waitFor();
		await open1.click();
		await page.getByRole('heading', { name: `Firearm ${x.serial}` }).waitFor();
		await page.getByText(x.model, { exact: true }).first().waitFor();
		await page.getByText(x.caliber).first().waitFor();
		await noInjection(page, 'firearm');
		clean('xss-manufacturer');
		await context.close();
	}
	{
		const { context, page } = await open('xss-admin');
		await signIn(page, stage.keys.admin, 'admin');
		await page.getByRole('row').filter({ hasText: x.client }).waitFor();
		// a client created with markup in its name and organisation
		await page.getByLabel('Name').fill('<svg onload=window.__pwned=7>');
		await page.getByLabel('Role').selectOption('auditor');
		await page.getByLabel('Organisation').fill('"><img src=x onerror=window.__pwned=8>');
		await page.getByRole('button', { name: 'Create client' }).click();
		await page.getByRole('row').filter({ hasText: '<svg onload=window.__pwned=7>' }).waitFor();
		await noInjection(page, 'clients');
		clean('xss-admin');
		await context.close();
	}
});

test('injection: the codes CSV neutralises formula cells', async () => {
	const { context, page } = await open('csv');
	// the registry's answer is replaced: codes a spreadsheet would run
	const evil = ['=HYPERLINK("http://x/?"&A1,"x")', '+1+1', '-2+3', '@SUM(A1)', '\tTAB', 'A,B"C', '0H5K4M3A'];
	await page.route('**/v1/codes/allocate', (route) =>
		route.fulfill({ status: 201, contentType: 'application/json', json: { codes: evil } }));
	await signIn(page, stage.keys.manufacturer, 'manufacturer');
	await page.getByLabel('Count').fill('7');
	await page.getByRole('button', { name: 'Allocate codes' }).click();
	await page.locator('pre.codelist').waitFor();
	const dl = page.waitForEvent('download');
	await page.getByRole('button', { name: 'Download CSV' }).click();
	const csv = readFileSync(await (await dl).path(), 'utf8');
	assert.equal(csv, 'code\n"\'=HYPERLINK(""http://x/?""&A1,""x"")"\n\'+1+1\n\'-2+3\n\'@SUM(A1)\n' +
		'\'\tTAB\n"A,B""C"\n0H5K4M3A\n');
	for (const line of csv.split('\n').slice(1))
		assert.doesNotMatch(line, /^"?[=+\-@\t\r]/, `a cell starts a formula: ${line}`);
	await noInjection(page, 'codes');
	clean('csv');
	await context.close();
});

// ------------------------------------------------------------------ crypto

const b64 = (buf) => Buffer.from(buf).toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64');

function flipB64(s, at) {
	const b = unb64(s);
	b[at] ^= 0x01;
	return b64(b);
}

// Alter one part of a signed checkpoint note.
function tamperNote(note, part) {
	const split = note.lastIndexOf('\n\n');
	const lines = note.slice(0, split).split('\n');      // origin, size, root, ext...
	const sigs = note.slice(split + 2, -1).split('\n');
	const own = sigs.findIndex((l) => l.startsWith(`\u2014 ${lines[0]} `));
	assert.ok(own >= 0, 'the note carries the log key\'s signature');
	const [dash, name, blob] = sigs[own].split(' ');
	switch (part) {
	case 'signature byte': sigs[own] = `${dash} ${name} ${flipB64(blob, 4 + 20)}`; break;
	case 'key id': sigs[own] = `${dash} ${name} ${flipB64(blob, 0)}`; break;
	case 'root': lines[2] = flipB64(lines[2], 5); break;
	case 'tree size': lines[1] = String(Number(lines[1]) + 1); break;
	case 'origin line': lines[0] = `${lines[0]}x`; break;
	default: throw new Error(part);
	}
	return `${lines.join('\n')}\n\n${sigs.join('\n')}\n`;
}

// Alter one part of a c2sp.org/tlog-proof@v1 receipt.
function tamperReceipt(receipt, part) {
	const split = receipt.indexOf('\n\n');
	const head = receipt.slice(0, split).split('\n');
	const note = receipt.slice(split + 2);
	const ix = head.findIndex((l) => l.startsWith('index '));
	switch (part) {
	case 'index': {
		const n = Number(head[ix].slice(6));
		head[ix] = `index ${n > 0 ? n - 1 : n + 1}`;
		break;
	}
	case 'path hash':
		assert.ok(head.length > ix + 1, 'the receipt has a proof path');
		head[ix + 1] = flipB64(head[ix + 1], 7);
		break;
	case 'entry': head[1] = `extra ${flipB64(head[1].slice(6), 12)}`; break;
	default: return `${head.join('\n')}\n\n${tamperNote(note, part)}`;
	}
	return `${head.join('\n')}\n\n${note}`;
}

const RECEIPT_PARTS = ['signature byte', 'key id', 'root', 'path hash', 'index', 'tree size', 'origin line', 'entry'];
const NOTE_PARTS = ['signature byte', 'key id', 'root', 'tree size', 'origin line'];

// bin/msreg audit receipt verify: 0 if it holds.
function serverVerifies(receipt, vkey, name) {
	const file = join(scratch, `receipt-${name.replace(/\W+/g, '-')}.txt`);
	writeFileSync(file, receipt);
	try {
		execFileSync(msreg, ['audit', 'receipt', 'verify', file, '--vkey', vkey], { stdio: 'pipe' });
		return true;
	} catch (e) {
		if (e.status !== 1)
			throw new Error(`msreg audit receipt verify: exit ${e.status}: ${e.stderr}`);
		return false;
	}
}

// An Ed25519 note key of our own (C2SP signed-note), to sign checkpoints the
// log never made.
function noteKey(name) {
	const { publicKey, privateKey } = generateKeyPairSync('ed25519');
	const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
	const id = createHash('sha256').update(Buffer.concat([Buffer.from(name), Buffer.from([0x0a, 0x01]), pub]))
		.digest().subarray(0, 4);
	return { name, id, privateKey,
		vkey: `${name}+${id.toString('hex')}+${b64(Buffer.concat([Buffer.from([1]), pub]))}` };
}

// text: the note's lines without the final newline.
function signNote(key, text) {
	const body = `${text}\n`;
	const sig = sign(null, Buffer.from(body), key.privateKey);
	return `${body}\n\u2014 ${key.name} ${b64(Buffer.concat([key.id, sig]))}\n`;
}

// The checkpoint text of a signed note, with another origin if asked.
function resign(note, key, origin) {
	const lines = note.slice(0, note.lastIndexOf('\n\n')).split('\n');
	if (origin)
		lines[0] = origin;
	return signNote(key, lines.join('\n'));
}

test('crypto: a receipt altered in any part does not verify, in the browser and in bin/msreg', async () => {
	const { context, page } = await open('receipt');
	let part = null;
	let genuine = null;
	await page.route('**/v1/audit/receipt/*', async (route) => {
		const res = await route.fetch();
		const text = await res.text();
		genuine = text;
		await route.fulfill({ response: res, body: part ? tamperReceipt(text, part) : text });
	});
	await signIn(page, stage.keys.investigator, 'investigator');
	await page.getByLabel('Case number').fill('HPD-2026-009001');
	await page.getByLabel('Purpose').fill('receipt tampering');
	await page.getByLabel('Casing 1').fill(stage.search_code);
	await page.getByRole('button', { name: 'Search', exact: true }).click();
	await page.getByRole('table').getByRole('row').filter({ hasText: stage.search_serial }).waitFor();
	const vkey = (await (await fetch(`${stage.url}/v1/audit/key`)).text()).trim();
	// the genuine receipt first: both verifiers accept it
	await page.getByRole('button', { name: 'Case report' }).click();
	await page.getByText('Receipt verified').waitFor();
	assert.ok(serverVerifies(genuine, vkey, 'genuine'), 'bin/msreg accepts the genuine receipt');
	const browserSays = {}, serverSays = {};
	for (part of RECEIPT_PARTS) {
		await page.getByRole('button', { name: 'Back to the search' }).click();
		await page.getByRole('button', { name: 'Case report' }).click();
		const verdict = page.locator('p.verdict');
		await page.waitForFunction(() => !document.querySelector('p.verdict.pending'));
		browserSays[part] = await verdict.innerText();
		serverSays[part] = serverVerifies(tamperReceipt(genuine, part), vkey, part) ? 'verifies' : 'refused';
		if (part === 'signature byte')
			await page.screenshot({ path: join(out, 'redteam-receipt-tampered.png'), fullPage: true });
	}
	part = null;
	const want = Object.fromEntries(RECEIPT_PARTS.map((p) => [p, 'Receipt does not verify']));
	assert.deepEqual(browserSays, want, 'the browser refuses every altered receipt');
	assert.deepEqual(serverSays, Object.fromEntries(RECEIPT_PARTS.map((p) => [p, 'refused'])),
		'bin/msreg audit receipt verify refuses every altered receipt');
	clean('receipt');
	await context.close();
});

test('crypto: a checkpoint altered in any part, or signed by another key, does not verify', async () => {
	const { context, page } = await open('checkpoint');
	let alter = null;
	let vkeyText = null;    // a replacement /v1/audit/key
	await page.route('**/v1/audit/checkpoint', async (route) => {
		const res = await route.fetch();
		const note = await res.text();
		await route.fulfill({ response: res, body: alter ? alter(note) : note });
	});
	await page.route('**/v1/audit/key', async (route) => {
		const res = await route.fetch();
		await route.fulfill({ response: res, body: vkeyText ?? await res.text() });
	});
	const verdict = page.locator('p.verdict');
	async function verify() {
		await page.getByRole('button', { name: 'Verify log' }).click();
		await page.waitForFunction(() => /^Log (verified|does not verify)/.test(document.querySelector('p.verdict')?.textContent));
		return verdict.innerText();
	}
	await signIn(page, stage.keys.auditor, 'auditor');
	await page.getByText(/^Tree size \d+$/).waitFor();
	const origin = (await (await fetch(`${stage.url}/v1/audit/checkpoint`)).text()).split('\n')[0];
	// positive control: a checkpoint signed here by our own key, named as the
	// log, with the log's real size and root verifies in a browser that has
	// never seen this log (so a refusal below is about what was altered)
	const impostor = noteKey(origin);
	vkeyText = impostor.vkey;
	alter = (note) => resign(note, impostor);
	assert.match(await verify(), /^Log verified: \d+ entries/);
	// ... and a foreign origin under that key does not
	alter = (note) => resign(note, impostor, `${origin}.other`);
	assert.match(await verify(), /^Log does not verify: .*origin/);
	// the log's own key from here on; this browser now pins it
	await page.evaluate(() => localStorage.clear());
	vkeyText = null;
	alter = null;
	assert.match(await verify(), /^Log verified: \d+ entries/);
	const results = {};
	for (const part of NOTE_PARTS) {
		alter = (note) => tamperNote(note, part);
		results[part] = (await verify()).split(':')[0];
	}
	assert.deepEqual(results, Object.fromEntries(NOTE_PARTS.map((p) => [p, 'Log does not verify'])));
	// the impostor's checkpoint (valid signature, same origin, real root) after
	// this browser verified the log under its real key
	vkeyText = impostor.vkey;
	alter = (note) => resign(note, impostor);
	assert.match(await verify(), /^Log does not verify: the log's key changed/);
	// a checkpoint seen before that this log does not extend
	vkeyText = null;
	alter = null;
	await page.evaluate(() => {
		const seen = JSON.parse(localStorage.getItem('msreg.audit.checkpoint'));
		const root = Uint8Array.from(atob(seen.root), (c) => c.charCodeAt(0));
		root[0] ^= 1;
		seen.root = btoa(String.fromCharCode(...root));
		localStorage.setItem('msreg.audit.checkpoint', JSON.stringify(seen));
	});
	assert.match(await verify(), /^Log does not verify: (the checkpoint of size \d+ seen before is not part of this log|two different trees)/);
	await page.screenshot({ path: join(out, 'redteam-log-tampered.png'), fullPage: true });
	clean('checkpoint');
	await context.close();
});

test('crypto: the entries table shows the verified bytes, not the server\'s parsed copy', async () => {
	const { context, page } = await open('entrycopy');
	await page.route('**/v1/audit/entries?*', async (route) => {
		const res = await route.fetch();
		const body = await res.json();
		for (const e of body.entries)
			if (e.entry)
				e.entry = { ...e.entry, case_number: 'FORGED-CASE', action: 'forged.action' };
		await route.fulfill({ response: res, json: body });
	});
	await signIn(page, stage.keys.auditor, 'auditor');
	await page.getByText(/^Tree size \d+$/).waitFor();
	await page.getByRole('button', { name: 'Verify log' }).click();
	await page.getByText(/^Log verified: \d+ entries/).waitFor();
	await page.getByRole('table').getByRole('row').filter({ hasText: 'code.search' }).first().waitFor();
	assert.equal(await page.getByText('FORGED-CASE').count(), 0, 'the server\'s parsed copy is not shown');
	assert.equal(await page.getByText('forged.action').count(), 0);
	clean('entrycopy');
	await context.close();
});

// ---------------------------------------------------------------- refusals

test('refusals: too broad (bits) and disclosure budget exhausted, in words', async () => {
	const { context, page } = await open('refusals');
	await signIn(page, stage.keys.investigator, 'investigator');
	await page.getByLabel('Case number').fill('HPD-2026-009002');
	await page.getByLabel('Purpose').fill('budget');
	await page.getByLabel('Casing 1').fill('????????');
	await page.getByRole('button', { name: 'Search', exact: true }).click();
	const alert = page.getByRole('alert');
	await alert.getByText(/pin down 0 bits of the code/).waitFor();
	assert.match(await alert.innerText(), /at least 20 bits/);
	assert.match(await alert.innerText(), /Read more positions/);
	expect('refusals', 422);
	// the case budget is 3 distinct firearms a day: three searches disclose
	// one each, the fourth is refused whole
	for (let i = 0; i < stage.budget_case; i++) {
		await page.getByLabel('Casing 1').fill(stage.budget_codes[i]);
		await page.getByRole('button', { name: 'Search', exact: true }).click();
		await page.getByRole('table').getByRole('row').filter({ hasText: `BUDGET-${i + 1}` }).waitFor();
	}
	await page.getByLabel('Casing 1').fill(stage.budget_codes[stage.budget_case]);
	await page.getByRole('button', { name: 'Search', exact: true }).click();
	await alert.getByText(/disclosure budget of this case is used up/).waitFor();
	const text = await alert.innerText();
	for (const want of [`at most ${stage.budget_case} different firearms`, 'in 24 hours',
		`${stage.budget_case} have been revealed`, 'none remain', 'would reveal 1', 'Nothing was disclosed',
		'try again in about', 'ask an administrator for a grant'])
		assert.ok(text.includes(want), `the budget refusal says "${want}": ${text}`);
	assert.equal(await page.getByRole('table').count(), 0, 'no candidate is shown');
	await page.screenshot({ path: join(out, 'redteam-budget.png'), fullPage: true });
	expect('refusals', 429);
	clean('refusals');
	await context.close();
});

// --------------------------------------------------------------------- key

test('key: session only, no Referer, never in a URL, log, error or the page after Sign out', async () => {
	const { context, page } = await open('key');
	const key = stage.keys.investigator;
	// an error message does not echo a key
	await page.goto(`${stage.url}/ui/`);
	const wrong = `msr_${'ab'.repeat(32)}`;
	await page.getByLabel('API key').fill(wrong);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.getByRole('alert').getByText(/invalid/).waitFor();
	assert.ok(!(await page.getByRole('alert').innerText()).includes(wrong.slice(4, 20)), 'the error does not echo the key');
	expect('key', 401);
	assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
	await page.getByLabel('API key').fill(key);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.getByText('role investigator').waitFor();
	assert.equal(await page.getByLabel('API key').count(), 0);
	await page.getByLabel('Case number').fill('HPD-2026-009003');
	await page.getByLabel('Purpose').fill('key handling');
	await page.getByLabel('Casing 1').fill(stage.search_code);
	await page.getByRole('button', { name: 'Search', exact: true }).click();
	await page.getByRole('table').getByRole('row').filter({ hasText: stage.search_serial }).waitFor();
	const state = await page.evaluate(() => ({
		session: Object.keys(sessionStorage), local: JSON.stringify(localStorage), url: location.href,
		resources: performance.getEntriesByType('resource').map((r) => r.name), cookie: document.cookie,
	}));
	assert.ok(state.session.includes('msreg.key'));
	const all = JSON.stringify([state.local, state.url, state.resources, state.cookie]);
	assert.ok(!all.includes(key.slice(4)), 'the key is only in sessionStorage');
	assert.deepEqual(await context.cookies(), []);
	// Sign out forgets the key and what the tab learnt
	await page.getByRole('button', { name: 'Sign out' }).click();
	await page.getByLabel('API key').waitFor();
	await page.getByRole('status').getByText('Signed out').waitFor();
	const after = await page.evaluate(() => ({ n: sessionStorage.length, html: document.documentElement.outerHTML,
		url: location.href }));
	assert.equal(after.n, 0, 'sessionStorage is empty after Sign out');
	assert.ok(!after.html.includes(key.slice(4)), 'the key is not in the page');
	assert.ok(!after.html.includes('HPD-2026-009003'), 'the last search is gone');
	assert.equal(after.url, `${stage.url}/ui/`);
	// the next person in this tab sees nothing of the previous one's work
	await page.getByLabel('API key').fill(stage.keys.xss);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.getByText('role investigator').waitFor();
	assert.equal(await page.getByLabel('Case number').inputValue(), '');
	assert.equal(await page.getByRole('button', { name: 'Case report' }).count(), 0);
	assert.equal(await page.getByText('Last search').count(), 0);
	await page.getByRole('button', { name: 'Sign out' }).click();
	await page.getByLabel('API key').waitFor();
	const logged = messages.filter(([, m]) => KEYS.some((k) => m.includes(k.slice(4))) || m.includes(wrong.slice(4)));
	assert.deepEqual(logged, [], 'no console message holds a key');
	clean('key');
	await context.close();
});

// ----------------------------------------------------------- accessibility

// Every visible control has a visible label with text, every table a caption
// and column headers with text, and the alert region is role=alert.
async function accessible(page, where) {
	const bad = await page.evaluate(() => {
		const out = [];
		for (const el of document.querySelectorAll('input, select, textarea')) {
			if (el.type === 'hidden' || el.offsetParent === null)
				continue;
			if (![...(el.labels || [])].some((l) => l.offsetParent !== null && l.textContent.trim()))
				out.push(`unlabelled ${el.outerHTML.slice(0, 80)}`);
		}
		for (const b of document.querySelectorAll('button'))
			if (!b.textContent.trim() && !b.getAttribute('aria-label'))
				out.push(`a button without a name: ${b.outerHTML.slice(0, 80)}`);
		for (const t of document.querySelectorAll('table')) {
			if (!t.caption?.textContent.trim())
				out.push('a table without a caption');
			const th = [...t.querySelectorAll('thead th')];
			if (th.length === 0 || th.some((x) => !x.textContent.trim() || x.getAttribute('scope') !== 'col'))
				out.push(`a table with an empty or unscoped column header: ${t.caption?.textContent}`);
		}
		if (document.getElementById('alert')?.getAttribute('role') !== 'alert')
			out.push('the alert region is not role=alert');
		return out;
	});
	assert.deepEqual(bad, [], `${where}: accessibility`);
}

test('accessibility: labels, named buttons, table headers in every view', async () => {
	for (const [role, ready] of [['investigator', 'Case number'], ['auditor', 'Client'],
		['manufacturer', 'Count'], ['dealer', 'Serial'], ['admin', 'Name']]) {
		const { context, page } = await open(`a11y-${role}`);
		await signIn(page, stage.keys[role], role);
		await page.getByLabel(ready, { exact: true }).waitFor();
		await page.waitForFunction(() => !document.querySelector('.tablebox') ||
			document.querySelector('.tablebox table, .tablebox p'));
		if (role === 'investigator') {
			await page.getByLabel('Case number').fill('A11Y-1');
			await page.getByLabel('Purpose').fill('accessibility');
			await page.getByLabel('Casing 1').fill(stage.search_code);
			await page.getByRole('button', { name: 'Search', exact: true }).click();
			await page.getByRole('table').waitFor();
			await accessible(page, 'search results');
			await page.getByRole('button', { name: 'Case report' }).click();
			await page.getByRole('status').filter({ hasText: 'Receipt verified' }).waitFor();
		}
		if (role === 'manufacturer') {
			await page.getByRole('button', { name: `Open ${stage.search_serial}` }).click();
			await page.getByRole('heading', { name: `Firearm ${stage.search_serial}` }).waitFor();
		}
		await accessible(page, role);
		clean(`a11y-${role}`);
		await context.close();
	}
});

// ---------------------------------------------------------------- keyboard

test('keyboard: the search flow without a mouse, in a sensible order', async () => {
	const { context, page } = await open('keyboard');
	await page.goto(`${stage.url}/ui/`);
	await page.getByLabel('API key').waitFor();
	await page.keyboard.type(stage.keys.investigator);
	await page.keyboard.press('Enter');
	await page.getByText('role investigator').waitFor();
	// where the focus is: the label of a control, or a button's name
	const focused = () => page.evaluate(() => {
		const e = document.activeElement;
		if (!e || e === document.body)
			return 'body';
		if (e.id === 'main')
			return 'main';
		if (e.labels && e.labels.length)
			return e.labels[0].textContent.trim();
		return `${e.tagName.toLowerCase()} ${(e.textContent || e.getAttribute('aria-label') || '').trim()}`;
	});
	// "Skip to content" is the first stop, and it keeps the view and what was typed
	await page.keyboard.type('KB-2026-1');
	assert.equal(await focused(), 'Case number', 'the view starts in its first field');
	await page.keyboard.press('Shift+Tab');
	await page.keyboard.press('Shift+Tab');
	await page.keyboard.press('Shift+Tab');
	assert.equal(await focused(), 'a Skip to content');
	await page.keyboard.press('Enter');
	assert.equal(await focused(), 'main', 'focus is in the main region');
	assert.equal(await page.getByLabel('Case number').inputValue(), 'KB-2026-1', 'the view was not redrawn');
	await page.keyboard.press('Tab');
	assert.equal(await focused(), 'Case number');
	await page.keyboard.press('Tab');
	assert.equal(await focused(), 'Purpose');
	await page.keyboard.type('keyboard');
	await page.keyboard.press('Tab');
	assert.equal(await focused(), 'Casing 1');
	await page.keyboard.type(stage.search_code);
	const order = [];
	for (let i = 0; i < 13; i++) {
		await page.keyboard.press('Tab');
		order.push(await focused());
	}
	assert.deepEqual(order, ['Reading 1, position 1', 'Reading 1, position 2', 'Reading 1, position 3',
		'Reading 1, position 4', 'Reading 1, position 5', 'Reading 1, position 6', 'Reading 1, position 7',
		'Reading 1, position 8', 'button Add casing', 'Gear reading', 'Misread characters allowed',
		'Maximum results', 'button Search']);
	await page.keyboard.press('Enter');
	await page.getByRole('table').getByRole('row').filter({ hasText: stage.search_serial }).waitFor();
	assert.notEqual(await focused(), 'body', 'the focus is not lost after the search');
	// from the results, Tab reaches the case report
	let found = false;
	for (let i = 0; i < 6 && !found; i++) {
		found = (await focused()) === 'button Case report';
		if (!found)
			await page.keyboard.press('Tab');
	}
	assert.ok(found, 'Tab reaches Case report after the results');
	await page.keyboard.press('Enter');
	await page.getByText('Receipt verified').waitFor();
	clean('keyboard');
	await context.close();
});

test('redteam: no console error, CSP violation, Referer or key in a URL anywhere', () => {
	assert.deepEqual(problems, [], problems.join('\n'));
});
