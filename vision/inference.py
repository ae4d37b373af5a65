"""Detection as tensor work a GPU can be fed with: the same boxes as Ultralytics' `predict`,
without its per-image Python.

`predict` letterboxes each image with OpenCV, runs one model call per image of a fixed-batch
export, suppresses overlaps per image and builds a Results object per image: 2-7 ms of CPU an
image before the model counts, a ceiling of a few hundred images a second per process however
fast the GPU. Here the frames are moved to the inference device (on CUDA packed into one
pinned buffer, kept from batch to batch, and sent in one copy), letterboxed and normalised
there as tensor operations, sent through the model as one batch (PyTorch weights, a `.yaml`,
or an OpenVINO export with its batch freed), and filtered by one `batched_nms` for the whole
batch, with one copy back to the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import yaml

from vision.detector import Detections
from vision.dynamic_batch import free_batch
from vision.packing import pack, packed_size

PAD = 114 / 255  # Ultralytics' letterbox grey


@dataclass(frozen=True, slots=True)
class Placement:
    """How one frame sits on the letterboxed canvas: scaled to (new_w, new_h), then offset."""

    new_w: int
    new_h: int
    pad_x: int
    pad_y: int
    width: int
    height: int

    @property
    def gain_x(self) -> float:
        return self.new_w / self.width

    @property
    def gain_y(self) -> float:
        return self.new_h / self.height


def scaled_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(new_w, new_h): the frame shrunk or grown to fit `size`, as Ultralytics rounds it."""
    gain = min(size / height, size / width)
    return max(round(width * gain), 1), max(round(height * gain), 1)


def placement(height: int, width: int, size: int, canvas: tuple[int, int]) -> Placement:
    """Where Ultralytics' LetterBox puts the frame, so that boxes land where `predict` puts
    them: scaled to fit `size`, centred on a canvas of (height, width)."""
    new_w, new_h = scaled_size(height, width, size)
    pad_x = round((canvas[1] - new_w) / 2 - 0.1)
    pad_y = round((canvas[0] - new_h) / 2 - 0.1)
    return Placement(new_w, new_h, pad_x, pad_y, width, height)


def canvas_for(images: list[np.ndarray], size: int, stride: int | None) -> tuple[int, int]:
    """The batch's (height, width): the model's square, or, for a model that takes any shape,
    the smallest multiple of `stride` that holds every scaled frame (16:9 frames at 640 need
    640x384, not 640x640: 40 % less work)."""
    if stride is None:
        return (size, size)
    sizes = [scaled_size(image.shape[0], image.shape[1], size) for image in images]
    high, wide = max(h for _, h in sizes), max(w for w, _ in sizes)
    return (math.ceil(high / stride) * stride, math.ceil(wide / stride) * stride)


class Staging:
    """One host buffer a batch of frames is packed into, then sent to the device in one copy.
    On CUDA it is pinned (the copy runs by DMA, not through a pageable bounce buffer) and kept
    from batch to batch, grown when a batch is larger: pinning memory for each frame costs
    more than copying the frame."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pinned = device.type == "cuda"
        self.host = torch.empty(0, dtype=torch.uint8)
        self.copied: Any = None  # the last copy's CUDA event: the buffer is reused after it

    def send(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        """The frames on the device as (height, width, 3) uint8 tensors, in one transfer."""
        if self.copied is not None:
            self.copied.synchronize()
        size = packed_size(images)
        if self.host.numel() < size:
            self.host = torch.empty(size * 5 // 4, dtype=torch.uint8, pin_memory=self.pinned)
        offsets = pack(images, self.host.numpy())
        sent = self.host[:size].to(self.device, non_blocking=True)
        if self.pinned:
            self.copied = torch.cuda.Event()  # type: ignore[no-untyped-call]
            self.copied.record()
        return [
            sent[offset : offset + image.nbytes].view(image.shape)
            for image, offset in zip(images, offsets, strict=True)
        ]


def letterbox(
    images: list[np.ndarray],
    size: int,
    device: torch.device,
    half: bool = False,
    stride: int | None = None,
    staging: Staging | None = None,
) -> tuple[torch.Tensor, list[Placement]]:
    """BGR uint8 frames as one normalised RGB batch (B, 3, height, width) on `device`; square
    unless `stride` allows the smallest canvas that holds them. With `staging`, the frames
    reach the device in one copy through it; without, each is used where it lies (the CPU)."""
    dtype = torch.float16 if half else torch.float32
    canvas = canvas_for(images, size, stride)
    batch = torch.full((len(images), 3, *canvas), PAD, dtype=dtype, device=device)
    placements = [placement(image.shape[0], image.shape[1], size, canvas) for image in images]
    pixels = staging.send(images) if staging else [torch.from_numpy(i).to(device) for i in images]
    for i, (hwc, where) in enumerate(zip(pixels, placements, strict=True)):
        chw = hwc.permute(2, 0, 1).flip(0)  # BGR → RGB
        scaled = F.interpolate(
            chw[None].to(dtype) / 255,
            size=(where.new_h, where.new_w),
            mode="bilinear",
            align_corners=False,
        )
        rows = slice(where.pad_y, where.pad_y + where.new_h)
        columns = slice(where.pad_x, where.pad_x + where.new_w)
        batch[i, :, rows, columns] = scaled[0]
    return batch, placements


def decode(
    raw: torch.Tensor, placements: list[Placement], *, conf: float, iou: float, max_det: int = 300
) -> list[Detections]:
    """Model output (B, 4 + classes, anchors: centre x, y, width, height, class scores) to
    each image's detections, suppressed by one `batched_nms` over the whole batch."""
    boxes_cxcywh, scores = raw[:, :4].transpose(1, 2), raw[:, 4:].transpose(1, 2)
    best, cls = scores.max(dim=2)
    image, anchor = torch.nonzero(best > conf, as_tuple=True)
    cx, cy, w, h = boxes_cxcywh[image, anchor].float().unbind(1)
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    score, label = best[image, anchor].float(), cls[image, anchor]
    groups = image * raw.shape[1] + label  # one image's class never suppresses another's
    kept = torchvision.ops.batched_nms(boxes, score, groups, iou)
    columns = torch.cat([boxes, score[:, None], label[:, None].float(), image[:, None].float()], 1)
    host = columns[kept].cpu().numpy()  # one copy back for the whole batch
    return [_placed(host, n, where, max_det) for n, where in enumerate(placements)]


