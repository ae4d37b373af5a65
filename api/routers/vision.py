"""/api/v1/vision: whether the hub's vision workers analyse the cameras, and why not."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from api.deps import Conn, Reader
from vision.status import VisionState, vision_state

router = APIRouter(prefix="/vision", tags=["cameras"])


@router.get("")
async def get_vision(request: Request, who: Reader, conn: Conn) -> VisionState:
    """`analysing`, `idle` (workers wait for a camera to need their models) or `off` with
    the `reason` (a model file missing, no worker running): the console's banner."""
    lease = timedelta(seconds=request.app.state.settings.vision_lease_s)
    return await vision_state(conn, lease)
