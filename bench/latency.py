"""How the latency benches print what they measured."""

from __future__ import annotations

import statistics


def quantiles(seconds: list[float]) -> str:
    """p50, p95, p99 and max in milliseconds of latencies given in seconds."""
    if len(seconds) < 2:
        return "too few to say"
    ms = sorted(1000 * x for x in seconds)
    q = statistics.quantiles(ms, n=100, method="inclusive")  # stays within the data
    return f"p50 {q[49]:.1f} ms  p95 {q[94]:.1f} ms  p99 {q[98]:.1f} ms  max {ms[-1]:.1f} ms"
