"""MQTT consumers: topic routing, decoding and validation, ID-card handling, batched writes."""
