-- GB/T 28181 devices (cameras, NVRs, platforms that register over SIP): a device type of
-- its own, its digest password sealed with the hub's key (devices/credentials.py says why it
-- cannot be a one-way hash), its catalog channels as cameras found by their parent device,
-- and its commands.
ALTER TABLE devices DROP CONSTRAINT devices_type_check;
ALTER TABLE devices ADD CONSTRAINT devices_type_check
    CHECK (type IN ('smoke_sensor', 'id_reader', 'camera', 'gb28181'));
ALTER TABLE devices ADD COLUMN sip_secret text;
CREATE INDEX devices_gb_device_idx ON devices ((tags ->> 'gb_device')) WHERE tags ? 'gb_device';
ALTER TABLE device_commands DROP CONSTRAINT device_commands_command_check;
ALTER TABLE device_commands ADD CONSTRAINT device_commands_command_check
    CHECK (command IN ('silence', 'self_test', 'reboot', 'set_report_interval', 'set_guard',
                       'reset_guard', 'reset_alarm', 'device_info', 'device_status'));
