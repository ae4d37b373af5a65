-- Silences: an operator mutes matching signals for a while (a fire drill, a repair).
CREATE TABLE silences (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    matcher    jsonb       NOT NULL,
    area_prefix text       NOT NULL DEFAULT '',
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),
    reason     text        NOT NULL,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX silences_ends_idx ON silences (ends_at);
