-- Incidents people report (a grid worker in the field, a resident through the public intake),
-- beside those rules open: where each came from, and who reported it.
ALTER TABLE incidents ADD COLUMN source text NOT NULL DEFAULT 'rule'
    CHECK (source IN ('rule', 'report', 'public'));
ALTER TABLE incidents ADD COLUMN reported_by text;
ALTER TABLE incidents ADD COLUMN floor text;

-- Photos attached to an incident: checked by their bytes, stripped of EXIF, kept on disk.
CREATE TABLE incident_attachments (
    id            text        PRIMARY KEY,
    incident_id   bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    content_type  text        NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
    size          integer     NOT NULL,
    sha256        text        NOT NULL,
    width         integer     NOT NULL,
    height        integer     NOT NULL,
    path          text        NOT NULL,
    uploaded_by   text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_attachments_incident ON incident_attachments (incident_id, created_at);

-- A community's public intake: the key behind its QR code, stored as a hash.
CREATE TABLE intake_keys (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    area        text        NOT NULL,
    name        text        NOT NULL,
    key_hash    text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- A resident's receipt: follows the report and rates it once closed (a hash, as keys are).
CREATE TABLE public_receipts (
    receipt_hash text       PRIMARY KEY,
    incident_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
