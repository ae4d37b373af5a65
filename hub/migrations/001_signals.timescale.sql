SELECT create_hypertable('signals', 'ts', chunk_time_interval => interval '7 days');
ALTER TABLE signals SET (timescaledb.compress, timescaledb.compress_segmentby = 'kind');
SELECT add_compression_policy('signals', interval '30 days');
SELECT add_retention_policy('signals', interval '730 days');
