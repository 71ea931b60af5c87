// tlog.js — checking the audit log in the browser, with WebCrypto only
// (SHA-256 and Ed25519; no library).
//
// Formats (the same as server/note.c and server/merkle.c):
//   verifier key  name "+" hex8 key id "+" base64(0x01 || 32-byte public key)
//   key id        SHA-256(name || 0x0A || 0x01 || public key)[0:4]
//   signed note   text ending "\n", a blank line, then signature lines
//                 "— " name " " base64(key id (4 bytes) || 64-byte signature);
//                 the text ends at the LAST blank line; Ed25519 signs the text
//   checkpoint    origin "\n" size "\n" base64(root) "\n" [extension "\n"]...
//   receipt       c2sp.org/tlog-proof@v1: "c2sp.org/tlog-proof@v1\n"
//                 ["extra " base64(entry bytes) "\n"] "index " N "\n"
//                 [base64(hash) "\n"]... "\n" signed checkpoint
//   Merkle tree   RFC 9162 2.1: leaf SHA-256(0x00 || d), node SHA-256(0x01 || l || r);
//                 inclusion (2.1.3.2) and consistency (2.1.4.2) verified literally.
//
// Every function returns a value or throws an Error whose message says, in
// words, what did not hold.

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function cryptoAvailable() {
	return typeof crypto !== 'undefined' && crypto.subtle !== undefined;
}

function needCrypto() {
	if (!cryptoAvailable())
		throw new Error('this browser offers no WebCrypto here (it needs HTTPS or localhost)');
}

// Strict standard base64 (with padding) to bytes.
export function b64decode(s) {
	if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s))
		throw new Error('not base64');
	const bin = atob(s);
	const out = new Uint8Array(bin.length);
	for (let i = 0; i < bin.length; i++)
		out[i] = bin.charCodeAt(i);
	return out;
}

export function b64encode(bytes) {
	let s = '';
	for (const b of bytes)
		s += String.fromCharCode(b);
	return btoa(s);
}

