"""A camera as the registry would hand it to the vision engine, for benches and tests that
feed the engine clips without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from devices.camera_settings import CameraSettings
from devices.models import Camera
from devices.zones import Zone


def camera(
    camera_id: str, url: str, *, fps: float = 4.0, zones: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None, detect_url: str | None = None,
) -> Camera:  # fmt: skip
    now = datetime.now(UTC)
    return Camera(
        id=camera_id, type="camera", area="440311001002", site="site", building="B1", floor=None,
        lat=None, lon=None, tags={}, enabled=True, credentials_rotated_at=now, created_at=now,
        updated_at=now, stream_url=url, detect_url=detect_url, fps=fps,
        zones=[Zone(**z) for z in zones or []],
        settings=CameraSettings.model_validate(settings or {}),
    )  # fmt: skip
