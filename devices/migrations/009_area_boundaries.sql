-- The map (一张图): an area's outline as operators upload it, and a community's buildings.
-- Both are GeoJSON in WGS 84 [longitude, latitude] (devices.geojson checks and normalises
-- them): `boundary` a MultiPolygon, `buildings` a list of {name, geometry: MultiPolygon}.
-- They go with their area (ON DELETE CASCADE): an outline means nothing without it.
CREATE TABLE area_boundaries (
    area_code  text        PRIMARY KEY REFERENCES areas (code) ON DELETE CASCADE,
    boundary   jsonb       NOT NULL CHECK (boundary ->> 'type' = 'MultiPolygon'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE area_buildings (
    area_code  text        PRIMARY KEY REFERENCES areas (code) ON DELETE CASCADE
                           CHECK (length(area_code) = 12),  -- buildings belong to a community
    buildings  jsonb       NOT NULL CHECK (jsonb_typeof(buildings) = 'array'),
    updated_at timestamptz NOT NULL DEFAULT now()
);
