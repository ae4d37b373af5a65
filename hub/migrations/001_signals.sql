-- Signals (DESIGN §4): the one contract between ingest/vision and rules, kept so rules can be
-- replayed over history.
CREATE TABLE signals (
    ts          timestamptz      NOT NULL,
    kind        text             NOT NULL,
    source_id   text             NOT NULL,
    source_type text             NOT NULL,
    area        text             NOT NULL,
    site        text,
    building    text,
    value       double precision,
    confidence  double precision NOT NULL DEFAULT 1.0,
    attrs       jsonb            NOT NULL DEFAULT '{}'::jsonb,
    received_at timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX signals_kind_ts_idx ON signals (kind, ts);
CREATE INDEX signals_area_idx ON signals (area text_pattern_ops, ts);
