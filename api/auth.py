"""Who is calling: a bearer token → its role and area scope (what each may do: permissions)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from api.auth_limit import FailedAuthentications
from api.tokens import Role, find_token
from hub.errors import Forbidden, Unauthorized
from hub.secret import hmac_key
from incidents.models import Incident
from incidents.states import Status
from incidents.store import incidents_by_id
from notify.links import PREFIX as LINK_PREFIX
from notify.links import resolve_link

RATE_WHISTLE_WINDOW = timedelta(days=7)  # a summoned unit's link rates its whistle after close

# The token in `Authorization: Bearer`; who may do what with it is api/permissions.py's.
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    token_id: int | None
    name: str
    role: Role
    area_prefix: str
    incident_id: int | None = None  # a unit's link acts on this incident only
    unit_id: str | None = None  # a grid worker's unit

    def covers(self, area: str) -> bool:
        return area.startswith(self.area_prefix)

    def require_area(self, area: str) -> None:
        """Writes outside the caller's area are refused outright."""
        if not self.covers(area):
            raise Forbidden(
                f"area {area} is outside your scope ({self.area_prefix or 'all areas'})",
                field="area",
            )


async def authenticate(request: HTTPConnection, token: str) -> Principal:
    """The caller behind `token`; 401 for a wrong one, 429 after too many wrong ones."""
    limiter: FailedAuthentications = request.app.state.failed_auth
    client = request.client.host if request.client else "unknown"
    limiter.check(client)
    admin_token = request.app.state.settings.admin_token
    if admin_token is not None and hmac.compare_digest(
        token.encode(), admin_token.get_secret_value().encode()
    ):
        return Principal(token_id=None, name="SB_ADMIN_TOKEN", role=Role.ADMIN, area_prefix="")
    if token.startswith(LINK_PREFIX):
        return await _unit_link(request, token, limiter, client)
    async with request.app.state.pool.connection() as conn:
        info = await find_token(conn, token)
    if info is None:
        limiter.failed(client)
        raise Unauthorized("unknown or revoked token")
    return Principal(
        token_id=info.id,
        name=info.name,
        role=info.role,
        area_prefix=info.area_prefix,
        unit_id=info.unit_id,
    )


async def _unit_link(
    request: HTTPConnection, token: str, limiter: FailedAuthentications, client: str
) -> Principal:
    """A dispatched unit's link: good while its incident is open and with that unit."""
    async with request.app.state.pool.connection() as conn:
        link = await resolve_link(conn, hmac_key(request.app.state.settings), token)
        found = await incidents_by_id(conn, [link.incident_id]) if link else {}
    incident = found.get(link.incident_id) if link else None
    if link is None:
        limiter.failed(client)
        raise Unauthorized("unknown link")
    if incident is None or not _link_open(incident, link.unit_id, datetime.now(UTC)):
        raise Unauthorized("this link has expired: the incident is closed or with another unit")
    return Principal(
        token_id=None,
        name=f"unit:{link.unit_id}",
        role=Role.UNIT_LINK,
        area_prefix=incident.area,
        incident_id=incident.id,
        unit_id=link.unit_id,
    )


def _link_open(incident: Incident, unit_id: str, now: datetime) -> bool:
    """A dispatched unit's link works while the incident is open and with it; a summoned
    unit's while it is open, and for a week after the close until the unit rated its whistle."""
    record = next((s for s in incident.summons if s.unit_id == unit_id), None)
    if incident.status is not Status.CLOSED:
        return incident.unit_id == unit_id or record is not None
    closed = incident.closed_at
    return (
        record is not None
        and record.whistle_rating is None
        and closed is not None
        and now - closed < RATE_WHISTLE_WINDOW
    )
