"""What an answer means for a delivery, and when to try again: 2xx delivered; 429 and 5xx (and
no answer at all) retried with exponential backoff, honouring Retry-After; any other 4xx is
final, with the answer kept."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

from hub.backoff import Backoff

Outcome = Literal["delivered", "retry", "failed"]
MAX_DELAY_S = 600.0
ANSWER_CHARS = 500


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request got: the status (None: no answer), the body or error, cut short."""

    outcome: Outcome
    status: int | None
    body: str
    retry_after_s: float | None = None


def by_status(status: int, body: str, retry_after: str | None = None) -> Answer:
    body = body[:ANSWER_CHARS]
    if 200 <= status < 300:
        return Answer("delivered", status, body)
    if status == 429 or status >= 500 or status == 408:
        return Answer("retry", status, body, parse_retry_after(retry_after))
    return Answer("failed", status, body)


def no_answer(error: BaseException) -> Answer:
    """A timeout, a refused connection, a TLS failure: try again."""
    return Answer("retry", None, f"{type(error).__name__}: {error}"[:ANSWER_CHARS])


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After in seconds, or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (at - (now or datetime.now(UTC))).total_seconds())


def next_attempt(
    attempts: int, answer: Answer, now: datetime, first: timedelta = timedelta(seconds=5)
) -> datetime:
    """When to try again after `attempts` tries: the receiver's Retry-After when it gave one
    (bounded), else `first` doubling up to 10 min, with a tenth of jitter so retries spread."""
    if answer.retry_after_s is not None:
        return now + timedelta(seconds=min(answer.retry_after_s, MAX_DELAY_S * 6))
    delay = Backoff(first_s=first.total_seconds(), max_s=MAX_DELAY_S).delay(attempts)
    return now + timedelta(seconds=delay * (1 + random.random() / 10))  # noqa: S311
