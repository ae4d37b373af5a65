-- A camera's substream for analysis (lower resolution, fewer pixels to decode); stream_url
-- stays the main stream. NULL: the analytics read stream_url.
ALTER TABLE cameras ADD COLUMN detect_url text;
