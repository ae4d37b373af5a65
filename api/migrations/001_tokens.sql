-- API bearer tokens. Only a SHA-256 of the token is kept: tokens are 256-bit random strings,
-- so a fast hash suffices and lookups stay an index probe.
CREATE TABLE api_tokens (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL,
    role        text        NOT NULL
                            CHECK (role IN ('admin', 'integrator', 'operator', 'dispatcher',
                                            'viewer')),
    area_prefix text        NOT NULL DEFAULT '' CHECK (area_prefix ~ '^[0-9]{0,12}$'),
    token_hash  text        NOT NULL UNIQUE,
    created_by  bigint      REFERENCES api_tokens (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
