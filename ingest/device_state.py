"""Device state from a batch: last seen, online, battery, RSSI, firmware, in arrival order;
with the signals its changes mean (back online after a reported outage, battery low)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow, tuple_row

from devices.registry import DeviceRef
from hub.contracts import Signal
from hub.events import announce
from ingest.decode import Accepted, signal_of
from ingest.staging import prepare_connection

BATTERY_LOW_PCT = 20.0
_NO_STATE = (None, False, None, None)  # device_state columns read back, for a new device


@dataclass(slots=True)
class _Latest:
    """A device's state after the batch's messages, applied in arrival order."""

    last: Accepted
    online: bool = True
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    fw: str | None = None


def _latest_by_device(fresh: list[Accepted]) -> dict[str, _Latest]:
    latest: dict[str, _Latest] = {}
    for acc in fresh:  # in arrival order: the last message of a device sets its state
        state = latest.get(acc.device.id)
        if state is None:
            state = latest[acc.device.id] = _Latest(acc)
        state.last = acc
        if acc.online is not None:
            state.online = acc.online
        if acc.battery_pct is not None:
            state.battery_pct = acc.battery_pct
        if acc.rssi_dbm is not None:
            state.rssi_dbm = acc.rssi_dbm
        if acc.fw is not None:
            state.fw = acc.fw
    return latest


async def state_transitions(conn: AsyncConnection[DictRow], fresh: list[Accepted]) -> list[Signal]:
    """Update device_state from the batch; say device_online after a reported outage and
    battery_low when the battery crosses the threshold.

    A retained status the broker replays when ingest subscribes is old news: it counts only
    for a device the hub knows nothing of yet, and never as a sign of life."""
    ids = sorted({acc.device.id for acc in fresh})
    if not ids:
        return []
    # Plain tuples: a batch reads a row per device, and dict rows cost a tenth of the batch.
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT device_id, reported_offline, offline_since, battery_pct"
            " FROM device_state WHERE device_id = ANY(%s) ORDER BY device_id FOR UPDATE",
            (ids,),
        )
        before = {row[0]: row for row in await cur.fetchall()}
    latest = _latest_by_device([a for a in fresh if not (a.replayed and a.device.id in before)])
    if not latest:
        return []
    signals: list[Signal] = []
    rows = []
    for device_id, state in sorted(latest.items()):  # one lock order for every writer
        last, online, battery = state.last, state.online, state.battery_pct
        last_seen = last.message.received_at
        _, reported, offline_since, old_battery = before.get(device_id, _NO_STATE)
        reported = bool(reported)
        if online:
            offline_since = None
        elif offline_since is None:
            offline_since = last_seen
        if online and reported:
            signals.append(signal_of(last, "device_online", None, {}))
            await announce(conn, "device.online", id=device_id, area=last.device.area)
            reported = False
        if (
            battery is not None
            and battery < BATTERY_LOW_PCT
            and (old_battery is None or old_battery >= BATTERY_LOW_PCT)
        ):
            signals.append(signal_of(last, "battery_low", battery, {"battery_pct": battery}))
        rows.append(
            (
                device_id,
                last_seen,
                online,
                offline_since,
                reported,
                battery,
                state.rssi_dbm,
                state.fw,
            )
        )
    await _upsert_state(conn, rows)
    return signals


async def _upsert_state(conn: AsyncConnection[DictRow], rows: list[tuple[Any, ...]]) -> None:
    """One statement for the whole batch, fed by COPY: a row per device is the hot path."""
    await prepare_connection(conn)
    async with conn.cursor() as cur:
        async with cur.copy("COPY _batch_state FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(
                ["text", "timestamptz", "bool", "timestamptz", "bool", "float8", "float8", "text"]
            )
            for row in rows:
                await copy.write_row(row)
        await cur.execute(
            """
            INSERT INTO device_state AS s (device_id, last_seen, online, offline_since,
                                           reported_offline, battery_pct, rssi_dbm, fw)
            SELECT * FROM _batch_state
            ON CONFLICT (device_id) DO UPDATE SET
                last_seen = greatest(s.last_seen, excluded.last_seen),
                online = excluded.online,
                offline_since = excluded.offline_since,
                reported_offline = excluded.reported_offline,
                battery_pct = coalesce(excluded.battery_pct, s.battery_pct),
                rssi_dbm = coalesce(excluded.rssi_dbm, s.rssi_dbm),
                fw = coalesce(excluded.fw, s.fw),
                updated_at = now()
            """
        )
        await cur.execute("DELETE FROM _batch_state")


async def mark_alive(
    conn: AsyncConnection[DictRow], devices: list[DeviceRef], at: datetime, *, fw: str | None = None
) -> list[Signal]:
    """Devices heard from by a process other than MQTT ingest (GB/T 28181's keepalives and
    registrations): online, last seen `at`; `device_online` for those reported offline
    before (the same rule as for MQTT devices: only a reported outage ends with a signal).
    The caller stores the signals."""
    if not devices:
        return []
    by_id = {d.id: d for d in devices}
    cur = await conn.execute(
        """
        INSERT INTO device_state AS s (device_id, last_seen, online, fw)
        SELECT id, %s, true, %s FROM unnest(%s::text[]) AS t (id)
        ON CONFLICT (device_id) DO UPDATE SET
            last_seen = greatest(s.last_seen, excluded.last_seen), online = true,
            offline_since = NULL, reported_offline = false,
            fw = coalesce(excluded.fw, s.fw), updated_at = now()
        RETURNING device_id, (SELECT o.reported_offline FROM device_state o
                              WHERE o.device_id = s.device_id) AS was_reported
        """,
        (at, fw, sorted(by_id)),
    )
    signals = []
    for row in await cur.fetchall():
        if row["was_reported"]:
            device = by_id[row["device_id"]]
            signals.append(device.signal(at, "device_online"))
            await announce(conn, "device.online", id=device.id, area=device.area)
    return signals


async def mark_gone(conn: AsyncConnection[DictRow], device_ids: list[str], at: datetime) -> None:
    """Devices that said they are leaving (a GB/T 28181 `Expires: 0`): offline since `at`,
    reported by the sweep after its grace period, as a last will is."""
    await conn.execute(
        "UPDATE device_state SET online = false, offline_since = coalesce(offline_since, %s),"
        " updated_at = now() WHERE device_id = ANY(%s)",
        (at, device_ids),
    )
