-- What decoding a camera's stream costs: CPU cores spent reading it (grab and convert) and
-- milliseconds of CPU per frame read; the largest cost of a camera before any analysis.
ALTER TABLE camera_stats ADD COLUMN decode_cpu double precision NOT NULL DEFAULT 0;
ALTER TABLE camera_stats ADD COLUMN decode_ms_per_frame double precision NOT NULL DEFAULT 0;
