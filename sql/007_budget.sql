-- 007_budget.sql — disclosure budgets (server/budget.c).
--
-- Every firearm that a lookup or a search discloses counts against rolling
-- budgets of distinct firearms per API key and per case (the investigator's
-- agency ORI and case number), over 24 hours and over 30 days. The counters
-- live here so that restarts and several msregd instances share them.
--
-- Invariants:
--  1. budget_disclosures holds, per (scope, subject, firearm), the last time
--     the firearm was disclosed to that key or case. The number of distinct
--     firearms disclosed in a window is the number of rows whose time lies in
--     it; disclosing a firearm again moves its time forward, so it counts once
--     per window whatever the number of lookups.
--  2. msreg_disclose() decides and records in one statement: under a lock per
--     subject (key first, then case: a fixed order, so no deadlock) it counts
--     each window, and either records every firearm for both subjects or, if
--     any budget would be exceeded, records nothing and says which budget
--     refused. Two concurrent requests of one key or case are serialised, so
--     neither can slip past a budget the other has just filled, and exactly
--     one of them sees a threshold being crossed.
--  3. msreg_app cannot read or change budget_disclosures: it may only call
--     msreg_disclose() (SECURITY DEFINER), so the application role cannot
--     reset a budget. Grants (budget_grants) are append-only for it; a grant
--     raises a budget until it expires and never lowers one.

CREATE TABLE budget_disclosures (
	scope         text NOT NULL CHECK (scope IN ('key', 'case')),
	subject       text NOT NULL,
	firearm_id    bigint NOT NULL,
	disclosed_at  timestamptz NOT NULL,
	PRIMARY KEY (scope, subject, firearm_id)
);
CREATE INDEX budget_disclosures_window ON budget_disclosures (scope, subject, disclosed_at);

-- A larger budget for one key or case, granted by an admin for a stated reason
-- (POST /v1/budgets/grants, audited).
CREATE TABLE budget_grants (
	id          bigserial PRIMARY KEY,
	scope       text NOT NULL CHECK (scope IN ('key', 'case')),
	subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 512),
	win         text NOT NULL CHECK (win IN ('24h', '30d')),
	budget      integer NOT NULL CHECK (budget BETWEEN 1 AND 100000000),
	reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
	granted_by  bigint REFERENCES api_clients(id),
	granted_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL,
	CHECK (expires_at > granted_at)
);
CREATE INDEX budget_grants_subject ON budget_grants (scope, subject, win, expires_at);

-- p_client: the API key's client id; p_case: '<ORI>/<case number>' (NULL: no
-- case budget); p_ids: the firearms about to be disclosed (duplicates and
-- NULLs ignored); p_limits: the configured budgets {key 24h, key 30d, case 24h,
-- case 30d}, NULL when budgets are disabled (nothing is counted).
-- Returns one row: refused (0, or the 1-based index of the first budget that
-- would be exceeded), the effective budgets (grants applied), the distinct
-- firearms counted in each window before and after this disclosure, and for
-- a refusal the seconds until enough of the window has expired for it to fit
-- (the whole window when it can never fit).
CREATE FUNCTION msreg_disclose(p_client bigint, p_case text, p_ids bigint[],
                               p_limits integer[])
	RETURNS TABLE (refused integer, budgets integer[], used_before integer[],
	               used_after integer[], retry_after integer)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = public, pg_temp
AS $$
DECLARE
	scopes  constant text[] := ARRAY['key', 'key', 'case', 'case'];
	wins    constant text[] := ARRAY['24h', '30d', '24h', '30d'];
	spans   constant interval[] := ARRAY[interval '24 hours', interval '30 days',
	                                     interval '24 hours', interval '30 days'];
	t       constant timestamptz := now();
	ids     bigint[];
	subj    text;
	n       integer;
	cnt     integer;
	fresh   integer;
	excess  integer;
	wait    integer;
