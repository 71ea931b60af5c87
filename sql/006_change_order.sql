-- 006_change_order.sql — a row's transaction id is assigned before its
-- change_seq is drawn.
--
-- The search feed (server/feed.c) reads, at each catch-up, the rows that were
-- not visible in its previous snapshot P as
--     change_seq > max change_seq visible in P   OR   change_xid in xip(P).
-- That is complete only if a row whose change_seq is at most that maximum
-- belongs to a transaction that already had its xid when P was taken, i.e. if
-- every writer gets its xid before it draws a change_seq. Evaluating
-- pg_current_xact_id() first (it assigns the xid) guarantees it; the function
-- is inlined into the INSERT or UPDATE, so it costs nothing measurable.
CREATE FUNCTION msreg_next_change() RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$ SELECT CASE WHEN pg_current_xact_id() IS NOT NULL
	                  THEN nextval('change_seq') END $$;

ALTER TABLE codes ALTER COLUMN change_seq SET DEFAULT msreg_next_change();
