"""Uplinks in: the MQTT consumer and the carriers' HTTP pushes, topic routing, per-type
decoding and validation, batched writes by message kind, dead letters, device health."""
