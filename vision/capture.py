"""Frame sources: a camera stream read in its own thread, handing out only the newest frame.

A live source (rtsp, http, or a file played at its own speed) reads the stream continuously so
that the analyser never falls behind it, and decodes only the frames the analysis rate wants
(vision.decoding); it counts the frames the analyser never took. A replayed file
(`realtime=0`) instead steps through the media at the analysis rate as fast as the analyser
asks, stamping frames with media time: tests and benchmarks get the same frames on every run.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from hub.backoff import Backoff
from vision.decoding import DecodeCounters, DecoderChoice, Schedule, Stream, StreamError

RECONNECT = Backoff(first_s=1.0, max_s=30.0)


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


class FrameSource(Protocol):
    counters: DecodeCounters

    @property
    def state(self) -> str: ...

    def next_frame(self) -> Frame | None: ...

    def changes(self) -> list[StreamChange]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Where frames come from and how to read them, parsed from a camera's `stream_url`."""

    target: str  # what FFmpeg opens
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


GB_MEDIA = "gb28181://"


class WaitingForGbMedia:
    """A GB/T 28181 catalog camera (`gb28181://<channel id>`): its media will come over GB/T
    28181 (INVITE and RTP, a later step), so until then it has no frames, and says so in its
    state rather than as a lost stream: no `stream_lost`, no offline incident."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.counters = DecodeCounters()

    @property
    def state(self) -> str:
        return "waiting_for_gb_media"

    def next_frame(self) -> Frame | None:
        return None

    def changes(self) -> list[StreamChange]:
        return []

    def close(self) -> None:
        pass


def open_source(url: str, fps: float, decoder: DecoderChoice = "auto") -> FrameSource:
    """The right source for a stream URL; never raises for a bad stream (it reports it lost)."""
    if url.startswith(GB_MEDIA):
        return WaitingForGbMedia(url)
    spec = SourceSpec.parse(url)
    if spec.is_file and not spec.realtime:
        return ReplaySource(spec, fps, decoder)
    return LiveSource(spec, fps, decoder)


def _open(spec: SourceSpec, decoder: DecoderChoice) -> Stream:
    if spec.is_file and not Path(spec.target).is_file():
        raise StreamError("cannot open stream: no such file")
    return Stream(spec.target, decoder)


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

    def __init__(self, spec: SourceSpec, fps: float, decoder: DecoderChoice = "auto") -> None:
        self.spec = spec
        self.fps = fps
        self.decoder = decoder
        self.counters = DecodeCounters()
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
        self._thread.join(timeout=10)

    def _run(self) -> None:
        retries = RECONNECT.retries()
        while not self._stop.is_set():
            try:
                stream = _open(self.spec, self.decoder)
            except StreamError as e:
                self._status.down(str(e))
                self._stop.wait(retries.failed())
                self.counters.reconnects += 1
                continue
            retries.succeeded()
            try:
                reason = self._read(stream)
            finally:
                stream.close()
            if reason is None:  # asked to stop
                return
            if reason == "end of file" and self.spec.loop:
                continue  # a looping file starts again without counting as lost
            self._status.down(reason)
            self.counters.reconnects += 1
            self._stop.wait(retries.next_delay)  # the first wait: it was streaming until now

    def _read(self, stream: Stream) -> str | None:
        """Read until the stream fails; returns why, or None when stopping."""
        self._status.up()
        schedule = Schedule(self.fps, stream.native_fps)
        pace = _Pace(self._stop) if self.spec.is_file else None
        try:
            for _, image in stream.frames(schedule, self.counters, pace):
                if self._stop.is_set():
                    return None
                with self._lock:
                    if self._latest is not None:
                        self.counters.frames_dropped += 1
                    self._latest = Frame(image, time.time())
        except StreamError as e:
            return str(e)
        if self._stop.is_set():
            return None
        return "end of file" if self.spec.is_file else "read failed: the stream ended"


class _Pace:
    """Holds a file back to its own speed, as a camera would send it."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.origin: tuple[float, float] | None = None  # (stream seconds, monotonic)

    def __call__(self, t: float) -> None:
        if self.origin is None:
            self.origin = (t, time.monotonic())
        ahead = self.origin[1] + (t - self.origin[0]) - time.monotonic()
        if ahead > 0:
            self.stop.wait(ahead)


class ReplaySource:
    """A file stepped through at the analysis rate, as fast as the analyser asks."""

    def __init__(self, spec: SourceSpec, fps: float, decoder: DecoderChoice = "auto") -> None:
        self.spec, self.fps, self.decoder = spec, fps, decoder
        self.counters = DecodeCounters()
        self.started = time.time()  # media time 0 of the first pass
        self.ended = False
        self._status = _Status()
        self._frames = self._pass()

    @property
    def state(self) -> str:
        return "ended" if self.ended else self._status.state

    def next_frame(self) -> Frame | None:
        if self.ended:
            return None
        frame = next(self._frames, None)
        if frame is None and self._status.state != "lost":
            self.ended = True  # a file that cannot be opened or read is lost, not over
        return frame

    def _pass(self) -> Generator[Frame]:
        """Frames of the file, once or (looping) over and over, in media time."""
        offset = 0.0
        while True:
            try:
                stream = _open(self.spec, self.decoder)
            except StreamError as e:
                self._status.down(str(e))
                return
            self._status.up()
            last = 0.0
            try:
                schedule = Schedule(self.fps, stream.native_fps)
                for at, image in stream.frames(schedule, self.counters):
                    last = at
                    yield Frame(image, self.started + offset + at)
            except StreamError as e:
                self._status.down(str(e))
                return
            finally:
                stream.close()
            if not self.spec.loop:
                return
            offset += last + 1 / stream.native_fps

    def changes(self) -> list[StreamChange]:
        return self._status.drain()

    def close(self) -> None:
        self._frames.close()
