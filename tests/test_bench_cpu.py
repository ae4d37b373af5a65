"""The benches' per-process CPU accounting, on this process and a child it starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.cpu import CpuClock, named, process_seconds

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_clock_counts_each_group_and_the_machine() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert named([sleeper.pid, os.getpid(), 2**22 + 1], "python") == [sleeper.pid, os.getpid()]
        clock = CpuClock({"me": [os.getpid()], "sleeper": [sleeper.pid], "gone": [2**22 + 1]})
        clock.start()
        _spin(0.3)
        spent = clock.stop()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert spent["me"] >= 0.25
    assert spent["sleeper"] < 0.1
    assert "gone" not in spent  # no such process: left out, not counted as zero
    assert spent["machine"] >= spent["me"] - 0.02  # tick rounding
    assert process_seconds(sleeper.pid) is None
