"""Falls from any camera angle: a person whose body is on the ground, judged from several cues,
not from the torso's angle alone.

Seen from the side, a fallen body lies wide and its torso horizontal. Seen from above, it may
lie along the camera's axis: box and torso still read as upright, but the head and the hips
have dropped towards where the feet stood, the box has lost height, and it happened within a
second or two. So each person track keeps its standing reference (height, where its feet and
head were, when it was last upright), and a candidate (a box turned wide, shrunk or dropped)
is scored on:

- `torso`: shoulders-to-hips more horizontal than vertical in the pose keypoints;
- `wide`: the box at least `wide_aspect` wide (w/h), or twice as wide as it stood;
- `low`: the box at most `low_height` of the standing height;
- `head`: the box's top within `head_low` standing heights of where the feet stood;
- `hips`: the hips' keypoints within `hips_low` standing heights of where the feet stood;
- `spread`: the seen keypoints spread wider than tall (a body laid out on the ground).

The cues read from a change (all but `torso` and `wide`) need the person to have stood at
least `min_height` of the frame tall: small people far below a high camera jitter too much,
and a body smaller than that lies only when its torso says so. The torso counts only when
it spans `torso_share` of the box's longer side: from above, a standing body's torso is a
stub pointing anywhere.

A change is a body falling about its feet, not a person moving or a track changing hands.
So the standing reference is taken only from a box clear of the frame's top and sides (a box
cut there is shorter than its person), and only one at most `change_s` old counts; where the
feet stood is moved on by how fast they were walking down the view (down a stair, towards a
high camera: the head reaches where the feet were, upright); a box that kept its height and
moved down the view more than `stay` heights has not dropped; a box that lost height and
width alike (its aspect grew less than `reshaped`) is someone further off or someone else;
and the hips lie only where a foot is seen too (in a crowd the person in front hides the
legs, and the pose puts the hips at the bottom of what shows).

A body is down when the cues add up to 1 and one of them says it is on the ground (torso,
wide, hips or spread): bending over or crouching lowers the head, not the hips. Nothing is
reported until the keypoints (`torso`, `hips` or `spread`) have said so in one frame of the
episode at least: a box's shape alone is as often two people side by side; once they have,
frames where the pose model finds nobody carry the episode on the box's shape. A fall is
reported when the body went down fast (upright within `drop_s`, a cue read against how it
stood, `low`, `head` or `hips`, or its box turned from a standing shape to `turned` times as
wide, says it dropped, and the keypoints, `torso`, `hips` or `spread`, say it lies) and is
down now, or when it has been down for `hold_s` (twice that for someone too small to read a
drop from). The episode is held by
place, not by track (the tracker may give the lying body a new id), through frames where the
pose model finds nobody there, until the person is seen upright there (for `hold_s` once
reported) or nobody lies there for `forget_s`. While an episode waits to be reported the
pose model looks at every frame, and where the detector has lost the body (a person detector
sees lying people poorly) the pose model's own box for a body whose torso lies there carries
it on. Its confidence is the mean of the detector's (or the pose model's) scores for the body
over the frames that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vision.detector import Detections
from vision.events import Box, Event
from vision.tracking import EDGE, Track, iou

SHOULDERS, HIPS, ANKLES = [5, 6], [11, 12], [15, 16]
MIN_KEYPOINT_SCORE = 0.4
GROUND_CUES = ("torso", "wide", "hips", "spread")
WEIGHTS = {"torso": 1.0, "wide": 1.0, "low": 0.5, "head": 0.5, "hips": 0.5, "spread": 0.5}


@dataclass(frozen=True, slots=True)
class FallConfig:
    candidate_aspect: float = 0.8  # boxes at least this wide (w/h) are checked with the pose model
    upright_aspect: float = 0.7  # a box narrower than this is someone standing
    min_height: float = 0.12  # standing shorter than this (of the frame), shape is not read
    torso_share: float = 0.25  # a lying torso spans this much of its box's longer side
    wide_aspect: float = 1.3  # a box this wide lies
    low_height: float = 0.6  # a box this much of the standing height is low
    head_low: float = 0.5  # its top this close (standing heights) above the feet's line
    hips_low: float = 0.15  # hips this close above the feet's line lie (squatting: 0.25)
    drop_s: float = 2.5  # upright this recently and down now: a fall (at 1 fps, two frames:
    # one may catch the body on its way down)
    change_s: float = 3.0  # a drop (`low`, `head`, `hips`) is read against how it stood at
    # most this long ago: an older reference is someone else's or another moment's
    turned: float = 2.0  # a box this many times as wide as it stood (and `wide`) turned over
    stay: float = 0.4  # a body that dropped without losing height has its feet this close
    # (standing heights) to where they were
    reshaped: float = 1.3  # a box that lost height is a body lying only if its aspect grew
    # this much
    hold_s: float = 1.0  # otherwise down this long
    match_iou: float = 0.3  # a lying body's place: boxes overlapping this much are one place
    pose_iou: float = 0.5  # a pose box is the track's person from this overlap (in a crowd,
    # a looser match takes a neighbour's keypoints)
    forget_s: float = 3.0  # a place where nobody has been seen lying this long is clear again


def pixel_aspect(box: Box, shape: tuple[int, int]) -> float:
    height, width = shape
    w, h = (box[2] - box[0]) * width, (box[3] - box[1]) * height
    return w / h if h > 0 else 0.0


@dataclass(slots=True)
class Standing:
    """How a track looked when last upright (normalised units)."""

    height: float
    foot: float
    aspect: float
    box: Box
    ts: float
    foot_speed: float = 0.0  # how fast its feet moved down the view while upright, a second
    steps: int = 0  # upright frames the speed was read from

    def feet_at(self, ts: float, config: FallConfig) -> float:
        """Where its feet would be now had it walked on as it did: someone walking down the
        view (towards a high camera, down a stair) passes below where they stood, upright."""
        return self.foot + max(0.0, self.foot_speed) * min(max(0.0, ts - self.ts), config.drop_s)


def body_cues(
    ref: Standing | None,
    keypoints: np.ndarray | None,
    aspect: float,
    box: Box,
    config: FallConfig,
    frame_height: float = 1.0,
    box_pixels: float = 0.0,
    ts: float | None = None,
) -> set[str]:
    """The cues of a body on the ground this box (normalised) and its keypoints (pixels) show,
    at `ts` (by default, when `ref` was taken)."""
    cues: set[str] = set()
    if ref is not None and ref.height < config.min_height:
        ref = None  # too small to read a change of shape from: only the absolute cues count
    recent = ref if ref is not None and _recent(ref, ts, config) else None
    feet = recent.feet_at(recent.ts if ts is None else ts, config) if recent else 0.0
    upright_torso = False
    if keypoints is not None:
        seen = keypoints[:, 2] >= MIN_KEYPOINT_SCORE
        if seen[SHOULDERS].all() and seen[HIPS].all() and aspect >= config.candidate_aspect:
            shoulder = keypoints[SHOULDERS][seen[SHOULDERS], :2].mean(axis=0)
            hip = keypoints[HIPS][seen[HIPS], :2].mean(axis=0)
            dx, dy = abs(float(hip[0] - shoulder[0])), float(hip[1] - shoulder[1])
            # Seen from above, a standing body's torso is foreshortened to a stub pointing
            # anywhere; a lying one's is a quarter of its length or more.
            if dy < dx and dx >= config.torso_share * box_pixels:
                cues.add("torso")
            else:
                upright_torso = True
        if ref is not None and seen.sum() >= 5:
            points = keypoints[seen, :2]
            spread = points.max(axis=0) - points.min(axis=0)
            if spread[0] > 1.2 * spread[1] and aspect >= config.candidate_aspect:
                cues.add("spread")
        # Hips are on the floor only if the feet are seen too: where someone in front hides
        # the legs, the hips are the bottom of what shows, wherever the floor is.
        if recent is not None and seen[HIPS].any() and seen[ANKLES].any():
            hip_y = float(keypoints[HIPS][seen[HIPS], 1].mean()) / frame_height
            if feet - hip_y <= config.hips_low * recent.height:
                cues.add("hips")
    wide = config.wide_aspect * (1.15 if upright_torso else 1.0)
    if aspect >= wide or (ref and aspect >= max(2 * ref.aspect, 1.0)):
        cues.add("wide")
    if recent is not None:
        if box[3] - box[1] <= config.low_height * recent.height:
            cues.add("low")
        if feet - box[1] <= config.head_low * recent.height:
            cues.add("head")
        # A box that kept its height and moved down the view as a whole (a walker the
        # reference did not see walking) has not dropped: a body falls about its feet.
        if "low" not in cues and abs(box[3] - feet) > config.stay * recent.height:
            cues -= {"head", "hips"}
        # A body that lies along the camera's axis loses height but keeps its shoulders'
        # width; a box that shrank in both is someone further off, or someone else.
        lost_height = box[3] - box[1] < 0.8 * recent.height
        if lost_height and aspect < config.reshaped * recent.aspect:
            cues -= {"head", "hips", "low"}
    return cues


def _recent(ref: Standing, ts: float | None, config: FallConfig) -> bool:
    return ts is None or ts - ref.ts <= config.change_s


def down(cues: set[str]) -> bool:
    return sum(WEIGHTS[c] for c in cues) >= 1.0 and any(c in cues for c in GROUND_CUES)


@dataclass(slots=True)
class _Episode:
    """One person down at one place, kept by where it is rather than by track."""

    box: Box
    since: float
    last_lying: float
    fast: bool  # the body went down from upright within `drop_s`
    scores: list[float] = field(default_factory=list)
    origin: Box = (0.0, 0.0, 0.0, 0.0)  # where it lay first
    posed: bool = False  # the keypoints said it lies in one of its frames at least
    up_since: float | None = None  # seen upright there since
    reported: bool = False


@dataclass
class Fall:
    """One camera's fall judgement over person tracks and pose results."""

    config: FallConfig = field(default_factory=FallConfig)
    episodes: list[_Episode] = field(default_factory=list)
    standing: dict[int, Standing] = field(default_factory=dict)
    alive: set[int] = field(default_factory=set)  # the tracks of the latest update
    shape: tuple[int, int] = (1, 1)  # the latest frame's height and width

    def candidates(self, tracks: list[Track], shape: tuple[int, int], ts: float) -> list[Track]:
        """Person tracks seen now whose box turned wide, shrank or dropped: the pose model
        looks at them."""
        return [
            t
            for t in tracks
            if t.label == "person" and t.last_seen == ts and self._suspect(t, shape, ts)
        ]

    def _suspect(self, track: Track, shape: tuple[int, int], ts: float) -> bool:
        aspect = pixel_aspect(track.box, shape)
        if aspect >= self.config.candidate_aspect:
            return True
        ref = self._reference(track) if track.whole else None
        cues = body_cues(ref, None, aspect, track.box, self.config, ts=ts) if ref else set()
        return bool({"low", "head"} & cues)

    def update(
        self, ts: float, tracks: list[Track], pose: Detections | None, shape: tuple[int, int]
    ) -> list[Event]:
        self.alive, self.shape = {t.id for t in tracks}, shape
        candidates = {t.id: t for t in self.candidates(tracks, shape, ts)}
        cues = {tid: self._cues(t, pose, shape, ts) for tid, t in candidates.items()}
        lying = {tid: t for tid, t in candidates.items() if down(cues[tid])}
        seen = [t for t in tracks if t.label == "person" and t.last_seen == ts]
        upright = [t for t in seen if t.id not in lying and self._upright(t, shape)]
        for track in upright:
            if _clear(track):
                self._stand(track, shape, ts)
        not_down = [t.box for t in seen if t.id not in lying]
        self._end_episodes(ts, [t.box for t in upright], not_down)
        self._forget_standing(ts, {t.id for t in tracks})
        events = []
        for tid in sorted(lying):
            event = self._judge(lying[tid], ts, cues[tid], shape)
            if event is not None:
                events.append(event)
        return events + self._unseen_bodies(ts, seen, pose, shape)

    def watching(self) -> bool:
        """A body went down and is not reported yet: the pose model keeps looking, also where
        the detector has lost it (a person detector sees lying people poorly)."""
        return any(not e.reported for e in self.episodes)

    def _unseen_bodies(
        self, ts: float, seen: list[Track], pose: Detections | None, shape: tuple[int, int]
    ) -> list[Event]:
        """Open episodes where the detector saw nobody this frame, carried on the pose
        model's own box for a body whose torso lies there."""
        if pose is None or pose.keypoints is None or len(pose) == 0:
            return []
        height, width = shape
        scale = np.array([width, height, width, height], np.float32)
        seen_boxes = [t.box for t in seen]
        events = []
        for episode in self.episodes:
            if episode.reported or episode.last_lying == ts:
                continue
            if _overlapped(episode.box, seen_boxes, self.config):
                continue  # the detector sees someone there: the tracks decide
            overlaps = iou(np.array(episode.box, np.float32) * scale, pose.xyxy)
            best = int(overlaps.argmax())
            if overlaps[best] < self.config.match_iou:
                continue
            x1, y1, x2, y2 = (float(v) for v in pose.xyxy[best] / scale)
            box = (x1, y1, x2, y2)
            longer = max((x2 - x1) * width, (y2 - y1) * height)
            cues = body_cues(None, pose.keypoints[best], pixel_aspect(box, shape), box,
                             self.config, float(height), longer, ts)  # fmt: skip
            if not down(cues) or "torso" not in cues:
                continue
            episode.box, episode.last_lying, episode.up_since = box, ts, None
            episode.scores.append(float(pose.conf[best]))
            episode.posed = True
            event = self._report(episode, ts, box, None, max(x2 - x1, y2 - y1))
            if event is not None:
                events.append(event)
        return events

    def _judge(
        self, track: Track, ts: float, cues: set[str], shape: tuple[int, int]
    ) -> Event | None:
        ref = self._reference(track)
        # Read against how it stood: a change. Seen from the side a body that lies facing the
        # camera keeps much of its height, but its box turned over from narrow to wide.
        dropped = bool(cues & {"low", "head", "hips"}) or self._turned(track, ref, shape)
        posed = bool(cues & {"torso", "hips", "spread"})  # the keypoints, not a box's shape
        fast = dropped and posed and ref is not None and ts - ref.ts <= self.config.drop_s
        episode = self._episode(track.box, ts, fast)
        episode.scores.append(track.score)
        episode.posed = episode.posed or posed
        x1, y1, x2, y2 = track.box
        size = ref.height if ref is not None else max(x2 - x1, y2 - y1)
        return self._report(episode, ts, track.box, track.id, size)

    def _report(
        self, episode: _Episode, ts: float, box: Box, track_id: int | None, size: float
    ) -> Event | None:
        """The fall, once the keypoints have said the body lies and it went down fast or
        has been down long enough (twice as long for a body too small to read a drop)."""
        if not episode.posed:
            return None  # a box's shape alone (two people side by side) is never a fall
        readable = size >= self.config.min_height
        hold = self.config.hold_s * (1 if readable else 2)
        held = ts - episode.since >= hold
        if episode.reported or not (episode.fast or held):
            return None
        episode.reported = True
        confidence = sum(episode.scores) / len(episode.scores)
        label = f"fall #{track_id}" if track_id is not None else "fall"
        return Event(
            "fall", ts, confidence=confidence, track_id=track_id, bbox=box, marks=[(box, label)]
        )

    def _turned(self, track: Track, ref: Standing | None, shape: tuple[int, int]) -> bool:
        """The box turned from as narrow as a standing person's to lying wide."""
        if ref is None or not track.whole or ref.height < self.config.min_height:
            return False
        aspect = pixel_aspect(track.box, shape)
        stood = ref.aspect < self.config.upright_aspect
        return stood and aspect >= max(self.config.turned * ref.aspect, self.config.wide_aspect)

    def _upright(self, track: Track, shape: tuple[int, int]) -> bool:
        ref = self._reference(track)
        tall = ref is None or track.box[3] - track.box[1] >= 0.8 * ref.height
        return pixel_aspect(track.box, shape) < self.config.upright_aspect and tall

    def _stand(self, track: Track, shape: tuple[int, int], ts: float) -> None:
        height = track.box[3] - track.box[1]
        old = self.standing.get(track.id)
        followed = height if old is None else 0.6 * old.height + 0.4 * height
        aspect = pixel_aspect(track.box, shape)
        # Walking down the view, as the tracker saw it until this track's own upright steps do.
        speed, steps = max(0.0, track.velocity[1]) if track.velocity else 0.0, 0
        if old is not None and ts > old.ts:
            step = (track.box[3] - old.foot) / (ts - old.ts)
            speed = step if old.steps == 0 else 0.5 * (old.foot_speed + step)
            steps = old.steps + 1
        self.standing[track.id] = Standing(
            followed, track.box[3], aspect, track.box, ts, speed, steps
        )

    def _reference(self, track: Track) -> Standing | None:
        """The track's standing reference, or, for a track the tracker started when the body
        changed shape, that of someone whose track was lost and who stood within a body
        height of it: falling, a body lands about its height from where it stood. A track
        now further than that from where it stood has walked on (or passed to someone
        else): how it stood there says nothing of a drop here."""
        ref = self.standing.get(track.id)
        if ref is not None:
            return ref if _within_reach(ref, track.box, self.shape) else None
        near = [
            s
            for tid, s in self.standing.items()
            if tid not in self.alive and _within_reach(s, track.box, self.shape)
        ]
        return max(near, key=lambda s: s.ts, default=None)

    def _forget_standing(self, ts: float, alive: set[int]) -> None:
        self.standing = {
            tid: s
            for tid, s in self.standing.items()
            if tid in alive or ts - s.ts <= self.config.forget_s
        }

    def _cues(
        self, track: Track, pose: Detections | None, shape: tuple[int, int], ts: float
    ) -> set[str]:
        keypoints = self._keypoints(track, pose, shape)
        # A box cut off by the frame or hidden from below by someone in front shows no
        # change of shape: only what the keypoints show of the body counts then.
        ref = self._reference(track) if track.whole else None
        height, width = shape
        x1, y1, x2, y2 = track.box
        longer = max((x2 - x1) * width, (y2 - y1) * height)
        cues = body_cues(
            ref,
            keypoints,
            pixel_aspect(track.box, shape),
            track.box,
            self.config,
            float(height),
            longer,
            ts,
        )
        if not track.whole:
            cues -= {"wide"}  # a box cut by the frame or hidden from below has no shape
        if self._upright(track, shape):
            return set()  # a box as narrow and as tall as it stood is someone standing (who
            # may have walked down the view past where their feet were)
        if max(x2 - x1, y2 - y1) < self.config.min_height:
            cues &= {"torso"}  # too small for a box's shape to mean anything
        return cues

    def _keypoints(
        self, track: Track, pose: Detections | None, shape: tuple[int, int]
    ) -> np.ndarray | None:
        if pose is None or pose.keypoints is None or len(pose) == 0:
            return None
        height, width = shape
        box = np.array(track.box, np.float32) * np.array([width, height, width, height])
        overlaps = iou(box, pose.xyxy)
        if overlaps.max() < self.config.pose_iou:
            return None
        return np.asarray(pose.keypoints[int(overlaps.argmax())])

    def _episode(self, box: Box, ts: float, fast: bool) -> _Episode:
        """The episode at this place, carried on, or a new one. A body on the ground stays
        where it fell: one that has moved off its first place by half its size is someone
        walking (seen from above, a walker's box and torso may read as lying)."""
        for episode in self.episodes:
            if iou(np.array(box), np.array([episode.box]))[0] >= self.config.match_iou:
                if _travelled(episode.origin, box) and not episode.reported:
                    episode.origin, episode.since, episode.fast = box, ts, fast
                episode.box, episode.last_lying, episode.up_since = box, ts, None
                return episode
        episode = _Episode(box, ts, ts, fast, origin=box)
        self.episodes.append(episode)
        return episode

    def _end_episodes(self, ts: float, upright: list[Box], not_down: list[Box]) -> None:
        """An episode not yet reported ends when someone there is seen not down (it was not
        down all along); one reported when the person has been seen upright there for
        `hold_s`, a frame where the pose model found nobody or the body read neither way
        ending nothing; either when nobody has lain there for `forget_s`."""
        kept = []
        for episode in self.episodes:
            if not episode.reported and _overlapped(episode.box, not_down, self.config):
                continue
            if _overlapped(episode.box, upright, self.config):
                episode.up_since = episode.up_since or ts
            up = episode.up_since is not None and ts - episode.up_since >= self.config.hold_s
            if not up and ts - episode.last_lying <= self.config.forget_s:
                kept.append(episode)
        self.episodes = kept


