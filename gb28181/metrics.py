"""The GB/T 28181 server's counters on /metrics (docs/gb28181.md: troubleshooting)."""

from __future__ import annotations

from prometheus_client import Counter

REGISTRATIONS = Counter(
    "sb_gb_registrations_total", "GB/T 28181 REGISTERs answered", ["outcome", "reason"]
)
DROPS = Counter("sb_gb_drops_total", "GB/T 28181 messages dropped or refused", ["reason"])
ALARMS = Counter("sb_gb_alarms_total", "GB/T 28181 alarms", ["kind", "outcome"])
KEEPALIVES = Counter("sb_gb_keepalives_total", "GB/T 28181 keepalives accepted")
CATALOG_ITEMS = Counter("sb_gb_catalog_items_total", "GB/T 28181 catalog items received")
REQUESTS_OUT = Counter(
    "sb_gb_requests_sent_total", "requests the hub sent to devices", ["cmd", "outcome"]
)


def registered(outcome: str, reason: str = "") -> None:
    REGISTRATIONS.labels(outcome=outcome, reason=reason).inc()


def dropped(reason: str) -> None:
    DROPS.labels(reason=reason).inc()
