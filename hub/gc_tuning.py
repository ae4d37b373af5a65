"""Keep the garbage collector cheap and its full collections short and rare.

A full collection walks every object the collector tracks. Most of them are made at start-up
(modules, the FastAPI app, pydantic schemas) and live as long as the process; walking them
took about 40 ms here, often enough under telemetry load to show in the alarm latency's p95.
`gc.freeze()` sets them aside for good; what is made later is collected as before.

CPython's young generation is collected every 700 net allocations. Under ingest load a batch
makes tens of thousands of objects that live until it commits, a few hundred milliseconds, so
young collections kept finding them alive and promoting them, and that brought on a full
collection every few hundred milliseconds: a fifth of the ingest process's CPU at 20k msgs/s
(bench/ingest.py). With a young generation of 50,000 a batch comes and goes between
collections; the collector then ran 6 times in a 16 s run instead of about 7,400.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 20)


def tune_garbage_collector() -> None:
    """Call once start-up is done: collect what start-up left behind, freeze the rest, and
    collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
