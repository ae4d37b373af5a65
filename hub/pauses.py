"""Keep the garbage collector's full collections short, so they stay off the alarm path.

A full collection walks every object the collector tracks. Most of them are made at start-up
(modules, the FastAPI app, pydantic schemas) and live as long as the process; walking them
took about 40 ms here, often enough under telemetry load to show in the alarm latency's p95.
`gc.freeze()` sets them aside for good; what is made later is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Call once start-up is done: collect what start-up left behind, freeze the rest."""
    gc.collect()
    gc.freeze()
