-- Rules are JSON documents (DESIGN §6), versioned on every change.
CREATE TABLE rules (
    id         text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,63}$'),
    version    integer     NOT NULL,
    document   jsonb       NOT NULL,
    enabled    boolean     NOT NULL,
    area_prefix text       NOT NULL DEFAULT '',
    builtin    boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rule_versions (
    rule_id    text        NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    version    integer     NOT NULL,
    document   jsonb       NOT NULL,
    changed_by text        NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);
