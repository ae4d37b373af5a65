"""Frame sources: a camera stream read in its own thread, handing out only the newest frame.

A live source (rtsp, http, or a file played at its own speed) decodes continuously so that the
analyser never falls behind the stream; it converts a frame to BGR only when the analyser will
want one, and counts the frames the analyser never took. A replayed file (`realtime=0`) instead
steps through the media at the analysis rate as fast as the analyser asks, stamping frames with
media time: tests and benchmarks get the same frames on every run.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import cv2
import numpy as np

OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000
MAX_BACKOFF_S = 30.0


@dataclass(slots=True)
class Frame:
    image: np.ndarray
    ts: float  # epoch seconds; media time for a replayed file


@dataclass(slots=True)
class StreamChange:
    """`stream_lost` (with why) or `stream_restored`."""

    type: str
    ts: float
    reason: str | None = None


@dataclass(slots=True)
class CaptureCounters:
    frames_read: int = 0  # decoded from the stream
    frames_dropped: int = 0  # converted but replaced by a newer one before the analyser came
    reconnects: int = 0
    decode_s: float = 0.0  # CPU time of the reading thread in grab and retrieve


class _Timed:
    """CPU time (of the calling thread) spent inside `with`, added to a source's counters."""

    __slots__ = ("counters", "started")

    def __init__(self, counters: CaptureCounters) -> None:
        self.counters = counters
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.thread_time()

    def __exit__(self, *_: object) -> None:
        self.counters.decode_s += time.thread_time() - self.started


class FrameSource(Protocol):
    counters: CaptureCounters

    @property
    def state(self) -> str: ...

    def next_frame(self) -> Frame | None: ...

    def changes(self) -> list[StreamChange]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Where frames come from and how to read them, parsed from a camera's `stream_url`."""

    target: str  # what cv2.VideoCapture opens
    is_file: bool
    loop: bool = False
    realtime: bool = True

    @classmethod
    def parse(cls, url: str) -> SourceSpec:
        parts = urlsplit(url)
        if parts.scheme in ("", "file"):
            options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            path = unquote(parts.path) if parts.scheme == "file" else url.split("?", 1)[0]
            return cls(
                target=path,
                is_file=True,
                loop=options.get("loop", "0") in ("1", "true"),
                realtime=options.get("realtime", "1") not in ("0", "false"),
            )
        return cls(target=url, is_file=False)


def open_source(url: str, fps: float) -> FrameSource:
    """The right source for a stream URL; never raises for a bad stream (it reports it lost)."""
    spec = SourceSpec.parse(url)
    if spec.is_file and not spec.realtime:
        return ReplaySource(spec, fps)
    return LiveSource(spec, fps)


def _open_capture(spec: SourceSpec) -> cv2.VideoCapture | None:
    if spec.is_file and not Path(spec.target).is_file():
        return None
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS,
    ]  # fmt: skip
    cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def _native_fps(cap: cv2.VideoCapture) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 1.0 <= fps <= 240.0 else 25.0


class _Status:
    """Stream up/down bookkeeping shared by both sources: one change per transition."""

    def __init__(self) -> None:
        self.state = "connecting"
        self._changes: deque[StreamChange] = deque(maxlen=100)
        self._lock = threading.Lock()

    def up(self) -> None:
        with self._lock:
            if self.state == "lost":
                self._changes.append(StreamChange("stream_restored", time.time()))
            self.state = "live"

    def down(self, reason: str) -> None:
        with self._lock:
            if self.state != "lost":
                self._changes.append(StreamChange("stream_lost", time.time(), reason))
            self.state = "lost"

    def drain(self) -> list[StreamChange]:
        with self._lock:
            found = list(self._changes)
            self._changes.clear()
            return found


class LiveSource:
    """A stream read by a daemon thread; `next_frame` returns the newest frame not yet taken."""

    def __init__(self, spec: SourceSpec, fps: float) -> None:
        self.spec = spec
        self.interval = 1.0 / fps
        self.counters = CaptureCounters()
        self._status = _Status()
        self._latest: Frame | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"capture:{spec.target}", daemon=True
        )
        self._thread.start()

    @property
    def state(self) -> str:
        return self._status.state

    def next_frame(self) -> Frame | None:
        with self._lock:
            frame, self._latest = self._latest, None
        return frame

    def changes(self) -> list[StreamChange]:
        return self._status.drain()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=READ_TIMEOUT_MS / 1000 + 1)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            cap = _open_capture(self.spec)
            if cap is None:
                self._status.down("cannot open stream")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                self.counters.reconnects += 1
                continue
            backoff = 1.0
            try:
                reason = self._read(cap)
            finally:
                cap.release()
            if reason is None:  # asked to stop
                return
            if reason == "end of file" and self.spec.loop:
                continue  # a looping file starts again without counting as lost
            self._status.down(reason)
            self.counters.reconnects += 1
            self._stop.wait(backoff)

    def _read(self, cap: cv2.VideoCapture) -> str | None:
        """Decode until the stream fails; returns why, or None when stopping."""
        native = _native_fps(cap)
        started = time.monotonic()
        index = 0
        next_due = 0.0
        decoding = _Timed(self.counters)
        while not self._stop.is_set():
            with decoding:
                grabbed = cap.grab()
            if not grabbed:
                return "end of file" if self.spec.is_file else "read failed"
            index += 1
            self.counters.frames_read += 1
            self._status.up()
            if self.spec.is_file:  # play a file at its own speed, as a camera would send it
                ahead = started + index / native - time.monotonic()
                if ahead > 0:
                    self._stop.wait(ahead)
            now = time.monotonic()
            if now < next_due:
                continue
            with decoding:
                ok, image = cap.retrieve()
            if not ok:
                return "decode failed"
            next_due = now + self.interval * 0.9  # a little early, so jitter does not halve fps
            with self._lock:
                if self._latest is not None:
                    self.counters.frames_dropped += 1
                self._latest = Frame(image, time.time())
        return None


@dataclass
class ReplaySource:
    """A file stepped through at the analysis rate, as fast as the analyser asks."""

    spec: SourceSpec
    fps: float
    counters: CaptureCounters = field(default_factory=CaptureCounters)
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self._status = _Status()
        self._cap = _open_capture(self.spec)
        self._index = 0
        if self._cap is None:
            self._status.down("cannot open file")
            self._native = 25.0
        else:
            self._status.up()
            self._native = _native_fps(self._cap)
        self._step = max(1, round(self._native / self.fps))
        self.ended = False

    @property
    def state(self) -> str:
        return "ended" if self.ended else self._status.state

    def next_frame(self) -> Frame | None:
        if self._cap is None or self.ended:
            return None
        with _Timed(self.counters):
            return self._read_next(self._cap)

    def _read_next(self, cap: cv2.VideoCapture) -> Frame | None:
        for _ in range(self._step - 1):  # decode but do not convert the frames we skip
            if not cap.grab():
                return self._end()
            self._index += 1
            self.counters.frames_read += 1
        ok, image = cap.read()
        if not ok:
            return self._end()
        self._index += 1
        self.counters.frames_read += 1
        return Frame(image, self.started + self._index / self._native)

    def _end(self) -> Frame | None:
        assert self._cap is not None
        if self.spec.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self.started += self._index / self._native
            self._index = 0
            return self._read_next(self._cap)  # inside next_frame's timing already
        self.ended = True
        return None

    def changes(self) -> list[StreamChange]:
        return self._status.drain()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
