CREATE INDEX signals_received_idx ON signals (received_at);
