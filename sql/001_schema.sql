-- 001_schema.sql — the registry and audit-log tables.
--
-- Invariants:
--  1. A code is registered at most once, registry-wide (codes.code is the key);
--     codes are never deleted: a replaced code becomes status 'retired'.
--  2. Serial numbers are unique per manufacturer.
--  3. At most one first retail sale per firearm.
--  4. Every registry write takes a value from change_seq and records its
--     transaction id, so the in-memory search index can follow the table by
--     sequence number without missing transactions that commit out of order.
--  5. The audit tables are append-only (see 002_security.sql).

CREATE TABLE manufacturers (
	id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
	name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	ffl         text,
	created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_clients (
	id          bigserial PRIMARY KEY,
	name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	role        text NOT NULL CHECK (role IN
	            ('manufacturer', 'dealer', 'investigator', 'auditor', 'admin')),
	org         text,
	key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
	created_at  timestamptz NOT NULL DEFAULT now(),
	revoked_at  timestamptz,
	CHECK (role IN ('auditor', 'admin') OR org IS NOT NULL)
);

CREATE TABLE firearms (
	id              bigserial PRIMARY KEY,
	manufacturer_id text NOT NULL REFERENCES manufacturers(id),
	model           text NOT NULL,
	serial          text NOT NULL,
	type            text NOT NULL,
	caliber         text NOT NULL,
	manufactured_on date,
	created_at      timestamptz NOT NULL DEFAULT now(),
	created_by      bigint REFERENCES api_clients(id),
	UNIQUE (manufacturer_id, serial)
);

CREATE SEQUENCE change_seq;

-- Codes handed out by POST /v1/codes/allocate, reserved to one manufacturer.
CREATE TABLE code_allocations (
	code            text PRIMARY KEY,
	manufacturer_id text NOT NULL REFERENCES manufacturers(id),
	allocated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE codes (
	code          text PRIMARY KEY,
	scheme        text NOT NULL CHECK (scheme IN ('rs8', 'free')),
	component     text NOT NULL CHECK (component IN
	              ('firing_pin', 'breech_face', 'ejector', 'extractor', 'other')),
	status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
	firearm_id    bigint NOT NULL REFERENCES firearms(id),
	registered_at timestamptz NOT NULL DEFAULT now(),
	retired_at    timestamptz,
	replaces      text REFERENCES codes(code),
	change_seq    bigint NOT NULL DEFAULT nextval('change_seq'),
	change_xid    xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX codes_firearm ON codes (firearm_id);
CREATE INDEX codes_change_seq ON codes (change_seq);

CREATE TABLE first_sales (
	firearm_id      bigint PRIMARY KEY REFERENCES firearms(id),
	dealer_ffl      text NOT NULL,
	sold_on         date NOT NULL,
	transaction_ref text NOT NULL,
	state           text NOT NULL,
	recorded_at     timestamptz NOT NULL DEFAULT now(),
	recorded_by     bigint REFERENCES api_clients(id)
);

-- Audit log (RFC 9162 Merkle tree). idx is the 0-based leaf index.
CREATE TABLE audit_entries (
	idx         bigint PRIMARY KEY CHECK (idx >= 0),
	leaf        bytea NOT NULL,
	client_id   bigint,
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_entries_client ON audit_entries (client_id);

-- Complete subtree hashes: node (level, idx) covers leaves [idx*2^level, (idx+1)*2^level).
CREATE TABLE audit_hashes (
	level  smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
	idx    bigint NOT NULL CHECK (idx >= 0),
	hash   bytea NOT NULL CHECK (length(hash) = 32),
	PRIMARY KEY (level, idx)
);

-- Every signed checkpoint (C2SP tlog-checkpoint as a signed note).
CREATE TABLE audit_checkpoints (
	tree_size   bigint PRIMARY KEY CHECK (tree_size >= 0),
	root        bytea NOT NULL CHECK (length(root) = 32),
	note        text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per sequenced batch: the tree state after it.
CREATE TABLE audit_tree_state (
	tree_size     bigint PRIMARY KEY CHECK (tree_size >= 0),
	root          bytea NOT NULL CHECK (length(root) = 32),
	batch_size    integer NOT NULL,
	sequenced_at  timestamptz NOT NULL DEFAULT now()
);

-- Server-side secret used to key the BLAKE2b hashes of API keys.
CREATE TABLE server_secrets (
	name   text PRIMARY KEY,
	value  bytea NOT NULL
);
