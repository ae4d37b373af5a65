-- A carrier platform's device identity (and an IMEI) names one device: a second device with
-- the same one could take the first one's pushes (devices/registry.py answers 409).
CREATE UNIQUE INDEX devices_ctwing_id_key ON devices ((tags ->> 'ctwing_id')) WHERE tags ? 'ctwing_id';
CREATE UNIQUE INDEX devices_onenet_id_key ON devices ((tags ->> 'onenet_id')) WHERE tags ? 'onenet_id';
CREATE UNIQUE INDEX devices_imei_key ON devices ((tags ->> 'imei')) WHERE tags ? 'imei';
