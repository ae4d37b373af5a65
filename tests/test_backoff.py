"""The one backoff every retry loop of the hub waits with (hub/backoff.py)."""

from __future__ import annotations

from hub.backoff import Backoff


def test_waits_double_up_to_the_ceiling_and_start_over_after_a_success() -> None:
    retries = Backoff(first_s=0.5, max_s=3.0).retries()
    assert [retries.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert retries.next_delay == 3.0
    retries.succeeded()
    assert retries.next_delay == 0.5 and retries.failed() == 0.5


def test_a_long_run_counts_as_a_success_and_a_short_one_does_not() -> None:
    retries = Backoff(first_s=1.0, max_s=60.0, reset_after_s=10.0).retries()
    retries.failed(), retries.failed()
    retries.ran_for(9.9)
    assert retries.next_delay == 4.0
    retries.ran_for(10.0)
    assert retries.next_delay == 1.0


def test_a_schedule_by_failures_counted_elsewhere_matches_the_loop() -> None:
    backoff = Backoff(first_s=5.0, max_s=600.0)
    retries = backoff.retries()
    assert [backoff.delay(n) for n in range(1, 9)] == [retries.failed() for _ in range(8)]
    assert backoff.delay(0) == 5.0  # nothing failed yet: the first wait
    assert backoff.delay(10_000) == 600.0  # days of failures: still the ceiling, no overflow
