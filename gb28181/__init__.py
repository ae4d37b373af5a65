"""GB/T 28181: cameras, NVRs and platforms that register with the hub over SIP.

`gb28181.sip` is the SIP core (parser, digest, transactions, transports); the modules beside
it are the GB/T 28181 application: registration, keepalive, catalog, alarms and control.
"""
