CREATE INDEX signals_ts_brin ON signals USING brin (ts);
