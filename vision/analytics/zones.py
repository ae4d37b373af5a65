"""Zone analytics: intrusion, loitering, crowd, fire lane, e-bike in elevator, line crossing.

Analytics see every live track each analysed frame; those not seen in this frame (missed by the
detector, or the frame was gated) keep their state. A track is in a zone when the bottom centre
of its box (where it stands) is inside the polygon for `inertia` analysed frames in a row, and
leaves after as many frames outside. Each analytic reports once per track and zone episode
(crowd: once per episode of the zone). `detected` says whether the detector saw this frame: a
frame the motion gate spared shows nothing new about who is where.
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
    def update(self, ts: float, tracks: list[Track], detected: bool = True) -> list[Event]: ...


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


class Belief:
    """Frigate's rule for trusting a track: it becomes a true positive once it passes its
    label's filter (this frame's score at least `min_score`, the median of its score history,
    misses counted as zero, at least `threshold`) and stays one while it lives, its label is
    watched and its size is within bounds. A ghost seen in one frame of three never passes;
    a person the detector misses now and then is not dropped and found again."""

    def __init__(self, objects: list[str], params: ZoneParams | LineParams) -> None:
        self.objects, self.params = objects, params
        self.trusted: set[int] = set()

    def holds(self, track: Track) -> bool:
        if track.label not in self.objects:
            return False
        rule = self.params.filter_for(track.label)
        if not rule.min_area <= track.area <= rule.max_area:
            return False
        if track.id in self.trusted:
            return True
        if track.score >= rule.min_score and track.median_score >= rule.threshold:
            self.trusted.add(track.id)
            return True
        return False

    def forget(self, alive: set[int]) -> None:
        self.trusted &= alive


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
        self.belief = Belief(self.params.objects, self.params)

    def update(self, ts: float, tracks: list[Track]) -> tuple[list[Track], list[int]]:
        """Tracks that became present in this frame, and the ids that left."""
        entered: list[Track] = []
        alive = {t.id for t in tracks}
        for track in tracks:
            if track.last_seen != ts:
                continue  # not seen in this frame (missed or gated): nothing new to judge
            x, y = track.anchor
            is_in = self.belief.holds(track) and bool(shapely.contains_xy(self._shape, x, y))
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
        self.belief.forget(alive)
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
    """Anything of `objects` entering a restricted zone, within the schedule when one is set;
    once per track: someone standing on the zone's edge, in and out of it, is one intruder.
    Once the detector has seen the zone empty for `rearm_s`, whoever is in it next is news,
    even on a track reported before (at 1-2 fps a newcomer may inherit a leaver's track)."""

    def __init__(self, name: str, outline: list[Point], params: RestrictedParams) -> None:
        self.name, self.outline, self.params = name, outline, params
        self.presence = Presence(outline, params)
        self.reported: set[int] = set()
        self.empty_since: float | None = None  # first detector frame that saw nobody in it

    def update(self, ts: float, tracks: list[Track], detected: bool = True) -> list[Event]:
        entered, _ = self.presence.update(ts, tracks)
        self.reported &= {t.id for t in tracks}
        occupied = [t for t in tracks if t.id in self.presence.present and t.last_seen == ts]
        rearmed = self._rearmed(ts, bool(occupied), detected)
        schedule = self.params.schedule
        if schedule and not schedule.contains(datetime.fromtimestamp(ts, UTC)):
            return []
        news = {t.id: t for t in [*entered, *(occupied if rearmed else [])]}
        fresh = [t for tid, t in news.items() if rearmed or tid not in self.reported]
        self.reported.update(t.id for t in fresh)
        return [_event("intrusion", ts, self.name, self.outline, t) for t in fresh]

    def _rearmed(self, ts: float, occupied: bool, detected: bool) -> bool:
        """Whether someone is seen in the zone after it was seen empty for `rearm_s`."""
        if not detected:
            return False
        if not occupied:
            self.empty_since = self.empty_since if self.empty_since is not None else ts
            return False
        since, self.empty_since = self.empty_since, None
        return since is not None and ts - since >= self.params.rearm_s


class Loitering:
    """A track present in the zone for longer than `loitering_time`."""

    def __init__(self, name: str, outline: list[Point], params: ZoneParams) -> None:
        self.name, self.outline, self.params = name, outline, params
        self.presence = Presence(outline, params)
        self.reported: set[int] = set()

    def update(self, ts: float, tracks: list[Track], detected: bool = True) -> list[Event]:
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
    """At least `min_persons` present for `for` seconds; one event per crowd episode.
    The count is of the latest detector frame's detections standing in the zone, each scoring
    at least the zone's `count_score`: not of confirmed tracks, which a crowd of small people
    the detector sees in one frame of two never fills, and not of tracks kept alive through a
    miss, which are not people seen now."""

    def __init__(self, name: str, outline: list[Point], params: CrowdParams) -> None:
        self.name, self.outline, self.params = name, outline, params
        self._shape = Polygon(outline)
        shapely.prepare(self._shape)
        self.since: float | None = None
        self.below_since: float | None = None
        self.reported = False

    def members(self, tracks: list[Track]) -> list[Track]:
        rule = self.params
        return [
            t
            for t in tracks
            if t.visible
            and t.label in rule.objects
            and t.score >= rule.count_score
            and rule.filter_for(t.label).min_area <= t.area <= rule.filter_for(t.label).max_area
            and bool(shapely.contains_xy(self._shape, *t.anchor))
        ]

    def update(self, ts: float, tracks: list[Track], detected: bool = True) -> list[Event]:
        members = self.members(tracks)
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
        score = sum(t.score for t in members) / len(members)
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

    def update(self, ts: float, tracks: list[Track], detected: bool = True) -> list[Event]:
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

    def update(self, ts: float, tracks: list[Track], detected: bool = True) -> list[Event]:
        entered, _ = self.presence.update(ts, tracks)
        return [_event("ebike_in_elevator", ts, self.name, self.outline, t) for t in entered]


@dataclass(slots=True)
class _LineSide:
    """Where one track stands relative to a tripwire."""

    side: float  # the side (sign) it was last clearly on
    origin: Point  # where it last stood clearly on that side
    height: float  # its box's height there
    last_seen: float
    pending: int = 0  # detector frames in a row clearly on the other side
    arrived: float = 0.0  # its distance from the line in the first of those frames
    crossed_at: float = float("-inf")  # when it was last counted crossing


SAME_SIZE = 1.5  # box heights before and after a crossing differ by less than this factor


class LineCrossing:
    """A tripwire: each believed track crossing the segment, counted per direction.

    A crossing counts only when the track stood clearly on one side (its feet at least
    `margin` box heights from the line) and is then seen clearly on the other for `frames`
    detector frames in a row, its step passing between the line's end points. Jitter of the
    box's bottom edge near the line, a track found again after `max_gap_s`, and boxes that do
    not show the whole object (cut off by the frame, legs hidden) never count, and neither
    does a track's crossing back within `rebound_s` of its last one: at 1-2 fps that is a
    track handed from someone on one side to someone on the other, not a person turning."""

    def __init__(self, name: str, outline: list[Point], params: LineParams) -> None:
        self.name, self.outline, self.params = name, outline, params
        (self.ax, self.ay), (self.bx, self.by) = outline
        self.length = max(((self.bx - self.ax) ** 2 + (self.by - self.ay) ** 2) ** 0.5, 1e-9)
        self.sides: dict[int, _LineSide] = {}
        self.belief = Belief(params.objects, params)
        self.counts: dict[str, int] = {params.forward: 0, params.backward: 0}

    def update(self, ts: float, tracks: list[Track], detected: bool = True) -> list[Event]:
        events = [e for t in tracks if (e := self._step(ts, t)) is not None]
        alive = {t.id for t in tracks}
        for tid in [tid for tid in self.sides if tid not in alive]:
            del self.sides[tid]
        self.belief.forget(alive)
        return events

    def _step(self, ts: float, track: Track) -> Event | None:
        if track.last_seen != ts or not track.whole:
            return None  # where its feet are is a guess: no crossing is judged on it
        if not self.belief.holds(track):
            return None
        here, height = track.anchor, track.box[3] - track.box[1]
        distance = self._distance(here)
        side = self._clear_side(distance, height)
        state = self.sides.get(track.id)
        if state is None or ts - state.last_seen > self.params.max_gap_s:
            if side != 0:  # first seen, or found again: it starts afresh where it stands
                self.sides[track.id] = _LineSide(side, here, height, ts)
            return None
        state.last_seen = ts
        if side == 0:
            return None
        if side == state.side:
            state.origin, state.height, state.pending = here, height, 0
            return None
        state.pending += 1
        if state.pending == 1:
            state.arrived = distance
        if state.pending < self.params.frames:
            return None
        crossed = self._plausible(state, distance, height) and self._crosses_segment(
            state.origin, here
        )
        rebound = ts - state.crossed_at < self.params.rebound_s
        state.side, state.origin, state.height, state.pending = side, here, height, 0
        if not crossed or rebound:
            return None
        state.crossed_at = ts
        # In image coordinates (y down) the left of A→B has a negative cross product.
        direction = self.params.forward if side > 0 else self.params.backward
        self.counts[direction] += 1
        event = _event("line_crossing", ts, self.name, self.outline, track)
        event.direction, event.count = direction, self.counts[direction]
        return event

    def _distance(self, p: Point) -> float:
        """Signed distance of `p` from the line; positive on its right (looking from A to B)."""
        cross = (self.bx - self.ax) * (p[1] - self.ay) - (self.by - self.ay) * (p[0] - self.ax)
        return float(cross / self.length)

    def _clear_side(self, distance: float, height: float) -> float:
        """The side of the line a point this far from it is on; 0 while within the margin."""
        if abs(distance) < max(self.params.margin * height, 1e-6):
            return 0.0
        return 1.0 if distance > 0 else -1.0

    def _plausible(self, state: _LineSide, distance: float, height: float) -> bool:
        """Whether the track that came out on the other side is the one that went in.
        An object does not halve or double in size while stepping over a line, and once over
        it does not head back to it: a track that did either was handed to someone else."""
        low, high = sorted((height, state.height))
        if high > SAME_SIZE * max(low, 1e-6):
            return False
        heading_back = (abs(state.arrived) - abs(distance)) > self.params.margin * height / 2
        return not heading_back

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
