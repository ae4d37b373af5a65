-- A token may expire; an expired one is refused like a revoked one (and its live streams end).
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
