"""Is this signal muted? Inhibitions (a signal that explains others) and silences (an
operator's matcher and time range), as data behind one question, in event time.

Inhibitions are intervals of the source's own time: a camera's `stream_lost` mutes its
analytics from its `ts` until the `stream_restored` after it; a smoke sensor's `smoke_test`
mutes its alarms for 5 minutes. Being intervals, the answer is the same whatever order the
signals arrive in. A silence covers the signals whose `ts` falls in its range, once the hub
knew of it (created before the signal was received), which is what live evaluation sees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.contracts import CAMERA_ANALYTICS, Signal
from rules.silences import Silence

# What mutes a source, for how long (None: until the matching "restored" signal).
INHIBITORS: dict[str, tuple[frozenset[str], timedelta | None]] = {
    "stream_lost": (CAMERA_ANALYTICS, None),
    "camera_tamper": (CAMERA_ANALYTICS, timedelta(minutes=10)),
    "smoke_test": (frozenset({"smoke_alarm"}), timedelta(minutes=5)),
    "tamper": (frozenset({"smoke_alarm"}), timedelta(minutes=10)),
}
RESTORES = {"stream_restored": "stream_lost"}
_KEPT_PER_SOURCE = 16  # inhibition intervals remembered per source


@dataclass
class _Interval:
    inhibitor: str
    start: datetime
    end: datetime | None  # None: until restored


class Muting:
    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._intervals: dict[str, list[_Interval]] = defaultdict(list)
        self._restores: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        self.silences: list[Silence] = list(silences)

    def observe(self, signal: Signal) -> None:
        """Record what an inhibiting (or restoring) signal says about its source."""
        kept = self._intervals[signal.source_id]
        restored = RESTORES.get(signal.kind)
        if restored:
            restores = self._restores[(signal.source_id, restored)]
            restores.append(signal.ts)
            restores.sort()
            del restores[:-_KEPT_PER_SOURCE]
            # It ends the interval of the loss that began last before it.
            before = [i for i in kept if i.inhibitor == restored and i.start <= signal.ts]
            if before:
                latest = max(before, key=lambda i: i.start)
                if latest.end is None or latest.end > signal.ts:
                    latest.end = signal.ts
        rule = INHIBITORS.get(signal.kind)
        if rule:
            _, lasts = rule
            end = signal.ts + lasts if lasts else self._restored_after(signal)
            kept.append(_Interval(signal.kind, signal.ts, end))
            if len(kept) > _KEPT_PER_SOURCE:
                kept.sort(key=lambda i: i.start)
                del kept[: len(kept) - _KEPT_PER_SOURCE]

    def _restored_after(self, lost: Signal) -> datetime | None:
        """The first restore after a loss, when the restore arrived first (out of order)."""
        later = [t for t in self._restores[(lost.source_id, lost.kind)] if t >= lost.ts]
        return min(later) if later else None

    def muted(self, signal: Signal) -> str | None:
        """Why the signal must not count (an inhibitor's kind, or `silence N`), or None."""
        for interval in self._intervals.get(signal.source_id, ()):
            mutes = signal.kind in INHIBITORS[interval.inhibitor][0]
            if (
                mutes
                and interval.start <= signal.ts
                and (interval.end is None or signal.ts < interval.end)
            ):
                return interval.inhibitor
        for silence in self.silences:
            known = signal.received_at is None or silence.created_at <= signal.received_at
            if known and silence.covers(signal):
                return f"silence {silence.id}"
        return None
