-- moved-from: ingest/001_ingest sha256:e9a24294493dbbb111458594b79578bd123a8ebcbda3c15c5ae7aec354122490
-- The ID-card tables, created by ingest's first migration until the idcard package was carved
-- out of ingest: a database that applied that migration as it was has them already, and this
-- one is recorded there without running (hub/migrations.py).

-- ID-card reads, hashed and masked only.
CREATE TABLE id_reads (
    ts          timestamptz      NOT NULL,
    device_id   text             NOT NULL,
    area        text             NOT NULL,
    operator    text,
    lat         double precision,
    lon         double precision,
    id_hash     text             NOT NULL,
    id_masked   text             NOT NULL,
    name_masked text,
    sex         text,
    nation      text,
    valid_to    date,
    status      text             NOT NULL
);
CREATE INDEX id_reads_hash_idx ON id_reads (id_hash, ts);
CREATE INDEX id_reads_area_idx ON id_reads (area text_pattern_ops, ts);

CREATE TABLE watchlists (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    label      text        NOT NULL,
    level      text        NOT NULL CHECK (level IN ('info', 'watch', 'alert')),
    area_prefix text       NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE watchlist_entries (
    watchlist_id bigint NOT NULL REFERENCES watchlists (id) ON DELETE CASCADE,
    id_hash      text   NOT NULL,
    id_masked    text   NOT NULL,
    note         text,
    PRIMARY KEY (watchlist_id, id_hash)
);
CREATE INDEX watchlist_entries_hash_idx ON watchlist_entries (id_hash);
