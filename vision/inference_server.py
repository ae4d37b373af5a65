"""One inference process per GPU, fed by every vision worker on the machine.

Each worker process holding its own models holds its own CUDA context (hundreds of MiB of
GPU memory each) and sends the GPU small batches of its own cameras. Here one process holds
the models and serves all workers: a worker writes its frames into a shared-memory segment
of its own and sends only where they lie; the server gathers what every worker sent within
a few milliseconds into one batch per model, runs it, and answers each worker with its
detections. Frames cross no pipe and are not pickled; the only copy is the worker's write
into the segment. A segment is an anonymous memfd whose descriptor the worker passes over the
socket: it has no name to leak when a worker is killed, and the kernel frees it when both
sides have let go.

The wire protocol (multiprocessing.connection over a Unix socket, authenticated with a key
the parent hands its children): `("segment", size)` followed by the descriptor; `("describe",
role)` → `(names, imgsz)` or None; `("detect", role, [(offset, height, width), ...])` →
`[Detections, ...]` or `("error", why)`; `("stats",)` → the server's counts.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from multiprocessing.reduction import recv_handle, send_handle
from typing import Any

import numpy as np

from hub.logs import get_logger
from vision.detector import Detections, Model
from vision.packing import pack, packed_size
from vision.pipeline import Models

log = get_logger(__name__)
ROLES = ("detector", "fire", "pose")
GATHER_S = 0.004  # how long a batch waits for other workers' frames once one has come
MAX_BATCH = 256  # frames per model call


@dataclass(frozen=True, slots=True)
class Address:
    """Where the server listens and the key its clients prove they hold."""

    path: str
    authkey: bytes


@dataclass
class _Request:
    conn: Connection
    role: str
    images: list[np.ndarray]


@dataclass
class ServerStats:
    batches: int = 0
    images: int = 0
    requests: int = 0
    by_role: dict[str, int] = field(default_factory=dict)


class InferenceServer:
    """Serves `models` to any number of clients until `stop` is set."""

    def __init__(
        self,
        models: Models,
        address: Address,
        *,
        gather_s: float = GATHER_S,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.models = {role: getattr(models, role) for role in ROLES}
        self.address, self.gather_s, self.max_batch = address, gather_s, max_batch
        self.stats = ServerStats()
        self._pending: queue.Queue[_Request] = queue.Queue()
        self._send_lock = threading.Lock()
        self._clients: set[Connection] = set()

    def serve(self, stop: threading.Event) -> None:
        with Listener(self.address.path, "AF_UNIX", authkey=self.address.authkey) as listener:
            threading.Thread(target=self._accept, args=(listener, stop), daemon=True).start()
            log.info(
                "inference server listening",
                path=self.address.path,
                pid=os.getpid(),
                models=[r for r, m in self.models.items() if m],
            )
            try:
                while not stop.is_set():
                    self._run_batches()
            finally:
                self._hang_up()

    def _hang_up(self) -> None:
        """Every client sees the server gone (and connects again to the next one) instead of
        waiting on an answer that will not come."""
        with self._send_lock:
            for conn in list(self._clients):
                with contextlib.suppress(OSError):
                    socket.socket(fileno=os.dup(conn.fileno())).shutdown(socket.SHUT_RDWR)

    def _accept(self, listener: Listener, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn = listener.accept()
            except (OSError, EOFError, AuthenticationError):  # a wrong key, a client gone
                continue
            with self._send_lock:
                self._clients.add(conn)
            threading.Thread(target=self._serve_client, args=(conn,), daemon=True).start()

    def _serve_client(self, conn: Connection) -> None:
        """Answers a client's small questions here; queues its frames for the batcher."""
        segment: mmap.mmap | None = None
        try:
            while True:
                message = conn.recv()
                if message[0] == "segment":  # the old one goes when its last view does
                    segment = _mapped(recv_handle(conn), message[1])
                elif message[0] == "detect":
                    self._queue(conn, message, segment)
                elif message[0] == "describe":
                    model = self.models.get(message[1])
                    self._send(conn, None if model is None else (model.names, model.imgsz))
                elif message[0] == "stats":
                    self._send(conn, self.stats.__dict__.copy())
                else:
                    self._send(conn, ("error", f"unknown request {message[0]!r}"))
        except (EOFError, OSError):
            pass  # the worker went away
        finally:
            with self._send_lock:
                self._clients.discard(conn)
            conn.close()  # the segment is unmapped once the last view of it is gone

    def _queue(self, conn: Connection, message: tuple[Any, ...], segment: mmap.mmap | None) -> None:
        _, role, layout = message
        if self.models.get(role) is None or segment is None:
            self._send(conn, ("error", f"no {role} model on this server, or no segment"))
            return
        try:
            images = [
                np.ndarray((h, w, 3), np.uint8, buffer=segment, offset=off) for off, h, w in layout
            ]
        except (TypeError, ValueError) as e:  # frames said to lie outside the segment
            self._send(conn, ("error", f"bad frame layout: {e}"))
            return
        self._pending.put(_Request(conn, role, images))

    def _run_batches(self) -> None:
        """Waits for a request, gathers what else comes within `gather_s`, and runs one call
        per model over all of it."""
        try:
            first = self._pending.get(timeout=0.2)
        except queue.Empty:
            return
        gathered, count = [first], len(first.images)
        deadline = time.monotonic() + self.gather_s
        while count < self.max_batch and (left := deadline - time.monotonic()) > 0:
            try:
                more = self._pending.get(timeout=left)
            except queue.Empty:
                break
            gathered.append(more)
            count += len(more.images)
        for role in ROLES:
            mine = [r for r in gathered if r.role == role]
            if mine:
                self._run(role, mine)

    def _run(self, role: str, requests: list[_Request]) -> None:
        model = self.models[role]
        assert model is not None
        images = [image for r in requests for image in r.images]
        try:
            found = model.detect(images)
        except Exception as e:  # a model failure answers every waiting worker, not one
            log.exception("inference failed", role=role, images=len(images))
            for request in requests:
                self._send(request.conn, ("error", f"inference failed: {e}"))
            return
        self.stats.batches += 1
        self.stats.images += len(images)
        self.stats.requests += len(requests)
        self.stats.by_role[role] = self.stats.by_role.get(role, 0) + len(images)
        start = 0
        for request in requests:
            self._send(request.conn, found[start : start + len(request.images)])
            start += len(request.images)

    def _send(self, conn: Connection, answer: object) -> None:
        with self._send_lock, contextlib.suppress(OSError):
            conn.send(answer)


