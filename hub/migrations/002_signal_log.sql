-- The signal log (hub/signal_log.py): every signal gets an id, the order consumers read in,
-- and the source device's registry tags as they were when it was raised.
ALTER TABLE signals ADD COLUMN tags jsonb NOT NULL DEFAULT '{}'::jsonb;
-- CACHE 1 (the default) matters: a session that cached ids could use them after another
-- session's later ones, and ids would no longer become visible in order.
CREATE SEQUENCE signals_id_seq AS bigint CACHE 1;
ALTER TABLE signals ADD COLUMN id bigint;
UPDATE signals SET id = nextval('signals_id_seq');
ALTER TABLE signals ALTER COLUMN id SET DEFAULT nextval('signals_id_seq');
ALTER SEQUENCE signals_id_seq OWNED BY signals.id;
CREATE INDEX signals_id_idx ON signals (id);
