"""The notifier component (`shaobing notify`, and part of `shaobing up`): fans incident events
out into notifications, schedules repeats, and delivers; woken by the commits that write the
incidents' outbox (`incidents.events.OUTBOX_CHANNEL`) or new notifications (`NOTIFY_CHANNEL`),
never by the live stream's traffic, and by its own clock when a retry or a rate-limited
message falls due. Several may run: each step is safe beside another's."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from hub.db import connect, open_pool
from hub.listen import wakeups
from hub.supervisor import Probe
from incidents.events import OUTBOX_CHANNEL
from notify.outbox import NOTIFY_CHANNEL, fan_out, schedule_repeats
from notify.sender import Clock, Sender, SenderConfig, utc_now
from notify.transports import Transport
from notify.transports.dingtalk import DingTalk
from notify.transports.feishu import Feishu
from notify.transports.http import client
from notify.transports.smtp import Smtp
from notify.transports.webhook import Webhook
from notify.transports.wecom import WeCom


@dataclass(frozen=True)
class NotifyConfig:
    database_url: str
    sender: SenderConfig
    tick_s: float = 1.0
    concurrency: int = 16  # channels delivered to at once


def transports_for(http: httpx.AsyncClient) -> dict[str, Transport]:
    return {
        "webhook": Webhook(http),
        "wecom": WeCom(http),
        "dingtalk": DingTalk(http),
        "feishu": Feishu(http),
        "email": Smtp(),
    }


class _Due:
    """How long the notifier may sleep: until the next retry or budget, at most a tick."""

    def __init__(self, tick_s: float) -> None:
        self.tick_s = tick_s
        self.next_s = 0.0

    def __call__(self) -> float:
        return min(self.next_s, self.tick_s)


async def run_notifier(config: NotifyConfig, probe: Probe, *, clock: Clock = utc_now) -> None:
    """Until cancelled, or a failure (the supervisor then starts a fresh one)."""
    pool = await open_pool(config.database_url, max_size=config.concurrency + 2)
    life = await connect(config.database_url)
    http = client()
    sender = Sender(pool, config.sender, transports_for(http), clock=clock)
    await sender.hold_life(life)
    due = _Due(config.tick_s)
    try:
        async for _ in wakeups(config.database_url, [OUTBOX_CHANNEL, NOTIFY_CHANNEL], idle=due):
            async with pool.connection() as conn:
                while await fan_out(conn, clock()):
                    pass
                await schedule_repeats(conn, clock())
            due.next_s = await sender.step()
            probe.ready()
    finally:
        await sender.close()
        await http.aclose()
        await pool.close()
        await life.close()
