ALTER TABLE signals ADD COLUMN tags jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE signals ADD COLUMN id bigint;
UPDATE signals SET id = nextval('signals_id_seq');
ALTER TABLE signals ALTER COLUMN id SET DEFAULT nextval('signals_id_seq');
ALTER TABLE signals ALTER COLUMN id SET NOT NULL;
ALTER SEQUENCE signals_id_seq OWNED BY signals.id;
CREATE INDEX signals_id_idx ON signals (id);
CREATE INDEX signals_received_brin ON signals USING brin (received_at);
