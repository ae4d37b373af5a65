-- The source device's floor travels with the signal (hub.contracts.Signal.floor) to the
-- incident it opens. Nullable and without a default: a compressed hypertable takes it as is.
ALTER TABLE signals ADD COLUMN floor text;
