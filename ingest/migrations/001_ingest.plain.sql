CREATE INDEX readings_ts_brin ON readings USING brin (ts);
