"""CPU time of the processes taking part in a bench run (psutil).

Only processes on this machine can be read: for a remote database the figures are absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil


def process_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process; None when it is gone or unreadable."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def named(pids: list[int], prefix: str) -> list[int]:
    """The processes among `pids` whose name starts with `prefix` (a pid from another machine
    may belong to some other process here)."""
    found = []
    for pid in pids:
        try:
            if psutil.Process(pid).name().startswith(prefix):
                found.append(pid)
        except psutil.Error:
            continue
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all cores together have spent on anything but idling, since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


@dataclass
class CpuClock:
    """CPU seconds of named groups of processes, and of the whole machine, over a window."""

    groups: dict[str, list[int]]
    _started: dict[tuple[str, int], float] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        return bool(self._started)

    def start(self) -> None:
        self._started = self._read()

    def stop(self) -> dict[str, float]:
        """Seconds per group since `start`, counting the processes readable at both ends
        (a group with none is left out), and `machine`: all cores together."""
        spent: dict[str, float] = {}
        for key, seconds in self._read().items():
            if key in self._started:
                spent[key[0]] = spent.get(key[0], 0.0) + seconds - self._started[key]
        return spent

    def _read(self) -> dict[tuple[str, int], float]:
        seconds = {
            (name, pid): s
            for name, pids in self.groups.items()
            for pid in pids
            if (s := process_seconds(pid)) is not None
        }
        seconds[("machine", 0)] = machine_busy_seconds()
        return seconds
