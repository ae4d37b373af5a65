"""Object detection with Ultralytics: frames from many cameras in one batched call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(slots=True)
class Detections:
    """One frame's detections in pixels."""

    xyxy: np.ndarray  # (N, 4) float32
    conf: np.ndarray  # (N,) float32
    cls: np.ndarray  # (N,) int
    keypoints: np.ndarray | None = None  # (N, 17, 3) x, y, visibility for a pose model

    def __len__(self) -> int:
        return len(self.conf)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))


class Model(Protocol):
    """What the engine needs of a detector: its labels, its input size and batched detection
    (Ultralytics' `predict` here, or the tensor path of vision.inference)."""

    names: dict[int, str]
    imgsz: int

    def detect(self, images: list[np.ndarray]) -> list[Detections]: ...


class Detector:
    """An Ultralytics model (.pt, OpenVINO folder, .onnx, TensorRT .engine) run on batches."""

    def __init__(
        self,
        model_path: str,
        *,
        task: str = "detect",
        device: str = "cpu",
        conf: float = 0.25,
        imgsz: int = 640,
    ) -> None:
        from ultralytics.models import YOLO  # heavy: only workers import it

        self.model: Any = YOLO(model_path, task=task)
        self.task = task
        self.device = device
        self.conf = conf
        self.imgsz = imgsz
        self.half = device.startswith("cuda")
        self.names: dict[int, str] = {int(k): str(v) for k, v in self.model.names.items()}

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Detections for each image, in order; one inference call for the whole list."""
        if not images:
            return []
        options: dict[str, Any] = {"half": True} if self.half else {}
        results = self.model.predict(
            images, conf=self.conf, imgsz=self.imgsz, device=self.device, verbose=False, **options
        )
        return [_detections(r) for r in results]


def _detections(result: Any) -> Detections:
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return Detections.empty()
    keypoints = None
    if getattr(result, "keypoints", None) is not None and result.keypoints.data is not None:
        keypoints = result.keypoints.data.cpu().numpy().astype(np.float32)
    return Detections(
        xyxy=boxes.xyxy.cpu().numpy().astype(np.float32),
        conf=boxes.conf.cpu().numpy().astype(np.float32),
        cls=boxes.cls.cpu().numpy().astype(int),
        keypoints=keypoints,
    )
