-- A message is the same message when its seq and its ts are: a broker or a device resending
-- it sends the same bytes, while a device whose counter restarted (a reboot, a new battery)
-- sends the same seq at another time, and that is news.
ALTER TABLE uplinks DROP CONSTRAINT uplinks_pkey, ADD PRIMARY KEY (device_id, seq, ts);