def _mapped(fd: int, size: int) -> mmap.mmap:
    try:
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)  # the mapping holds the memory; the descriptor is not needed


class InferenceUnavailable(RuntimeError):
    """The inference server cannot be reached or refused the request."""


class RemoteModel:
    """The Model interface over an inference server: frames go through this client's own
    shared-memory segment, one request (and so one use of the segment) at a time."""

    def __init__(self, address: Address, role: str, names: dict[int, str], imgsz: int) -> None:
        self.address, self.role, self.names, self.imgsz = address, role, names, imgsz
        self._conn: Connection | None = None
        self._segment: mmap.mmap | None = None
        self._fd = -1
        self._shared = False  # whether the server holds the current segment
        self._lock = threading.Lock()

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        with self._lock:
            layout = self._write(images)
            answer = self._ask(("detect", self.role, layout))
        if isinstance(answer, tuple) and answer and answer[0] == "error":
            raise InferenceUnavailable(str(answer[1]))
        assert isinstance(answer, list) and len(answer) == len(images)
        return answer

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._close_segment()

    def _write(self, images: list[np.ndarray]) -> list[tuple[int, int, int]]:
        """Each frame into the segment (a larger one made when too small); where each lies."""
        size = packed_size(images)
        if self._segment is None or len(self._segment) < size:
            self._close_segment()
            room = max(size * 2, 1 << 20)
            self._fd = os.memfd_create("shaobing-frames")
            os.ftruncate(self._fd, room)
            self._segment = mmap.mmap(self._fd, room)
            self._shared = False
        offsets = pack(images, np.frombuffer(self._segment, np.uint8))
        return [
            (offset, image.shape[0], image.shape[1])
            for image, offset in zip(images, offsets, strict=True)
        ]

    def _close_segment(self) -> None:
        if self._segment is not None:
            self._segment.close()
            os.close(self._fd)
            self._segment, self._fd = None, -1

    def _ask(self, message: tuple[Any, ...]) -> Any:
        """Sends and waits for the answer, connecting first (again, after a server restart)
        and handing the server the segment it does not hold yet."""
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn, self._shared = connect(self.address), False
                if not self._shared and self._segment is not None:
                    self._conn.send(("segment", len(self._segment)))
                    send_handle(self._conn, self._fd, 0)
                    self._shared = True
                self._conn.send(message)
                return self._conn.recv()
            except (EOFError, OSError) as e:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise InferenceUnavailable(f"inference server: {e}") from e
        raise AssertionError("unreachable")


def connect(address: Address, timeout_s: float = 10.0) -> Connection:
    """A connection to the server, waiting up to `timeout_s` for it to listen."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return Client(address.path, "AF_UNIX", authkey=address.authkey)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            if time.monotonic() >= deadline:
                raise InferenceUnavailable(f"no inference server at {address.path}") from e
            time.sleep(0.1)


def remote_models(address: Address) -> Models:
    """The server's models, as Models for an Analyser in this process."""
    conn = connect(address)
    try:
        found: dict[str, Model | None] = {}
        for role in ROLES:
            conn.send(("describe", role))
            described = conn.recv()
            found[role] = None if described is None else RemoteModel(address, role, *described)
    finally:
        conn.close()
    detector = found["detector"]
    if detector is None:
        raise InferenceUnavailable("the inference server has no detector")
    return Models(detector, found["fire"], found["pose"])
