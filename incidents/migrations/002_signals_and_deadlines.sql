-- The deadlines an incident had at its own level when it opened (tightened if a confirmation
-- raised its priority), never moved by escalation: on-time figures are judged against these,
-- so they do not change after the fact.
ALTER TABLE incidents ADD COLUMN accept_deadline timestamptz;
ALTER TABLE incidents ADD COLUMN resolve_deadline timestamptz;
UPDATE incidents SET accept_deadline = accept_by, resolve_deadline = resolve_by;
ALTER TABLE incidents ALTER COLUMN accept_deadline SET NOT NULL;
ALTER TABLE incidents ALTER COLUMN resolve_deadline SET NOT NULL;

-- Which signals of the log an incident holds (opened with, attached since).
CREATE TABLE incident_signals (
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    signal_id   bigint NOT NULL,
    PRIMARY KEY (incident_id, signal_id)
);

-- The rules engine asks which incidents were closed lately (to re-arm and cool down).
CREATE INDEX incidents_closed_idx ON incidents (closed_at) WHERE closed_at IS NOT NULL;
