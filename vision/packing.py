"""A batch of frames laid end to end in one flat buffer, so that it crosses to another place
(the GPU, the inference process) in one piece: what the tensor path's pinned staging buffer
and an inference client's shared segment both hold."""

from __future__ import annotations

import numpy as np


def packed_size(images: list[np.ndarray]) -> int:
    return sum(image.nbytes for image in images)


def pack(images: list[np.ndarray], flat: np.ndarray) -> list[int]:
    """Copies each frame into `flat` (uint8, at least `packed_size` long), one after another;
    the offset each one starts at."""
    offsets, offset = [], 0
    for image in images:
        flat[offset : offset + image.nbytes] = image.reshape(-1)
        offsets.append(offset)
        offset += image.nbytes
    return offsets
