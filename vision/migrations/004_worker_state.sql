-- A worker is listed from its start: `analysing` once its models are loaded (only those share
-- the cameras), and `problem` says why it cannot analyse (a model file missing, say), so that
-- the hub can say vision is off and why instead of calling its cameras offline.
ALTER TABLE vision_workers ADD COLUMN analysing boolean NOT NULL DEFAULT true;
ALTER TABLE vision_workers ADD COLUMN problem text;
