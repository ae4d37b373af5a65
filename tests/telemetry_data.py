"""The same readings for the plain-PostgreSQL and the TimescaleDB telemetry tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def sample_readings(device_id: str) -> list[tuple[datetime, str, str, float]]:
    """Three days of smoke and battery every 7 minutes, with values that vary by hour."""
    rows = []
    for i in range(3 * 24 * 60 // 7):
        ts = START + timedelta(minutes=7 * i, seconds=i % 13)
        rows.append((ts, device_id, "smoke", round(0.02 + (i % 17) * 0.003, 4)))
        rows.append((ts, device_id, "battery_pct", 90 - i * 0.01))
    return rows


def as_tuples(buckets: list[object]) -> list[tuple[object, ...]]:
    return [
        (b.bucket, b.metric, round(b.avg, 9), b.min, b.max, b.count)  # type: ignore[attr-defined]
        for b in buckets
    ]
