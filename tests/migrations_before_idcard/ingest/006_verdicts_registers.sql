-- What an ID-card read tells the grid worker at the door (the verdict sent back to the
-- reader), kept with the read so that a read the broker delivers again gets the same answer.
ALTER TABLE id_reads ADD COLUMN seq bigint;
ALTER TABLE id_reads ADD COLUMN verdict text
    CHECK (verdict IN ('ok', 'invalid', 'expired', 'watchlist', 'unregistered'));
ALTER TABLE id_reads ADD COLUMN verdict_level text;
ALTER TABLE id_reads ADD COLUMN verdict_message text;
CREATE INDEX id_reads_device_seq_idx ON id_reads (device_id, seq);

-- What a watch list's hit tells the worker at the door (never the list's label).
ALTER TABLE watchlists ADD COLUMN reader_message text;

-- A community's register of residents (流动人口登记 and 户籍): ID numbers as keyed hashes only,
-- with building and unit. A read in a community with a register that does not hold the card
-- is `unregistered`.
CREATE TABLE registers (
    area        text        PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE register_entries (
    area        text        NOT NULL REFERENCES registers (area) ON DELETE CASCADE,
    id_hash     text        NOT NULL,
    id_masked   text        NOT NULL,
    building    text,
    unit        text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (area, id_hash)
);
