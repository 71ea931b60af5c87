-- 005_feed.sql — lets msregd's search index follow the codes table.
--
-- The feed re-reads every row whose writing transaction id is at or above the
-- xmin of its previous snapshot: transactions below that xmin had committed
-- (or aborted) before the previous read, so nothing that commits late, out of
-- change_seq order, is ever missed. Adds are idempotent in the index.
CREATE INDEX codes_change_xid ON codes (change_xid);
