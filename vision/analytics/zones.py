"""Zone analytics: intrusion, loitering, crowd, fire lane, e-bike in elevator, line crossing.

Analytics see every live track each analysed frame; those not seen in this frame (missed by the
detector, or the frame was gated) keep their state. A track is in a zone when the bottom centre
of its box (where it stands) is inside the polygon for `inertia` analysed frames in a row, and
leaves after as many frames outside. Each analytic reports once per track and zone episode
(crowd: once per episode of the zone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import shapely
from shapely.geometry import Polygon

from devices.zone_params import (
    CrowdParams,
    ElevatorParams,
    FireLaneParams,
    LineParams,
    RestrictedParams,
    ZoneParams,
    parse_params,
)
from devices.zones import Zone, ZoneKind
from vision.events import Event, Point
from vision.tracking import Track


class Analytic(Protocol):
    def update(self, ts: float, tracks: list[Track]) -> list[Event]: ...


def analytics_for(zone: Zone) -> list[Analytic]:
    """The analytics a zone's kind and params ask for."""
    params = parse_params(zone.kind.value, zone.params)
    outline = [(float(x), float(y)) for x, y in zone.polygon]
    if isinstance(params, LineParams):
        return [LineCrossing(zone.name, outline, params)]
    assert isinstance(params, ZoneParams)
    found: list[Analytic] = []
    match params:
        case RestrictedParams():
            found.append(Intrusion(zone.name, outline, params))
        case CrowdParams():
            found.append(Crowd(zone.name, outline, params))
        case FireLaneParams():
            found.append(FireLane(zone.name, outline, params))
        case ElevatorParams():
            found.append(Elevator(zone.name, outline, params))
    if params.loitering_time > 0 and zone.kind in (ZoneKind.RESTRICTED, ZoneKind.CROWD):
        found.append(Loitering(zone.name, outline, params))
    return found


def believed(track: Track, objects: list[str], params: ZoneParams | LineParams) -> bool:
    """The label is one the zone watches and the track passes that label's filter."""
    if track.label not in objects:
        return False
    rule = params.filter_for(track.label)
    return (
        track.score >= rule.min_score
        and track.median_score >= rule.threshold
        and rule.min_area <= track.area <= rule.max_area
    )


@dataclass
class Presence:
    """Which believed tracks stand in a polygon, with Frigate's inertia."""

    outline: list[Point]
    params: ZoneParams
    inside: dict[int, int] = field(default_factory=dict)  # consecutive frames in, not yet present
    outside: dict[int, int] = field(default_factory=dict)  # consecutive frames out while present
    present: dict[int, float] = field(default_factory=dict)  # track id → when it became present

    def __post_init__(self) -> None:
        self._shape = Polygon(self.outline)
        shapely.prepare(self._shape)

    def update(self, ts: float, tracks: list[Track]) -> tuple[list[Track], list[int]]:
        """Tracks that became present in this frame, and the ids that left."""
        entered: list[Track] = []
        alive = {t.id for t in tracks}
        for track in tracks:
            if track.last_seen != ts:
                continue  # not seen in this frame (missed or gated): nothing new to judge
            x, y = track.anchor
            is_in = believed(track, self.params.objects, self.params) and bool(
                shapely.contains_xy(self._shape, x, y)
            )
            if track.id in self.present:
                self.outside[track.id] = 0 if is_in else self.outside.get(track.id, 0) + 1
            elif is_in:
                self.inside[track.id] = self.inside.get(track.id, 0) + 1
                if self.inside[track.id] >= self.params.inertia:
                    self.present[track.id] = ts
                    entered.append(track)
            else:
                self.inside.pop(track.id, None)
        left = [
            tid
            for tid in self.present
            if tid not in alive or self.outside.get(tid, 0) >= self.params.inertia
        ]
        for tid in left:
            self.present.pop(tid, None)
            self.outside.pop(tid, None)
            self.inside.pop(tid, None)
        return entered, left


def _event(kind: str, ts: float, zone: str, outline: list[Point], track: Track) -> Event:
    return Event(
        kind,
        ts,
        confidence=track.median_score,
        zone=zone,
        track_id=track.id,
        bbox=track.box,
        marks=[(track.box, f"{track.label} #{track.id}")],
        outline=outline,
    )


class Intrusion:
    """Anything of `objects` entering a restricted zone, within the schedule when one is set."""

    def __init__(self, name: str, outline: list[Point], params: RestrictedParams) -> None:
        self.name, self.outline, self.params = name, outline, params
        self.presence = Presence(outline, params)

    def update(self, ts: float, tracks: list[Track]) -> list[Event]:
        entered, _ = self.presence.update(ts, tracks)
        schedule = self.params.schedule
        if schedule and not schedule.contains(datetime.fromtimestamp(ts, UTC)):
            return []
        return [_event("intrusion", ts, self.name, self.outline, t) for t in entered]


class Loitering:
    """A track present in the zone for longer than `loitering_time`."""

    def __init__(self, name: str, outline: list[Point], params: ZoneParams) -> None:
        self.name, self.outline, self.params = name, outline, params
        self.presence = Presence(outline, params)
        self.reported: set[int] = set()

    def update(self, ts: float, tracks: list[Track]) -> list[Event]:
        _, left = self.presence.update(ts, tracks)
        self.reported.difference_update(left)
        by_id = {t.id: t for t in tracks}
        events = []
        for tid, since in self.presence.present.items():
            if tid in self.reported or tid not in by_id:
                continue
            if ts - since >= self.params.loitering_time:
                self.reported.add(tid)
                events.append(_event("loitering", ts, self.name, self.outline, by_id[tid]))
        return events


