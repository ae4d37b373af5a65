"""Workers fed by one inference process against workers each with its own model.

    python -m bench.inference_server [--model PATH] [--device cpu|cuda] [--workers 1,2,4]
                                     [--frames 4] [--seconds 5]

Each of W worker processes sends `--frames` decoded frames (the shared clips, cycled) per
request, as an engine step of a few cameras would, for `--seconds`: (a) through one server
process (vision/inference_server.py), which gathers what the workers send at once into one
model call, and (b) with a model of its own in each worker. Prints detected frames a second
in all, the server's mean batch, and the CPU of the whole run per frame.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.inference import frames, model_arguments
from vision.inference import TensorDetector
from vision.inference_server import Address, InferenceServer, connect, remote_models
from vision.pipeline import Models


def _serve(model: str, device: str, address: Address, ready: Any) -> None:
    stop = threading.Event()
    server = InferenceServer(Models(TensorDetector(model, device=device)), address)
    threading.Thread(target=server.serve, args=(stop,), daemon=True).start()
    connect(address).close()
    ready.set()
    threading.Event().wait()  # until terminated


def _work(address: Address | None, model: str, device: str, per: int, seconds: float,
          start: Any, done: Any) -> None:  # fmt: skip
    pool = frames(Path(os.environ.get("SB_TEST_MEDIA_DIR", "../shared/media")).resolve())
    detector = (remote_models(address).detector if address
                else TensorDetector(model, device=device))  # fmt: skip
    detector.detect(pool[:per])  # warm
    start.wait()
    count, deadline, i = 0, time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        batch = [pool[(i + k) % len(pool)] for k in range(per)]
        detector.detect(batch)
        count, i = count + per, i + per
    done.put(count)


def run(workers: int, shared: bool, args: argparse.Namespace) -> tuple[float, float, float]:
    """(frames a second, server's mean batch, CPU seconds per frame) for one setting."""
    context = mp.get_context("spawn")
    address = Address(str(Path(tempfile.mkdtemp()) / "s"), secrets.token_bytes(16))
    server = None
    if shared:
        ready = context.Event()
        server = context.Process(target=_serve, args=(args.model, args.device, address, ready))
        server.start()
        ready.wait(120)
    start, done = context.Barrier(workers + 1), context.Queue()
    work = (address if shared else None, args.model, args.device, args.frames, args.seconds,
            start, done)  # fmt: skip
    procs = [context.Process(target=_work, args=work) for _ in range(workers)]
    for p in procs:
        p.start()
    start.wait(300)
    tree = [psutil.Process(p.pid) for p in procs + ([server] if server else [])]
    cpu0 = sum(sum(t.cpu_times()[:2]) for t in tree)
    began = time.monotonic()
    counts = [done.get(timeout=args.seconds + 120) for _ in procs]
    elapsed = time.monotonic() - began
    cpu = sum(sum(t.cpu_times()[:2]) for t in tree) - cpu0
    batch = 0.0
    if server is not None:
        conn = connect(address)
        conn.send(("stats",))
        stats = conn.recv()
        conn.close()
        batch = stats["images"] / max(stats["batches"], 1)
    for p in procs:
        p.join(10)
    if server is not None:
        server.terminate()
        server.join(10)
    return sum(counts) / elapsed, batch, cpu / max(sum(counts), 1)


def main() -> None:
    parser = model_arguments(__doc__)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--frames", type=int, default=4, help="frames per request")
    args = parser.parse_args()
    print(f"model {args.model} on {args.device}; cores {os.cpu_count()}; {args.frames} frames"
          " per request; frames/s in all, decoded frame to detections")  # fmt: skip
    print(f"{'workers':>7s} {'own model':>10s} {'cpu ms':>7s} {'shared':>8s} {'cpu ms':>7s}"
          f" {'batch':>6s}")  # fmt: skip
    for workers in (int(w) for w in args.workers.split(",")):
        own, _, own_cpu = run(workers, False, args)
        shared, batch, shared_cpu = run(workers, True, args)
        print(f"{workers:7d} {own:10.1f} {own_cpu * 1000:7.1f} {shared:8.1f}"
              f" {shared_cpu * 1000:7.1f} {batch:6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
