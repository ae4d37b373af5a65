-- Incidents (DESIGN §7) and their audit trail: every change is a row.
CREATE TABLE incidents (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id         text,
    rule_version    integer,
    group_key       text        NOT NULL,
    category        text        NOT NULL,
    priority        text        NOT NULL CHECK (priority IN ('emergency', 'major', 'routine')),
    status          text        NOT NULL CHECK (status IN ('reported', 'accepted', 'dispatched',
                                    'handling', 'resolved', 'verified', 'closed')),
    area            text        NOT NULL,
    site            text,
    building        text,
    title           text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    accept_by       timestamptz NOT NULL,
    resolve_by      timestamptz NOT NULL,
    accepted_at     timestamptz,
    closed_at       timestamptz,
    close_reason    text        CHECK (close_reason IN ('resolved', 'false_alarm', 'duplicate',
                                                        'not_responsible')),
    unit_id         text,
    -- Where it happened (from the source device), and the unit `dispatch: nearest` proposes.
    lat             double precision,
    lon             double precision,
    suggested_unit_id text,
    signal_count    integer     NOT NULL DEFAULT 1,
    first_signal_at timestamptz NOT NULL,
    last_signal_at  timestamptz NOT NULL,
    evidence        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    escalated_to    text,
    escalations     smallint    NOT NULL DEFAULT 0,
    rating          smallint    CHECK (rating BETWEEN 1 AND 5)
);
-- At most one open incident per rule and group: further signals attach to it.
CREATE UNIQUE INDEX incidents_open_key ON incidents (rule_id, group_key) WHERE status <> 'closed';
CREATE INDEX incidents_area_idx ON incidents (area text_pattern_ops, created_at);
CREATE INDEX incidents_status_idx ON incidents (status, accept_by);

CREATE TABLE incident_audit (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    from_status text,
    to_status   text        NOT NULL,
    note        text,
    data        jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_audit_incident_idx ON incident_audit (incident_id, id);
