"""Registry of areas, devices, cameras and response units; credentials; health."""
