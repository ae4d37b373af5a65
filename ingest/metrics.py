"""Prometheus metrics of ingest."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("sb_ingest_messages_total", "Uplinks handled", ["outcome"])
DEAD_LETTERS = Counter("sb_ingest_dead_letters_total", "Rejected uplinks", ["reason"])
SIGNALS = Counter("sb_signals_total", "Signals raised", ["kind"])
READINGS = Counter("sb_ingest_readings_total", "Readings stored")
BATCH_SECONDS = Histogram(
    "sb_ingest_batch_seconds",
    "Time to decode and commit one batch",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
)
BATCH_SIZE = Histogram(
    "sb_ingest_batch_size", "Messages per batch", buckets=(1, 10, 50, 100, 500, 1000, 5000)
)
VERDICTS = Counter(
    "sb_ingest_verdicts_total", "ID-card verdicts sent to readers", ["verdict", "outcome"]
)
IN_HAND = Gauge("sb_ingest_in_hand", "Uplinks received from the broker and not yet committed")
