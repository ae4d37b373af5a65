"""Helpers for tests that need the live rules engine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hub.db import connect
from rules.service import RulesService
from rules.store import seed_builtin_rules


def started_rules_service(database_url: str) -> RulesService:
    """The built-in rules seeded and a RulesService started on them, as `shaobing up` does."""

    async def start() -> RulesService:
        conn = await connect(database_url)
        async with conn:
            await seed_builtin_rules(conn)
        service = RulesService(database_url)
        await service.start(datetime.now(UTC))
        return service

    return asyncio.run(start())