export function hex(bytes) {
	return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function concat(...parts) {
	const n = parts.reduce((a, p) => a + p.length, 0);
	const out = new Uint8Array(n);
	let o = 0;
	for (const p of parts) {
		out.set(p, o);
		o += p.length;
	}
	return out;
}

function equal(a, b) {
	if (a.length !== b.length)
		return false;
	let d = 0;
	for (let i = 0; i < a.length; i++)
		d |= a[i] ^ b[i];
	return d === 0;
}

export async function sha256(bytes) {
	needCrypto();
	return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

const ZERO = new Uint8Array([0]);
const ONE = new Uint8Array([1]);

export const leafHash = (data) => sha256(concat(ZERO, data));
export const nodeHash = (l, r) => sha256(concat(ONE, l, r));

// RFC 9162 MTH over leaf hashes (an array of 32-byte arrays).
export async function rootFromLeafHashes(hashes) {
	if (hashes.length === 0)
		return sha256(new Uint8Array(0));
	// Fold level by level: a left-complete tree pairs neighbours, the odd one
	// out moves up unchanged, which is exactly MTH's split at the largest power of two.
	let level = hashes;
	while (level.length > 1) {
		const next = [];
		for (let i = 0; i + 1 < level.length; i += 2)
			next.push(await nodeHash(level[i], level[i + 1]));
		if (level.length % 2 === 1)
			next.push(level[level.length - 1]);
		level = next;
	}
	return level[0];
}

// RFC 9162 2.1.3.2. index, size: Numbers; hash, root: bytes; path: array of bytes.
export async function verifyInclusion(index, size, hash, path, root) {
	if (!(index < size))
		throw new Error(`index ${index} is not below the tree size ${size}`);
	let fn = index, sn = size - 1, r = hash;
	for (const p of path) {
		if (sn === 0)
			throw new Error('the inclusion proof is too long');
		if (fn % 2 === 1 || fn === sn) {
			r = await nodeHash(p, r);
			if (fn % 2 === 0)
				while (fn % 2 === 0 && fn !== 0) {
					fn = Math.floor(fn / 2);
					sn = Math.floor(sn / 2);
				}
		} else {
			r = await nodeHash(r, p);
		}
		fn = Math.floor(fn / 2);
		sn = Math.floor(sn / 2);
	}
	if (sn !== 0)
		throw new Error('the inclusion proof is too short');
	if (!equal(r, root))
		throw new Error(`entry ${index} is not in the tree of size ${size} (root differs)`);
}

function isPowerOfTwo(n) {
	let v = n;
	while (v > 1 && v % 2 === 0)
		v /= 2;
	return v === 1;
}

// RFC 9162 2.1.4.2. first <= second; roots as bytes.
export async function verifyConsistency(first, second, path, firstRoot, secondRoot) {
	if (first > second)
		throw new Error(`the log shrank from ${first} to ${second} entries`);
	if (first === second) {
		if (path.length !== 0 || !equal(firstRoot, secondRoot))
			throw new Error(`two different trees of size ${first}`);
		return;
	}
	if (first === 0) {
		if (path.length !== 0)
			throw new Error('a consistency proof from the empty tree must be empty');
		return;
	}
	if (path.length === 0)
		throw new Error('the consistency proof is empty');
	const p = isPowerOfTwo(first) ? [firstRoot, ...path] : path;
	let fn = first - 1, sn = second - 1;
	while (fn % 2 === 1) {
		fn = Math.floor(fn / 2);
		sn = Math.floor(sn / 2);
	}
	let fr = p[0], sr = p[0];
	for (const c of p.slice(1)) {
		if (sn === 0)
			throw new Error('the consistency proof is too long');
		if (fn % 2 === 1 || fn === sn) {
			fr = await nodeHash(c, fr);
			sr = await nodeHash(c, sr);
			if (fn % 2 === 0)
				while (fn % 2 === 0 && fn !== 0) {
					fn = Math.floor(fn / 2);
					sn = Math.floor(sn / 2);
				}
		} else {
			sr = await nodeHash(sr, c);
		}
		fn = Math.floor(fn / 2);
		sn = Math.floor(sn / 2);
	}
	if (sn !== 0)
		throw new Error('the consistency proof is too short');
	if (!equal(fr, firstRoot))
		throw new Error(`the checkpoint of size ${first} seen before is not part of this log`);
	if (!equal(sr, secondRoot))
		throw new Error(`the consistency proof does not lead to the root of size ${second}`);
}

// Parse a verifier key. Returns {name, id (Number), pub (bytes), text}.
// GET /v1/audit/key lists one key a line, the log's primary key first (a
// second one during a key rotation): this takes the first line.
export async function parseVerifierKey(text) {
	const t = text.trim().split('\n')[0].trim();
	const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(t);
	if (!m)
		throw new Error('the log key is not a verifier key (name+keyid+base64)');
	const raw = b64decode(m[3]);
	if (raw.length !== 33 || raw[0] !== 1)
		throw new Error('the log key is not an Ed25519 verifier key');
	const pub = raw.slice(1);
	const want = await sha256(concat(enc.encode(m[1]), new Uint8Array([0x0a, 0x01]), pub));
	const id = ((want[0] << 24) | (want[1] << 16) | (want[2] << 8) | want[3]) >>> 0;
	if (id !== parseInt(m[2], 16))
		throw new Error('the log key\'s id does not match its name and public key');
	return { name: m[1], id, pub, text: t };
}

// Every key of a GET /v1/audit/key answer (one a line, the primary first).
export async function parseVerifierKeys(text) {
	const keys = [];
	for (const line of text.split('\n'))
		if (line.trim() !== '')
			keys.push(await parseVerifierKey(line));
	if (keys.length === 0)
		throw new Error('the log key is not a verifier key (name+keyid+base64)');
	return keys;
}

// Open a signed note with the verifier key. Returns {text, signatures:
// [{name, id, own}]} or throws. Lines by other keys (witness cosignatures)
// are listed but not checked (C2SP signed-note).
export async function openNote(note, key) {
	needCrypto();
	const split = note.lastIndexOf('\n\n');
	if (split < 0 || !note.endsWith('\n'))
		throw new Error('not a signed note');
	const text = note.slice(0, split + 1);
	const lines = note.slice(split + 2, -1).split('\n');
	const signatures = [];
	let verified = false;
	const pk = await crypto.subtle.importKey('raw', key.pub, { name: 'Ed25519' }, false, ['verify']);
	for (const line of lines) {
		const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
		if (!m)
			throw new Error('a signature line of the note is malformed');
		const blob = b64decode(m[2]);
		if (blob.length < 5)
			throw new Error('a signature of the note is too short');
		const id = ((blob[0] << 24) | (blob[1] << 16) | (blob[2] << 8) | blob[3]) >>> 0;
		const own = m[1] === key.name && id === key.id;
		signatures.push({ name: m[1], id, own });
		if (!own)
			continue;
		const ok = blob.length === 68 && await crypto.subtle.verify({ name: 'Ed25519' }, pk,
			blob.slice(4), enc.encode(text));
		if (!ok)
			throw new Error(`the signature by ${key.name} does not verify`);
		verified = true;
	}
	if (!verified)
		throw new Error(`the note carries no signature by the log's key ${key.name}`);
	return { text, signatures };
}

// Parse checkpoint text. Returns {origin, size (Number), root (bytes), extensions}.
export function parseCheckpoint(text) {
	const lines = text.split('\n');
	if (lines.length < 4 || lines[lines.length - 1] !== '')
		throw new Error('the checkpoint is malformed');
	const [origin, sizeText, rootText] = lines;
	if (!origin || !/^(0|[1-9][0-9]{0,15})$/.test(sizeText))
		throw new Error('the checkpoint is malformed');
	const root = b64decode(rootText);
	if (root.length !== 32)
		throw new Error('the checkpoint root is not a SHA-256 hash');
	return { origin, size: Number(sizeText), root, extensions: lines.slice(3, -1) };
}

// Verify a signed checkpoint note. Returns {origin, size, root, signatures, note}.
// The origin must be the key's name (as server/note.c and audit_verify.c
// require): a checkpoint the same key signed for another log is not this log's.
export async function verifyCheckpoint(note, key) {
	const opened = await openNote(note, key);
	const cp = parseCheckpoint(opened.text);
	if (cp.origin !== key.name)
		throw new Error(`the checkpoint's origin "${cp.origin}" is not the log key's name ${key.name}`);
	if (!Number.isSafeInteger(cp.size))
		throw new Error('the checkpoint\'s tree size is too large');
	return { ...cp, signatures: opened.signatures, note };
}

// Verify a c2sp.org/tlog-proof@v1 receipt. Returns {index, entryBytes, entry
// (parsed JSON or null), checkpoint}. Throws with the reason otherwise.
export async function verifyReceipt(receipt, key) {
	const head = 'c2sp.org/tlog-proof@v1\n';
	if (!receipt.startsWith(head))
		throw new Error('not a c2sp.org/tlog-proof@v1 receipt');
	const split = receipt.indexOf('\n\n', head.length - 1);
	if (split < 0)
		throw new Error('the receipt carries no checkpoint');
	const lines = receipt.slice(head.length, split).split('\n');
	let i = 0, extra = null;
	if (lines[i]?.startsWith('extra ')) {
		extra = b64decode(lines[i].slice(6));
		i++;
	}
	const im = /^index (0|[1-9][0-9]{0,15})$/.exec(lines[i] || '');
	if (!im)
		throw new Error('the receipt has no index line');
	const index = Number(im[1]);
	if (!Number.isSafeInteger(index))
		throw new Error('the receipt\'s index is too large');
	const path = lines.slice(i + 1).map((l) => {
		const b = b64decode(l);
		if (b.length !== 32)
			throw new Error('a proof hash of the receipt is malformed');
		return b;
	});
	if (extra === null)
		throw new Error('the receipt carries no entry');
	const cp = await verifyCheckpoint(receipt.slice(split + 2), key);
	await verifyInclusion(index, cp.size, await leafHash(extra), path, cp.root);
	let entry = null;
	try {
		entry = JSON.parse(dec.decode(extra));
	} catch (e) {
		entry = null;
	}
	return { index, entryBytes: extra, entry, checkpoint: cp };
}
