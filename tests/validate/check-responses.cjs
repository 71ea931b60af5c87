#!/usr/bin/env node
// check-responses.cjs OPENAPI.json RESPONSES.jsonl
//
// Checks responses recorded from a live msregd (tests/it_validate.c) against
// the OpenAPI document that msregd served. Each line of RESPONSES.jsonl is
//   {"method": "GET", "route": "/v1/codes/{code}", "path": "/v1/codes/0H5K...",
//    "status": 200, "content_type": "application/json", "body": "..."}
// and must be documented: the operation (route + method), the status (exact,
// then NXX, then default), the media type, and for JSON bodies the schema
// (OpenAPI 3.0 schemas turned into JSON Schema: `nullable` becomes
// anyOf [schema, null]; $refs resolve into the document's components).
// Operations the recording never reached are listed, not failed: the C test
// asserts which ones it exercises.
// Exit 0 when every response conforms, 1 otherwise.
'use strict';
const fs = require('fs');
const Ajv = require('ajv').default;
const addFormats = require('ajv-formats').default;

const [docPath, recPath] = process.argv.slice(2);
if (!docPath || !recPath) {
  console.error('usage: check-responses.cjs OPENAPI.json RESPONSES.jsonl');
  process.exit(2);
}
const doc = JSON.parse(fs.readFileSync(docPath, 'utf8'));
const DOC_ID = 'openapi.json';

// OpenAPI 3.0 Schema Object -> JSON Schema (draft-07) for ajv.
function toJsonSchema(s) {
  if (Array.isArray(s)) return s.map(toJsonSchema);
  if (s === null || typeof s !== 'object') return s;
  const out = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'nullable' || k === 'example' || k === 'examples' || k === 'xml' ||
        k === 'externalDocs' || k === 'discriminator' || k === 'deprecated' ||
        k === 'readOnly' || k === 'writeOnly') continue;
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#/')) {
      out[k] = DOC_ID + v;
    } else if (k === 'properties' || k === 'patternProperties') {
      out[k] = Object.fromEntries(Object.entries(v).map(([p, ps]) => [p, toJsonSchema(ps)]));
    } else {
      out[k] = toJsonSchema(v);
    }
  }
  if (s.nullable === true) return { anyOf: [out, { type: 'null' }] };
  return out;
}

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
for (const f of ['int32', 'int64', 'float', 'double', 'binary', 'password']) ajv.addFormat(f, true);
ajv.addFormat('byte', /^[A-Za-z0-9+/]*={0,2}$/);
ajv.addSchema({ $id: DOC_ID, components: toJsonSchema(doc.components || {}) });

function deref(o) {
  let n = 0;
  while (o && o.$ref && n++ < 10) {
    const parts = o.$ref.replace(/^#\//, '').split('/');
    o = parts.reduce((a, p) => (a ? a[p.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), doc);
  }
  return o;
}

const GENERIC = new Set([405, 413, 415, 429, 503]);
const validators = new Map();
function validatorFor(key, schema) {
  if (!validators.has(key)) validators.set(key, ajv.compile(toJsonSchema(schema)));
  return validators.get(key);
}

const lines = fs.readFileSync(recPath, 'utf8').split('\n').filter((l) => l.trim() !== '');
const seen = new Map();   // "METHOD route" -> Set of statuses
let failures = 0;
function fail(rec, msg) {
  failures++;
  const body = (rec.body || '').slice(0, 300);
  console.error(`FAIL ${rec.method} ${rec.path} -> ${rec.status}: ${msg}\n     body: ${body}`);
}

for (const line of lines) {
  const rec = JSON.parse(line);
  const item = doc.paths[rec.route];
  const op = item && item[rec.method.toLowerCase()];
  if (!op) { fail(rec, `operation ${rec.method} ${rec.route} is not documented`); continue; }
  const key = `${rec.method} ${rec.route}`;
  if (!seen.has(key)) seen.set(key, new Set());
  seen.get(key).add(rec.status);
  const st = String(rec.status);
  // "default" stands for the errors any route may answer (Error's description),
  // not for any status at all.
  const which = op.responses[st] !== undefined ? st :
    op.responses[st[0] + 'XX'] !== undefined ? st[0] + 'XX' :
    op.responses.default !== undefined && GENERIC.has(rec.status) ? 'default' : null;
  if (which === null) { fail(rec, `status ${st} is not documented`); continue; }
  const resp = deref(op.responses[which]);
  const content = resp.content || {};
  const media = (rec.content_type || '').split(';')[0].trim().toLowerCase();
  if (Object.keys(content).length === 0) {
    if ((rec.body || '') !== '') fail(rec, `documented without a body, but has one`);
    continue;
  }
  if (!content[media]) {
    fail(rec, `media type "${media}" is not documented for ${st} (${Object.keys(content).join(', ')})`);
    continue;
  }
  const schema = content[media].schema;
  if (media === 'application/json') {
    let body;
    try { body = JSON.parse(rec.body); } catch (e) { fail(rec, `body is not JSON: ${e.message}`); continue; }
    if (!schema) continue;
    const v = validatorFor(`${key} ${which} ${media}`, schema);
    if (!v(body)) fail(rec, `schema (${which}): ` + ajv.errorsText(v.errors, { separator: '; ' }));
  } else if (schema && schema.type === 'string' && typeof rec.body !== 'string') {
    fail(rec, 'body is not text');
  }
}

// Coverage report.
const uncovered = [];
for (const [path, item] of Object.entries(doc.paths)) {
  for (const m of ['get', 'post', 'put', 'delete', 'patch']) {
    if (!item[m]) continue;
    const key = `${m.toUpperCase()} ${path}`;
    const got = seen.get(key);
    if (!got) { uncovered.push(key); continue; }
    const statuses = [...got].sort().join(',');
    console.log(`ok   ${key}  [${statuses}]`);
  }
}
for (const k of uncovered) console.log(`note ${k}: not exercised by the recording`);
console.log(`${lines.length} responses checked against ${docPath}: ${failures} failure(s)`);
process.exit(failures === 0 ? 0 : 1);
