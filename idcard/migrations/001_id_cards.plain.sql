CREATE INDEX id_reads_ts_brin ON id_reads USING brin (ts);