def _placed(host: np.ndarray, n: int, where: Placement, max_det: int) -> Detections:
    """Image `n`'s rows of (x1, y1, x2, y2, score, label, image), in its frame's pixels."""
    boxes, score, label, image = host[:, :4], host[:, 4], host[:, 5], host[:, 6]
    mine = np.flatnonzero(image == n)[:max_det]  # batched_nms returns by falling score
    if len(mine) == 0:
        return Detections.empty()
    xyxy = boxes[mine].copy()
    xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - where.pad_x) / where.gain_x
    xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - where.pad_y) / where.gain_y
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, where.width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, where.height)
    return Detections(
        xyxy.astype(np.float32), score[mine].astype(np.float32), label[mine].astype(int)
    )


class Runner(Protocol):
    """A model forward pass over a letterboxed batch."""

    names: dict[int, str]
    stride: int | None  # None: the input is the model's fixed square

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


class OpenVinoRunner:
    """An OpenVINO IR folder, opened with a free batch (vision.dynamic_batch) so that a batch
    is one call. An IR whose batch cannot be freed runs a batch as overlapping requests on
    the CPU's streams instead."""

    def __init__(self, folder: Path) -> None:
        import openvino as ov

        core = ov.Core()
        xml = next(folder.glob("*.xml"))
        model = core.read_model(xml)
        self.fixed_batch = not free_batch(model)
        if self.fixed_batch:
            model = core.read_model(xml)
        # One call over every core (the latency hint) answers a frame or a freed batch
        # fastest; a fixed-batch IR needs the throughput hint's parallel requests for a batch.
        self.latency = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        self.parallel = (
            core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
            if self.fixed_batch
            else None
        )
        self.stride: int | None = None
        meta = yaml.safe_load((folder / "metadata.yaml").read_text(encoding="utf-8"))
        self.names: dict[int, str] = {int(k): str(v) for k, v in meta["names"].items()}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        inputs = batch.cpu().numpy()
        if self.parallel is None or len(inputs) == 1:
            return torch.from_numpy(np.asarray(self.latency(inputs)[0]))
        return torch.from_numpy(self._overlapped(self.parallel, inputs))

    @staticmethod
    def _overlapped(compiled: Any, inputs: np.ndarray) -> np.ndarray:
        import openvino as ov

        outputs: list[np.ndarray] = [np.empty(0)] * len(inputs)
        queue = ov.AsyncInferQueue(compiled)

        def done(request: Any, index: int) -> None:
            outputs[index] = np.array(request.get_output_tensor(0).data)

        queue.set_callback(done)
        for index, image in enumerate(inputs):
            queue.start_async({0: image[None]}, index)
        queue.wait_all()
        return np.concatenate(outputs)


class TorchRunner:
    """Ultralytics PyTorch weights (`.pt`), or an untrained network from its `.yaml` (for
    throughput where no weights are at hand): any batch in one forward pass."""

    def __init__(self, path: str, device: torch.device, half: bool) -> None:
        from ultralytics.models import YOLO

        network: Any = YOLO(path, task="detect").model
        network = network.fuse().to(device).eval()
        self.module: torch.nn.Module = network.half() if half else network
        self.names: dict[int, str] = {int(k): str(v) for k, v in network.names.items()}
        self.stride: int | None = int(network.stride.max())

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.module(batch)
        first = out[0] if isinstance(out, (list, tuple)) else out
        assert isinstance(first, torch.Tensor)
        return first


class TensorDetector:
    """The Detector interface (`names`, `imgsz`, `detect`) over the tensor path."""

    def __init__(
        self,
        model_path: str,
        *,
        device: str = "cpu",
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int = 640,
    ) -> None:
        self.device = torch.device(device)
        self.half = self.device.type == "cuda"
        self.conf, self.iou, self.imgsz = conf, iou, imgsz
        path = Path(model_path)
        self.runner: Runner
        if path.is_dir():
            self.runner = OpenVinoRunner(path)
            self.half = False  # the IR takes float32 from the host
        elif path.suffix in (".pt", ".yaml"):
            self.runner = TorchRunner(model_path, self.device, self.half)
        else:
            raise ValueError(f"the tensor path runs OpenVINO folders, .pt and .yaml: {model_path}")
        self.names = self.runner.names
        self.staging = Staging(self.device) if self.device.type == "cuda" else None

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        batch, placements = letterbox(
            images, self.imgsz, self.device, self.half, self.runner.stride, self.staging
        )
        return decode(self.runner(batch), placements, conf=self.conf, iou=self.iou)
