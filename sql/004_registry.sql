-- 004_registry.sql — registry rules that the database enforces as well as the
-- handlers (server/handlers_codes.c, handlers_firearms.c, handlers_sales.c).
--
-- The handlers validate every field before writing; these constraints are the
-- last line for anything that reaches the tables another way (imports, COPY,
-- psql) and document the stored forms:
--  1. codes are stored normalised: 6-16 Crockford base32 symbols, upper case,
--     no hyphens; rs8 codes have exactly 8 (their check symbols are verified
--     in C, msr_rs8_valid, not here);
--  2. a code is 'retired' exactly when it has a retired_at time;
--  3. code_allocations holds 8-symbol codes only: every 8-symbol code in
--     codes is also claimed there by its firearm's manufacturer, so the
--     allocation primary key alone keeps allocation from issuing a code that
--     was ever registered;
--  4. firearm text fields and first-sale fields have the handlers' bounds.

ALTER TABLE codes
	ADD CONSTRAINT codes_code_form CHECK (code ~ '^[0-9A-HJKMNP-TV-Z]{6,16}$'),
	ADD CONSTRAINT codes_rs8_length CHECK (scheme <> 'rs8' OR length(code) = 8),
	ADD CONSTRAINT codes_retired_at CHECK ((status = 'retired') = (retired_at IS NOT NULL)),
	ADD CONSTRAINT codes_replaces_other CHECK (replaces IS NULL OR replaces <> code);

ALTER TABLE code_allocations
	ADD CONSTRAINT code_allocations_code_form CHECK (code ~ '^[0-9A-HJKMNP-TV-Z]{8}$');

ALTER TABLE firearms
	ADD CONSTRAINT firearms_model_length CHECK (length(model) BETWEEN 1 AND 100),
	ADD CONSTRAINT firearms_serial_length CHECK (length(serial) BETWEEN 1 AND 64),
	ADD CONSTRAINT firearms_type_length CHECK (length(type) BETWEEN 1 AND 64),
	ADD CONSTRAINT firearms_caliber_length CHECK (length(caliber) BETWEEN 1 AND 64);

ALTER TABLE first_sales
	ADD CONSTRAINT first_sales_state_form CHECK (state ~ '^[A-Z]{2}$'),
	ADD CONSTRAINT first_sales_ref_length CHECK (length(transaction_ref) BETWEEN 1 AND 64);
