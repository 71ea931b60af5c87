-- 008_privilege.sql — least privilege: column grants for msreg_app, one-way
-- state changes enforced by triggers, and every object owned by a role that
-- cannot log in.
--
-- Roles:
--   msreg_schema  NOLOGIN; owns the schema and every table, sequence and
--                 function. Nobody connects as it.
--   msreg_owner   LOGIN; a member of msreg_schema. `msreg migrate` connects as
--                 msreg_owner and applies later migrations under
--                 SET ROLE msreg_schema (server/migrate.c).
--   msreg_app     LOGIN; msregd and the client CLI. Exactly the privileges
--                 listed below, column by column; nothing else.
-- deploy/pg.sh and the test harness create msreg_schema; where the migrating
-- role may create roles this migration creates it itself.
--
-- What msreg_app can do, by table (every statement msregd runs needs these
-- and no more; the integration tests run every one of them):
--   manufacturers      SELECT; INSERT (id, name, ffl)                 admin route
--   api_clients        SELECT; INSERT (name, role, org, key_hash);
--                      UPDATE (revoked_at) only                       admin route, CLI
--   firearms           SELECT; INSERT (all but created_at)            registration
--   codes              SELECT; INSERT (code, scheme, component,
--                      firearm_id, replaces); UPDATE (status,
--                      retired_at, change_seq, change_xid)            replacement
--   code_allocations   SELECT; INSERT (code, manufacturer_id)         allocation
--   first_sales        SELECT; INSERT (all but recorded_at)           dealers
--   audit_*            SELECT; INSERT                                 the log
--   server_secrets, schema_migrations   SELECT
--   budget_grants      SELECT; INSERT (007)                           admin route
--   budget_disclosures nothing: only through msreg_disclose() (007)
--   sequences          USAGE (nextval), never UPDATE (setval)
-- No DELETE, no TRUNCATE, no UPDATE of any other column, anywhere.
--
-- Triggers, for every role (only disabling them, i.e. the owner, gets past):
--  1. a recorded first sale and a registered firearm are never updated or
--     deleted;
--  2. an API key's name, role, organisation and hash never change, and a
--     revocation is permanent (revoked_at is set once, never cleared or moved);
--  3. a code only goes from active to retired (with its time), never back, and
--     nothing else about it changes except its change-feed position.

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_schema') THEN
		BEGIN
			CREATE ROLE msreg_schema NOLOGIN;
		EXCEPTION WHEN insufficient_privilege THEN
			RAISE EXCEPTION 'role msreg_schema does not exist and % may not create it',
			    current_user
			    USING HINT = format('as a superuser: CREATE ROLE msreg_schema NOLOGIN;'
			        ' GRANT msreg_schema TO %I; then run msreg migrate again', current_user);
		END;
		EXECUTE format('GRANT msreg_schema TO %I', current_user);
	END IF;
	IF (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'msreg_schema') THEN
		RAISE EXCEPTION 'role msreg_schema can log in; it must be NOLOGIN'
		    USING HINT = 'ALTER ROLE msreg_schema NOLOGIN';
	END IF;
	IF NOT pg_has_role(current_user, 'msreg_schema', 'MEMBER') THEN
		RAISE EXCEPTION '% is not a member of msreg_schema', current_user
		    USING HINT = format('GRANT msreg_schema TO %I', current_user);
	END IF;
END
$$;

-- ---- one-way state changes -------------------------------------------------

CREATE FUNCTION msreg_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% of % refused: recorded registry facts do not change',
	    TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER first_sales_immutable BEFORE UPDATE OR DELETE ON first_sales
	FOR EACH ROW EXECUTE FUNCTION msreg_refuse_change();
CREATE TRIGGER firearms_immutable BEFORE UPDATE OR DELETE ON firearms
	FOR EACH ROW EXECUTE FUNCTION msreg_refuse_change();

CREATE FUNCTION msreg_client_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id <> OLD.id OR NEW.name <> OLD.name OR NEW.role <> OLD.role
	   OR NEW.org IS DISTINCT FROM OLD.org OR NEW.key_hash <> OLD.key_hash
	   OR NEW.created_at <> OLD.created_at THEN
		RAISE EXCEPTION 'an API client''s identity, role and key never change'
		    USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
		RAISE EXCEPTION 'client % is revoked; revocation is permanent', OLD.id
		    USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER api_clients_update BEFORE UPDATE ON api_clients
	FOR EACH ROW EXECUTE FUNCTION msreg_client_update();
CREATE TRIGGER api_clients_no_delete BEFORE DELETE ON api_clients
	FOR EACH ROW EXECUTE FUNCTION msreg_refuse_change();

CREATE FUNCTION msreg_code_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.code <> OLD.code OR NEW.scheme <> OLD.scheme OR NEW.component <> OLD.component
	   OR NEW.firearm_id <> OLD.firearm_id OR NEW.registered_at <> OLD.registered_at
	   OR NEW.replaces IS DISTINCT FROM OLD.replaces
	   OR NOT (OLD.status = 'active' AND NEW.status = 'retired') THEN
		RAISE EXCEPTION 'code %: only retiring an active code is allowed', OLD.code
		    USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER codes_retire_only BEFORE UPDATE ON codes
	FOR EACH ROW EXECUTE FUNCTION msreg_code_update();
