"""Vision workers as child processes, restarted when they die: each with its own models, or
all fed by one inference process on the machine (SB_VISION_INFERENCE_SERVER)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from hub.backoff import Backoff, Retries
from hub.db import connect
from hub.logs import configure_logging, get_logger
from hub.settings import Settings
from hub.supervisor import Probe
from vision.status import missing_models, vision_state

if TYPE_CHECKING:
    from vision.inference_server import Address

log = get_logger(__name__)
RESTART = Backoff(first_s=5.0, max_s=300.0)  # a process that keeps dying is restarted slower
MODEL_RETRY_S = 300.0
STATE_EVERY_S = 2.0


def vision_available() -> str | None:
    """None when the vision extra is installed, else what is missing."""
    try:
        import cv2  # noqa: F401
        import ultralytics  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install 'shaobing[vision]')"
    return None


def worker_main(
    settings: Settings, index: int, metrics_port: int | None, server: Address | None = None
) -> None:
    """Entry point of one worker process: analyse until SIGTERM (models load on first camera,
    or come from the inference server at `server`)."""
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
        await VisionWorker(settings, model_slot(settings, server)).run(stop)

    asyncio.run(run())


def server_main(settings: Settings, address: Address) -> None:
    """Entry point of the inference process: load the models once, serve until SIGTERM."""
    configure_logging(settings.log_level.value)
    from vision.inference_server import InferenceServer
    from vision.worker import load_models

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address.path)  # left by a server that was killed
    failures = 0
    while not stop.is_set():
        try:
            models = load_models(settings)
        except Exception as exc:  # a missing file, a bad format: said once, tried again later
            failures += 1
            say = log.error if failures == 1 else log.debug
            say(
                "inference server cannot load its models; workers wait",
                error=str(exc),
                retry_every_s=MODEL_RETRY_S,
            )
            stop.wait(MODEL_RETRY_S)
            continue
        InferenceServer(models, address).serve(stop)


def server_address() -> Address:
    """A fresh socket in a folder only this user can enter, and a fresh key."""
    from vision.inference_server import Address

    folder = Path(tempfile.mkdtemp(prefix="shaobing-inference-"))  # mode 0700
    return Address(str(folder / "socket"), secrets.token_bytes(32))


@dataclass
class WorkerPool:
    """N worker processes, and the inference process before them when the settings ask for
    one (index -1 below); `check` restarts any that died."""

    settings: Settings
    size: int
    metrics_port: int | None = None
    processes: list[BaseProcess | None] = field(default_factory=list)
    server: BaseProcess | None = None
    address: Address | None = None
    _died_at: dict[int, float] = field(default_factory=dict)
    _restarts: dict[int, Retries] = field(default_factory=dict)

    def start(self) -> None:
        if self.settings.vision_inference_server:
            self.address = server_address()
            self._spawn(-1)
        self.processes = [None] * self.size
        for index in range(self.size):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        context = mp.get_context("spawn")  # torch and threads do not survive fork
        if index < 0:
            process = context.Process(
                target=server_main,
                args=(self.settings, self.address),
                name="shaobing-inference",
                daemon=True,
            )
            process.start()
            self.server = process
            return
        process = context.Process(
            target=worker_main,
            args=(self.settings, index, self.metrics_port, self.address),
            name=f"shaobing-vision-{index}",
            daemon=True,
        )
        process.start()
        self.processes[index] = process

    def check(self) -> None:
        now = time.monotonic()
        for index, process in [(-1, self.server), *enumerate(self.processes)]:
            if process is None or process.is_alive():
                continue
            died = self._died_at.setdefault(index, now)
            restarts = self._restarts.setdefault(index, RESTART.retries())
            delay = restarts.next_delay
            if now - died >= delay:
                log.warning(
                    "vision process died; restarting",
                    index=index,
                    exitcode=process.exitcode,
                    waited_s=delay,
                )
                del self._died_at[index]
                restarts.failed()  # a crash loop slows
                self._spawn(index)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the workers (they give their leases back) and the server, wait, and remove
        the server's socket folder."""
        everything = [*self.processes, self.server]
        for process in everything:
            if process is not None and process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in everything:
            if process is not None:
                process.join(max(0.1, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
        if self.address is not None:
            shutil.rmtree(Path(self.address.path).parent, ignore_errors=True)


async def supervise(pool: WorkerPool, probe: Probe) -> None:
    """Run a pool inside an event loop until cancelled. `probe` says whether its workers
    can analyse: down, with the reason, while their models are missing or fail to load."""
    await _say_state(pool, probe)
    pool.start()
    try:
        while True:
            await asyncio.sleep(STATE_EVERY_S)
            pool.check()
            await _say_state(pool, probe)
    finally:
        await asyncio.to_thread(pool.stop)


async def _say_state(pool: WorkerPool, probe: Probe) -> None:
    if missing := missing_models(pool.settings):
        probe.down(f"vision is off: {missing}")
        return
    pids = [p.pid for p in pool.processes if p is not None and p.pid is not None]
    if not pids or not pool.settings.database_url:
        probe.ready()  # starting: nothing known against it yet
        return
    try:
        conn = await connect(pool.settings.database_url)
        async with conn:
            state = await vision_state(
                conn,
                timedelta(seconds=pool.settings.vision_lease_s),
                host=socket.gethostname(),
                pids=pids,
            )
    except psycopg.OperationalError:
        return  # the database's outage is said by /readyz's `database`
    if state.state == "off" and state.workers:
        probe.down(f"vision is off: {state.reason}")
    else:
        probe.ready()
