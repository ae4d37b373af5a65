-- Whose dead letter it is: the device's registered area, else the area its topic claims (a
-- push the hub could not place: the pushing token's). An integrator sees those of its areas.
ALTER TABLE dead_letters ADD COLUMN area text;
UPDATE dead_letters SET area = split_part(topic, '/', 2) WHERE topic ~ '^sb/[0-9]{6,12}/';
CREATE INDEX dead_letters_area_idx ON dead_letters (area text_pattern_ops, received_at);