CREATE TRIGGER codes_no_delete BEFORE DELETE ON codes
	FOR EACH ROW EXECUTE FUNCTION msreg_refuse_change();

-- ---- column privileges of msreg_app ------------------------------------------

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_app') THEN
		RETURN;
	END IF;
	REVOKE ALL ON manufacturers, api_clients, firearms, codes, code_allocations,
	    first_sales, audit_entries, audit_hashes, audit_checkpoints, audit_tree_state,
	    server_secrets, schema_migrations, budget_disclosures, budget_grants
	    FROM msreg_app;
	REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM msreg_app;

	GRANT SELECT (id, name, ffl, created_at),
	      INSERT (id, name, ffl)
	    ON manufacturers TO msreg_app;
	GRANT SELECT (id, name, role, org, key_hash, created_at, revoked_at),
	      INSERT (name, role, org, key_hash),
	      UPDATE (revoked_at)
	    ON api_clients TO msreg_app;
	GRANT SELECT (id, manufacturer_id, model, serial, type, caliber, manufactured_on,
	              created_at, created_by),
	      INSERT (id, manufacturer_id, model, serial, type, caliber, manufactured_on,
	              created_by)
	    ON firearms TO msreg_app;
	GRANT SELECT (code, scheme, component, status, firearm_id, registered_at, retired_at,
	              replaces, change_seq, change_xid),
	      INSERT (code, scheme, component, firearm_id, replaces),
	      UPDATE (status, retired_at, change_seq, change_xid)
	    ON codes TO msreg_app;
	GRANT SELECT (code, manufacturer_id, allocated_at),
	      INSERT (code, manufacturer_id)
	    ON code_allocations TO msreg_app;
	GRANT SELECT (firearm_id, dealer_ffl, sold_on, transaction_ref, state, recorded_at,
	              recorded_by),
	      INSERT (firearm_id, dealer_ffl, sold_on, transaction_ref, state, recorded_by)
	    ON first_sales TO msreg_app;
	GRANT SELECT (idx, leaf, client_id, created_at),
	      INSERT (idx, leaf, client_id)
	    ON audit_entries TO msreg_app;
	GRANT SELECT (level, idx, hash), INSERT (level, idx, hash)
	    ON audit_hashes TO msreg_app;
	GRANT SELECT (tree_size, root, note, created_at), INSERT (tree_size, root, note)
	    ON audit_checkpoints TO msreg_app;
	GRANT SELECT (tree_size, root, batch_size, sequenced_at),
	      INSERT (tree_size, root, batch_size)
	    ON audit_tree_state TO msreg_app;
	GRANT SELECT (name, value) ON server_secrets TO msreg_app;
	GRANT SELECT (version, applied_at) ON schema_migrations TO msreg_app;
	GRANT SELECT (id, scope, subject, win, budget, reason, granted_by, granted_at,
	              expires_at),
	      INSERT (scope, subject, win, budget, reason, granted_by, expires_at)
	    ON budget_grants TO msreg_app;
	GRANT USAGE ON SEQUENCE firearms_id_seq, api_clients_id_seq, change_seq,
	    budget_grants_id_seq TO msreg_app;
END
$$;

-- ---- ownership ---------------------------------------------------------------

DO $$
DECLARE
	o record;
BEGIN
	-- the new owner needs CREATE on the schema to own objects in it
	EXECUTE 'GRANT USAGE, CREATE ON SCHEMA public TO msreg_schema';
	FOR o IN SELECT c.relname FROM pg_class c
	         JOIN pg_namespace n ON n.oid = c.relnamespace
	         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
	           AND c.relowner <> 'msreg_schema'::regrole LOOP
		EXECUTE format('ALTER TABLE %I OWNER TO msreg_schema', o.relname);
	END LOOP;
	-- sequences not owned by a column (serial sequences followed their table)
	FOR o IN SELECT c.relname FROM pg_class c
	         JOIN pg_namespace n ON n.oid = c.relnamespace
	         WHERE n.nspname = 'public' AND c.relkind = 'S'
	           AND c.relowner <> 'msreg_schema'::regrole LOOP
		EXECUTE format('ALTER SEQUENCE %I OWNER TO msreg_schema', o.relname);
	END LOOP;
	FOR o IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
	         JOIN pg_namespace n ON n.oid = p.pronamespace
	         WHERE n.nspname = 'public' AND p.proowner <> 'msreg_schema'::regrole LOOP
		EXECUTE format('ALTER FUNCTION %s OWNER TO msreg_schema', o.sig);
	END LOOP;
	BEGIN
		EXECUTE 'ALTER SCHEMA public OWNER TO msreg_schema';
	EXCEPTION WHEN insufficient_privilege THEN
		RAISE NOTICE 'schema public stays with its owner; its objects belong to msreg_schema';
	END;
	-- tables later migrations create (as msreg_schema): read and append only,
	-- unless the migration grants otherwise, as before this migration
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_app') THEN
		RETURN;
	END IF;
	EXECUTE 'ALTER DEFAULT PRIVILEGES FOR ROLE msreg_schema IN SCHEMA public
	         GRANT SELECT, INSERT ON TABLES TO msreg_app';
	EXECUTE 'ALTER DEFAULT PRIVILEGES FOR ROLE msreg_schema IN SCHEMA public
	         GRANT USAGE ON SEQUENCES TO msreg_app';
END
$$;
