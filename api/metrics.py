"""Prometheus metrics of the HTTP API and the /metrics endpoint."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import psycopg
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.permissions import public_route
from vision import stats as vision_stats

REQUESTS = Counter("sb_http_requests_total", "HTTP requests handled", ["method", "route", "status"])
LATENCY = Histogram(
    "sb_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

router = APIRouter()
# Metrics another package reads from the database (create_app's `metric_sources`).
MetricSource = Callable[[AsyncConnection[DictRow]], Awaitable[bytes]]


@router.get("/metrics", include_in_schema=False)
@public_route("Prometheus scrapes without a token: counts and timings, nothing personal")
async def metrics(request: Request) -> Response:
    """This process's metrics, plus every camera's latest figures from the vision workers.

    The camera figures come from the database; when it cannot answer, the scrape still
    returns this process's own metrics (which say how the API is doing meanwhile)."""
    extra = b""
    try:
        async with request.app.state.pool.connection(timeout=2) as conn:
            rows = await vision_stats.all_camera_stats(conn)
            for source in request.app.state.metric_sources:
                extra += await source(conn)
    except (psycopg.Error, PoolTimeout):
        rows = []
    body = generate_latest() + generate_latest(_CameraCollector(rows)) + extra
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _CameraCollector(Collector):
    """Per-camera figures as gauges, read from the table the workers keep up to date."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def collect(self) -> Iterable[Metric]:
        fps = GaugeMetricFamily(
            "sb_camera_fps", "Camera frames per second by stage", labels=["camera", "stage"]
        )
        frames = GaugeMetricFamily(
            "sb_camera_frames", "Camera frame counts by outcome", labels=["camera", "outcome"]
        )
        reconnects = GaugeMetricFamily(
            "sb_camera_reconnects", "Stream reconnects", labels=["camera"]
        )
        decode = GaugeMetricFamily(
            "sb_camera_decode_cpu", "CPU cores spent decoding the stream", labels=["camera"]
        )
        for row in self.rows:
            cid = row["camera_id"]
            for stage in ("camera", "process", "skipped", "detection"):
                fps.add_metric([cid, stage], float(row[f"{stage}_fps"]))
            for outcome in ("read", "undecoded", "dropped", "skipped"):
                frames.add_metric([cid, outcome], float(row[f"frames_{outcome}"]))
            reconnects.add_metric([cid], float(row["reconnects"]))
            decode.add_metric([cid], float(row["decode_cpu"]))
        yield from (fps, frames, reconnects, decode)


class MetricsMiddleware:
    """Count and time requests by route template, so ids do not explode label cardinality."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            route = _route_label(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record()  # before the last byte leaves, so a client never outruns the count
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            record()


def _route_label(scope: Scope) -> str:
    """The path with its parameters put back as `{name}`, so ids stay out of the labels."""
    if "route" not in scope:
        return "unmatched"
    by_value = {str(v): k for k, v in scope.get("path_params", {}).items()}
    segments = [f"{{{by_value[s]}}}" if s in by_value else s for s in scope["path"].split("/")]
    return "/".join(segments)
