-- Departments (城管, 消防, 住建, 派出所, 供电…) are units a whistle summons: a kind of their own,
-- and the organisation above them (another unit), which hears when they are late (督办).
ALTER TABLE units DROP CONSTRAINT units_kind_check;
ALTER TABLE units ADD CONSTRAINT units_kind_check
    CHECK (kind IN ('grid_worker', 'police', 'fire', 'property', 'medical', 'emergency_unit',
                    'department'));
ALTER TABLE units ADD COLUMN parent_id text REFERENCES units (id) ON DELETE SET NULL
    CHECK (parent_id <> id);
