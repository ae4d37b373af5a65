-- Per camera: which analytics and models run, motion tuning and masks, object masks, how
-- often the detector runs (devices/camera_settings.py; {} is every default).
ALTER TABLE cameras ADD COLUMN settings jsonb NOT NULL DEFAULT '{}'::jsonb;
