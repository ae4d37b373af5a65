-- The ID-card tables this migration created until the idcard package was carved out of ingest
-- are idcard/001_id_cards now (a database that applied it before has them: hub/migrations.py).

-- Every accepted uplink once: (device_id, seq) makes a message idempotent.
CREATE TABLE uplinks (
    device_id   text        NOT NULL,
    seq         bigint      NOT NULL,
    ts          timestamptz NOT NULL,
    channel     text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX uplinks_received_brin ON uplinks USING brin (received_at);

-- Time series of numeric readings.
CREATE TABLE readings (
    ts        timestamptz      NOT NULL,
    device_id text             NOT NULL,
    metric    text             NOT NULL,
    value     double precision NOT NULL
);
CREATE INDEX readings_device_ts_idx ON readings (device_id, metric, ts);

-- Last known state of each device, kept by ingest and the health monitor.
CREATE TABLE device_state (
    device_id      text        PRIMARY KEY,
    last_seen      timestamptz,
    online           boolean     NOT NULL DEFAULT false,
    -- When the device went quiet or sent its last will; offline is reported only after a
    -- grace period, so short blips raise nothing.
    offline_since    timestamptz,
    reported_offline boolean     NOT NULL DEFAULT false,
    battery_pct    double precision,
    rssi_dbm       double precision,
    fw             text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Rejected messages, with the reason; id_reader payloads are never kept (DESIGN §5).
CREATE TABLE dead_letters (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text        NOT NULL,
    size        integer     NOT NULL,
    head        text,
    reason      text        NOT NULL,
    detail      text        NOT NULL
);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason, received_at);
