-- Every change to an incident, written in the transaction that makes it: the outbox that
-- notifications are fanned out from (at least once, nothing lost). `handled_at` is set once
-- the notifier has fanned an event out.
CREATE TABLE incident_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint      NOT NULL,
    kind        text        NOT NULL,  -- incident.created, incident.updated, incident.escalated
    action      text,                  -- what changed it: report, attach, accept, dispatch, ...
    area        text        NOT NULL,
    data        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL,
    handled_at  timestamptz
);
CREATE INDEX incident_events_unhandled ON incident_events (id) WHERE handled_at IS NULL;
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);
