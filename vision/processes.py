"""Vision workers as child processes (each with its own models), restarted when they die."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

from hub.logs import configure_logging, get_logger
from hub.settings import Settings

log = get_logger(__name__)
RESTART_DELAY_S = 5.0
MAX_RESTART_DELAY_S = 300.0


def vision_available() -> str | None:
    """None when the vision extra is installed, else what is missing."""
    try:
        import cv2  # noqa: F401
        import ultralytics  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install 'shaobing[vision]')"
    return None


def worker_main(settings: Settings, index: int, metrics_port: int | None) -> None:
    """Entry point of one worker process: analyse until SIGTERM (models load on first camera)."""
    configure_logging(settings.log_level.value)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port + index, addr="127.0.0.1")
    from vision.worker import VisionWorker, model_slot

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await VisionWorker(settings, model_slot(settings)).run(stop)

    asyncio.run(run())


@dataclass
class WorkerPool:
    """N worker processes; `check` restarts any that died."""

    settings: Settings
    size: int
    metrics_port: int | None = None
    processes: list[BaseProcess | None] = field(default_factory=list)
    _died_at: dict[int, float] = field(default_factory=dict)
    _delay: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        self.processes = [None] * self.size
        for index in range(self.size):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        context = mp.get_context("spawn")  # torch and threads do not survive fork
        process = context.Process(
            target=worker_main,
            args=(self.settings, index, self.metrics_port),
            name=f"shaobing-vision-{index}",
            daemon=True,
        )
        process.start()
        self.processes[index] = process

    def check(self) -> None:
        now = time.monotonic()
        for index, process in enumerate(self.processes):
            if process is None or process.is_alive():
                continue
            died = self._died_at.setdefault(index, now)
            delay = self._delay.get(index, RESTART_DELAY_S)
            if now - died >= delay:
                log.warning("vision worker died; restarting", index=index,
                            exitcode=process.exitcode, waited_s=delay)  # fmt: skip
                del self._died_at[index]
                self._delay[index] = min(delay * 2, MAX_RESTART_DELAY_S)  # a crash loop slows
                self._spawn(index)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every worker (they give their leases back), then wait."""
        for process in self.processes:
            if process is not None and process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            if process is not None:
                process.join(max(0.1, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()


async def supervise(pool: WorkerPool) -> None:
    """Run a pool inside an event loop (`shaobing up`) until cancelled."""
    pool.start()
    try:
        while True:
            await asyncio.sleep(2)
            pool.check()
    finally:
        await asyncio.to_thread(pool.stop)
