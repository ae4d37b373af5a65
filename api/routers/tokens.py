"""/api/v1/tokens (admins only)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.auth import Principal
from api.deps import Conn
from api.permissions import Capability, allowed
from api.tokens import IssuedToken, TokenIn, TokenInfo, issue_token, list_tokens, revoke_token
from hub.errors import Forbidden

router = APIRouter(prefix="/tokens", tags=["tokens"])
TokenManager = Annotated[Principal, Depends(allowed(Capability.MANAGE_TOKENS))]


@router.post("", status_code=201)
async def create_token(body: TokenIn, who: TokenManager, conn: Conn) -> IssuedToken:
    """Issue a token no wider than the caller's own area; its text is shown only this once."""
    if not body.area_prefix.startswith(who.area_prefix):
        raise Forbidden(
            f"a token for {body.area_prefix or 'all areas'} is wider than your scope"
            f" ({who.area_prefix or 'all areas'})",
            field="area_prefix",
        )
    return await issue_token(conn, body, created_by=who.token_id)


@router.get("")
async def get_tokens(who: TokenManager, conn: Conn) -> list[TokenInfo]:
    return await list_tokens(conn, scope=who.area_prefix)


@router.delete("/{token_id}", status_code=204)
async def delete_token(token_id: int, who: TokenManager, conn: Conn) -> Response:
    await revoke_token(conn, token_id, scope=who.area_prefix)
    return Response(status_code=204)
