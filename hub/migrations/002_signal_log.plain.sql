ALTER TABLE signals ALTER COLUMN id SET NOT NULL;
CREATE INDEX signals_received_brin ON signals USING brin (received_at);