class Crowd:
    """At least `min_persons` present for `for` seconds; one event per crowd episode."""

    def __init__(self, name: str, outline: list[Point], params: CrowdParams) -> None:
        self.name, self.outline, self.params = name, outline, params
        self.presence = Presence(outline, params)
        self.since: float | None = None
        self.below_since: float | None = None
        self.reported = False

    def update(self, ts: float, tracks: list[Track]) -> list[Event]:
        self.presence.update(ts, tracks)
        members = [t for t in tracks if t.id in self.presence.present]
        if len(members) < self.params.min_persons:
            self.since = None
            self.below_since = self.below_since or ts
            if ts - self.below_since >= max(self.params.for_s, 1.0):
                self.reported = False  # the crowd has dispersed; the next one is news
            return []
        self.below_since = None
        self.since = self.since or ts
        if self.reported or ts - self.since < self.params.for_s:
            return []
        self.reported = True
        score = sum(t.median_score for t in members) / len(members)
        return [
            Event(
                "crowd",
                ts,
                confidence=score,
                zone=self.name,
                count=len(members),
                bbox=_hull(members),
                marks=[(t.box, f"{t.label} #{t.id}") for t in members],
                outline=self.outline,
            )
        ]


class FireLane:
    """A vehicle standing still in the fire lane for `for` seconds."""

    def __init__(self, name: str, outline: list[Point], params: FireLaneParams) -> None:
        self.name, self.outline, self.params = name, outline, params
        self.presence = Presence(outline, params)
        self.still: dict[int, tuple[float, Point]] = {}  # when it stopped, and where
        self.reported: set[int] = set()

    def update(self, ts: float, tracks: list[Track]) -> list[Event]:
        _, left = self.presence.update(ts, tracks)
        for tid in left:
            self.still.pop(tid, None)
            self.reported.discard(tid)
        events = []
        for track in tracks:
            if track.id not in self.presence.present:
                continue
            since, where = self.still.setdefault(track.id, (ts, track.centre))
            moved = max(abs(track.centre[0] - where[0]), abs(track.centre[1] - where[1]))
            if moved > self.params.max_movement:
                self.still[track.id] = (ts, track.centre)
                self.reported.discard(track.id)
                continue
            if track.id not in self.reported and ts - since >= self.params.for_s:
                self.reported.add(track.id)
                events.append(_event("fire_lane_blocked", ts, self.name, self.outline, track))
        return events


class Elevator:
    """A bicycle or motorcycle (e-bike) inside the elevator car."""

    def __init__(self, name: str, outline: list[Point], params: ElevatorParams) -> None:
        self.name, self.outline = name, outline
        self.presence = Presence(outline, params)

    def update(self, ts: float, tracks: list[Track]) -> list[Event]:
        entered, _ = self.presence.update(ts, tracks)
        return [_event("ebike_in_elevator", ts, self.name, self.outline, t) for t in entered]


class LineCrossing:
    """A tripwire: each believed track crossing the segment, counted per direction."""

    def __init__(self, name: str, outline: list[Point], params: LineParams) -> None:
        self.name, self.outline, self.params = name, outline, params
        (self.ax, self.ay), (self.bx, self.by) = outline
        self.side: dict[int, tuple[float, Point]] = {}  # last side (sign) and anchor per track
        self.counts: dict[str, int] = {params.forward: 0, params.backward: 0}

    def update(self, ts: float, tracks: list[Track]) -> list[Event]:
        events = []
        for track in tracks:
            if track.last_seen != ts or not believed(track, self.params.objects, self.params):
                continue
            here = track.anchor
            side = self._side(here)
            before = self.side.get(track.id)
            if side != 0:
                self.side[track.id] = (side, here)
            if before is None or side == 0 or before[0] == side:
                continue
            if not self._crosses_segment(before[1], here):
                continue
            # In image coordinates (y down) the left of A→B has a negative cross product.
            direction = self.params.forward if before[0] < 0 else self.params.backward
            self.counts[direction] += 1
            event = _event("line_crossing", ts, self.name, self.outline, track)
            event.direction, event.count = direction, self.counts[direction]
            events.append(event)
        alive = {t.id for t in tracks}
        for tid in [tid for tid in self.side if tid not in alive]:
            del self.side[tid]
        return events

    def _side(self, p: Point) -> float:
        cross = (self.bx - self.ax) * (p[1] - self.ay) - (self.by - self.ay) * (p[0] - self.ax)
        return 0.0 if abs(cross) < 1e-9 else (1.0 if cross > 0 else -1.0)

    def _crosses_segment(self, p: Point, q: Point) -> bool:
        """The track's step from p to q passes between the line's two end points."""
        dx, dy = self.bx - self.ax, self.by - self.ay
        ex, ey = q[0] - p[0], q[1] - p[1]
        denom = dx * ey - dy * ex
        if abs(denom) < 1e-12:
            return False
        u = ((p[0] - self.ax) * ey - (p[1] - self.ay) * ex) / denom
        return 0.0 <= u <= 1.0


def _hull(tracks: list[Track]) -> tuple[float, float, float, float]:
    return (
        min(t.box[0] for t in tracks),
        min(t.box[1] for t in tracks),
        max(t.box[2] for t in tracks),
        max(t.box[3] for t in tracks),
    )
