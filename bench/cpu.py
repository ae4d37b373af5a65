"""CPU time of the processes taking part in a bench run, read from /proc.

Linux only, and only for processes on this machine: elsewhere the figures are simply absent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process; None when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_name(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """The direct children of a process."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == pid:
            found.append(int(entry))
    return found


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores together have spent on anything but idling, since boot."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(n) for n in fh.readline().split()[1:9]]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / _TICK


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
        machine = machine_busy_seconds()
        if machine is not None:
            seconds[("machine", 0)] = machine
        return seconds
