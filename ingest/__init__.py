"""MQTT consumers: topic routing, per-type decoding and validation, ID-card handling,
batched writes, dead letters."""
