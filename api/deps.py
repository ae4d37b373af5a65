"""Shared route dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from api.auth import (
    ALL_ROLES,
    REGISTRY_WRITERS,
    TOKEN_MANAGERS,
    UNIT_WRITERS,
    ZONE_WRITERS,
    Principal,
    allow,
)
from hub.area_codes import check_area_prefix
from hub.db import Pool
from hub.errors import Invalid
from hub.paging import MAX_LIMIT


def get_pool(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


def area_filter(
    area: Annotated[str | None, Query(description="area code prefix")] = None,
) -> str | None:
    if area is None:
        return None
    try:
        return check_area_prefix(area)
    except ValueError as exc:
        raise Invalid(str(exc), field="area") from None


DbPool = Annotated[Pool, Depends(get_pool)]
Category = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Cursor = Annotated[
    str | None,
    Query(max_length=128, pattern=r"^[A-Za-z0-9_-]*$", description="`next` of the page before"),
]
AreaFilter = Annotated[str | None, Depends(area_filter)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Reader = Annotated[Principal, Depends(allow(ALL_ROLES))]
RegistryWriter = Annotated[Principal, Depends(allow(REGISTRY_WRITERS))]
ZoneWriter = Annotated[Principal, Depends(allow(ZONE_WRITERS))]
UnitWriter = Annotated[Principal, Depends(allow(UNIT_WRITERS))]
TokenManager = Annotated[Principal, Depends(allow(TOKEN_MANAGERS))]
