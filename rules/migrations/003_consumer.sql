-- Where each rules partition has got to in the signal log; moved in the same transaction as
-- the incidents its signals opened or attached to, so a crash loses none and repeats none.
CREATE TABLE rule_cursors (
    partition      text        PRIMARY KEY,
    last_signal_id bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Live claims of area-prefix partitions (rules/partitions.py).
CREATE TABLE rule_partitions (
    prefix     text        PRIMARY KEY,
    lock_key   bigint      NOT NULL,
    holder     text        NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
