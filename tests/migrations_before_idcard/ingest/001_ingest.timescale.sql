SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id, metric');
SELECT add_compression_policy('readings', interval '7 days');
SELECT add_retention_policy('readings', interval '400 days');
SELECT create_hypertable('id_reads', 'ts', chunk_time_interval => interval '30 days');
SELECT add_retention_policy('id_reads', interval '180 days');

CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous) AS
    SELECT time_bucket(interval '1 hour', ts) AS bucket, device_id, metric,
           avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS n
    FROM readings GROUP BY bucket, device_id, metric WITH NO DATA;
SELECT add_continuous_aggregate_policy('readings_hourly',
    start_offset => interval '3 days', end_offset => interval '1 hour',
    schedule_interval => interval '30 minutes');
