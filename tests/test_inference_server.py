"""One inference process serving several workers: the boxes are those the model gives in
the worker's own process, frames from different workers share a batch, a worker outlives a
server restart, and a client without the key is turned away."""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Iterator
from multiprocessing.connection import Client
from pathlib import Path

import numpy as np
import pytest

from tests.test_inference import clip_frames, matched
from tests.vision_media import POSE, YOLO, require_media
from vision.detector import Detections, Detector
from vision.inference import TensorDetector
from vision.inference_server import (
    Address,
    InferenceServer,
    InferenceUnavailable,
    RemoteModel,
    connect,
    remote_models,
)
from vision.pipeline import Models

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md


@pytest.fixture(scope="module")
def models() -> Models:
    require_media()
    return Models(TensorDetector(YOLO), None, Detector(POSE, task="pose"))


@pytest.fixture
def address(tmp_path: Path) -> Address:
    return Address(str(tmp_path / "inference.sock"), b"k" * 32)


class Running:
    def __init__(self, models: Models, address: Address, gather_s: float) -> None:
        self.server = InferenceServer(models, address, gather_s=gather_s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.server.serve, args=(self.stop,), daemon=True)
        self.thread.start()
        connect(address).close()  # listening

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.fixture
def served(models: Models, address: Address) -> Iterator[Running]:
    running = Running(models, address, gather_s=0.05)
    yield running
    running.close()


def client(address: Address, frames: list[np.ndarray], start: threading.Barrier,
           answers: mp.Queue) -> None:  # type: ignore[type-arg]  # fmt: skip
    """A worker process: the server's models as Models, frames sent a few at a time."""
    served = remote_models(address)
    start.wait(timeout=60)  # both workers ready: their frames reach the server together
    found: list[Detections] = []
    for i in range(0, len(frames), 2):
        found += served.detector.detect(frames[i : i + 2])
    assert served.pose is not None and served.fire is None
    poses = served.pose.detect(frames[:2])
    answers.put((found, poses))


def same(ours: list[Detections], theirs: list[Detections]) -> bool:
    """The same boxes, in any order (ties in score may swap), for each frame in order; a box
    at the score threshold may come and go with the batch it ran in (float sums differ)."""
    if len(ours) != len(theirs):
        return False
    hits, total = matched(ours, theirs)
    back, other = matched(theirs, ours)
    return hits >= 0.98 * total and back >= 0.98 * other


def test_two_workers_get_their_own_boxes_from_shared_batches(
    models: Models, served: Running, address: Address
) -> None:
    frames = clip_frames(every=20, per_clip=4)  # 16 frames, 640x360 and 1280x720
    context = mp.get_context("spawn")
    answers, start = context.Queue(), context.Barrier(2)
    halves = [frames[::2], frames[1::2]]
    workers = [context.Process(target=client, args=(address, half, start, answers))
               for half in halves]  # fmt: skip
    for worker in workers:
        worker.start()
    results = [answers.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)  # a loaded machine ends a spawned process slowly
        assert worker.exitcode == 0
    local = {id(h): models.detector.detect(h) for h in halves}
    for found, poses in results:
        assert any(same(found, local[id(h)]) for h in halves)  # each its own, in its order
        assert any(same(poses, models.pose.detect(h[:2])) for h in halves if models.pose)
    stats = served.server.stats
    assert stats.by_role["detector"] == len(frames) and stats.by_role["pose"] == 4
    assert stats.requests > stats.batches  # the two workers' frames went through together


def test_a_worker_outlives_a_server_restart(models: Models, address: Address) -> None:
    frames = clip_frames(every=60, per_clip=1)
    first = Running(models, address, gather_s=0.0)
    remote = remote_models(address).detector
    assert isinstance(remote, RemoteModel)
    expected = remote.detect(frames)
    first.close()
    Path(address.path).unlink(missing_ok=True)
    with pytest.raises(InferenceUnavailable):
        remote.detect(frames)  # nobody serves: a clear error, not a hang
    second = Running(models, address, gather_s=0.0)
    try:
        assert same(remote.detect(frames), expected)  # connected again by itself
    finally:
        second.close()
        remote.close()


def test_a_client_without_the_key_is_turned_away(served: Running, address: Address) -> None:
    with pytest.raises(mp.AuthenticationError):
        Client(address.path, "AF_UNIX", authkey=b"wrong" * 8)
    remote = remote_models(address).detector
    assert len(remote.detect(clip_frames(every=60, per_clip=1))) == 4  # still serving


def test_a_growing_batch_gets_a_new_segment_and_a_bad_request_an_answer(
    models: Models, served: Running, address: Address
) -> None:
    remote = remote_models(address).detector
    frames = clip_frames(every=60, per_clip=1)
    assert len(remote.detect(frames[:1])) == 1
    many = frames * 6  # far more than the first segment holds
    assert same(remote.detect(many), models.detector.detect(many))
    conn = connect(address)
    conn.send(("detect", "detector", [(0, 720, 1280)]))  # no segment handed over
    assert conn.recv()[0] == "error"
    conn.send(("reboot",))
    assert conn.recv()[0] == "error"
    conn.close()
    assert len(remote.detect(frames)) == len(frames)  # the server is still serving
