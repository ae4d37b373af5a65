"""The worker's models, loaded when a camera first needs them.

A hub with no camera never touches the weights. Where they cannot be had (offline with the
default `yolov8n.pt`, a wrong path) the worker says so once, clearly, keeps running and tries
again now and then; a restart loop repeating the same error helps nobody.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prometheus_client import Gauge

from hub.logs import get_logger
from vision.pipeline import Models

log = get_logger(__name__)
MODELS_READY = Gauge("sb_vision_models_ready", "1 when this worker's models are loaded")
RETRY_S = 300.0
HINT = (
    "a model name such as yolov8n.pt is downloaded on first use; offline, point SB_YOLO_MODEL"
    " (SB_FIRE_MODEL, SB_POSE_MODEL) at files on this machine"
)


class ModelSlot:
    def __init__(
        self, load: Callable[[], Models], *, describe: str, retry_s: float = RETRY_S
    ) -> None:
        self._load = load
        self._describe = describe
        self._retry_s = retry_s
        self._retry_at = float("-inf")
        self._failures = 0
        self.problem: str | None = None  # why the last load failed
        self.models: Models | None = None

    @classmethod
    def loaded(cls, models: Models) -> ModelSlot:
        slot = cls(lambda: models, describe="preloaded")
        slot.models = models
        MODELS_READY.set(1)
        return slot

    @property
    def failures(self) -> int:
        return self._failures

    async def get(self) -> Models | None:
        """The models, loading them now if due; None while they cannot be had."""
        if self.models is not None or time.monotonic() < self._retry_at:
            return self.models
        started = time.perf_counter()
        try:
            self.models = await asyncio.to_thread(self._load)
        except Exception as exc:  # any loader failure: missing file, bad format, no network
            self._failed(exc)
            return None
        MODELS_READY.set(1)
        self.problem = None
        log.info(
            "vision models loaded",
            models=self._describe,
            seconds=round(time.perf_counter() - started, 1),
        )
        return self.models

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        self.problem = f"models could not be loaded ({self._describe}): {exc}"[:1000]
        self._retry_at = time.monotonic() + self._retry_s
        MODELS_READY.set(0)
        if self._failures == 1:
            log.error(
                "vision models could not be loaded; cameras wait until they can",
                models=self._describe,
                error=str(exc),
                hint=HINT,
                retry_every_s=self._retry_s,
            )
        else:
            log.debug("vision models still unavailable", error=str(exc), attempt=self._failures)
