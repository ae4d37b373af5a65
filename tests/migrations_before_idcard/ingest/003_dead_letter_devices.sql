-- Dead letters by device, for the integrator's "why do this device's messages vanish?".
ALTER TABLE dead_letters ADD COLUMN device_id text;
CREATE INDEX dead_letters_device_idx ON dead_letters (device_id, received_at);
