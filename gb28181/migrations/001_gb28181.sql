-- Where each registered GB/T 28181 device is and what it said of itself. The device itself is
-- a row of `devices` (type gb28181); its catalog's video channels are cameras (tags
-- gb_device = its id), its alarm inputs are kept here.
CREATE TABLE gb28181_registrations (
    device_id     text        PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    transport     text        NOT NULL CHECK (transport IN ('udp', 'tcp')),
    host          text        NOT NULL,
    port          integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    gb_version    text,
    expires_at    timestamptz NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    -- the catalog as last gathered: how many items the device said it has, how many came
    catalog_sum   integer,
    catalog_got   integer,
    catalog_at    timestamptz,
    manufacturer  text,
    model         text,
    firmware      text
);

CREATE TABLE gb28181_alarm_inputs (
    device_id  text        NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    channel_id text        NOT NULL CHECK (channel_id ~ '^[0-9]{20}$'),
    name       text,
    status     text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, channel_id)
);

-- An alarm a device sends again (it did not see our 200) is stored once: (device, SN,
-- AlarmTime). Rows older than a day are pruned by the GB process.
CREATE TABLE gb28181_alarms_seen (
    device_id  text        NOT NULL,
    sn         text        NOT NULL,
    alarm_time text        NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, sn, alarm_time)
);
CREATE INDEX gb28181_alarms_seen_at ON gb28181_alarms_seen (seen_at);
