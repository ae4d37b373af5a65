"""Uplinks from devices behind carrier IoT platforms, pushed over HTTP (`/api/v1/push/...`):
CTWing (天翼物联, `ctwing.py`) and OneNET (`onenet.py`) mapped onto the MQTT payloads
(`vendors.py` for vendors' own formats), then written through ingest's pipeline like an MQTT
uplink (`receiver.py`)."""
