"""How right the analytics are on real clips, against what a person saw in them.

    python -m bench.vision_quality [--manifest FILE] [--fps 1 2] [--media DIR]
                                   [--device cpu|cuda]

Runs every clip of the manifest (bench/expected_events.toml, the shared clips, by default;
bench/eval_clips.toml for the evaluation set, fetched by `python -m bench.eval_clips`)
through the engine with the shipped settings (and the camera settings the file gives, as an
installer would set them) at each analysis rate given, then prints per clip what was
expected and what was reported, per clip and analytic the true and false positives, misses
and the timing error (report minus truth, seconds), and precision and recall per analytic
over all clips. Needs SB_YOLO_MODEL, SB_FIRE_MODEL and SB_POSE_MODEL; the shared clips come
from SB_TEST_MEDIA_DIR (set by .ci/run from ../shared), the evaluation set from var/eval-clips.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bench.cameras import camera
from bench.eval_clips import CACHE, Source
from vision.analytics.zones import Crowd
from vision.detector import Detector
from vision.events import Event
from vision.pipeline import Analyser, Models

EXPECTED = Path(__file__).with_name("expected_events.toml")
COUNT_TOLERANCE = 0.2  # a crowd count within 20 % of the people a person counted is right
FALL_EARLY_S, FALL_LATE_S = 0.5, 1.5  # a fall reported this close to when it happened is right


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LineTruth(Strict):
    name: str
    polygon: list[tuple[float, float]]
    forward: str
    backward: str
    south: tuple[int, int] | None = None
    north: tuple[int, int] | None = None

    def expected(self) -> dict[str, tuple[int, int]]:
        return {d: r for d, r in ((self.forward, self.south), (self.backward, self.north)) if r}


class CrowdTruth(Strict):
    name: str
    polygon: list[tuple[float, float]]
    min_persons: int
    for_s: float = Field(alias="for")
    episodes: int
    counts: list[tuple[float, int]]


class ClipTruth(Strict):
    file: str
    seen: str
    fire: bool
    fire_from: float | None = None
    fall: bool
    fall_at: float | None = None
    settings: dict[str, Any] = {}  # the camera's settings, as its installer would set them
    source: Source | None = None  # where the clip comes from (the evaluation set)
    lines: list[LineTruth] = []
    crowds: list[CrowdTruth] = []

    def fall_on_time(self, at: float) -> bool:
        """A fall reported close enough to the written time (FALL_EARLY_S, FALL_LATE_S): the
        written time is a person's reading of the clip to a frame or two, so a fall the pose
        confirms as the body drops may come a little before it."""
        return self.fall_at is not None and (
            self.fall_at - FALL_EARLY_S <= at <= self.fall_at + FALL_LATE_S
        )

    def zones(self) -> list[dict[str, Any]]:
        lines = [{"name": x.name, "kind": "line", "polygon": x.polygon,
                  "params": {"forward": x.forward, "backward": x.backward}}
                 for x in self.lines]  # fmt: skip
        crowds = [{"name": c.name, "kind": "crowd", "polygon": c.polygon,
                   "params": {"min_persons": c.min_persons, "for": c.for_s}}
                  for c in self.crowds]  # fmt: skip
        return lines + crowds


def expectations(manifest: Path = EXPECTED) -> dict[str, ClipTruth]:
    raw = tomllib.loads(manifest.read_text(encoding="utf-8"))
    return {name: ClipTruth.model_validate(clip) for name, clip in raw["clips"].items()}


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Tally) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class ClipRun:
    """What the engine reported on one clip; times in seconds from the clip's start."""

    events: list[tuple[float, Event]] = field(default_factory=list)
    crowd_counts: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def of(self, *types: str) -> list[tuple[float, Event]]:
        return [(t, e) for t, e in self.events if e.type in types]


def run_clip(models: Models, media: Path, truth: ClipTruth, fps: float) -> ClipRun:
    engine = Analyser(models)
    url = f"file://{(media / truth.file).resolve()}?realtime=0"
    pipeline = engine.add(
        camera("CLIP", url, fps=fps, zones=truth.zones(), settings=truth.settings)
    )
    started = getattr(pipeline.source, "started", 0.0)
    crowds = [a for a in pipeline.zones if isinstance(a, Crowd)]
    found = ClipRun(crowd_counts={c.name: [] for c in crowds})
    while not engine.finished:
        _, outcomes = engine.step()
        found.events += [(o.event.ts - started, o.event) for o in outcomes]
        for crowd in crowds:
            found.crowd_counts[crowd.name].append(
                (pipeline.last_detect - started, len(crowd.members(pipeline.tracks)))
            )
    engine.close()
    return found


def count_at(counts: list[tuple[float, int]], at: float) -> int | None:
    """The count of the first detector frame at or after `at`."""
    return next((n for t, n in counts if t >= at - 1e-6), None)


def grade(truth: ClipTruth, run: ClipRun) -> dict[str, Tally]:
    tallies: dict[str, Tally] = defaultdict(Tally)
    for line in truth.lines:
        crossings = [e for _, e in run.of("line_crossing") if e.zone == line.name]
        for direction, (low, high) in line.expected().items():
            n = sum(1 for e in crossings if e.direction == direction)
            tallies["line_crossing"].add(Tally(min(n, high), max(0, n - high), max(0, low - n)))
    for crowd in truth.crowds:
        n = sum(1 for _, e in run.of("crowd") if e.zone == crowd.name)
        tallies["crowd"].add(Tally(min(n, crowd.episodes), max(0, n - crowd.episodes),
                                   max(0, crowd.episodes - n)))  # fmt: skip
        for at, people in crowd.counts:
            seen = count_at(run.crowd_counts[crowd.name], at)
            right = seen is not None and abs(seen - people) <= COUNT_TOLERANCE * people
            tallies["crowd_count"].add(Tally(tp=int(right), fn=int(not right)))
    tallies["fire"].add(_grade_fire(truth, run))
    tallies["fall"].add(_grade_fall(truth, run))
    return dict(tallies)


