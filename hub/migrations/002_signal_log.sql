-- The signal log (hub/signal_log.py): every signal gets an id, the order consumers read in,
-- and the source device's registry tags as they were when it was raised. The columns are
-- added by the variant files: a compressed hypertable needs its compression off for that.
-- CACHE 1 (the default) matters: a session that cached ids could use them after another
-- session's later ones, and ids would no longer become visible in order.
CREATE SEQUENCE signals_id_seq AS bigint CACHE 1;
