SELECT create_hypertable('id_reads', 'ts', chunk_time_interval => interval '30 days');
SELECT add_retention_policy('id_reads', interval '180 days');
