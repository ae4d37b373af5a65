"""GB/T 28181: cameras, NVRs and lower platforms registering with the hub over SIP."""
