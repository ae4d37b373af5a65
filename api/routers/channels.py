"""/api/v1/channels: where notifications go (admin, integrator; by area). A channel's secret
is written and never read back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from api.auth import Principal
from api.deps import Conn, Cursor, DbPool, Limit
from api.openapi import refusals
from api.permissions import Capability, allowed
from hub.errors import Conflict, Invalid
from hub.paging import Page
from notify import channels
from notify.channels import channel_configs
from notify.delivery import Outcome
from notify.models import Channel, ChannelIn
from notify.template_store import template_for
from notify.templates import render
from notify.transports import Item, Outgoing

router = APIRouter(prefix="/channels", tags=["notifications"])
ChannelWriter = Annotated[Principal, Depends(allowed(Capability.MANAGE_CHANNELS))]


class TestResult(BaseModel):
    outcome: Outcome
    status: int | None
    answer: str


@router.post("", status_code=201, responses=refusals(Conflict))
async def create_channel(body: ChannelIn, who: ChannelWriter, conn: Conn) -> Channel:
    who.require_area(body.area)
    return await channels.create_channel(conn, body)


@router.get("")
async def list_channels(
    who: ChannelWriter, conn: Conn, limit: Limit = 100, cursor: Cursor = None
) -> Page[Channel]:
    """Channels by id (never their secret); `next` is the cursor of the following page."""
    return await channels.list_channels(conn, scope=who.area_prefix, limit=limit, cursor=cursor)


@router.get("/{channel_id}")
async def get_channel(channel_id: str, who: ChannelWriter, conn: Conn) -> Channel:
    return await channels.get_channel(conn, channel_id, scope=who.area_prefix)


@router.put("/{channel_id}")
async def replace_channel(
    channel_id: str, body: ChannelIn, who: ChannelWriter, conn: Conn
) -> Channel:
    """Store the new document; leave `secret` out to keep the one stored."""
    if body.id != channel_id:
        raise Invalid(f"the document's id {body.id!r} is not {channel_id!r}", field="body.id")
    who.require_area(body.area)
    return await channels.replace_channel(conn, body, scope=who.area_prefix)


@router.delete("/{channel_id}", status_code=204)
async def delete_channel(channel_id: str, who: ChannelWriter, conn: Conn) -> Response:
    await channels.delete_channel(conn, channel_id, scope=who.area_prefix)
    return Response(status_code=204)


@router.post("/{channel_id}/test")
async def test_channel(
    channel_id: str, request: Request, who: ChannelWriter, pool: DbPool
) -> TestResult:
    """Send the `test` message now and say what the receiver answered."""
    # A connection of its own, handed back before the message goes out (not `Conn`).
    async with pool.connection() as conn:
        await channels.get_channel(conn, channel_id, scope=who.area_prefix)
        channel = (await channel_configs(conn, [channel_id]))[channel_id]
        template = await template_for(conn, "test", channel.language)
    title, text = render(template.title, template.body, {"channel": channel.name})
    item = Item(0, f"test-{channel_id}-{datetime.now(UTC).timestamp():.0f}", "test", {})
    message = Outgoing(channel, title, text, [item], datetime.now(UTC), channel.mentions)
    answer = await request.app.state.transports[channel.kind].send(message)
    return TestResult(outcome=answer.outcome, status=answer.status, answer=answer.body)
