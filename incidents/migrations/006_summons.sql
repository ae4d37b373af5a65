-- 吹哨报到: each unit a whistle summons to an incident, and its 报到 record. The unit's id is
-- kept as it was (no foreign key): a department removed later keeps its assessment history.
CREATE TABLE incident_summons (
    incident_id     bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    unit_id         text        NOT NULL,
    lead            boolean     NOT NULL DEFAULT false,
    summoned_by     text        NOT NULL,
    summoned_level  text        NOT NULL,  -- the area of the level that blew the whistle
    summoned_at     timestamptz NOT NULL,
    report_by       timestamptz NOT NULL,
    acknowledged_at timestamptz,
    reported_at     timestamptz,
    overdue_at      timestamptz,           -- when the sweep raised incident.summon_overdue
    rating          smallint    CHECK (rating BETWEEN 1 AND 5),
    rating_comment  text,
    rating_reminded_at timestamptz,
    flags           text[]      NOT NULL DEFAULT '{}',
    whistle_rating  smallint    CHECK (whistle_rating BETWEEN 1 AND 5),
    whistle_comment text,
    PRIMARY KEY (incident_id, unit_id)
);
CREATE INDEX incident_summons_due ON incident_summons (report_by)
    WHERE reported_at IS NULL AND overdue_at IS NULL;
CREATE INDEX incident_summons_unit ON incident_summons (unit_id);
