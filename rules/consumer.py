"""The rules engine as a consumer of the signal log (`shaobing rules [--area PREFIX]`).

It reads committed signals after its cursor, woken by NOTIFY when ingest commits (and every
tick), feeds them to the engine with the closes people made meanwhile, and writes the
incidents it opens or attaches to in one transaction with the new cursor: a crash anywhere
loses no incident and attaches no signal twice. It is crash-only: after any failure the
supervisor starts it again, and it rebuilds the engine's windows by replaying the recent
history it had already handled, with the same replay a backtest uses.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import ValidationError

from hub import signal_log
from hub.db import connect
from hub.listen import wakeups
from hub.logs import get_logger
from hub.supervisor import Probe
from incidents.opening import attach, open_or_attach
from incidents.recovery import recover
from incidents.sla import Sla
from incidents.store import closed_since, open_keys
from rules import partitions
from rules.decisions import attachment, new_incident
from rules.engine import LATENESS, Decision, Engine
from rules.model import Rule
from rules.replay import Close, replay
from rules.silences import list_silences
from rules.store import RULES_CHANNEL, list_rules

log = get_logger(__name__)
DECISIONS = Counter("sb_rules_decisions_total", "Engine decisions applied", ["outcome"])
LATE = Counter("sb_rules_late_signals_total", "Signals later than the lateness setting")
CURSOR = Gauge("sb_rules_cursor", "Last signal id the rules partition handled", ["partition"])

REPLAY_AT_LEAST = timedelta(hours=1)  # history replayed on start to rebuild the windows
REPLAY_AT_MOST = timedelta(days=1)
CATCH_UP = timedelta(minutes=10)  # a partition that never ran starts this far back
CLOSE_OVERLAP = timedelta(minutes=5)  # closes are re-read this far back (late commits)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RulesConfig:
    database_url: str
    sla: Sla = field(default_factory=Sla)
    area_prefix: str = ""
    lateness: timedelta = LATENESS
    batch: int = 500
    tick_s: float = 1.0
    holder: str = field(default_factory=_holder)


class RulesConsumer:
    def __init__(self, config: RulesConfig, *, clock: Clock = utc_now) -> None:
        self.config = config
        self.clock = clock
        self.engine = Engine(lateness=config.lateness)
        self.cursor = 0
        self._close_mark = clock()
        self._seen_closes: dict[int, datetime] = {}

    @property
    def partition(self) -> str:
        return self.config.area_prefix

    async def run(self, probe: Probe) -> None:
        """Until cancelled or a failure (the supervisor then starts a fresh one)."""
        url = self.config.database_url
        claim_conn = await connect(url)
        work = await connect(url)
        key: int | None = None
        try:
            key = await partitions.claim(claim_conn, self.partition, self.config.holder)
            await self.rebuild(work)
            log.info(
                "rules partition started",
                partition=self.partition or "(all)",
                cursor=self.cursor,
                rules=len(self.engine.rule_ids()),
            )
            probe.ready()
            async for wake in wakeups(
                url, [signal_log.SIGNALS_CHANNEL, RULES_CHANNEL], idle=self._idle
            ):
                if wake.reconnected or RULES_CHANNEL in wake.channels:
                    await self.reload(work)
                while await self.step(work):
                    pass
        finally:
            if key is not None and not claim_conn.closed:
                try:
                    await partitions.release(claim_conn, self.partition, key)
                except Exception as exc:  # the server is gone: its session took the lock along
                    log.warning("partition not released", error=str(exc))
            await work.close()
            await claim_conn.close()

    def _idle(self) -> float:
        """Sleep until the next tick, or sooner when a `for` falls due before it."""
        due = self.engine.next_deadline()
        if due is None:
            return self.config.tick_s
        return min(self.config.tick_s, max(0.005, (due - self.clock()).total_seconds()))

    # --- the steady state ------------------------------------------------------------------

    async def step(self, conn: AsyncConnection[DictRow]) -> bool:
        """One transaction: new closes, the next batch of signals, ticks up to now; their
        decisions applied and the cursor moved. True when the batch was full (read again)."""
        now = self.clock()
        async with conn.transaction():
            closes = await self._new_closes(conn)
            signals, handled = await signal_log.read_after(
                conn, self.cursor, area_prefix=self.partition, limit=self.config.batch
            )
            late_before = self.engine.late_signals
            decisions = list(replay(self.engine, signals, closes, until=now))
            LATE.inc(self.engine.late_signals - late_before)
            for decision in decisions:
                await self._apply(conn, decision, now)
            if handled != self.cursor:
                self.cursor = handled
                await _save_cursor(conn, self.partition, self.cursor)
        CURSOR.labels(self.partition).set(self.cursor)
        return len(signals) >= self.config.batch

    async def _apply(
        self, conn: AsyncConnection[DictRow], decision: Decision, now: datetime
    ) -> None:
        if decision.recovers:
            assert decision.rule.recover is not None
            done = await recover(
                conn,
                decision.rule.id,
                decision.key,
                decision.signal,
                decision.rule.recover.action,
                now=now,
            )
            DECISIONS.labels("recovered" if done else "recovered_none").inc()
            return
        if decision.opens:
            new = new_incident(decision)
            _, created = await open_or_attach(conn, new, now=now, sla=self.config.sla)
            DECISIONS.labels("opened" if created else "attached").inc()
            return
        incident = await attach(conn, attachment(decision), now=now, sla=self.config.sla)
        # None: a person closed it since; the engine hears of the close with the next batch.
        DECISIONS.labels("attached" if incident else "after_close").inc()

    async def _new_closes(self, conn: AsyncConnection[DictRow]) -> list[Close]:
        rows = await closed_since(
            conn, self._close_mark - CLOSE_OVERLAP, area_prefix=self.partition
        )
        fresh = [r for r in rows if r["id"] not in self._seen_closes]
        for row in fresh:
            self._seen_closes[row["id"]] = row["closed_at"]
            self._close_mark = max(self._close_mark, row["closed_at"])
        oldest = self._close_mark - 2 * CLOSE_OVERLAP
        self._seen_closes = {k: v for k, v in self._seen_closes.items() if v >= oldest}
        return [Close(r["rule_id"], r["group_key"], r["closed_at"]) for r in fresh]

    # --- start and reload ------------------------------------------------------------------

    async def rebuild(self, conn: AsyncConnection[DictRow]) -> None:
        """Rules, silences and windows as they stood at the cursor; then the open incidents."""
        now = self.clock()
        async with conn.transaction():
            self.cursor = await _load_cursor(conn, self.partition, now)
            await self._load_rules(conn)
            start = now - self._replay_span()
            self.engine.set_silences(await list_silences(conn, scope="", active_at=start))
            history = await signal_log.read_received(
                conn,
                start,
                now + REPLAY_AT_MOST,
                area_prefix=self.partition,
                through_id=self.cursor,
            )
            cooling = now - self.engine.longest_cooldown()
            rows = await closed_since(conn, min(start, cooling), area_prefix=self.partition)
            closes = [Close(r["rule_id"], r["group_key"], r["closed_at"]) for r in rows]
            for _ in replay(self.engine, history, closes, until=now):
                pass  # decisions were applied when these signals were first handled
            self.engine.mark_open(await open_keys(conn, area_prefix=self.partition))
        self._close_mark = now
        self._seen_closes = {r["id"]: r["closed_at"] for r in rows}
        self.engine.late_signals = 0

    async def reload(self, conn: AsyncConnection[DictRow]) -> None:
        """Pick up rule and silence changes (a changed rule starts its windows afresh)."""
        async with conn.transaction():
            await self._load_rules(conn)
            silences = await list_silences(conn, scope="", active_at=self.clock() - REPLAY_AT_LEAST)
        self.engine.set_silences(silences)

    async def _load_rules(self, conn: AsyncConnection[DictRow]) -> None:
        stored = {r.id: r for r in await list_rules(conn, scope="", enabled=True)}
        for rule_id in set(self.engine.rule_ids()) - set(stored):
            self.engine.remove(rule_id)
        for rule_id, item in stored.items():
            if self.engine.version_of(rule_id) == item.version:
                continue
            try:
                self.engine.load(Rule.model_validate(item.document), item.version)
            except ValidationError as exc:  # stored before today's checks: skip, loudly
                log.error("stored rule is not valid; skipped", rule=rule_id, error=str(exc))

    def _replay_span(self) -> timedelta:
        return min(max(self.engine.longest_memory(), REPLAY_AT_LEAST), REPLAY_AT_MOST)


async def _load_cursor(conn: AsyncConnection[DictRow], partition: str, now: datetime) -> int:
    """Where the partition got to; a new one starts where an overlapping partition it
    replaces had got to, else with the signals received in the last CATCH_UP."""
    cur = await conn.execute(
        "SELECT partition, last_signal_id FROM rule_cursors"
        " WHERE partition LIKE %s || '%%' OR %s LIKE partition || '%%'",
        (partition, partition),
    )
    rows = {row["partition"]: int(row["last_signal_id"]) for row in await cur.fetchall()}
    if partition in rows:
        return rows[partition]
    if rows:
        return min(rows.values())
    return await signal_log.last_id_before(conn, now - CATCH_UP)


async def _save_cursor(conn: AsyncConnection[DictRow], partition: str, last_id: int) -> None:
    await conn.execute(
        "INSERT INTO rule_cursors (partition, last_signal_id) VALUES (%s, %s)"
        " ON CONFLICT (partition) DO UPDATE SET last_signal_id = excluded.last_signal_id,"
        " updated_at = now()",
        (partition, last_id),
    )
