-- When a rule's recovery signal (a device back online) said the trouble was over.
ALTER TABLE incidents ADD COLUMN recovered_at timestamptz;
