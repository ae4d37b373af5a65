-- Four-level networking (cascade): the hub as a lower platform of upper platforms (uplinks).
-- An uplink is data: where the upper listens, the password it gave us (sealed with the hub's
-- key: the digest needs it back), our own 20-digit id toward it, and the area it may see.
CREATE TABLE gb28181_uplinks (
    id           text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name         text        NOT NULL,
    upper_id     text        NOT NULL CHECK (upper_id ~ '^[0-9]{20}$'),
    upper_domain text        NOT NULL,
    host         text        NOT NULL,
    port         integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    transport    text        NOT NULL CHECK (transport IN ('udp', 'tcp')),
    sealed_password text     NOT NULL,
    local_id     text        NOT NULL UNIQUE CHECK (local_id ~ '^[0-9]{20}$'),
    area_prefix  text        NOT NULL CHECK (area_prefix ~ '^[0-9]{0,12}$'),
    forward      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    keepalive_s  integer     NOT NULL DEFAULT 60,
    expires_s    integer     NOT NULL DEFAULT 3600,
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- What the GB process last knew of each uplink (the API and /metrics read it).
CREATE TABLE gb28181_uplink_status (
    uplink_id      text        PRIMARY KEY REFERENCES gb28181_uplinks (id) ON DELETE CASCADE,
    registered     boolean     NOT NULL DEFAULT false,
    last_error     text,
    registered_at  timestamptz,
    last_keepalive timestamptz,
    clock_skew_ms  integer,
    forwarded      bigint      NOT NULL DEFAULT 0,
    failed         bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The cascade's outbox: every new incident, written by a trigger in the incident's own
-- transaction (as incident_events itself is), so nothing opened is lost between the incident
-- and the uplinks. The forwarder fans each row out to the uplinks that take it.
CREATE TABLE gb28181_cascade_outbox (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint      NOT NULL,
    area        text        NOT NULL,
    at          timestamptz NOT NULL,
    handled_at  timestamptz
);
CREATE INDEX gb28181_cascade_outbox_unhandled ON gb28181_cascade_outbox (id)
    WHERE handled_at IS NULL;

CREATE FUNCTION gb28181_cascade_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'incident.created' THEN
        INSERT INTO gb28181_cascade_outbox (incident_id, area, at)
        VALUES (NEW.incident_id, NEW.area, NEW.at);
        PERFORM pg_notify('sb_gb_cascade', '');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER gb28181_cascade_enqueue AFTER INSERT ON incident_events
    FOR EACH ROW EXECUTE FUNCTION gb28181_cascade_enqueue();

-- One alarm to one uplink: retried until the upper answers 200 (the delivery log).
CREATE TABLE gb28181_uplink_deliveries (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uplink_id    text        NOT NULL REFERENCES gb28181_uplinks (id) ON DELETE CASCADE,
    incident_id  bigint      NOT NULL,
    channel_id   text        NOT NULL,
    body         bytea       NOT NULL,
    state        text        NOT NULL DEFAULT 'pending'
                             CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    last_status  integer,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (uplink_id, incident_id)
);
CREATE INDEX gb28181_uplink_deliveries_due ON gb28181_uplink_deliveries (next_at)
    WHERE state = 'pending';

-- Devices that are not GB devices themselves (sensors, cameras registered by stream address)
-- get a stable 20-digit channel id for upper platforms: the first 8 digits of their area code
-- (zero-padded), industry 00, type 134 (alarm input) or 131 (camera), a 7-digit serial. Given
-- once when the device is registered and never changed (the device's API answer shows it).
CREATE SEQUENCE gb28181_channel_serial AS bigint MAXVALUE 9999999;
ALTER TABLE devices ADD COLUMN gb_channel_id text UNIQUE CHECK (gb_channel_id ~ '^[0-9]{20}$');
CREATE FUNCTION gb28181_channel_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.gb_channel_id := coalesce(OLD.gb_channel_id, NEW.gb_channel_id);
    ELSIF NEW.type <> 'gb28181' AND NEW.id !~ '^[0-9]{20}$' THEN
        NEW.gb_channel_id := rpad(left(NEW.area, 8), 8, '0') || '00'
            || CASE WHEN NEW.type = 'camera' THEN '131' ELSE '134' END
            || lpad(nextval('gb28181_channel_serial')::text, 7, '0');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER gb28181_channel_id BEFORE INSERT OR UPDATE ON devices
    FOR EACH ROW EXECUTE FUNCTION gb28181_channel_id();
UPDATE devices SET gb_channel_id = rpad(left(area, 8), 8, '0') || '00'
        || CASE WHEN type = 'camera' THEN '131' ELSE '134' END
        || lpad(nextval('gb28181_channel_serial')::text, 7, '0')
    WHERE type <> 'gb28181' AND id !~ '^[0-9]{20}$';