BEGIN
	refused := 0;
	retry_after := 0;
	budgets := ARRAY[0, 0, 0, 0];
	used_before := ARRAY[0, 0, 0, 0];
	used_after := ARRAY[0, 0, 0, 0];
	IF p_limits IS NULL OR p_client IS NULL THEN
		RETURN NEXT;
		RETURN;
	END IF;
	SELECT coalesce(array_agg(DISTINCT x), '{}') INTO ids
	  FROM unnest(p_ids) AS x WHERE x IS NOT NULL;
	n := CASE WHEN p_case IS NULL THEN 2 ELSE 4 END;
	PERFORM pg_advisory_xact_lock(7316008, hashtext('key:' || p_client::text));
	IF p_case IS NOT NULL THEN
		PERFORM pg_advisory_xact_lock(7316008, hashtext('case:' || p_case));
	END IF;
	FOR i IN 1..n LOOP
		subj := CASE WHEN i <= 2 THEN p_client::text ELSE p_case END;
		budgets[i] := greatest(p_limits[i], coalesce((SELECT max(g.budget)
		    FROM budget_grants g WHERE g.scope = scopes[i] AND g.subject = subj
		    AND g.win = wins[i] AND g.expires_at > t), 0));
		SELECT count(*) INTO cnt FROM budget_disclosures d
		 WHERE d.scope = scopes[i] AND d.subject = subj AND d.disclosed_at > t - spans[i];
		SELECT count(*) INTO fresh FROM unnest(ids) AS x
		 WHERE NOT EXISTS (SELECT 1 FROM budget_disclosures d
		                   WHERE d.scope = scopes[i] AND d.subject = subj
		                     AND d.firearm_id = x AND d.disclosed_at > t - spans[i]);
		used_before[i] := cnt;
		used_after[i] := cnt + fresh;
		IF refused = 0 AND cnt + fresh > budgets[i] THEN
			refused := i;
			excess := cnt + fresh - budgets[i];
			wait := NULL;
			IF excess <= cnt THEN
				SELECT ceil(extract(epoch FROM d.disclosed_at + spans[i] - t))::integer
				  INTO wait FROM budget_disclosures d
				 WHERE d.scope = scopes[i] AND d.subject = subj
				   AND d.disclosed_at > t - spans[i]
				 ORDER BY d.disclosed_at OFFSET excess - 1 LIMIT 1;
			END IF;
			retry_after := greatest(1, coalesce(wait,
			    extract(epoch FROM spans[i])::integer));
		END IF;
	END LOOP;
	IF refused = 0 AND cardinality(ids) > 0 THEN
		-- No WAL flush of its own (invariant 4): msregd answers only after the
		-- request's audit entry is committed synchronously, later, and that
		-- flush covers this record too; a crash before it loses the count
		-- and the answer together.
		PERFORM set_config('synchronous_commit', 'off', true);
		INSERT INTO budget_disclosures AS d (scope, subject, firearm_id, disclosed_at)
		SELECT 'key', p_client::text, x, t FROM unnest(ids) AS x
		UNION ALL
		SELECT 'case', p_case, x, t FROM unnest(ids) AS x WHERE p_case IS NOT NULL
		ON CONFLICT (scope, subject, firearm_id) DO UPDATE SET disclosed_at = t;
		-- forget what no window counts any more (index range, usually empty)
		DELETE FROM budget_disclosures d WHERE d.scope = 'key'
		   AND d.subject = p_client::text AND d.disclosed_at <= t - interval '30 days';
		IF p_case IS NOT NULL THEN
			DELETE FROM budget_disclosures d WHERE d.scope = 'case'
			   AND d.subject = p_case AND d.disclosed_at <= t - interval '30 days';
		END IF;
	END IF;
	RETURN NEXT;
END
$$;

-- Only msregd calls it; the application role reaches the counters through it alone.
REVOKE ALL ON FUNCTION msreg_disclose(bigint, text, bigint[], integer[]) FROM PUBLIC;
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'msreg_app') THEN
		REVOKE ALL ON budget_disclosures, budget_grants FROM msreg_app;
		GRANT EXECUTE ON FUNCTION msreg_disclose(bigint, text, bigint[], integer[])
		    TO msreg_app;
		GRANT SELECT (id, scope, subject, win, budget, reason, granted_by, granted_at,
		              expires_at),
		      INSERT (scope, subject, win, budget, reason, granted_by, expires_at)
		    ON budget_grants TO msreg_app;
		GRANT USAGE ON SEQUENCE budget_grants_id_seq TO msreg_app;
	END IF;
END
$$;
