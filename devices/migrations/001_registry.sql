-- Areas follow GB/T 2260 codes extended to streets (9 digits) and communities (12 digits).
CREATE TABLE areas (
    code        text        PRIMARY KEY CHECK (code ~ '^([0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$'),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    parent_code text,
    level       text        NOT NULL CHECK (level IN ('city', 'district', 'street', 'community')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX areas_parent_idx ON areas (parent_code);
CREATE INDEX areas_code_prefix_idx ON areas (code text_pattern_ops);

CREATE TABLE devices (
    id                     text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    type                   text        NOT NULL
                                       CHECK (type IN ('smoke_sensor', 'id_reader', 'camera')),
    area                   text        NOT NULL REFERENCES areas (code),
    site                   text,
    building               text,
    floor                  text,
    lat                    double precision CHECK (lat BETWEEN -90 AND 90),
    lon                    double precision CHECK (lon BETWEEN -180 AND 180),
    tags                   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled                boolean     NOT NULL DEFAULT true,
    -- Mosquitto's PBKDF2-SHA512 format ($7$iterations$salt$hash): the broker reads it as is.
    password_hash          text        NOT NULL,
    credentials_rotated_at timestamptz NOT NULL DEFAULT now(),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_area_idx ON devices (area text_pattern_ops);
CREATE INDEX devices_type_idx ON devices (type);

CREATE TABLE cameras (
    device_id  text    PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    stream_url text    NOT NULL,
    fps        real    NOT NULL CHECK (fps > 0 AND fps <= 30),
    zones      jsonb   NOT NULL DEFAULT '[]'::jsonb
);

CREATE TABLE units (
    id         text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name       text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('grid_worker', 'police', 'fire', 'property',
                                                    'medical', 'emergency_unit')),
    area       text        NOT NULL REFERENCES areas (code),
    lat        double precision CHECK (lat BETWEEN -90 AND 90),
    lon        double precision CHECK (lon BETWEEN -180 AND 180),
    categories text[]      NOT NULL DEFAULT '{}',
    on_duty    boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX units_area_idx ON units (area text_pattern_ops);