def _clear(track: Track) -> bool:
    """The box is clear of the frame's top and sides, and not hidden from below: its height
    is the person's own, a measure of how it stood. (Feet at the frame's bottom are common
    in a view from the side and leave the height as it is.)"""
    x1, y1, x2, y2 = track.box
    at_bottom = y2 >= 1.0 - EDGE
    return (track.whole or at_bottom) and y1 > EDGE and x1 > EDGE and x2 < 1.0 - EDGE


def _overlapped(box: Box, others: list[Box], config: FallConfig) -> bool:
    return bool(others) and float(iou(np.array(box), np.array(others)).max()) >= config.match_iou


def _travelled(origin: Box, box: Box) -> bool:
    size = max(origin[2] - origin[0], origin[3] - origin[1], 1e-6)
    dx = (box[0] + box[2] - origin[0] - origin[2]) / 2
    dy = (box[1] + box[3] - origin[1] - origin[3]) / 2
    return bool((dx * dx + dy * dy) ** 0.5 > 0.5 * size)


def _within_reach(ref: Standing, box: Box, shape: tuple[int, int]) -> bool:
    """Whether a body lying in `box` could have stood where `ref` stood (measured in pixels:
    a frame's width and height are normalised apart)."""
    height, width = shape
    feet = ((ref.box[0] + ref.box[2]) / 2, ref.foot)
    dx = (min(max(feet[0], box[0]), box[2]) - feet[0]) * width
    dy = (min(max(feet[1], box[1]), box[3]) - feet[1]) * height
    return bool((dx * dx + dy * dy) ** 0.5 <= ref.height * height)
