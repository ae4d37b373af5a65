"""What a batch of card reads does inside ingest's transaction: watch-list hits, impossible
travel and verdicts judged, the reads stored; and the verdicts of reads delivered again looked
up, so that the reader hears the same answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from hub.contracts import Signal
from idcard.enrich import enrich_reads, watchlist_hits
from idcard.reads import CardRead, copy_reads
from idcard.verdicts import ReaderVerdict, judge, stored_verdicts, verdicts_of


@dataclass
class StoredReads:
    signals: list[Signal] = field(default_factory=list)
    verdicts: list[ReaderVerdict] = field(default_factory=list)  # to send once committed


async def store_reads(
    conn: AsyncConnection[DictRow], fresh: list[CardRead], repeated: list[CardRead]
) -> StoredReads:
    """`fresh`: reads not seen before, judged and stored; `repeated`: reads stored before
    (a redelivery), answered again with their stored verdicts. Runs after the earlier
    batches committed: travel and hits are judged against the reads they stored."""
    stored = StoredReads()
    if fresh:
        hits = await watchlist_hits(conn, fresh)
        stored.signals += await enrich_reads(conn, fresh, hits)
        stored.signals += await judge(conn, fresh, hits)
        await copy_reads(conn, fresh)
        stored.verdicts = verdicts_of(fresh)
    if repeated:
        stored.verdicts += await stored_verdicts(conn, repeated)
    return stored
