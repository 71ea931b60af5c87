-- 020_audit_pending.sql — write intents: the log never claims a write that did
-- not happen (server/audit.c, "Writes").
--
-- The batch that stores a write's audit entry inserts audit_pending(idx). The
-- write's own transaction ends with SELECT audit_write_done(idx); COMMIT, so the
-- data and the intent's removal commit together. An intent that stays (the
-- write rolled back, its process died, PostgreSQL stopped) is locked by a later
-- batch (FOR UPDATE SKIP LOCKED), which appends an "audit.write_void" entry
-- naming idx and deletes the intent in the same transaction; a write that comes
-- after that finds its intent gone and rolls back (SQLSTATE MSR01).
-- This is a work table, not part of the log: rows come and go.
CREATE TABLE audit_pending (
	idx         bigint PRIMARY KEY CHECK (idx >= 0),
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_pending_created ON audit_pending (created_at);

CREATE FUNCTION audit_write_done(entry bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM audit_pending WHERE idx = entry;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the intent of audit entry % was voided; the write must not commit',
		    entry USING ERRCODE = 'MSR01';
	END IF;
END
$$;

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_app') THEN
		EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON audit_pending TO msreg_app';
	END IF;
END
$$;
