-- Commands to devices (silence, self_test, reboot, set_report_interval): written by the API,
-- published QoS 1 on sb/{area}/{device}/cmd by ingest's command sender, answered by the
-- device's `cmd_result` event. pending → sent → acked | failed | expired.
CREATE TABLE device_commands (
    id          text        PRIMARY KEY,
    device_id   text        NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    area        text        NOT NULL,
    command     text        NOT NULL
        CHECK (command IN ('silence', 'self_test', 'reboot', 'set_report_interval')),
    args        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status      text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'acked', 'failed', 'expired')),
    detail      text,
    created_by  text        NOT NULL,
    incident_id bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    sent_at     timestamptz,
    answered_at timestamptz
);
CREATE INDEX device_commands_device ON device_commands (device_id, created_at DESC);
-- The sender's queue and the expiry sweep read only the commands still in flight.
CREATE INDEX device_commands_open ON device_commands (expires_at)
    WHERE status IN ('pending', 'sent');
