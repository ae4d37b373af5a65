"""Where in a frame the detector looks: model-size regions instead of the whole frame.

Letterboxing a 1080p or 4K frame to the model's 640 pixels shrinks a person 50 pixels tall to
17 or 8, below what the model finds; a 16:9 frame also spends 44 % of the input on padding.
As in Frigate, the detector instead sees crops of the model's size around what moves and
what is tracked (merged where they overlap), with a full-frame pass now and then to find what
stands still; or, for a wide high view where small people are everywhere, a fixed grid of
overlapping tiles. Detections from overlapping crops are merged back into one set.

Which view needs tiles is measured, not set by hand: where the people the detector has been
finding would be shorter than `SMALL_PX` in the model's view of the whole frame, it sees
tiles sized so that they come to about `ZOOM_PX` (at least half the model's size), or, where
that is close to the frame's shorter side, tiles that span it: two where six would do (the
overhead clip at 1280x720, its people 86 pixels tall, in two tiles of 720; the same view at
640x360 in two of 360, each enlarged; a 1080p crowd of people 60 pixels tall in tiles of 436).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from vision.detector import Detections

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
EDGE_PX = 3  # a box this close to a crop's inner border was cut by it
SAME_OBJECT = 0.6  # boxes whose overlap covers this much of the smaller one are one object
SMALL_PX = 64  # people shorter than this in the model's input are found poorly
ZOOM_PX = 88  # tiles are sized to show the people about this tall to the model
MIN_PEOPLE = 5  # people a frame before a view is judged by them: a few far figures are no
# crowd


def whole(width: int, height: int) -> list[Rect]:
    return [(0, 0, width, height)]


def fits_model(width: int, height: int, size: int) -> bool:
    """A frame not much larger than the model's input gains nothing from crops."""
    return max(width, height) <= size * 1.25


def tiles(width: int, height: int, size: int, overlap: float) -> list[Rect]:
    """A grid of `size` squares covering the frame, neighbours overlapping by `overlap`."""
    return [
        (x, y, min(width, x + size), min(height, y + size))
        for y in _starts(height, size, overlap)
        for x in _starts(width, size, overlap)
    ]


def zoom_side(heights: Sequence[float], width: int, height: int, size: int) -> int | None:
    """The tile side (pixels) for a view whose people measure `heights` pixels, or None where
    they are tall enough in the model's view of the whole frame."""
    if not heights:
        return None
    typical = float(np.median(heights))
    if typical * size / max(width, height) >= SMALL_PX:
        return None
    side = max(size // 2, round(size * typical / ZOOM_PX))
    # Close to the frame's shorter side, tiles that span it: half as many or fewer, and the
    # people still shown at three quarters of ZOOM_PX or more.
    short = min(width, height)
    return short if 0.75 * short <= side <= short else side


def _starts(length: int, size: int, overlap: float) -> list[int]:
    if length <= size:
        return [0]
    count = math.ceil((length - size) / (size * (1 - overlap))) + 1
    step = (length - size) / (count - 1)
    return [round(i * step) for i in range(count)]


def around(boxes: Iterable[Rect], width: int, height: int, size: int) -> list[Rect]:
    """Squares of at least `size` centred on what the boxes hold and kept inside the frame.
    Boxes are grouped while a group still fits one square of `size`, so that no crop is
    shrunk to the model's input and small objects keep their pixels."""
    groups: list[Rect] = []
    for box in sorted(boxes):
        for i, group in enumerate(groups):
            joined = (
                min(group[0], box[0]),
                min(group[1], box[1]),
                max(group[2], box[2]),
                max(group[3], box[3]),
            )
            if max(joined[2] - joined[0], joined[3] - joined[1]) <= size / 1.2:
                groups[i] = joined
                break
        else:
            groups.append(box)
    return [_square(group, width, height, size) for group in groups]


def _square(box: Rect, width: int, height: int, size: int) -> Rect:
    x1, y1, x2, y2 = box
    side = min(max(size, round(max(x2 - x1, y2 - y1) * 1.2)), width, height)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(min(max(cx - side / 2, 0), width - side))
    top = int(min(max(cy - side / 2, 0), height - side))
    return (left, top, left + side, top + side)


def merge(found: list[tuple[Rect, Detections]], width: int, height: int) -> Detections:
    """One frame's detections from its crops: moved to frame pixels, duplicates dropped
    (a box cut by a crop's inner border gives way to the whole one from a neighbour)."""
    parts = [_placed(rect, dets, width, height) for rect, dets in found if len(dets)]
    if not parts:
        return Detections.empty()
    if len(parts) == 1:
        return Detections(parts[0][0], parts[0][1], parts[0][2], parts[0][4])
    xyxy = np.concatenate([p[0] for p in parts])
    conf = np.concatenate([p[1] for p in parts])
    cls = np.concatenate([p[2] for p in parts])
    cut = np.concatenate([p[3] for p in parts])
    crop = np.concatenate([np.full(len(p[1]), n) for n, p in enumerate(parts)])
    keypoints = None
    if all(p[4] is not None for p in parts):
        keypoints = np.concatenate([p[4] for p in parts if p[4] is not None])
    keep = _distinct(xyxy, conf, cls, cut, crop)
    return Detections(
        xyxy[keep], conf[keep], cls[keep], keypoints[keep] if keypoints is not None else None
    )


def _placed(
    rect: Rect, dets: Detections, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    x1, y1, x2, y2 = rect
    xyxy = dets.xyxy + np.array([x1, y1, x1, y1], np.float32)
    inner = np.array([x1 > 0, y1 > 0, x2 < width, y2 < height])
    near = np.stack(
        [
            xyxy[:, 0] <= x1 + EDGE_PX,
            xyxy[:, 1] <= y1 + EDGE_PX,
            xyxy[:, 2] >= x2 - EDGE_PX,
            xyxy[:, 3] >= y2 - EDGE_PX,
        ],
        axis=1,
    )
    cut = (near & inner).any(axis=1)
    keypoints = None
    if dets.keypoints is not None:
        keypoints = dets.keypoints.copy()
        keypoints[:, :, 0] += x1
        keypoints[:, :, 1] += y1
    return xyxy, dets.conf, dets.cls, cut, keypoints


def _distinct(
    xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, cut: np.ndarray, crop: np.ndarray
) -> list[int]:
    """Greedy suppression by overlap over the smaller box, per class, between boxes of
    different crops (within one the model's own NMS has spoken); whole boxes first."""
    order = sorted(range(len(conf)), key=lambda i: (bool(cut[i]), -float(conf[i])))
    x1, y1, x2, y2 = xyxy.T
    areas = (x2 - x1) * (y2 - y1)
    w = np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1)  # of every pair's overlap
    h = np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1)
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    same = inter >= SAME_OBJECT * np.minimum(areas[:, None], areas)
    same &= (w > 0) & (h > 0) & (cls[:, None] == cls) & (crop[:, None] != crop)
    kept: list[int] = []
    dropped = np.zeros(len(conf), bool)
    for i in order:
        if not dropped[i]:
            kept.append(i)
            dropped |= same[i]
    return kept
