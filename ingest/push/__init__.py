"""HTTP push receivers for devices behind carrier IoT platforms (CTWing, OneNET)."""
