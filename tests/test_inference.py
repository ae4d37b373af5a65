"""The tensor inference path against Ultralytics' own `predict`, on the shared clips and the
shipped weights; its one suppression for a whole batch; a batch in one forward pass."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import openvino
import pytest
import torch

from bench.vision_quality import expectations, run_clip
from hub.settings import Settings
from tests.vision_media import MEDIA, POSE, YOLO, require_media
from vision.detector import Detections, Detector
from vision.inference import (
    OpenVinoRunner,
    Staging,
    TensorDetector,
    TorchRunner,
    decode,
    letterbox,
    placement,
)
from vision.pipeline import Models
from vision.tracking import iou
from vision.worker import load_models

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

CLIPS = ["pedestrians_crosswalk.mp4", "pedestrians_overhead.avi", "fire_smoke_cctv.mp4",
         "fall_indoor.mp4"]  # fmt: skip


def clip_frames(every: int = 15, per_clip: int = 4) -> list[np.ndarray]:
    frames = []
    for clip in CLIPS:
        cap = cv2.VideoCapture(str(MEDIA / clip))
        for index in range(every * per_clip):
            ok, frame = cap.read()
            assert ok
            if index % every == 0:
                frames.append(frame)
        cap.release()
    return frames


def matched(found: list[Detections], against: list[Detections]) -> tuple[int, int]:
    """(boxes of `found` with a box of the same class in `against` at IoU >= 0.9, all)."""
    hits = total = 0
    for mine, theirs in zip(found, against, strict=True):
        for k in range(len(mine)):
            total += 1
            same = theirs.cls == mine.cls[k]
            hits += bool(same.any() and iou(mine.xyxy[k], theirs.xyxy[same]).max() >= 0.9)
    return hits, total


def test_the_tensor_path_finds_the_boxes_predict_finds() -> None:
    require_media()
    frames = clip_frames()  # 640x360 and 1280x720, people, smoke, an office
    theirs = Detector(YOLO).detect(frames)
    ours = TensorDetector(YOLO).detect(frames)
    hits, total = matched(theirs, ours)
    assert total >= 150 and hits >= 0.95 * total, (hits, total)
    hits, total = matched(ours, theirs)
    assert hits >= 0.95 * total, (hits, total)


def test_one_suppression_for_the_batch_keeps_images_and_classes_apart() -> None:
    wheres = [placement(360, 640, 640, (640, 640)), placement(720, 1280, 640, (640, 640))]
    raw = torch.zeros((2, 4 + 3, 4))
    for image in range(2):  # in both images: two overlapping people and a dog on top of them
        raw[image, :4, 0] = torch.tensor([320.0, 320.0, 40.0, 80.0])
        raw[image, :4, 1] = torch.tensor([322.0, 321.0, 40.0, 80.0])
        raw[image, :4, 2] = torch.tensor([320.0, 320.0, 40.0, 80.0])
        raw[image, :4, 3] = torch.tensor([100.0, 100.0, 10.0, 10.0])
        raw[image, 4 + 0, 0], raw[image, 4 + 0, 1] = 0.9, 0.6  # person, person
        raw[image, 4 + 2, 2] = 0.8  # dog
        raw[image, 4 + 1, 3] = 0.1  # below the threshold
    found = decode(raw, wheres, conf=0.25, iou=0.7)
    for dets, where in zip(found, wheres, strict=True):
        assert sorted(dets.cls.tolist()) == [0, 2]
        person = dets.xyxy[dets.cls == 0][0]
        expected = (np.array([300.0, 280.0, 340.0, 360.0]) - [where.pad_x, where.pad_y] * 2) / (
            [where.gain_x, where.gain_y] * 2
        )
        assert person == pytest.approx(expected, abs=1e-3)
    assert found[0].xyxy[0][1] == pytest.approx(280 - 140)  # 640x360 sits 140 rows down


def test_letterbox_places_frames_as_ultralytics_does() -> None:
    image = np.zeros((360, 640, 3), np.uint8)
    image[:, :, 2] = 255  # red in BGR
    batch, [where] = letterbox([image], 640, torch.device("cpu"))
    assert (where.pad_x, where.pad_y) == (0, 140)
    assert batch.shape == (1, 3, 640, 640)
    assert batch[0, :, 0, 0].tolist() == pytest.approx([114 / 255] * 3)  # the grey border
    assert batch[0, :, 320, 320].tolist() == pytest.approx([1.0, 0.0, 0.0])  # RGB, scaled


def test_a_network_that_takes_any_shape_gets_the_smallest_canvas() -> None:
    wide, tall = np.zeros((360, 640, 3), np.uint8), np.zeros((640, 480, 3), np.uint8)
    batch, [where] = letterbox([wide], 640, torch.device("cpu"), stride=32)
    assert batch.shape == (1, 3, 384, 640) and (where.pad_x, where.pad_y) == (0, 12)
    mixed, places = letterbox([wide, tall], 640, torch.device("cpu"), stride=32)
    assert mixed.shape == (2, 3, 640, 640)
    assert [(p.pad_x, p.pad_y) for p in places] == [(0, 140), (80, 0)]


def test_a_batch_goes_through_the_network_in_one_pass_as_single_frames_would() -> None:
    """A network built from yolov8n.yaml (no weights needed): any batch size in one call."""
    require_media()
    runner = TorchRunner("yolov8n.yaml", torch.device("cpu"), half=False)
    frames = clip_frames(every=30, per_clip=1)
    batch, _ = letterbox(frames, 640, torch.device("cpu"), stride=runner.stride)
    together = runner(batch)
    alone = torch.cat([runner(batch[i : i + 1]) for i in range(len(frames))])
    assert batch.shape[2:] == (384, 640)  # every clip is 16:9
    assert together.shape[:2] == (len(frames), 84)
    assert torch.allclose(together, alone, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("model", [YOLO, POSE], ids=["detect", "pose"])
def test_a_fixed_batch_export_takes_a_batch_in_one_call_with_each_answer_unchanged(
    model: str,
) -> None:
    """The shipped int8 IRs were exported with a batch of 1: freed, a batch of 5 frames is one
    call, and every frame's output is what the export answers for it alone, bit for bit."""
    require_media()
    runner = OpenVinoRunner(Path(model))
    assert not runner.fixed_batch
    frames = clip_frames(every=40, per_clip=2)[:5]
    batch, _ = letterbox(frames, 640, torch.device("cpu"))
    together = runner(batch)
    as_read = openvino.Core().compile_model(next(Path(model).glob("*.xml")), "CPU")
    alone = np.concatenate([as_read(image[None])[0] for image in batch.numpy()])
    assert together.shape[0] == 5 and np.array_equal(together.numpy(), alone)


