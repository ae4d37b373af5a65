"""/api/v1/evidence: the pictures behind camera events, for the roles that handle incidents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse

from api.auth import Principal
from api.deps import Conn, Limit
from api.openapi import refusals
from api.permissions import Capability, allowed
from devices import cameras
from hub.errors import NotFound
from vision import evidence_store

router = APIRouter(prefix="/evidence", tags=["evidence"])

# Pictures show people: the roles that work incidents see them, integrators and viewers do not.
EvidenceReader = Annotated[Principal, Depends(allowed(Capability.READ_EVIDENCE))]
EvidenceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@router.get("/{evidence_id}", response_class=FileResponse)
async def get_evidence(
    evidence_id: EvidenceId, who: EvidenceReader, conn: Conn, request: Request
) -> FileResponse:
    """The JPEG of one event: the frame with its boxes and zone drawn."""
    found = await evidence_store.find(conn, evidence_id, scope=who.area_prefix)
    path = request.app.state.settings.data_dir / found.path
    if not path.is_file():
        raise NotFound(f"evidence {evidence_id} is recorded but its file is missing")
    return FileResponse(
        path,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400, immutable"},
    )


@router.get("", responses=refusals((NotFound, "no such camera in the caller's area")))
async def list_evidence(
    camera_id: str, who: EvidenceReader, conn: Conn, limit: Limit = 50
) -> dict[str, list[dict[str, Any]]]:
    """A camera's latest evidence, newest first."""
    await cameras.get_camera(conn, camera_id, scope=who.area_prefix)
    items = await evidence_store.list_for_camera(conn, camera_id, limit=limit)
    return {"items": items}
