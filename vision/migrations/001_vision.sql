-- Vision workers, the camera leases they hold, the evidence they produce and their latest stats.
CREATE TABLE vision_workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- One row per enabled camera; a lease is free when worker_id is null or expires_at has passed.
CREATE TABLE camera_leases (
    camera_id  text        PRIMARY KEY,
    worker_id  text,
    claimed_at timestamptz,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX camera_leases_worker_idx ON camera_leases (worker_id);

CREATE TABLE evidence (
    id         text        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),  -- sha256 of the JPEG, cut
    camera_id  text        NOT NULL,
    area       text        NOT NULL,
    event_type text        NOT NULL,
    zone       text,
    width      integer     NOT NULL,
    height     integer     NOT NULL,
    bytes      integer     NOT NULL,
    path       text        NOT NULL,  -- relative to SB_DATA_DIR
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evidence_camera_idx ON evidence (camera_id, created_at DESC);

CREATE TABLE camera_stats (
    camera_id      text             PRIMARY KEY,
    worker_id      text             NOT NULL,
    stream         text             NOT NULL,  -- connecting | live | lost | ended
    camera_fps     double precision NOT NULL,
    process_fps    double precision NOT NULL,
    skipped_fps    double precision NOT NULL,
    detection_fps  double precision NOT NULL,
    frames_read    bigint           NOT NULL,
    frames_dropped bigint           NOT NULL,
    frames_skipped bigint           NOT NULL,
    reconnects     integer          NOT NULL,
    events         bigint           NOT NULL,
    line_counts    jsonb            NOT NULL DEFAULT '{}'::jsonb,
    updated_at     timestamptz      NOT NULL DEFAULT now()
);
