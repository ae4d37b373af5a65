"""The kernel: settings, database pool and migrations, MQTT bus, embedded services, the CLI."""
