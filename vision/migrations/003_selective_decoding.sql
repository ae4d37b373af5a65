-- Frames a camera sent that were never decoded (no analysed frame needed them), and what
-- decodes the stream (cpu, or cuda for NVDEC).
ALTER TABLE camera_stats ADD COLUMN frames_undecoded bigint NOT NULL DEFAULT 0;
ALTER TABLE camera_stats ADD COLUMN decoder text NOT NULL DEFAULT 'cpu';
