-- Chosen signals go up too (an uplink's `forward.signal_kind`): a signal of a kind some enabled
-- uplink takes, in that uplink's area, is written to the cascade's outbox by a trigger in the
-- signal's own transaction, as incidents are. Only the few signals an uplink takes are written:
-- the check reads the (small) uplinks table, never a per-signal index.
ALTER TABLE gb28181_cascade_outbox ALTER COLUMN incident_id DROP NOT NULL;
ALTER TABLE gb28181_cascade_outbox ADD COLUMN signal_id bigint;
ALTER TABLE gb28181_cascade_outbox ADD CONSTRAINT gb28181_cascade_outbox_one_origin
    CHECK ((incident_id IS NULL) <> (signal_id IS NULL));

ALTER TABLE gb28181_uplink_deliveries ALTER COLUMN incident_id DROP NOT NULL;
ALTER TABLE gb28181_uplink_deliveries ADD COLUMN signal_id bigint;
ALTER TABLE gb28181_uplink_deliveries ADD CONSTRAINT gb28181_uplink_deliveries_one_origin
    CHECK ((incident_id IS NULL) <> (signal_id IS NULL));
CREATE UNIQUE INDEX gb28181_uplink_deliveries_signal ON gb28181_uplink_deliveries
    (uplink_id, signal_id) WHERE signal_id IS NOT NULL;

CREATE FUNCTION gb28181_cascade_enqueue_signal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM gb28181_uplinks
               WHERE enabled AND starts_with(NEW.area, area_prefix)
                 AND coalesce(forward -> 'signal_kind', '[]'::jsonb) ? NEW.kind) THEN
        INSERT INTO gb28181_cascade_outbox (signal_id, area, at) VALUES (NEW.id, NEW.area, NEW.ts);
        PERFORM pg_notify('sb_gb_cascade', '');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER gb28181_cascade_enqueue_signal AFTER INSERT ON signals
    FOR EACH ROW EXECUTE FUNCTION gb28181_cascade_enqueue_signal();
