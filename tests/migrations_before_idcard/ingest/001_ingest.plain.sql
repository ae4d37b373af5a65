CREATE INDEX readings_ts_brin ON readings USING brin (ts);
CREATE INDEX id_reads_ts_brin ON id_reads USING brin (ts);
