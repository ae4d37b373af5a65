"""Loopback port helpers for embedded services."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

# Listeners get ports below the kernel's ephemeral range: a port from bind(0) lies in that range,
# where every outgoing connection (and every other process asking for bind(0)) may take it in the
# moment between our check and the listener's bind.
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_FLOOR = 10_000
_TRIES = 200


def _listener_range() -> tuple[int, int]:
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768
    return _FLOOR, max(low, _FLOOR + 1_000)


def _bindable(host: str, port: int, kind: socket.SocketKind) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", *, udp: bool = False) -> int:
    """A port nothing listens on right now, for TCP (and for UDP too when `udp`)."""
    low, high = _listener_range()
    chooser = random.SystemRandom()  # not seeded alike in processes forked from one parent
    for _ in range(_TRIES):
        port = chooser.randrange(low, high)
        if _bindable(host, port, socket.SOCK_STREAM) and (
            not udp or _bindable(host, port, socket.SOCK_DGRAM)
        ):
            return port
    raise OSError(f"no free port on {host} between {low} and {high}")


def port_is_free(host: str, port: int) -> bool:
    """Whether a listener could bind host:port now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as brokers bind
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(host: str, port: int, *, timeout: float) -> bool:
    """Poll until something accepts on host:port; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