def test_the_engine_runs_on_the_tensor_path() -> None:
    """The fall clip through the engine with the tensor detector: the fall, on time."""
    require_media()
    truth = expectations()["fall"]
    assert truth.fall_at is not None
    models = Models(TensorDetector(YOLO), None, Detector(POSE, task="pose"))
    falls = [t for t, _ in run_clip(models, MEDIA, truth, 2.0).of("fall")]
    assert len(falls) == 1 and truth.fall_on_time(falls[0]), falls


def test_the_worker_takes_the_tensor_path_when_asked() -> None:
    require_media()
    settings = Settings(yolo_model=YOLO, vision_inference="tensor", _env_file=None)  # type: ignore[call-arg]
    assert isinstance(load_models(settings).detector, TensorDetector)
    default = Settings(yolo_model=YOLO, _env_file=None)  # type: ignore[call-arg]
    assert isinstance(load_models(default).detector, Detector)


def test_frames_reach_the_device_in_one_copy_through_a_reused_buffer() -> None:
    """The staging path (what CUDA uses) gives the batch the direct path gives, and keeps
    its buffer from batch to batch unless a batch needs a larger one."""
    require_media()
    cpu = torch.device("cpu")
    staging = Staging(cpu)
    frames = clip_frames(every=60, per_clip=1)  # 640x360 and 1280x720
    direct, _ = letterbox(frames, 640, cpu)
    staged, _ = letterbox(frames, 640, cpu, staging=staging)
    assert torch.equal(direct, staged)
    buffer = staging.host.data_ptr()
    letterbox(frames[:2], 640, cpu, staging=staging)
    assert staging.host.data_ptr() == buffer  # smaller: the same memory
    letterbox(frames * 2, 640, cpu, staging=staging)
    assert staging.host.numel() >= 2 * sum(f.nbytes for f in frames)