def timing(truth: ClipTruth, run: ClipRun) -> dict[str, float | None]:
    """Seconds from what a person saw to the first report of it (negative: early)."""
    found: dict[str, float | None] = {}
    if truth.fire and truth.fire_from is not None:
        fires = [t for t, _ in run.of("fire", "smoke") if t >= truth.fire_from - 1.0]
        found["fire"] = min(fires) - truth.fire_from if fires else None
    if truth.fall and truth.fall_at is not None:
        errors = [t - truth.fall_at for t, _ in run.of("fall")]
        found["fall"] = min(errors, key=abs) if errors else None
    return found


def _grade_fire(truth: ClipTruth, run: ClipRun) -> Tally:
    """Per clip: a fire clip is found if fire or smoke is reported once it shows."""
    times = [t for t, _ in run.of("fire", "smoke")]
    if not truth.fire:
        return Tally(fp=int(bool(times)))
    assert truth.fire_from is not None
    found = any(t >= truth.fire_from - 1.0 for t in times)
    return Tally(
        tp=int(found), fn=int(not found), fp=int(any(t < truth.fire_from - 1.0 for t in times))
    )


def _grade_fall(truth: ClipTruth, run: ClipRun) -> Tally:
    times = [t for t, _ in run.of("fall")]
    if not truth.fall:
        return Tally(fp=len(times))
    assert truth.fall_at is not None
    on_time = [t for t in times if truth.fall_on_time(t)]
    return Tally(tp=int(bool(on_time)), fn=int(not on_time), fp=len(times) - min(len(on_time), 1))


def describe(name: str, truth: ClipTruth, run: ClipRun) -> list[str]:
    lines = []
    for line in truth.lines:
        crossings = [e for _, e in run.of("line_crossing") if e.zone == line.name]
        for direction, (low, high) in line.expected().items():
            n = sum(1 for e in crossings if e.direction == direction)
            lines.append(f"  line {line.name} {direction}: expected {low}-{high}, reported {n}")
    for crowd in truth.crowds:
        shown = ", ".join(
            f"{people} at {at:.1f} s -> {count_at(run.crowd_counts[crowd.name], at)}"
            for at, people in crowd.counts
        )
        episodes = len([e for _, e in run.of("crowd") if e.zone == crowd.name])
        lines.append(f"  crowd {crowd.name}: episodes expected {crowd.episodes}, reported"
                     f" {episodes}; counted by hand -> by the engine: {shown}")  # fmt: skip
    fires = [f"{e.type}@{t:.1f}" for t, e in run.of("fire", "smoke")][:3]
    falls = [f"{t:.1f}" for t, _ in run.of("fall")]
    lines.append(f"  fire/smoke expected {truth.fire} (from {truth.fire_from}), first: {fires}")
    lines.append(f"  fall expected {truth.fall} (at {truth.fall_at}), reported at {falls}")
    return [f"{name} ({truth.file})", *lines]


def per_clip(name: str, fps: float, truth: ClipTruth, run: ClipRun) -> list[str]:
    """One line per analytic graded on the clip: TP FP FN and the timing error."""
    late = timing(truth, run)
    lines = []
    for analytic, t in sorted(grade(truth, run).items()):
        if analytic in late:
            error = late[analytic]
            when = f"{error:+.1f} s" if error is not None else "missed"
        else:
            when = "-"
        lines.append(f"{name:22s} {fps:4g} {analytic:14s} {t.tp:3d} {t.fp:3d} {t.fn:3d}  {when}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, default=EXPECTED, help="clips and their truth")
    parser.add_argument("--fps", type=float, nargs="+", default=[1.0, 2.0],
                        help="analysed frames a second")  # fmt: skip
    parser.add_argument("--media", type=Path, default=None, help="where the clips are")
    parser.add_argument("--device", default=os.environ.get("SB_VISION_DEVICE", "cpu"))
    args = parser.parse_args()
    shared = Path(os.environ.get("SB_TEST_MEDIA_DIR", "../shared/media"))
    media = (args.media or (shared if args.manifest == EXPECTED else CACHE)).resolve()
    models = Models(
        Detector(os.environ["SB_YOLO_MODEL"], device=args.device),
        Detector(os.environ["SB_FIRE_MODEL"], device=args.device),
        Detector(os.environ["SB_POSE_MODEL"], task="pose", device=args.device),
    )
    clips = expectations(args.manifest)
    for fps in args.fps:
        totals: dict[str, Tally] = defaultdict(Tally)
        table: list[str] = []
        print(f"\nanalysis at {fps:g} fps; truth from {args.manifest.name}")
        for name, truth in clips.items():
            run = run_clip(models, media, truth, fps)
            print("\n".join(describe(name, truth, run)))
            table += per_clip(name, fps, truth, run)
            for analytic, tally in grade(truth, run).items():
                totals[analytic].add(tally)
        print(f"\n{'clip':22s} {'fps':>4s} {'analytic':14s}  TP  FP  FN  timing")
        print("\n".join(table))
        print(f"\n{'analytic':14s} {'TP':>4s} {'FP':>4s} {'FN':>4s} {'precision':>10s}"
              f" {'recall':>8s}")  # fmt: skip
        for analytic, t in sorted(totals.items()):
            print(f"{analytic:14s} {t.tp:4d} {t.fp:4d} {t.fn:4d} {t.precision:10.2f}"
                  f" {t.recall:8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
