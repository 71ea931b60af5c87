-- 002_security.sql — least privilege and append-only audit tables.
--
-- Two roles: the owner (runs migrations, owns every object) and msreg_app, the
-- role msregd connects as. msreg_app may read and write the registry, may only
-- INSERT and SELECT the audit tables, and cannot change the schema. Triggers
-- refuse UPDATE, DELETE and TRUNCATE on the audit tables for everyone,
-- including the owner; only a superuser disabling the triggers can rewrite the
-- log, and the verifier (msreg audit verify) and msregd's start-up check catch that.

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_app') THEN
		BEGIN
			CREATE ROLE msreg_app LOGIN;
		EXCEPTION WHEN insufficient_privilege THEN
			RAISE NOTICE 'cannot create role msreg_app; create it and re-run grants';
		END;
	END IF;
END
$$;

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit table % is append-only (% refused)', TG_TABLE_NAME, TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['audit_entries', 'audit_hashes',
	                         'audit_checkpoints', 'audit_tree_state'] LOOP
		EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I
		                FOR EACH ROW EXECUTE FUNCTION audit_append_only()',
		               t || '_append_only', t);
		EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I
		                FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()',
		               t || '_no_truncate', t);
	END LOOP;
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_app') THEN
		EXECUTE 'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM msreg_app';
		EXECUTE 'GRANT SELECT, INSERT, UPDATE ON manufacturers, firearms, codes,
		         code_allocations, first_sales TO msreg_app';
		EXECUTE 'GRANT SELECT, INSERT, UPDATE ON api_clients TO msreg_app';
		EXECUTE 'GRANT SELECT, INSERT ON audit_entries, audit_hashes,
		         audit_checkpoints, audit_tree_state TO msreg_app';
		EXECUTE 'GRANT SELECT ON server_secrets, schema_migrations TO msreg_app';
		EXECUTE 'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO msreg_app';
		-- Tables added by later migrations: read and append only, unless the
		-- migration grants more explicitly.
		EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA public
		         GRANT SELECT, INSERT ON TABLES TO msreg_app';
		EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA public
		         GRANT USAGE ON SEQUENCES TO msreg_app';
	END IF;
END
$$;
