-- Field staff: a grid worker's token reports in its grid and acts on what is dispatched to
-- its unit (`unit_id`, a response unit of kind grid_worker).
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('admin', 'integrator', 'operator', 'dispatcher', 'viewer', 'grid_worker'));
ALTER TABLE api_tokens ADD COLUMN unit_id text;
