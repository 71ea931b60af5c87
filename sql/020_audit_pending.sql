-- 020_audit_pending.sql — write intents: the log never claims a write that did
-- not happen (server/audit.c, "Writes").
--
-- The batch that stores a write's audit entry inserts audit_pending(idx). The
-- write's own transaction ends with SELECT audit_write_done(idx); COMMIT, so the
-- data and the intent's removal commit together. An intent that stays (the
-- write rolled back, its process died, PostgreSQL stopped) is locked by a later
-- batch (audit_pending_claim: FOR UPDATE SKIP LOCKED), which appends an
-- "audit.write_void" entry naming idx and deletes the intent
-- (audit_pending_void) in the same statement as that entry; a write that comes
-- after that finds its intent gone and rolls back (SQLSTATE MSR01).
-- This is a work table, not part of the log: rows come and go, but msreg_app
-- only inserts (column idx); it reads, locks and deletes through the three
-- functions below (SECURITY DEFINER, owner msreg_schema, 008_privilege.sql).
CREATE TABLE audit_pending (
	idx         bigint PRIMARY KEY CHECK (idx >= 0),
	created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_pending_created ON audit_pending (created_at);

-- A write's transaction: its intent is resolved, or the write must not commit.
CREATE FUNCTION audit_write_done(entry bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
	DELETE FROM audit_pending WHERE idx = entry;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the intent of audit entry % was voided; the write must not commit',
		    entry USING ERRCODE = 'MSR01';
	END IF;
END
$$;

-- The sequencer: lock (for its transaction) intents older than older_ms or
-- hinted, skipping those a live write holds.
CREATE FUNCTION audit_pending_claim(older_ms integer, hinted bigint[], cap integer)
	RETURNS SETOF bigint
	LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
	SELECT idx FROM audit_pending
	 WHERE idx = ANY (hinted) OR created_at < now() - older_ms * interval '1 millisecond'
	 ORDER BY idx LIMIT cap FOR UPDATE SKIP LOCKED
$$;

-- The sequencer: delete intents it has just logged as void.
CREATE FUNCTION audit_pending_void(voided bigint[]) RETURNS integer
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
	n integer;
BEGIN
	DELETE FROM audit_pending WHERE idx = ANY (voided);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

REVOKE ALL ON FUNCTION audit_write_done(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_pending_claim(integer, bigint[], integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_pending_void(bigint[]) FROM PUBLIC;

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_app') THEN
		EXECUTE 'REVOKE ALL ON audit_pending FROM msreg_app';
		EXECUTE 'GRANT INSERT (idx) ON audit_pending TO msreg_app';
		EXECUTE 'GRANT EXECUTE ON FUNCTION audit_write_done(bigint),'
		    ' audit_pending_claim(integer, bigint[], integer),'
		    ' audit_pending_void(bigint[]) TO msreg_app';
	END IF;
END
$$;
